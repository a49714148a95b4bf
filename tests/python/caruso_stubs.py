"""Python stubs for caruso's .proto files, generated at run time by grpcio-tools
(`python -m grpc_tools.protoc`, which bundles protoc), shared by the test clients.

    import caruso_stubs
    caruso_stubs.add_to_path("registry", "plugin")
    from caruso.v1 import registry_pb2, registry_pb2_grpc

Stubs are made once per content of the named .proto files and cached under
$CARUSO_PY_PROTO_DIR or <repo>/target/py-proto/<names>-<hash>; concurrent runs race
safely (each generates into a temporary directory, the first rename wins).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_ROOT = os.path.join(ROOT, "proto", "proto")


def stubs_dir(*names):
    """Generates the stubs of caruso/v1/<name>.proto for each name; returns their root."""
    protos = [os.path.join("caruso", "v1", name + ".proto") for name in names]
    h = hashlib.sha256()
    for p in protos:
        with open(os.path.join(PROTO_ROOT, p), "rb") as f:
            h.update(f.read())
    base = os.environ.get("CARUSO_PY_PROTO_DIR") or os.path.join(ROOT, "target", "py-proto")
    out = os.path.join(base, "-".join(names) + "-" + h.hexdigest()[:16])
    last = os.path.join(out, "caruso", "v1", names[-1] + "_pb2_grpc.py")
    if os.path.isfile(last):
        return out
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="gen-", dir=base)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_ROOT,
           "--python_out", tmp, "--grpc_python_out", tmp] + protos
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit("protoc failed: " + " ".join(cmd))
    try:
        os.rename(tmp, out)
    except OSError:
        # Another run generated the same stubs first.
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def add_to_path(*names):
    """Makes `from caruso.v1 import <name>_pb2, <name>_pb2_grpc` work for each name."""
    sys.path.insert(0, stubs_dir(*names))

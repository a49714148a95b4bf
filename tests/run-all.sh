#!/usr/bin/env bash
# caruso: THE test command (README): bash tests/run-all.sh
#
# 1. installs what the tests need when missing (SIPp from Debian's sip-tester, iproute2,
#    tcpdump to count the packets that reach SIPp's own media socket, a Python venv in
#    target/pyenv with grpcio for the gRPC client that is not ours);
# 2. builds the whole workspace (all targets);
# 3. runs the unit and integration tests of every crate except the e2e crate;
# 4. runs the e2e crate (the real binary against SIPp, sockets and caruso-agent) inside
#    a fresh network namespace that has only loopback, so nothing can leave the machine;
# 5. prints one "N passed, N failed" line summing every cargo test result.
#
# Environment: CARUSO_TEST_FILTER=<name> passes a test-name filter to the e2e run;
# CARUSO_E2E_ONLY=1 skips step 3. Needs root for `ip netns` (CI runs as root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/caruso-tests.XXXXXX")
START=$(date +%s)

say() { printf '==> %s\n' "$*"; }

# --- 1. tools -----------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi
APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $* missing and apt-get is not available; install it by hand" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v sipp >/dev/null 2>&1 || apt_install sip-tester
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v tcpdump >/dev/null 2>&1 || apt_install tcpdump
[ -f /usr/share/sip-tester/g711a.pcap ] || apt_install sip-tester
say "sipp: $(sipp -v 2>/dev/null | grep -m1 -o 'SIPp v[^ ]*' || echo '?')"

# Python gRPC client for the voicemail tests (tests/python/vm_client.py): a venv under
# target/pyenv with pinned grpcio, grpcio-tools (bundles protoc) and protobuf, made once;
# when `python3 -m venv` is unavailable, `pip install --target` plus a wrapper script.
# Exported as CARUSO_PYTHON for the unit and e2e tests.
PY_DEPS="grpcio==1.85.1 grpcio-tools==1.85.1 protobuf==7.36.2"
PY_ENV="$ROOT/target/pyenv"
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv python3-pip
py_ready() {
  [ -x "$PY_ENV/bin/python" ] && [ "$(cat "$PY_ENV/.caruso-deps" 2>/dev/null)" = "$PY_DEPS" ] &&
    "$PY_ENV/bin/python" -c 'import grpc, grpc_tools.protoc, google.protobuf' 2>/dev/null
}
if ! py_ready; then
  say "python venv $PY_ENV: pip install $PY_DEPS"
  rm -rf "$PY_ENV"
  if python3 -m venv "$PY_ENV" >/dev/null 2>&1 && [ -x "$PY_ENV/bin/pip" ]; then
    # shellcheck disable=SC2086
    "$PY_ENV/bin/pip" install -q --disable-pip-version-check $PY_DEPS
  else
    rm -rf "$PY_ENV"
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    mkdir -p "$PY_ENV/bin"
    # shellcheck disable=SC2086
    python3 -m pip install -q --disable-pip-version-check --target "$PY_ENV/site" $PY_DEPS
    printf '#!/bin/sh\nPYTHONPATH="%s/site${PYTHONPATH:+:$PYTHONPATH}" exec %s "$@"\n' \
      "$PY_ENV" "$(command -v python3)" >"$PY_ENV/bin/python"
    chmod +x "$PY_ENV/bin/python"
  fi
  echo "$PY_DEPS" >"$PY_ENV/.caruso-deps"
  py_ready || { echo "error: python gRPC packages unusable in $PY_ENV" >&2; exit 1; }
fi
export CARUSO_PYTHON="$PY_ENV/bin/python"
say "python: $("$CARUSO_PYTHON" -c 'import grpc; print("grpcio", grpc.__version__)')"

# --- 2. build -----------------------------------------------------------------------
say "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

# --- 3. unit + integration tests (host) ---------------------------------------------
SUMMARY_FILES=()
FAILED_STEPS=0
if [ "${CARUSO_E2E_ONLY:-0}" != "1" ]; then
  say "cargo test --workspace --exclude caruso-e2e"
  if ! cargo test --no-fail-fast --workspace --exclude caruso-e2e 2>&1 | tee "$LOG_DIR/unit.log"; then
    FAILED_STEPS=$((FAILED_STEPS + 1))
  fi
  SUMMARY_FILES+=("$LOG_DIR/unit.log")
fi

# --- 4. e2e tests in a loopback-only network namespace ------------------------------
# Build the e2e test binaries first (on the host: cargo may need the registry index).
cargo test -p caruso-e2e --no-run
NS="caruso-test-$$"
cleanup() { $SUDO ip netns delete "$NS" 2>/dev/null || true; }
trap cleanup EXIT
if ! $SUDO ip netns add "$NS"; then
  echo "error: cannot create network namespace $NS (ip netns needs root / CAP_SYS_ADMIN);" >&2
  echo "       the e2e tests only run isolated from the network. Run as root." >&2
  exit 1
fi
$SUDO ip netns exec "$NS" ip link set lo up
say "e2e tests in network namespace $NS (interfaces: $($SUDO ip netns exec "$NS" ls /sys/class/net | tr '\n' ' '))"
E2E_ARGS=()
if [ -n "${CARUSO_TEST_FILTER:-}" ]; then E2E_ARGS+=("$CARUSO_TEST_FILTER"); fi
# Run cargo in the namespace as the invoking user, with the same environment.
if ! $SUDO ip netns exec "$NS" env "PATH=$PATH" "HOME=$HOME" \
    ${CARGO_HOME:+"CARGO_HOME=$CARGO_HOME"} ${RUSTUP_HOME:+"RUSTUP_HOME=$RUSTUP_HOME"} \
    ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} \
    "CARUSO_PYTHON=$CARUSO_PYTHON" \
    cargo test --offline --no-fail-fast -p caruso-e2e -- ${E2E_ARGS[@]+"${E2E_ARGS[@]}"} 2>&1 | tee "$LOG_DIR/e2e.log"; then
  FAILED_STEPS=$((FAILED_STEPS + 1))
fi
SUMMARY_FILES+=("$LOG_DIR/e2e.log")
# The dialer's call side against SIPp contacts (server/tests/originate.rs: the endpoint,
# ACD and CallOriginator in-process; ignored by the host pass above, run here).
if [ -z "${CARUSO_TEST_FILTER:-}" ]; then
  if ! $SUDO ip netns exec "$NS" env "PATH=$PATH" "HOME=$HOME" \
      ${CARGO_HOME:+"CARGO_HOME=$CARGO_HOME"} ${RUSTUP_HOME:+"RUSTUP_HOME=$RUSTUP_HOME"} \
      ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} \
      cargo test --offline --no-fail-fast -p caruso --test originate -- --ignored 2>&1 \
      | tee "$LOG_DIR/originate.log"; then
    FAILED_STEPS=$((FAILED_STEPS + 1))
  fi
  SUMMARY_FILES+=("$LOG_DIR/originate.log")
fi

# --- 5. summary -----------------------------------------------------------------------
read -r PASSED FAILED IGNORED < <(
  cat "${SUMMARY_FILES[@]}" | awk '
    /^test result:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i;
        if ($(i+1) ~ /^failed/) f += $i;
        if ($(i+1) ~ /^ignored/) g += $i;
      }
    }
    END { printf "%d %d %d\n", p, f, g }'
)
ELAPSED=$(( $(date +%s) - START ))
echo
say "logs in $LOG_DIR; took ${ELAPSED}s"
if [ "$FAILED_STEPS" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
  # A test binary crashed or failed to build: count it as a failure.
  FAILED=$FAILED_STEPS
fi
echo "${PASSED} passed, ${FAILED} failed, ${IGNORED} skipped"
[ "$FAILED" -eq 0 ] && [ "$FAILED_STEPS" -eq 0 ]

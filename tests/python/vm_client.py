#!/usr/bin/env python3
"""caruso voicemail client: a gRPC client that is not the server's code.

Talks to caruso.v1.Voicemail with grpcio and protobuf stubs generated at run time by
grpcio-tools (`python -m grpc_tools.protoc`, which bundles protoc) from
proto/proto/caruso/v1/voicemail.proto. Prints one JSON document on stdout.

    vm_client.py [--server 127.0.0.1:50051] [--token T] counts <mailbox>
    vm_client.py [--server ...] list <mailbox> [new|saved]
    vm_client.py [--server ...] fetch <id> <out.wav>
    vm_client.py [--server ...] mark <id> new|saved
    vm_client.py [--server ...] delete <id>

Every call carries `authorization: Bearer <token>` (--token, default $CARUSO_TOKEN); the
Voicemail service takes an integrator or admin token.

Exit status: 0 on success; 2 for usage errors; 1 for a gRPC error, with
{"error": {"code": "NOT_FOUND", "details": "..."}} on stdout.
Stubs: see caruso_stubs.py.
"""

import argparse
import json
import os
import sys

import caruso_stubs


def load():
    caruso_stubs.add_to_path("voicemail")
    import grpc  # noqa: E402
    from caruso.v1 import voicemail_pb2, voicemail_pb2_grpc  # noqa: E402
    return grpc, voicemail_pb2, voicemail_pb2_grpc


FOLDERS = {"new": 1, "saved": 2}


def folder_name(pb, value):
    return {
        pb.MAILBOX_FOLDER_NEW: "new",
        pb.MAILBOX_FOLDER_SAVED: "saved",
    }.get(value, "unspecified")


def message_json(pb, m):
    return {
        "id": m.id,
        "mailbox": m.mailbox,
        "caller_number": m.caller_number,
        "caller_name": m.caller_name,
        "received_ms": m.received_ms,
        "duration_ms": m.duration_ms,
        "folder": folder_name(pb, m.folder),
        "recovered": m.recovered,
    }


def main(argv):
    p = argparse.ArgumentParser(description="caruso.v1.Voicemail client (JSON output)")
    p.add_argument("--server", default="127.0.0.1:50051", help="gRPC address host:port")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    p.add_argument(
        "--token",
        default=os.environ.get("CARUSO_TOKEN", ""),
        help="bearer token (integrator or admin); default $CARUSO_TOKEN",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("counts", help="new/saved counts of a mailbox")
    c.add_argument("mailbox")
    c = sub.add_parser("list", help="messages of a mailbox, oldest first")
    c.add_argument("mailbox")
    c.add_argument("folder", nargs="?", choices=sorted(FOLDERS))
    c = sub.add_parser("fetch", help="write a message's WAV file")
    c.add_argument("id")
    c.add_argument("out")
    c = sub.add_parser("mark", help="move a message to a folder")
    c.add_argument("id")
    c.add_argument("folder", choices=sorted(FOLDERS))
    c = sub.add_parser("delete", help="delete a message")
    c.add_argument("id")
    args = p.parse_args(argv)

    grpc, pb, pb_grpc = load()
    with grpc.insecure_channel(args.server) as channel:
        stub = pb_grpc.VoicemailStub(channel)
        t = args.timeout
        md = [("authorization", "Bearer " + args.token)] if args.token else []
        try:
            if args.cmd == "counts":
                r = stub.GetMailbox(
                    pb.GetMailboxRequest(mailbox=args.mailbox), timeout=t, metadata=md
                )
                out = {
                    "mailbox": r.mailbox,
                    "owner": r.owner,
                    "new": r.new_count,
                    "saved": r.saved_count,
                    "max_messages": r.max_messages,
                }
            elif args.cmd == "list":
                folder = FOLDERS.get(args.folder, 0)
                r = stub.ListMessages(
                    pb.ListMessagesRequest(mailbox=args.mailbox, folder=folder),
                    timeout=t,
                    metadata=md,
                )
                out = {"messages": [message_json(pb, m) for m in r.messages]}
            elif args.cmd == "fetch":
                data = bytearray()
                total = None
                chunks = 0
                audio = stub.GetAudio(pb.GetAudioRequest(id=args.id), timeout=t, metadata=md)
                for chunk in audio:
                    if chunk.offset != len(data):
                        raise SystemExit(
                            f"chunk at offset {chunk.offset}, expected {len(data)}"
                        )
                    data.extend(chunk.data)
                    total = chunk.total_bytes
                    chunks += 1
                if total is not None and total != len(data):
                    raise SystemExit(f"got {len(data)} bytes, server announced {total}")
                with open(args.out, "wb") as f:
                    f.write(data)
                out = {"id": args.id, "path": args.out, "bytes": len(data), "chunks": chunks}
            elif args.cmd == "mark":
                m = stub.MarkMessage(
                    pb.MarkMessageRequest(id=args.id, folder=FOLDERS[args.folder]),
                    timeout=t,
                    metadata=md,
                )
                out = message_json(pb, m)
            else:
                stub.DeleteMessage(pb.DeleteMessageRequest(id=args.id), timeout=t, metadata=md)
                out = {"id": args.id, "deleted": True}
        except grpc.RpcError as e:
            print(json.dumps({"error": {"code": e.code().name, "details": e.details()}}))
            return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""caruso plug-in written against the .proto files only: a gRPC program that is not the
server's code (grpcio; stubs generated at run time by grpcio-tools, like vm_client.py).

    plugin.py [--server 127.0.0.1:50051] serve --listen 127.0.0.1:PORT
              [--name crm.lookup] [--version 1.0] [--ttl-ms 3000] [--delay-ms 0]
              [--priority N] [--priority-for CALLER=N ...] [--queue Q]
              [--skill NAME=LEVEL ...] [--stop-keepalive-after SECONDS]
    plugin.py [--server ...] lookup [--name crm.lookup]
    plugin.py [--server ...] watch [--name crm.lookup]

serve: implements caruso.v1.Plugin on --listen, registers in caruso.v1.Registry
(metadata `authorization: Bearer integrator-secret`, or $CARUSO_TOKEN), then sends
KeepAlive every third of the granted TTL. CallIncoming answers, after --delay-ms, with
customer data {customer_id: "cust-<caller>", customer_name, plugin_version} and the
priority (--priority-for a caller number overrides --priority), skills and queue given.
Standard input takes commands, one a line: `stop-keepalive`, `deregister`, `exit`.
Every happening is one JSON line on stdout: {"event": "registered", ...},
{"event": "call_incoming", ...}, {"event": "call_ended", ...}, {"event":
"keepalive_stopped"}, {"event": "deregistered"}, {"event": "keepalive_failed", ...}.

lookup: prints {"instances": [...]} once. watch: prints one JSON line per event until
killed (kind ADDED/REMOVED/CHANGED/SYNCED, instance id/version, reason, seq).
"""

import argparse
import json
import os
import sys
import threading
import time
from concurrent import futures

import caruso_stubs

OUT_LOCK = threading.Lock()


def emit(**fields):
    """One JSON line on stdout (flushed: the test reads it as it comes)."""
    fields.setdefault("t", time.time())
    with OUT_LOCK:
        sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
        sys.stdout.flush()


caruso_stubs.add_to_path("registry", "plugin")
import grpc  # noqa: E402
from caruso.v1 import plugin_pb2, plugin_pb2_grpc  # noqa: E402
from caruso.v1 import registry_pb2, registry_pb2_grpc  # noqa: E402


def auth():
    return (("authorization", "Bearer " + os.environ.get("CARUSO_TOKEN", "integrator-secret")),)


def pairs(values):
    out = {}
    for v in values or []:
        k, _, val = v.partition("=")
        out[k] = val
    return out


class Plugin(plugin_pb2_grpc.PluginServicer):
    def __init__(self, args):
        self.args = args
        self.priority_for = {k: int(v) for k, v in pairs(args.priority_for).items()}
        self.skills = {k: int(v) for k, v in pairs(args.skill).items()}

    def CallIncoming(self, request, context):
        emit(event="call_incoming", call_id=request.call_id, caller=request.caller_number,
             called=request.called_number, deadline_ms=request.deadline_ms,
             version=self.args.version)
        if self.args.delay_ms:
            time.sleep(self.args.delay_ms / 1000.0)
        caller = request.caller_number
        resp = plugin_pb2.CallIncomingResponse(
            data={
                "customer_id": "cust-" + caller,
                "customer_name": "Customer " + caller,
                "plugin_version": self.args.version,
            })
        priority = self.priority_for.get(caller, self.args.priority)
        if priority is not None:
            resp.priority = priority
        for name, level in self.skills.items():
            resp.skills.add(skill=name, min_level=level)
        if self.args.queue:
            resp.queue = self.args.queue
        return resp

    def CallEnded(self, request, context):
        emit(event="call_ended", call_id=request.call_id, number=request.number,
             reason=request.reason, answered=request.HasField("answered_ms"),
             version=self.args.version)
        return plugin_pb2.CallEndedResponse()

    def VoicemailNew(self, request, context):
        emit(event="voicemail_new", mailbox=request.mailbox, message_id=request.message_id)
        return plugin_pb2.VoicemailNewResponse()

    def AgentStateChanged(self, request, context):
        emit(event="agent_state", agent=request.agent, frm=getattr(request, "from"),
             to=request.to, seq=request.seq)
        return plugin_pb2.AgentStateChangedResponse()

    def Action(self, request, context):
        return plugin_pb2.ActionResponse(variables={"action": request.name})


def serve(args):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    plugin_pb2_grpc.add_PluginServicer_to_server(Plugin(args), server)
    if server.add_insecure_port(args.listen) == 0:
        raise SystemExit("cannot listen on " + args.listen)
    server.start()
    channel = grpc.insecure_channel(args.server)
    registry = registry_pb2_grpc.RegistryStub(channel)
    reg = registry.Register(registry_pb2.RegisterServiceRequest(
        name=args.name, version=args.version, endpoint=args.listen,
        capabilities=["call.incoming", "call.ended"], metadata={"lang": "python"},
        ttl_ms=args.ttl_ms), metadata=auth(), timeout=5)
    emit(event="registered", instance_id=reg.instance_id, ttl_ms=reg.ttl_ms,
         version=args.version, restored=reg.instance.restored)

    state = {"keepalive": True, "stop": threading.Event()}
    started = time.time()

    def keepalive():
        period = max(reg.ttl_ms / 3000.0, 0.05)
        while not state["stop"].wait(period):
            if args.stop_keepalive_after is not None and \
                    time.time() - started >= args.stop_keepalive_after and state["keepalive"]:
                state["keepalive"] = False
                emit(event="keepalive_stopped")
            if not state["keepalive"]:
                continue
            try:
                registry.KeepAlive(registry_pb2.KeepAliveRequest(instance_id=reg.instance_id),
                                   metadata=auth(), timeout=2)
            except grpc.RpcError as e:
                emit(event="keepalive_failed", code=e.code().name, details=e.details())

    threading.Thread(target=keepalive, daemon=True).start()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stop-keepalive":
            state["keepalive"] = False
            emit(event="keepalive_stopped")
        elif cmd == "deregister":
            state["keepalive"] = False
            try:
                registry.Deregister(registry_pb2.DeregisterServiceRequest(
                    instance_id=reg.instance_id), metadata=auth(), timeout=5)
                emit(event="deregistered")
            except grpc.RpcError as e:
                emit(event="deregister_failed", code=e.code().name)
        elif cmd == "exit":
            break
    state["stop"].set()
    # Calls in flight finish: stop accepting, wait up to 5 s for running ones.
    server.stop(5).wait()
    emit(event="stopped")


def instance_json(i):
    return {"id": i.id, "name": i.name, "version": i.version, "endpoint": i.endpoint,
            "restored": i.restored, "expires_in_ms": i.expires_in_ms}


def lookup(args):
    registry = registry_pb2_grpc.RegistryStub(grpc.insecure_channel(args.server))
    r = registry.Lookup(registry_pb2.LookupServicesRequest(name=args.name), metadata=auth(),
                        timeout=5)
    print(json.dumps({"instances": [instance_json(i) for i in r.instances]}))


def watch(args):
    registry = registry_pb2_grpc.RegistryStub(grpc.insecure_channel(args.server))
    for ev in registry.Watch(registry_pb2.WatchServicesRequest(name=args.name),
                             metadata=auth()):
        emit(kind=registry_pb2.ServiceEventKind.Name(ev.kind).replace("SERVICE_EVENT_KIND_", ""),
             reason=registry_pb2.RemovalReason.Name(ev.reason).replace("REMOVAL_REASON_", ""),
             seq=ev.seq,
             instance=instance_json(ev.instance) if ev.HasField("instance") else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="127.0.0.1:50051")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--name", default="crm.lookup")
    s.add_argument("--version", default="1.0")
    s.add_argument("--ttl-ms", type=int, default=3000)
    s.add_argument("--delay-ms", type=int, default=0)
    s.add_argument("--priority", type=int, default=None)
    s.add_argument("--priority-for", action="append")
    s.add_argument("--skill", action="append")
    s.add_argument("--queue", default=None)
    s.add_argument("--stop-keepalive-after", type=float, default=None)
    for name in ("lookup", "watch"):
        x = sub.add_parser(name)
        x.add_argument("--name", default="")
    args = p.parse_args()
    args.server = args.server.replace("http://", "")
    try:
        {"serve": serve, "lookup": lookup, "watch": watch}[args.cmd](args)
    except grpc.RpcError as e:
        print(json.dumps({"error": {"code": e.code().name, "details": e.details()}}))
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

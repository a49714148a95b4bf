#!/usr/bin/env python3
"""caruso monitor client: a gRPC client that is not the server's code.

Talks to caruso.v1.Monitor (and caruso.v1.Agent to make agents change state) with
grpcio, using stubs generated at run time by grpcio-tools from proto/proto/caruso/v1/
(monitor.proto and the agent.proto it imports). Every call carries
`authorization: Bearer <token>`. Prints JSON on stdout.

    monitor_client.py --server HOST:PORT --token T swarm --watchers 200 --changes K
        Opens the watchers (over several channels), prints {"ready": ...} once every
        first snapshot arrived, then reads K changes on each and prints one summary:
        every watcher's changes must chain (prev_seq = previous seq) and all watchers
        must have seen the same changes.

    monitor_client.py --server HOST:PORT --token T slow --agent-token A [--agent-token B]
            --toggles N [--slow-window BYTES]
        Opens a watcher that does not read (its channel announces a small HTTP/2 window)
        and one that reads everything, makes the agents log in and toggle ready / not
        ready N times each, then reads the slow watcher: whatever was buffered, then its
        status (RESOURCE_EXHAUSTED "watcher too slow" expected). Prints a summary.

Exit status: 0 when the command ran (the summary says what was seen); 2 for usage
errors; 1 for an unexpected gRPC error, with {"error": {"code": ..., "details": ...}}.
Stubs: see caruso_stubs.py.
"""

import argparse
import asyncio
import json
import os
import sys

import caruso_stubs


caruso_stubs.add_to_path("agent", "monitor")
import grpc  # noqa: E402
from caruso.v1 import agent_pb2, agent_pb2_grpc, monitor_pb2, monitor_pb2_grpc  # noqa: E402


def auth(token):
    return (("authorization", "Bearer " + token),)


def kind(ev):
    return ev.WhichOneof("event") or "none"


def describe(ev):
    """A short text of a change, the same for every watcher that sees it."""
    k = kind(ev)
    if k == "agent":
        a = ev.agent.agent
        return "%d agent %s %s %s" % (ev.seq, a.agent, agent_pb2.AgentState.Name(a.state), a.reason)
    if k == "queue":
        f = ev.queue.figures
        return "%d queue %s w=%d r=%d b=%d a=%d" % (
            ev.seq, f.queue, f.waiting, f.agents_ready, f.agents_busy, f.agents_away)
    if k == "call_joined":
        return "%d joined %s %d" % (ev.seq, ev.call_joined.queue, ev.call_joined.call.call)
    if k == "call_left":
        return "%d left %s %d" % (ev.seq, ev.call_left.queue, ev.call_left.call)
    if k == "server":
        f = ev.server.figures
        return "%d server %d %d" % (ev.seq, f.active_calls, f.registrations)
    return "%d %s" % (ev.seq, k)


async def follow(stub, token, changes, ready):
    """One watcher: its snapshot, then `changes` changes; the texts and any gap."""
    call = stub.Watch(monitor_pb2.MonitorWatchRequest(), metadata=auth(token))
    first = await call.read()
    if kind(first) != "snapshot":
        return {"error": "first message is " + kind(first)}
    ready()
    last = first.seq
    seen, gaps = [], 0
    while len(seen) < changes:
        ev = await call.read()
        if ev is grpc.aio.EOF:
            return {"error": "stream ended after %d" % len(seen), "seen": seen, "gaps": gaps}
        if ev.prev_seq != last:
            gaps += 1
        last = ev.seq
        seen.append(describe(ev))
    call.cancel()
    return {"seen": seen, "gaps": gaps}


async def swarm(args):
    channels = [grpc.aio.insecure_channel(args.server) for _ in range(args.channels)]
    stubs = [monitor_pb2_grpc.MonitorStub(c) for c in channels]
    count = {"n": 0}
    all_ready = asyncio.Event()

    def ready():
        count["n"] += 1
        if count["n"] == args.watchers:
            all_ready.set()

    tasks = [asyncio.ensure_future(follow(stubs[i % len(stubs)], args.token, args.changes, ready))
             for i in range(args.watchers)]
    try:
        await asyncio.wait_for(all_ready.wait(), args.timeout)
    except asyncio.TimeoutError:
        print(json.dumps({"ready": False, "watchers": count["n"]}), flush=True)
        return 1
    print(json.dumps({"ready": True, "watchers": count["n"]}), flush=True)
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    results = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    errors = [r["error"] for r in results if "error" in r]
    complete = [r for r in results if "error" not in r]
    distinct = sorted({"\n".join(r["seen"]) for r in complete})
    print(json.dumps({
        "watchers": args.watchers,
        "complete": len(complete),
        "unfinished": len(pending),
        "errors": errors[:5],
        "gaps": sum(r.get("gaps", 0) for r in results),
        "distinct_sequences": len(distinct),
        "sequence": distinct[0].split("\n") if distinct else [],
    }), flush=True)
    for c in channels:
        await c.close()
    return 0


async def slow(args):
    # The slow watcher's channel: no BDP probing, a small window: the server's sends
    # stop early while nobody reads.
    slow_channel = grpc.aio.insecure_channel(args.server, options=[
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", args.slow_window),
    ])
    fast_channel = grpc.aio.insecure_channel(args.server)
    agent_channel = grpc.aio.insecure_channel(args.server)
    slow_call = monitor_pb2_grpc.MonitorStub(slow_channel).Watch(
        monitor_pb2.MonitorWatchRequest(), metadata=auth(args.token))
    first = await slow_call.read()
    assert kind(first) == "snapshot", kind(first)
    fast_call = monitor_pb2_grpc.MonitorStub(fast_channel).Watch(
        monitor_pb2.MonitorWatchRequest(), metadata=auth(args.token))
    fast = {"received": 0, "gaps": 0, "error": None}
    fast_first = await fast_call.read()
    assert kind(fast_first) == "snapshot", kind(fast_first)

    async def read_fast():
        last = fast_first.seq
        try:
            while True:
                ev = await fast_call.read()
                if ev is grpc.aio.EOF:
                    fast["error"] = "EOF"
                    return
                if ev.prev_seq != last:
                    fast["gaps"] += 1
                last = ev.seq
                fast["received"] += 1
                fast["last_seq"] = last
        except asyncio.CancelledError:
            pass
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                fast["error"] = "%s: %s" % (e.code().name, e.details())

    reader = asyncio.ensure_future(read_fast())
    agent = agent_pb2_grpc.AgentStub(agent_channel)

    async def toggle(token):
        md = auth(token)
        st = await agent.GetStatus(agent_pb2.GetAgentStatusRequest(), metadata=md)
        if st.state == agent_pb2.AGENT_STATE_LOGGED_OUT:
            await agent.LogIn(agent_pb2.LogInRequest(), metadata=md)
        for i in range(args.toggles):
            if i % 2 == 0:
                await agent.SetReady(agent_pb2.SetReadyRequest(), metadata=md)
            else:
                await agent.SetNotReady(agent_pb2.SetNotReadyRequest(reason=args.reason), metadata=md)
        await agent.LogOut(agent_pb2.LogOutRequest(), metadata=md)

    await asyncio.gather(*(toggle(t) for t in args.agent_token))
    # Every change so far: the fast watcher must reach the last one.
    snap = await monitor_pb2_grpc.MonitorStub(agent_channel).Snapshot(
        monitor_pb2.MonitorSnapshotRequest(), metadata=auth(args.token))
    deadline = asyncio.get_event_loop().time() + args.timeout
    while fast.get("last_seq", 0) < snap.seq and fast["error"] is None:
        if asyncio.get_event_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    fast["caught_up"] = fast.get("last_seq", 0) >= snap.seq
    fast_call.cancel()
    await reader
    # Now read the slow watcher.
    received, code, details = 0, None, None
    try:
        while True:
            ev = await asyncio.wait_for(slow_call.read(), args.timeout)
            if ev is grpc.aio.EOF:
                code = "OK"
                break
            received += 1
    except grpc.aio.AioRpcError as e:
        code, details = e.code().name, e.details()
    except asyncio.TimeoutError:
        code = "TIMEOUT"
    print(json.dumps({
        "changes": snap.seq - first.seq,
        "fast": fast,
        "slow": {"received": received, "code": code, "details": details},
    }), flush=True)
    for c in (slow_channel, fast_channel, agent_channel):
        await c.close()
    return 0


def main(argv):
    p = argparse.ArgumentParser(description="caruso.v1.Monitor client (JSON output)")
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--token", default="supervisor-secret")
    p.add_argument("--timeout", type=float, default=30.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("swarm", help="many watchers see the same changes")
    s.add_argument("--watchers", type=int, default=200)
    s.add_argument("--changes", type=int, required=True)
    s.add_argument("--channels", type=int, default=4)
    s = sub.add_parser("slow", help="a watcher that does not read is cut off")
    s.add_argument("--agent-token", action="append", required=True)
    s.add_argument("--toggles", type=int, default=1000)
    s.add_argument("--reason", default="break")
    s.add_argument("--slow-window", type=int, default=1024)
    args = p.parse_args(argv)
    try:
        return asyncio.run(swarm(args) if args.cmd == "swarm" else slow(args))
    except grpc.aio.AioRpcError as e:
        print(json.dumps({"error": {"code": e.code().name, "details": e.details()}}), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The messidge 1.3.1 baseline for module calls: a broker set up as
messidge's demo broker is (a minimal model, sessions and nodes, no broker
commands of its own), a node serving `divide` as messidge's demo node
does, and a load client that calls `divide` through the broker, one call
in flight, measured the way modhost-bench's `rpc` measures modhost.

messidge's client protocol is ZeroMQ + CBOR with NaCl-encrypted user
sessions, spoken by its Python `Connection`; there is no websocket to
point modhost-bench at, so the load client is this Python script. Its
per-call overhead (a blocking call from the main thread, handed to the
connection's background thread) is messidge's own client, which is part
of what a messidge user pays.

The demo files are not in messidge's PyPI package, and the demo node in
its repository has typos that make `divide` always fail; this is our own
equivalent of both, on the library's public API.

  python messidge_bench.py setup DIR      keys for broker, user and node,
                                          and their accounts in DIR
  python messidge_bench.py broker DIR     the broker (tcp 2020 and 2021,
                                          fixed by messidge's client)
  python messidge_bench.py node DIR       the node serving `divide`
  python messidge_bench.py client DIR [--secs S] [--warmup W] [--rounds N]
                                      [--server-pids PID,PID]
      calls/s and latency over one connection, one call in flight; one
      JSON line and one Markdown row per round, like modhost-bench.
      Server CPU is summed over the given pids and their children (the
      broker's encryption agent is a child process).
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
from base64 import b64encode

from messidge import KeyPair
from messidge.broker.bases import ModelMinimal, NodeMinimal, SessionMinimal
from messidge.broker.broker import Broker
from messidge.broker.identity import Identity
from messidge.client.connection import Connection, cmd

HOST = "127.0.0.1"


def keys(directory, name):
    return KeyPair(name, prefix=directory)


def identity_type(directory):
    """messidge's Identity keeps its database in ~ unless told otherwise."""

    class BenchIdentity(Identity):
        def __init__(self):
            super().__init__(directory)

    return BenchIdentity


def setup(directory):
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(os.path.join(directory, "node.pub")):
        return
    KeyPair.new("server", prefix=directory)
    user = KeyPair.new("user", prefix=directory)
    node = KeyPair.new("node", prefix=directory)
    ident = identity_type(directory)()
    ident.register_user(user.public.decode(), "bench@localhost", "{}")
    ident.register_node(node.public.decode(), "{}")
    ident.stop()


class BrokerController:
    """The demo broker's controller minus its note-keeping commands: every
    other command is forwarded to the node the caller names."""

    commands = {}


def broker(directory):
    logging.basicConfig(level=os.environ.get("MESSIDGE_LOG", "WARNING"))
    b = Broker(
        keys(directory, "server"),
        ModelMinimal(),
        NodeMinimal,
        SessionMinimal,
        BrokerController(),
        identity_type=identity_type(directory),
    )
    try:
        b.run()
    finally:
        b.stop()


class NodeController:
    """What messidge's demo node serves: `divide`, with the demo's
    parameter names (`dividend`, `devisor`)."""

    commands = {b"divide": cmd(["dividend", "devisor"], needs_reply=True)}

    def __init__(self):
        self.connection = None

    def _divide(self, msg):
        dividend, divisor = msg.params["dividend"], msg.params["devisor"]
        if not isinstance(dividend, (int, float)) or not isinstance(divisor, (int, float)):
            raise ValueError("Divide only takes two numbers.")
        if divisor == 0:
            raise ValueError("Devisor cannot be zero")
        msg.reply(self.connection.send_skt(), {"quotient": dividend / divisor})


def connect(directory, name, prepare=None):
    """A connection that completed its handshake. messidge's Connection
    attaches its socket monitor after `connect`, so when the broker
    accepts at once the CONNECTED event can come too early to be seen and
    the handshake is never sent (seen here about every other time): such a
    connection is dropped and made again. `prepare(conn)` runs before the
    message loop starts (to register commands)."""
    server_pk = keys(directory, "server").public.decode()
    for _ in range(20):
        conn = Connection(location=HOST, keys=keys(directory, name), server_pk=server_pk)
        if prepare is not None:
            prepare(conn)
        ready = threading.Event()
        conn.register_connect_callback(lambda rid: ready.set())
        conn.start()
        if ready.wait(3):
            return conn
        logging.warning("%s: no handshake with the broker within 3 s; connecting again", name)
        conn.disconnect()
    print(f"messidge {name}: no handshake with the broker on {HOST}:2020 in 20 tries (is it running?)",
          file=sys.stderr)
    os._exit(1)


def node(directory):
    logging.basicConfig(level=os.environ.get("MESSIDGE_LOG", "WARNING"))
    controller = NodeController()

    def prepare(conn):
        controller.connection = conn
        conn.register_commands(controller, NodeController.commands)

    conn = connect(directory, "node", prepare)
    try:
        conn.wait_until_complete()
    finally:
        conn.disconnect()


def sched_ns(pid):
    """(on CPU, waiting for a CPU) in ns over every thread of `pid` and of
    its children, from /proc/*/task/*/schedstat (as modhost-bench does)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    run = wait = 0
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    fields = f.read().split()
            except OSError:
                continue
            run += int(fields[0])
            wait += int(fields[1])
    return run, wait


def percentile(sorted_ns, q):
    i = min(max(int(-(-len(sorted_ns) * q // 1)), 1), len(sorted_ns)) - 1
    return sorted_ns[i] / 1000.0


def client(directory, secs, warmup, rounds, server_pids):
    logging.basicConfig(level=os.environ.get("MESSIDGE_LOG", "WARNING"))
    conn = connect(directory, "user")
    node_pk = keys(directory, "node").public_binary()
    params = {"node": node_pk, "dividend": 7.0, "devisor": 2.0}
    # One call first: it fails loudly if the node is not connected.
    try:
        reply = conn.send_blocking_cmd(b"divide", dict(params), timeout=10)
        if reply.params.get("quotient") != 3.5:
            raise ValueError(f"divide answered {reply.params}")
    except ValueError as e:
        # "No node address": the node has not finished its handshake.
        print(f"messidge client: the first call failed: {e}", file=sys.stderr)
        conn.disconnect()
        sys.exit(1)
    for rnd in range(1, rounds + 1):
        errors = 0
        first_error = None
        until = time.perf_counter_ns() + int(warmup * 1e9)
        while time.perf_counter_ns() < until:
            conn.send_blocking_cmd(b"divide", dict(params), timeout=10)
        lat = []
        servers = [sched_ns(p) for p in server_pids]
        me = time.process_time_ns()
        start = time.perf_counter_ns()
        until = start + int(secs * 1e9)
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= until:
                break
            try:
                r = conn.send_blocking_cmd(b"divide", dict(params), timeout=10)
                if r.params.get("quotient") != 3.5:
                    raise ValueError(str(r.params))
                lat.append(time.perf_counter_ns() - t0)
            except ValueError as e:
                errors += 1
                first_error = first_error or str(e)
        wall = time.perf_counter_ns() - start
        me = time.process_time_ns() - me
        after = [sched_ns(p) for p in server_pids]
        server_ns = sum(a[0] - b[0] for a, b in zip(after, servers))
        server_wait = sum(a[1] - b[1] for a, b in zip(after, servers))
        lat.sort()
        n = len(lat)
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        latency = {
            "samples": n,
            "p50_us": round(percentile(lat, 0.5), 1) if n else None,
            "p99_us": round(percentile(lat, 0.99), 1) if n else None,
            "p999_us": round(percentile(lat, 0.999), 1) if n else None,
            "max_us": round(lat[-1] / 1000.0, 1) if n else None,
        }
        per_call = round(server_ns / n, 1) if n and server_pids else None
        out = {
            "scenario": "rpc",
            "target": "messidge",
            "round": rnd,
            "conns": 1,
            "depth": 1,
            "call": "divide via messidge 1.3.1 broker (Python client)",
            "calls_per_s": round(n / (wall / 1e9)),
            "latency": latency,
            "errors": errors,
            "first_error": first_error,
            "cpu": {
                "wall_ms": round(wall / 1e6, 1),
                "server_cpu_ms": round(server_ns / 1e6, 1) if server_pids else None,
                "server_runqueue_wait_ms": round(server_wait / 1e6, 1) if server_pids else None,
                "client_cpu_ms": round(me / 1e6, 1),
                "server_cpu_ns_per_call": per_call,
                "client_cpu_ns_per_call": round(me / n, 1) if n else None,
            },
            "loadavg": load,
        }
        print(json.dumps(out), flush=True)
        print(
            f"| rpc divide (messidge client) | messidge | 1 conn × depth 1 | {out['calls_per_s']} calls/s "
            f"| p50 {latency['p50_us']} µs, p99 {latency['p99_us']} µs | errors {errors} "
            f"| server {per_call} ns CPU/call | load {load} |",
            flush=True,
        )
    conn.disconnect()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["setup", "broker", "node", "client"])
    ap.add_argument("dir")
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-pids", default="")
    a = ap.parse_args()
    directory = os.path.abspath(a.dir)
    if a.role == "setup":
        setup(directory)
    elif a.role == "broker":
        broker(directory)
    elif a.role == "node":
        node(directory)
    else:
        pids = [int(p) for p in a.server_pids.split(",") if p]
        client(directory, a.secs, a.warmup, a.rounds, pids)


if __name__ == "__main__":
    main()

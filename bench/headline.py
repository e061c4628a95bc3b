#!/usr/bin/env python3
"""Prints BENCHMARKS.md's headline table from one `bench/run.sh suite` output.

    python3 bench/headline.py bench/results/suite-N.txt

Reads the JSON lines modhost-bench and the messidge client print, groups
them by figure and server, and gives the median of the rounds, the spread
and the load averages seen, with the ratio to Node (or, for calls, the
ratio between modhost's `echo` and its bare `/echo` websocket round trip,
and modhost's `divide` against messidge's). Nothing is measured here.
"""

import json
import statistics
import sys


def median(values):
    return statistics.median(values) if values else None


def load_range(runs):
    ones = [float(r["loadavg"].split()[0]) for r in runs if r.get("loadavg")]
    return f"{min(ones):.2f}–{max(ones):.2f}" if ones else "n/a"


def spread(values, fmt):
    if len(values) < 2:
        return ""
    return f" ({fmt(min(values))}–{fmt(max(values))})"


def read(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return runs


def pick(runs, **want):
    out = []
    for r in runs:
        if all(r.get(k) == v for k, v in want.items()):
            out.append(r)
    return out


def fanout(runs, target, mode, publishers):
    # Runs from before `publishers` was recorded match any count.
    return [
        r
        for r in pick(runs, scenario="fanout", target=target, via="trigger")
        if r.get("mode", "").startswith(mode) and r.get("publishers", publishers) == publishers
    ]


def main(path):
    runs = read(path)
    servers = ["modhost", "node", "uws"]
    lines = [
        "| figure | modhost | Node 20 + ws | uWS (socketify) | messidge 1.3.1 | modhost ÷ peer | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]

    for conns in (10000, 19000):
        cells, values, used = {}, {}, []
        for t in servers:
            rs = [r for r in pick(runs, scenario="idle", target=t, conns=conns) if r.get("subscribed")]
            per = [r["bytes_per_conn"] / 1000 for r in rs if r.get("bytes_per_conn")]
            slab = [
                r["kernel_slab_bytes_per_conn_both_ends"] / 2000
                for r in rs
                if r.get("kernel_slab_bytes_per_conn_both_ends")
            ]
            used += rs
            if per:
                values[t] = median(per)
                kernel = f"; kernel ~{median(slab):.1f} KB/socket" if slab else ""
                cells[t] = f"{values[t]:.2f} KB/conn{kernel}"
        ratio = (
            f"{values['modhost'] / values['node']:.2f}× Node, {values['modhost'] / values['uws']:.1f}× uWS"
            if {"modhost", "node", "uws"} <= values.keys()
            else ""
        )
        lines.append(
            f"| idle memory, {conns:,} subscribed connections (server RSS growth) | "
            + " | ".join(cells.get(t, "—") for t in servers)
            + f" | — | {ratio} | {load_range(used)} |"
        )

    for label, mode, pubs in (
        ("paced fan-out p99, 1,000 subscribers, 5 publishes/s", "paced", 1),
        ("burst fan-out, 1,000 subscribers, 1 HTTP publisher", "burst", 1),
        ("burst fan-out, 1,000 subscribers, 4 HTTP publishers", "burst", 4),
    ):
        cells, values, used = {}, {}, []
        for t in servers:
            rs = fanout(runs, t, mode, pubs)
            used += rs
            if not rs:
                continue
            cpu = median([r["cpu"]["server_cpu_ns_per_delivery"] / 1000 for r in rs])
            if mode == "paced":
                p99 = [r["latency"]["p99_us"] / 1000 for r in rs]
                values[t] = median(p99)
                cells[t] = f"p99 {values[t]:.1f} ms{spread(p99, lambda v: f'{v:.1f}')}, {cpu:.1f} µs CPU/delivery"
            else:
                rate = [r["deliveries_per_s"] for r in rs]
                values[t] = median(rate)
                cells[t] = f"{values[t] / 1000:.0f}k/s{spread(rate, lambda v: f'{v / 1000:.0f}k')}, {cpu:.2f} µs CPU/delivery"
        ratio = ""
        if "modhost" in values and "node" in values:
            ratio = f"{values['modhost'] / values['node']:.2f}× Node"
            if "uws" in values:
                ratio += f", {values['modhost'] / values['uws']:.2f}× uWS"
        lines.append(
            f"| {label} (median of {len(used) // max(1, len(values))}) | "
            + " | ".join(cells.get(t, "—") for t in servers)
            + f" | — | {ratio} | {load_range(used)} |"
        )

    echo = pick(runs, scenario="rpc", target="modhost", conns=1, depth=1, call="echo.echo")
    raw = [r for r in pick(runs, scenario="rpc", target="modhost", conns=1, depth=1) if "/echo" in r.get("call", "")]
    if echo and raw:
        e, w = median([r["latency"]["p50_us"] for r in echo]), median([r["latency"]["p50_us"] for r in raw])
        ec = median([r["cpu"]["server_cpu_ns_per_call"] / 1000 for r in echo])
        wc = median([r["cpu"]["server_cpu_ns_per_call"] / 1000 for r in raw])
        lines.append(
            f"| `echo` call vs bare `/echo`, 1 websocket, 1 in flight: p50 / server CPU per call | "
            f"echo {e:.1f} µs / {ec:.1f} µs; /echo {w:.1f} µs / {wc:.1f} µs | — | — | — | "
            f"{e / w:.2f}× the bare round trip | {load_range(echo + raw)} |"
        )
    sixteen = pick(runs, scenario="rpc", target="modhost", conns=16, depth=1, call="echo.echo")
    if sixteen:
        rate = [r["calls_per_s"] for r in sixteen]
        cpu = median([r["cpu"]["server_cpu_ns_per_call"] / 1000 for r in sixteen])
        lines.append(
            f"| `echo` calls/s, 16 websockets, 1 in flight each | {median(rate) / 1000:.1f}k/s"
            f"{spread(rate, lambda v: f'{v / 1000:.1f}k')}, {cpu:.1f} µs CPU/call | — | — | — | — | {load_range(sixteen)} |"
        )
    divide = pick(runs, scenario="rpc", target="modhost", conns=1, depth=1, call="divide.divide")
    mess = pick(runs, scenario="rpc", target="messidge")
    if divide and mess:
        d, m = median([r["calls_per_s"] for r in divide]), median([r["calls_per_s"] for r in mess])
        dp, mp = median([r["latency"]["p50_us"] for r in divide]), median([r["latency"]["p50_us"] for r in mess])
        lines.append(
            f"| `divide`, 1 connection, 1 call in flight: calls/s, p50 | {d / 1000:.1f}k/s, p50 {dp:.1f} µs | — | — | "
            f"{m / 1000:.2f}k/s, p50 {mp:.1f} µs | {d / m:.1f}× messidge's rate | {load_range(divide + mess)} |"
        )
    external = pick(runs, scenario="rpc", target="modhost", conns=1, depth=1, call="pymod.divide")
    if divide and external:
        d, x = median([r["calls_per_s"] for r in divide]), median([r["calls_per_s"] for r in external])
        dp, xp = median([r["latency"]["p50_us"] for r in divide]), median([r["latency"]["p50_us"] for r in external])
        lines.append(
            f"| `divide` served by the Python external module (examples/python-module) vs in-process | "
            f"external {x / 1000:.2f}k/s, p50 {xp:.1f} µs; in-process {d / 1000:.1f}k/s, p50 {dp:.1f} µs | — | — | — | "
            f"external {x / d:.2f}× the in-process rate | {load_range(divide + external)} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

"""Fan-out: W watchers of one namespace of one resource while a writer puts E objects of ~1 KiB at R/s
straight to etcd. Side by side, in one run, on the same machine:

- watchcache: ``watchcache serve`` in front of etcd; W HTTP/1.1 chunked watches (one connection each);
- watchcache-h2: the same, W watches over HTTP/2 with prior knowledge (h2c), ``--watches-per-conn``
  streams per connection (10 by default, as the gRPC clients have);
- etcd: W gRPC Watch watches straight on etcd;
- wc-etcd: W gRPC Watch watches through watchcache's etcd v3 front (``--etcd-listen-port``);
- grpc-proxy: W gRPC Watch watches through ``etcd grpc-proxy start`` (the same etcd binary).

The server side (etcd, and watchcache or grpc-proxy) is pinned to one core, the clients and the writer
to the other; etcd's data dir is on tmpfs. The watchers are one C program (benchmarks/wclient.c,
compiled at run time with ``cc``): epoll over every socket, HTTP/1.1 chunked parsing, or hand-rolled
HTTP/2 (+ protobuf for gRPC), so that the client is not the bottleneck; its CPU is printed.

    python benchmarks/fanout.py --quick
    python benchmarks/fanout.py --watchers 1000 --rate 50 --duration 10 --runs 3
    python benchmarks/fanout.py --watchers 1000,10000 --rate 50,500 --runs 3 --json results.json
    python benchmarks/fanout.py -W 1000 -R 50 --runs 3 --targets watchcache,watchcache-h2,grpc-proxy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    GROUP,
    NAMESPACE,
    RESOURCE,
    VERSION,
    Etcd,
    EtcdWriter,
    GrpcProxy,
    Table,
    Watchcache,
    build_client,
    cores,
    cpu_seconds,
    fmt,
    key_prefix,
    machine,
    make_value,
    median,
    mem_kib,
    pin_self,
    pinned,
    prefix_end,
    running,
)

TARGETS = ("watchcache", "watchcache-h2", "wc-etcd", "etcd", "grpc-proxy")
SERVED_BY_WATCHCACHE = ("watchcache", "watchcache-h2", "wc-etcd")


@dataclass
class Params:
    watchers: int
    rate: float
    events: int
    size: int
    drain: float
    watches_per_stream: int
    streams_per_conn: int
    watches_per_conn: int
    watchcache_args: tuple[str, ...]


class Client:
    """The C load client as a child process; its stdout lines arrive on a queue."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, word: str, timeout: float) -> list[str] | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if line.startswith(word + " "):
                return line.split()[1:]

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self, timeout: float) -> None:
        """Stop the client and wait up to ``timeout`` seconds for it to exit; then kill it."""
        self.stop()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


async def write_events(endpoint: str, p: Params) -> tuple[float, float, float]:
    """E puts at R/s, each value embedding its sequence number and wall-clock ns. Sequential (one
    put in flight), so etcd's order is the sequence order. Returns (start, end, achieved rate)."""
    writer = EtcdWriter(endpoint)
    prefix = key_prefix()
    try:
        await writer.put(prefix + b"warmup", b"{}")  # connect before timing
        await writer.kv.DeleteRange(__import__("aetcd").rpc.DeleteRangeRequest(key=prefix + b"warmup"))
        start = time.monotonic()
        for i in range(p.events):
            due = start + i / p.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await writer.put(prefix + f"o-{i}".encode(), make_value(i, p.size, time.time_ns()))
        end = time.monotonic()
    finally:
        await writer.close()
    return start, end, p.events / max(end - start, 1e-9)


def run_target(target: str, p: Params, client_bin: str) -> dict[str, Any]:
    server_core, client_core = cores()
    pin_self(client_core)
    etcd = Etcd(core=server_core)
    servers: list[Any] = [etcd]
    wc = proxy = None
    if target in SERVED_BY_WATCHCACHE:
        wc = Watchcache(etcd, core=server_core, extra=p.watchcache_args, etcd_front=target == "wc-etcd")
        servers.append(wc)
    elif target == "grpc-proxy":
        proxy = GrpcProxy(etcd, core=server_core)
        servers.append(proxy)
    with running(*servers):
        assert etcd.proc is not None
        if target in ("watchcache", "watchcache-h2"):
            assert wc is not None and wc.proc is not None
            server_pid = wc.proc.pid
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}?watch=true&resourceVersion=0"
            args = ["http" if target == "watchcache" else "h2", "127.0.0.1", str(wc.port), path]
        else:
            if target == "wc-etcd":
                assert wc is not None and wc.proc is not None
                port, server_pid = wc.etcd_port, wc.proc.pid
            else:
                port = etcd.port if target == "etcd" else proxy.port  # type: ignore[union-attr]
                server_pid = etcd.proc.pid if target == "etcd" else proxy.proc.pid  # type: ignore[union-attr]
            start, end = key_prefix(), prefix_end(key_prefix())
            args = ["grpc", "127.0.0.1", str(port), start.decode(), end.decode()]
        args += [str(p.watchers), str(p.events), "120"]
        if args[0] == "grpc":
            args += [str(p.watches_per_stream), str(p.streams_per_conn)]
        elif args[0] == "h2":
            args += [str(p.watches_per_conn)]
        client = Client(pinned([client_bin, *args], client_core))
        try:
            opened = client.expect("OPEN", 180)
            if opened is None:
                raise RuntimeError(f"{target}: the watches did not open")
            open_s, n_open = float(opened[0]), int(opened[1])
            time.sleep(0.5)  # let the last watch registrations settle
            cpu0 = {pid: cpu_seconds(pid) for pid in (server_pid, etcd.proc.pid, client.proc.pid)}
            w_start, w_end, achieved = asyncio.run(write_events(etcd.endpoint, p))
            result = client.expect("RESULT", p.drain)
            timed_out = result is None
            if result is None:  # not every event arrived within the drain time
                cpu1 = {pid: cpu_seconds(pid) for pid in cpu0}
                client.stop()
                result = client.expect("RESULT", 30)
            else:
                cpu1 = {pid: cpu_seconds(pid) for pid in cpu0}
            if result is None:
                raise RuntimeError(f"{target}: the client printed no result")
            rss = mem_kib(server_pid, "VmHWM")
            etcd_rss = mem_kib(etcd.proc.pid, "VmHWM")
        finally:
            client.finish(30)
    r = dict(kv.split("=", 1) for kv in result)
    distinct, received = int(r["distinct"]), int(r["received"])
    expected = p.watchers * p.events
    last = float(r["last"])
    span = (last - w_start) if last > 0 else 0.0
    server_cpu = cpu1[server_pid] - cpu0[server_pid]
    etcd_cpu = cpu1[etcd.proc.pid] - cpu0[etcd.proc.pid]
    client_cpu = cpu1[client.proc.pid] - cpu0[client.proc.pid]
    return {
        "target": target,
        "open_s": open_s,
        "opened": n_open,
        "expected": expected,
        "delivered": distinct,
        "lost": expected - distinct,
        "duplicated": int(r["dup"]),
        "reordered": int(r["reorder"]),
        "cut": int(r["cut"]),
        "errors": int(r["errors"]),
        "received": received,
        "events_per_s": distinct / span if span > 0 else 0.0,
        "p50_ms": _ms(r["p50_ms"]),
        "p99_ms": _ms(r["p99_ms"]),
        "max_ms": _ms(r["max_ms"]),
        "server_cpu_s": server_cpu,
        "server_us_per_event": server_cpu / distinct * 1e6 if distinct else None,
        "server_cpu_pct": server_cpu / span * 100 if span > 0 else None,
        "etcd_cpu_s": etcd_cpu,
        "client_cpu_s": client_cpu,
        "client_cpu_pct": client_cpu / span * 100 if span > 0 else None,
        "server_rss_mb": rss / 1024,
        "etcd_rss_mb": etcd_rss / 1024,
        "write_rate": achieved,
        "drain_timed_out": int(timed_out),
        "span_s": span,
        "write_s": w_end - w_start,
    }


def _runs(n: int) -> str:
    return f"median of {n}" if n > 1 else "1 run"


def _ms(value: str) -> float | None:
    return None if float(value) < 0 else float(value)


ROWS: list[tuple[str, str, str]] = [
    ("events delivered / expected", "delivered", "d"),
    ("undelivered (lost, or late past --drain)", "lost", "d"),
    ("runs that hit the drain deadline", "drain_timed_out", "d"),
    ("duplicated", "duplicated", "d"),
    ("reordered", "reordered", "d"),
    ("watchers cut off", "cut", "d"),
    ("events/s delivered", "events_per_s", ",.0f"),
    ("p50 put→receive ms", "p50_ms", ".2f"),
    ("p99 put→receive ms", "p99_ms", ".2f"),
    ("server CPU µs/event", "server_us_per_event", ".2f"),
    ("server CPU % of a core", "server_cpu_pct", ".0f"),
    ("server peak RSS MB", "server_rss_mb", ".0f"),
    ("time to open all watches s", "open_s", ".2f"),
    ("etcd CPU s", "etcd_cpu_s", ".2f"),
    ("client CPU % of a core", "client_cpu_pct", ".0f"),
    ("writer achieved puts/s", "write_rate", ".0f"),
]


def summarize(runs: dict[str, list[dict[str, Any]]], p: Params, n_runs: int) -> str:
    targets = [t for t in TARGETS if t in runs]
    cols = list(targets)
    ratios = [t for t in SERVED_BY_WATCHCACHE if t in runs and "grpc-proxy" in runs]
    cols += [f"{t}/proxy" for t in ratios]
    table = Table(
        f"W={p.watchers} R={p.rate:g}/s E={p.events} ({_runs(n_runs)})",
        cols,
    )
    med: dict[str, dict[str, float | None]] = {
        t: {k: median([r[k] for r in runs[t]]) for k in runs[t][0] if k != "target"} for t in targets
    }
    for label, key, spec in ROWS:
        cells = []
        for t in targets:
            v = med[t].get(key)
            if key == "delivered":
                cells.append(
                    f"{fmt(v, 'd' if v is not None else '')}/{int(med[t]['expected'] or 0)}"
                    if v is not None
                    else "-"
                )
                continue
            cells.append(fmt(int(v) if spec == "d" and v is not None else v, spec))
        for t in ratios:
            a, b = med[t].get(key), med["grpc-proxy"].get(key)
            ratio_ok = key in (
                "events_per_s",
                "p50_ms",
                "p99_ms",
                "server_us_per_event",
                "server_rss_mb",
                "open_s",
            )
            cells.append(f"{a / b:.2f}x" if ratio_ok and a is not None and b else "")
        table.add(label, cells)
    return table.render()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", "-W", default="1000", help="comma-separated W values (default 1000)")
    ap.add_argument("--rate", "-R", default="50", help="comma-separated puts/s values (default 50)")
    ap.add_argument("--events", "-E", type=int, default=0, help="puts per run (default: rate x duration)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of writing when -E is not given")
    ap.add_argument("--size", type=int, default=1024, help="object size in bytes (default 1024)")
    ap.add_argument("--runs", type=int, default=1, help="runs per target; medians are printed")
    ap.add_argument("--targets", default=",".join(TARGETS), help="subset of " + ",".join(TARGETS))
    ap.add_argument("--drain", type=float, default=60.0, help="seconds to wait for delivery after writing")
    ap.add_argument("--watches-per-stream", type=int, default=1, help="gRPC watches per Watch stream")
    ap.add_argument("--streams-per-conn", type=int, default=100, help="gRPC Watch streams per connection")
    ap.add_argument(
        "--watches-per-conn", type=int, default=10, help="watchcache-h2: watch streams per HTTP/2 connection"
    )
    ap.add_argument("--watchcache-arg", action="append", default=[], help="extra flag for watchcache serve")
    ap.add_argument("--json", help="append the raw results (one JSON object per run) to this file")
    ap.add_argument("--quick", action="store_true", help="a few seconds: W=20, E=40 at 200/s, one run")
    args = ap.parse_args()
    if args.quick:
        args.watchers, args.rate, args.events, args.runs, args.drain = "20", "200", 40, 1, 20.0
    targets = [t for t in args.targets.split(",") if t]
    client_bin = build_client()
    print(f"machine: {machine()}")
    server_core, client_core = cores()
    print(
        f"server side (etcd + server) on core {server_core or '-'}, "
        f"clients and writer on core {client_core or '-'}"
    )
    status = 0
    for w in (int(x) for x in args.watchers.split(",")):
        for rate in (float(x) for x in args.rate.split(",")):
            events = args.events or max(1, int(rate * args.duration))
            p = Params(
                watchers=w,
                rate=rate,
                events=events,
                size=args.size,
                drain=args.drain,
                watches_per_stream=args.watches_per_stream,
                streams_per_conn=args.streams_per_conn,
                watches_per_conn=args.watches_per_conn,
                watchcache_args=tuple(args.watchcache_arg),
            )
            runs: dict[str, list[dict[str, Any]]] = {}
            for i in range(args.runs):
                for t in targets:
                    try:
                        res = run_target(t, p, client_bin)
                    except Exception as err:  # one failed target must not hide the others
                        print(f"  {t} run {i + 1}: FAILED: {err}", file=sys.stderr)
                        status = 1
                        continue
                    res.update(watchers=w, rate=rate, events=events, run=i + 1)
                    runs.setdefault(t, []).append(res)
                    print(
                        f"  W={w} R={rate:g} {t} run {i + 1}: "
                        f"{res['delivered']}/{res['expected']} delivered, "
                        f"{res['events_per_s']:,.0f} ev/s, p99 {res['p99_ms'] or 0:.1f} ms, "
                        f"{res['server_us_per_event'] or 0:.2f} µs/ev, "
                        f"client CPU {res['client_cpu_pct'] or 0:.0f}%",
                        flush=True,
                    )
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps(res) + "\n")
            if runs:
                print()
                print(summarize(runs, p, args.runs))
                print(flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

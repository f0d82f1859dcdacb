"""Memory of ``watchcache serve``: RSS per cached object against the raw value bytes etcd holds, and RSS
per idle watcher.

- objects: RSS (VmRSS, once ready) of a watchcache that loaded N objects of ~1 KiB minus that of one
  that loaded none, divided by N, and by the raw value bytes per object;
- watchers: RSS after opening W idle HTTP watches (the C client of fanout.py) minus RSS before, over W,
  and how long opening them took: one HTTP/1.1 connection each, or with ``--watches-per-conn N`` N
  streams of each HTTP/2 connection (h2c, prior knowledge), as client-go multiplexes its watches;
- with ``--trickle R``: then R puts/s for ``--duration`` seconds straight to etcd, every one of which
  each of the W watchers must get once and in order (the C client counts what is lost, duplicated,
  reordered or cut), and the server's peak RSS meanwhile.

Past ~28k connections one client source address runs out of ephemeral ports towards one server port,
so the client spreads its connections over 127.0.0.2, 127.0.0.3, … (20,000 each); and the script
raises RLIMIT_NOFILE for itself and its children (the soft limit to the hard one, and the hard one
when it is too low and the script may), or says that it could not.

    python benchmarks/memory.py --quick
    python benchmarks/memory.py --objects 100000 --watchers 10000
    python benchmarks/memory.py --objects 1000 --watchers 100000 --trickle 10 --duration 10
    python benchmarks/memory.py --objects 1000 --watchers 100000 --watches-per-conn 100 --trickle 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    GROUP,
    NAMESPACE,
    RESOURCE,
    VERSION,
    Etcd,
    EtcdWriter,
    Table,
    Watchcache,
    build_client,
    cores,
    machine,
    mem_kib,
    pin_self,
    pinned,
    raise_open_files,
    running,
)
from fanout import Client, Params, write_events

PER_SOURCE = 20_000
"""Client connections per source address (one address has ~28k ephemeral ports)."""


def settled_rss(pid: int) -> int:
    """VmRSS in KiB once it stops moving (the cache finished loading, the allocator settled)."""
    last = -1
    for _ in range(40):
        time.sleep(0.25)
        now = mem_kib(pid, "VmRSS")
        if abs(now - last) < 256:
            return now
        last = now
    return last


def cache_rss(etcd: Etcd, core: str) -> int:
    wc = Watchcache(etcd, core=core)
    with running(wc):
        assert wc.proc is not None
        # one LIST so that both servers have run the same code paths once
        url = f"{wc.url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}?resourceVersion=0"
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
        return settled_rss(wc.proc.pid)


def watchers_rss(args: argparse.Namespace, server_core: str, client_core: str) -> dict[str, float]:
    """Open W idle watches, then (with ``--trickle``) write to them: see the module docstring."""
    res: dict[str, float] = {}
    client_bin = build_client()
    events = round(args.trickle * args.duration)
    etcd = Etcd(core=server_core)
    wc = Watchcache(etcd, core=server_core)
    with running(etcd, wc):
        assert wc.proc is not None
        before = settled_rss(wc.proc.pid)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}?watch=true&resourceVersion=0"
        sources = args.sources
        conns = math.ceil(args.watchers / max(args.watches_per_conn, 1))
        if sources is None:
            sources = math.ceil(conns / PER_SOURCE) if conns > PER_SOURCE or args.quick else 0
        env = dict(os.environ, WCLIENT_SOURCES=str(sources))
        t = time.monotonic()
        mode = "h2" if args.watches_per_conn else "http"
        cmd = [client_bin, mode, "127.0.0.1", str(wc.port), path, str(args.watchers), str(events), "600"]
        if args.watches_per_conn:
            cmd.append(str(args.watches_per_conn))
        client = Client(pinned(cmd, client_core), env=env)
        try:
            opened = client.expect("OPEN", 660)
            if opened is None or int(opened[1]) != args.watchers:
                raise RuntimeError(f"only {opened and opened[1]} of {args.watchers} watches opened")
            res["open_s"] = time.monotonic() - t
            res["sources"] = sources
            after = settled_rss(wc.proc.pid)
            res["watchers_rss_mb"] = after / 1024
            res["rss_bytes_per_watcher"] = (after - before) * 1024 / args.watchers
            if events:
                p = Params(
                    watchers=args.watchers,
                    rate=args.trickle,
                    events=events,
                    size=args.size,
                    drain=args.drain,
                    watches_per_stream=1,
                    streams_per_conn=1,
                    watches_per_conn=1,
                    watchcache_args=(),
                )
                _, _, res["write_rate"] = asyncio.run(write_events(etcd.endpoint, p))
                result = client.expect("RESULT", args.drain)
                res["drain_timed_out"] = int(result is None)
                if result is None:
                    client.stop()
                    result = client.expect("RESULT", 60)
                if result is None:
                    raise RuntimeError("the client printed no result")
                r = dict(kv.split("=", 1) for kv in result)
                res["expected"] = args.watchers * events
                res["delivered"] = int(r["distinct"])
                res["duplicated"] = int(r["dup"])
                res["reordered"] = int(r["reorder"])
                res["cut"] = int(r["cut"])
                res["p99_ms"] = float(r["p99_ms"])
                res["peak_rss_mb"] = mem_kib(wc.proc.pid, "VmHWM") / 1024
                res["rss_after_trickle_mb"] = mem_kib(wc.proc.pid, "VmRSS") / 1024
        finally:
            client.finish(60)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", "-N", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--watchers", "-W", type=int, default=10_000)
    ap.add_argument("--trickle", type=float, default=0.0, help="puts/s to the idle watchers afterwards")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of --trickle")
    ap.add_argument("--drain", type=float, default=60.0, help="seconds the events may take to arrive")
    ap.add_argument(
        "--sources",
        type=int,
        help=f"client source addresses 127.0.0.2… (default: one per {PER_SOURCE} watches past {PER_SOURCE})",
    )
    ap.add_argument(
        "--watches-per-conn",
        type=int,
        default=0,
        help="HTTP/2 (h2c): watch streams per connection (default 0: HTTP/1.1, one connection each)",
    )
    ap.add_argument("--json", help="append the raw result (one JSON object) to this file")
    ap.add_argument("--quick", action="store_true", help="seconds: N=2000, W=200, a 1 s trickle of 10/s")
    args = ap.parse_args()
    if args.quick:
        args.objects, args.watchers, args.trickle, args.duration = 2000, 200, 10.0, 1.0
    print(f"machine: {machine()}")
    # The server and the client each hold one descriptor per connection, plus a few hundred of their own.
    needed = math.ceil(args.watchers / max(args.watches_per_conn, 1)) + 512
    limit, limits = raise_open_files(needed)
    print(limits)
    if limit < needed:
        print(
            f"memory.py: cannot open {args.watchers} watches: each process may open {limit} files "
            f"and the server and the client each need about {needed}; largest W here: "
            f"{(limit - 512) * max(args.watches_per_conn, 1)}",
            file=sys.stderr,
        )
        return 2
    server_core, client_core = cores()
    pin_self(client_core)
    res: dict[str, float] = {}

    etcd = Etcd(core=server_core)
    with running(etcd):
        empty = cache_rss(etcd, server_core)

        async def load() -> int:
            writer = EtcdWriter(etcd.endpoint)
            try:
                return await writer.load(args.objects, args.size)
            finally:
                await writer.close()

        raw = asyncio.run(load())
        full = cache_rss(etcd, server_core)
    res["empty_rss_mb"] = empty / 1024
    res["full_rss_mb"] = full / 1024
    res["raw_bytes_per_object"] = raw / args.objects
    res["rss_bytes_per_object"] = (full - empty) * 1024 / args.objects
    res["rss_over_raw"] = res["rss_bytes_per_object"] / res["raw_bytes_per_object"]
    res.update(watchers_rss(args, server_core, client_core))

    table = Table("memory", ["measured", "target", "met"])
    table.add("RSS, empty cache MB", [f"{res['empty_rss_mb']:.1f}", "", ""])
    table.add(f"RSS, {args.objects} objects MB", [f"{res['full_rss_mb']:.1f}", "", ""])
    table.add("raw value bytes per object", [f"{res['raw_bytes_per_object']:.0f}", "", ""])
    table.add("RSS bytes per cached object", [f"{res['rss_bytes_per_object']:.0f}", "", ""])
    table.add(
        "RSS / raw value bytes",
        [f"{res['rss_over_raw']:.2f}x", "≤ 1.3x", "yes" if res["rss_over_raw"] <= 1.3 else "no"],
    )
    w = args.watchers
    wpc = args.watches_per_conn
    # HTTP/1.1: a connection (socket, buffers, parser) per watch; HTTP/2: a stream of a shared one.
    per, target = (f"HTTP/2, {wpc} per connection", 1024) if wpc else ("HTTP/1.1", 4096)
    table.add(
        f"RSS bytes per idle watcher (W={w}, {per})",
        [
            f"{res['rss_bytes_per_watcher']:.0f}",
            f"≤ {target}",
            "yes" if res["rss_bytes_per_watcher"] <= target else "no",
        ],
    )
    table.add(f"RSS with {w} idle watchers MB", [f"{res['watchers_rss_mb']:.1f}", "", ""])
    sources = int(res["sources"])
    via = f"from {sources} source address{'es' if sources > 1 else ''}" if sources else "from 127.0.0.1"
    table.add(f"time to open {w} watches s ({via})", [f"{res['open_s']:.2f}", "", ""])
    if "expected" in res:
        lost = int(res["expected"] - res["delivered"])
        table.add(
            f"trickle {args.trickle:g} puts/s for {args.duration:g} s: delivered / expected",
            [f"{int(res['delivered'])}/{int(res['expected'])}", "all", "yes" if lost == 0 else "no"],
        )
        table.add(
            "lost / duplicated / reordered / cut off",
            [
                f"{lost}/{int(res['duplicated'])}/{int(res['reordered'])}/{int(res['cut'])}",
                "0/0/0/0",
                "yes" if (lost, res["duplicated"], res["reordered"], res["cut"]) == (0, 0, 0, 0) else "no",
            ],
        )
        table.add("p99 put→receive ms", [f"{res['p99_ms']:.0f}", "", ""])
        table.add("writer achieved puts/s", [f"{res['write_rate']:.1f}", "", ""])
        table.add("server peak RSS MB (VmHWM)", [f"{res['peak_rss_mb']:.1f}", "", ""])
    print()
    print(table.render())
    if args.json:
        with open(args.json, "a") as f:
            f.write(
                json.dumps(dict(res, objects=args.objects, watchers=args.watchers, watches_per_conn=wpc))
                + "\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory of ``watchcache serve``: RSS per cached object against the raw value bytes etcd holds, and RSS
per idle watcher.

- objects: RSS (VmRSS, once ready) of a watchcache that loaded N objects of ~1 KiB minus that of one
  that loaded none, divided by N, and by the raw value bytes per object;
- watchers: RSS after opening W idle HTTP watches (the C client of fanout.py) minus RSS before, over W.

    python benchmarks/memory.py --quick
    python benchmarks/memory.py --objects 100000 --watchers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    running,
)
from fanout import Client


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", "-N", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--watchers", "-W", type=int, default=10_000)
    ap.add_argument("--json", help="append the raw result (one JSON object) to this file")
    ap.add_argument("--quick", action="store_true", help="seconds: N=2000, W=200")
    args = ap.parse_args()
    if args.quick:
        args.objects, args.watchers = 2000, 200
    print(f"machine: {machine()}")
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

    client_bin = build_client()
    etcd = Etcd(core=server_core)
    wc = Watchcache(etcd, core=server_core)
    with running(etcd, wc):
        assert wc.proc is not None
        before = settled_rss(wc.proc.pid)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}?watch=true&resourceVersion=0"
        t = time.monotonic()
        client = Client(
            pinned(
                [client_bin, "http", "127.0.0.1", str(wc.port), path, str(args.watchers), "0", "120"],
                client_core,
            )
        )
        try:
            opened = client.expect("OPEN", 180)
            if opened is None or int(opened[1]) != args.watchers:
                raise RuntimeError(f"only {opened and opened[1]} of {args.watchers} watches opened")
            res["open_s"] = time.monotonic() - t
            after = settled_rss(wc.proc.pid)
            res["watchers_rss_mb"] = after / 1024
        finally:
            client.stop()
            client.proc.wait(30)
    res["rss_bytes_per_watcher"] = (after - before) * 1024 / args.watchers

    table = Table("memory", ["measured", "target", "met"])
    table.add("RSS, empty cache MB", [f"{res['empty_rss_mb']:.1f}", "", ""])
    table.add(f"RSS, {args.objects} objects MB", [f"{res['full_rss_mb']:.1f}", "", ""])
    table.add("raw value bytes per object", [f"{res['raw_bytes_per_object']:.0f}", "", ""])
    table.add("RSS bytes per cached object", [f"{res['rss_bytes_per_object']:.0f}", "", ""])
    table.add(
        "RSS / raw value bytes",
        [f"{res['rss_over_raw']:.2f}x", "≤ 2x", "yes" if res["rss_over_raw"] <= 2 else "no"],
    )
    table.add(
        f"RSS bytes per idle watcher (W={args.watchers})",
        [
            f"{res['rss_bytes_per_watcher']:.0f}",
            "≤ 8192",
            "yes" if res["rss_bytes_per_watcher"] <= 8192 else "no",
        ],
    )
    print()
    print(table.render())
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(dict(res, objects=args.objects, watchers=args.watchers)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

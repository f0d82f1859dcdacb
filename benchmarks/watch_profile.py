"""Where an idle HTTP watch's bytes go: ``watchcache`` in this process (uvloop, as ``watchcache serve``
runs it) under ``tracemalloc``, W idle watches opened by the C client of fanout.py, and the Python
allocations that the watches added, per watch, grouped by the module that made them (and the top
tracebacks). Also the process's RSS growth per watch, for comparison (tracemalloc sees only Python's
allocator and what goes through it; uvloop's libuv handles and the kernel's socket buffers are not in
it).

    python benchmarks/watch_profile.py --quick
    python benchmarks/watch_profile.py --watchers 2000
    python benchmarks/watch_profile.py --watchers 2000 --frames 12 --top 25
    python benchmarks/watch_profile.py --watchers 2000 --watches-per-conn 10   # streams of HTTP/2

With ``--watches-per-conn N`` the watches are N streams of each HTTP/2 connection (h2c), as client-go
multiplexes them; else each is an HTTP/1.1 connection.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc
from collections import defaultdict

import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import CONFIG_YAML, GROUP, NAMESPACE, RESOURCE, VERSION, Etcd, build_client, mem_kib, running
from fanout import Client

from watchcache import Service, ServiceOptions
from watchcache.config import parse_config


def _short(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for marker in ("site-packages/", "watchcache/", "/lib/python3"):
        i = name.find(marker)
        if i >= 0:
            short = name[i + len(marker) :]
            if marker == "/lib/python3":
                short = short.split("/", 1)[-1]
            elif marker == "watchcache/" and not name[:i].endswith("site-packages/"):
                short = "watchcache/" + short
            return f"{short}:{frame.lineno}"
    return f"{name}:{frame.lineno}"


def where(frames: tracemalloc.Traceback) -> str:
    """The innermost frame of aiohttp, uvloop or watchcache that made the allocation (with the
    standard library's frame inside it, when the allocation happened there)."""
    inner = _short(frames[-1])
    for frame in reversed(frames):  # most recent first
        if "/lib/python3" in frame.filename and "site-packages" not in frame.filename:
            continue
        outer = _short(frame)
        return outer if outer == inner else f"{outer} → {inner}"
    return inner


async def profile(args: argparse.Namespace, etcd: Etcd, client_bin: str) -> None:
    options = ServiceOptions(
        config=parse_config(CONFIG_YAML), etcd_servers=(etcd.endpoint,), port=0, bind_address="127.0.0.1"
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        port = int(svc.url.rsplit(":", 1)[1])
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}?watch=true&resourceVersion=0"
        # Warm every code path once (imports, caches), then measure from a quiet state.
        for n in (50, args.watchers):
            gc.collect()
            await asyncio.sleep(0.5)
            tasks_before = len(asyncio.all_tasks())
            rss_before = mem_kib(os.getpid(), "VmRSS")
            before = tracemalloc.take_snapshot()
            mode = "h2" if args.watches_per_conn else "http"
            cmd = [client_bin, mode, "127.0.0.1", str(port), path, str(n), "0", "120"]
            if args.watches_per_conn:
                cmd.append(str(args.watches_per_conn))
            client = Client(cmd)
            opened = await asyncio.to_thread(client.expect, "OPEN", 180)
            if opened is None or int(opened[1]) != n:
                raise RuntimeError(f"only {opened and opened[1]} of {n} watches opened")
            await asyncio.sleep(1.0)
            gc.collect()
            after = tracemalloc.take_snapshot()
            rss_after = mem_kib(os.getpid(), "VmRSS")
            tasks_after = len(asyncio.all_tasks())
            if n == args.watchers:
                report(
                    args,
                    before=before,
                    after=after,
                    n=n,
                    rss_kib=rss_after - rss_before,
                    tasks=tasks_after - tasks_before,
                )
            client.stop()
            await asyncio.to_thread(client.proc.wait, 30)
            await asyncio.sleep(1.0)


def report(
    args: argparse.Namespace,
    *,
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    n: int,
    rss_kib: int,
    tasks: int,
) -> None:
    stats = after.compare_to(before, "traceback")
    by_place: dict[str, int] = defaultdict(int)
    by_count: dict[str, int] = defaultdict(int)
    total = 0
    for stat in stats:
        if stat.size_diff <= 0:
            continue
        place = where(stat.traceback)
        by_place[place] += stat.size_diff
        by_count[place] += stat.count_diff
        total += stat.size_diff
    print(f"W={n}: tracemalloc +{total / n:.0f} B per watch; RSS +{rss_kib * 1024 / n:.0f} B per watch")
    print(f"tasks added per watch: {tasks / n:.2f}")
    print()
    print("| allocated at (innermost frame) | B per watch | blocks per watch |")
    print("|---|---:|---:|")
    for place, size in sorted(by_place.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| `{place}` | {size / n:.0f} | {by_count[place] / n:.1f} |")
    print()
    print(f"top tracebacks (innermost last, {args.frames} frames):")
    for stat in [s for s in stats if s.size_diff > 0][: args.tracebacks]:
        print(f"\n+{stat.size_diff / n:.0f} B/watch, {stat.count_diff / n:.1f} blocks/watch")
        for line in stat.traceback.format(limit=args.frames, most_recent_first=True):
            print("   " + line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", "-W", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=25, help="frames kept per allocation")
    ap.add_argument("--top", type=int, default=30, help="places listed")
    ap.add_argument("--tracebacks", type=int, default=12, help="tracebacks listed")
    ap.add_argument(
        "--watches-per-conn", type=int, default=0, help="HTTP/2 streams per connection (0: HTTP/1.1)"
    )
    ap.add_argument("--quick", action="store_true", help="seconds: W=100, no tracebacks")
    args = ap.parse_args()
    if args.quick:
        args.watchers, args.tracebacks = 100, 0
    client_bin = build_client()
    tracemalloc.start(args.frames)
    etcd = Etcd()
    with running(etcd):
        uvloop.run(profile(args, etcd, client_bin))
    return 0


if __name__ == "__main__":
    sys.exit(main())

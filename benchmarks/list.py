"""Consistent LIST: N objects of ~1 KiB in one namespace; p50/p99 of a full consistent LIST (no
resourceVersion) sequentially, with 8 in flight, and right after a write straight to etcd (counting
stale answers: the list must contain that write). Side by side:

- watchcache: ``watchcache serve`` (served from the cache once it has caught up with etcd);
- no cache: benchmarks/nocache_server.py, an aiohttp server doing what a server without a cache does
  (one linearizable etcd range, decode every value, set resourceVersion, encode the List).

Servers and etcd on one core, the client (aiohttp) on the other; etcd's data dir on tmpfs.

    python benchmarks/list.py --quick
    python benchmarks/list.py --objects 10000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    GROUP,
    HERE,
    NAMESPACE,
    RESOURCE,
    VERSION,
    Etcd,
    EtcdWriter,
    Table,
    Watchcache,
    _stop,
    _wait,
    cores,
    cpu_seconds,
    fmt,
    free_port,
    key_prefix,
    machine,
    make_value,
    median,
    mem_kib,
    pct,
    pin_self,
    pinned,
    running,
)

PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{RESOURCE}"


@dataclass
class NoCache:
    etcd: Etcd
    core: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NoCache:
        self.port = free_port()
        cmd = [sys.executable, str(HERE / "nocache_server.py"), "--etcd", f"127.0.0.1:{self.etcd.port}",
               "--port", str(self.port)]  # fmt: skip
        self.proc = subprocess.Popen(pinned(cmd, self.core))

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                return r.status == 200

        _wait(ready, "nocache server", proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)


async def measure(
    *, url: str, etcd: Etcd, server_pid: int, n_seq: int, n_conc: int, n_fresh: int, n: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    writer = EtcdWriter(etcd.endpoint)
    assert etcd.proc is not None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:

        async def one() -> tuple[float, bytes]:
            t = time.perf_counter()
            async with session.get(url + PATH) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"LIST answered {resp.status}: {body[:200]!r}")
            return (time.perf_counter() - t) * 1000, body

        _, body = await one()  # warm-up, and a check of the answer
        count = len(orjson.loads(body)["items"])
        if count != n:
            raise RuntimeError(f"LIST returned {count} items, want {n}")
        out["bytes"] = len(body)
        cpu0, ecpu0 = cpu_seconds(server_pid), cpu_seconds(etcd.proc.pid)
        seq = [(await one())[0] for _ in range(n_seq)]
        conc: list[float] = []

        async def worker(k: int) -> None:
            for _ in range(k):
                conc.append((await one())[0])

        t = time.perf_counter()
        await asyncio.gather(*(worker(n_conc // 8) for _ in range(8)))
        conc_wall = time.perf_counter() - t
        cpu1, ecpu1 = cpu_seconds(server_pid), cpu_seconds(etcd.proc.pid)
        lists = n_seq + 8 * (n_conc // 8)
        fresh: list[float] = []
        stale = 0
        probe_key = key_prefix() + b"probe"
        for i in range(n_fresh):
            rev = await writer.put(probe_key, make_value(i, 1024, name="probe"))
            ms, body = await one()
            fresh.append(ms)
            doc = orjson.loads(body)
            probe = [o for o in doc["items"] if o["metadata"]["name"] == "probe"]
            ok = (
                int(doc["metadata"]["resourceVersion"]) >= rev
                and len(probe) == 1
                and probe[0]["metadata"]["annotations"]["bench"].split()[0] == str(i)
                and int(probe[0]["metadata"]["resourceVersion"]) == rev
            )
            stale += not ok
        await writer.close()
    out.update(
        seq_p50=pct(seq, 0.5),
        seq_p99=pct(seq, 0.99),
        conc_p50=pct(conc, 0.5),
        conc_p99=pct(conc, 0.99),
        conc_lists_per_s=len(conc) / conc_wall,
        fresh_p50=pct(fresh, 0.5),
        fresh_p99=pct(fresh, 0.99),
        stale=stale,
        fresh_n=n_fresh,
        server_cpu_ms_per_list=(cpu1 - cpu0) / lists * 1000,
        etcd_cpu_ms_per_list=(ecpu1 - ecpu0) / lists * 1000,
        server_rss_mb=mem_kib(server_pid, "VmHWM") / 1024,
    )
    return out


def run_target(target: str, n: int, size: int, iters: tuple[int, int, int]) -> dict[str, Any]:
    server_core, client_core = cores()
    pin_self(client_core)
    etcd = Etcd(core=server_core)
    with running(etcd):

        async def load() -> None:
            writer = EtcdWriter(etcd.endpoint)
            await writer.load(n, size)
            await writer.close()

        asyncio.run(load())
        server: Any = (
            Watchcache(etcd, core=server_core) if target == "watchcache" else NoCache(etcd, core=server_core)
        )
        with running(server):
            n_seq, n_conc, n_fresh = iters
            return asyncio.run(
                measure(
                    url=server.url,
                    etcd=etcd,
                    server_pid=server.proc.pid,
                    n_seq=n_seq,
                    n_conc=n_conc,
                    n_fresh=n_fresh,
                    n=n,
                )
            )


ROWS = [
    ("sequential p50 ms", "seq_p50", ".1f"),
    ("sequential p99 ms", "seq_p99", ".1f"),
    ("8 in flight p50 ms", "conc_p50", ".1f"),
    ("8 in flight p99 ms", "conc_p99", ".1f"),
    ("8 in flight LISTs/s", "conc_lists_per_s", ".1f"),
    ("after a write p50 ms", "fresh_p50", ".1f"),
    ("after a write p99 ms", "fresh_p99", ".1f"),
    ("stale answers after a write", "stale", "d"),
    ("server CPU ms per LIST", "server_cpu_ms_per_list", ".2f"),
    ("etcd CPU ms per LIST", "etcd_cpu_ms_per_list", ".2f"),
    ("server peak RSS MB", "server_rss_mb", ".0f"),
    ("response MB", "bytes", ".1f"),
]


def _runs(n: int) -> str:
    return f"median of {n}" if n > 1 else "1 run"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", "-N", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sequential", type=int, default=50, help="sequential LISTs (default 50)")
    ap.add_argument("--concurrent", type=int, default=200, help="LISTs made 8 at a time (default 200)")
    ap.add_argument("--after-write", type=int, default=50, help="write-then-LIST rounds (default 50)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--targets", default="watchcache,no cache", help="subset of: watchcache,no cache")
    ap.add_argument("--json", help="append raw results (one JSON object per run) to this file")
    ap.add_argument("--quick", action="store_true", help="seconds: N=500, few LISTs")
    args = ap.parse_args()
    if args.quick:
        args.objects, args.sequential, args.concurrent, args.after_write, args.runs = 500, 10, 16, 5, 1
    print(f"machine: {machine()}")
    iters = (args.sequential, args.concurrent, args.after_write)
    results: dict[str, list[dict[str, Any]]] = {}
    status = 0
    for i in range(args.runs):
        for target in [t for t in args.targets.split(",") if t]:
            try:
                res = run_target(target, args.objects, args.size, iters)
            except Exception as err:
                print(f"  {target} run {i + 1}: FAILED: {err}", file=sys.stderr)
                status = 1
                continue
            res["bytes"] = res["bytes"] / 1e6
            print(f"  {target} run {i + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items()), flush=True)
            results.setdefault(target, []).append(res)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(dict(res, target=target, objects=args.objects, run=i + 1)) + "\n")
    if len(results) == 2:
        med = {t: {k: median([r[k] for r in rs]) for k in rs[0]} for t, rs in results.items()}
        table = Table(
            f"LIST N={args.objects}x{args.size} B ({_runs(args.runs)})",
            ["watchcache", "no cache", "ratio"],
        )
        for label, key, spec in ROWS:
            a, b = med["watchcache"][key], med["no cache"][key]
            ratio = f"{a / b:.2f}x" if a is not None and b and key != "stale" else ""
            conv = (lambda v: int(v) if v is not None else None) if spec == "d" else (lambda v: v)
            table.add(label, [fmt(conv(a), spec), fmt(conv(b), spec), ratio])
        print()
        print(table.render())
    return status


if __name__ == "__main__":
    sys.exit(main())

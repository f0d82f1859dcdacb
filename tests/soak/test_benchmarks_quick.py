"""The benchmarks' --quick modes run end to end (seconds each), so the scripts cannot rot.

No assertion is made on speed: each must exit 0 and print its results table. They start their own etcd
(and grpc-proxy, watchcache serve) on free loopback ports and compile the C load client with ``cc``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.etcd


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_fanout_quick() -> None:
    """fanout.py --quick: every target delivers the events and the side-by-side table is printed."""
    out = _run("fanout.py")
    assert "| W=20 R=200/s E=40" in out
    for column in ("watchcache", "watchcache-h2", "wc-etcd", "etcd", "grpc-proxy"):
        assert column in out
    assert "events delivered / expected" in out
    assert "p99 put→receive ms" in out


def test_list_quick() -> None:
    """list.py --quick: watchcache and the no-cache path both answer, and the table is printed."""
    out = _run("list.py")
    assert "| LIST N=500" in out
    assert "stale answers after a write" in out


def test_memory_quick() -> None:
    """memory.py --quick: per-object and per-watcher RSS are printed; the watches are opened from
    another source address (127.0.0.2) and a short trickle reaches every one once, in order."""
    out = _run("memory.py")
    assert "RSS bytes per cached object" in out
    assert "RSS bytes per idle watcher" in out
    assert "(from 1 source address)" in out
    assert "| lost / duplicated / reordered / cut off" in out
    assert "0/0/0/0 | 0/0/0/0 | yes" in out


def test_memory_quick_over_http2() -> None:
    """memory.py --quick --watches-per-conn 10: the idle watches are streams of shared HTTP/2
    connections, judged against 1 KiB each, and the trickle reaches every one once, in order."""
    out = _run("memory.py", "--watches-per-conn", "10")
    assert "RSS bytes per idle watcher (W=200, HTTP/2, 10 per connection)" in out
    assert "0/0/0/0 | 0/0/0/0 | yes" in out


def test_watch_profile_quick() -> None:
    """watch_profile.py --quick, over HTTP/1.1 and over HTTP/2: the tracemalloc breakdown per idle watch
    is printed, and the watches hold no task."""
    for args in ((), ("--watches-per-conn", "10")):
        out = _run("watch_profile.py", *args)
        assert "B per watch" in out
        assert "tasks added per watch: 0.00" in out


def test_abuse_quick() -> None:
    """abuse.py --quick: every attack runs against a two-tenant server and the table is printed (no
    assertion on the targets: today's code misses several of them)."""
    out = _run("abuse.py")
    assert "| attack " in out
    for row in (
        "none (baseline",
        "1a. JSON-patch amplification",
        "1b. JSON-patch copy into own child",
        "2. LISTs never read",
        "3. WATCHes never read",
        "4. connections without credentials",
        "5. forged continue tokens",
        "6. /readyz?verbose without credentials",
        "7. other client mistakes",
    ):
        assert f"| {row}" in out, row
    assert "harness error" not in out

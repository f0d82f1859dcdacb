"""Abuse: one tenant against another, as in the hardening issue.

Two tenants share one ``watchcache serve``: ``attacker`` owns wardle.example.com, whose ``flunders``
(served as v1alpha1 and v1beta1; v1beta1 is the non-primary version) hold a big data set loaded
straight into etcd; ``victim`` owns victim.example.com and its ``widgets``. Throughout, the victim GETs
one of its objects in a loop (a new connection each time, as a newly arriving client would), writes
through the API at a steady rate and watches from a known resourceVersion. The attacker runs each
attack of the issue in its own window, after a baseline window without attack:

- 1a. JSON-patch amplification: ~4.4 KB of ``add`` + two ``copy`` ops a round, doubling the object.
- 1b. JSON-patch depth: copying a node into its own deepest child until the result is deeper than
  any limit.
- 2. LISTs of the non-primary version whose client never reads (small SO_RCVBUF, no recv).
- 3. WATCHes (resourceVersion=0, non-primary version) whose client never reads its initial state.
- 4. ~1000 connections without credentials, half idle, half trickling header bytes, against a
  server under ``RLIMIT_NOFILE`` 1024 (``ulimit -n 1024``).
- 5. Forged continue tokens: a real one with its revision far ahead, and garbage ones.
- 6. ``/readyz?verbose`` without credentials while the caches load (at every server start) and after.
- 7. Other client mistakes: bad selectors and query parameters, nonsense JSON and merge patches.

Each window reports the server's peak RSS (VmRSS every 50 ms) against its RSS right before; the
victim's GET p99 and max; how long the victim's GETs stayed slow (≥ 250 ms) or failed; the events the
victim's watch lost, got twice or out of order; and every 5xx either tenant got. Targets: RSS ≤ 1.5x,
p99 < 250 ms, 0 lost, 0 5xx (6 also: no resource named). It is a benchmark: missed targets are
printed and the exit code is 0; only a failure of the harness itself exits non-zero.

Attacks 1a, 2, 3 and 4 each get a fresh server (4 with the lowered file limit), so that one attack's
leftovers cannot blur the next row; 1b, 5, 6 and 7 share one. The server runs under RLIMIT_AS (a
backstop) and is killed once its RSS passes ``--rss-cap-mb``, so the machine never swaps: such a row
says "killed at".

    python benchmarks/abuse.py --quick          # seconds, small data: CI runs it
    python benchmarks/abuse.py                  # 1000 x 100 KiB, 30 s windows (~6 min)
    python benchmarks/abuse.py --attacks 1a,4   # a subset
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    GROUP,
    HERE,
    NAMESPACE,
    RESOURCE,
    Etcd,
    EtcdWriter,
    Table,
    Watchcache,
    cores,
    fmt,
    machine,
    mem_kib,
    pct,
    pin_self,
    running,
)

PRIMARY, OTHER = "v1alpha1", "v1beta1"
VICTIM_GROUP, VICTIM_RESOURCE, VICTIM_VERSION, VICTIM_NS = "victim.example.com", "widgets", "v1", "victim"
ATTACKER_TOKEN, VICTIM_TOKEN = "attacker-s3cr3t", "victim-s3cr3t"
CONFIG_YAML = f"""resources:
  - group: {GROUP}
    versions: [{PRIMARY}, {OTHER}]
    resource: {RESOURCE}
    kind: Flunder
    namespaced: true
  - group: {VICTIM_GROUP}
    versions: [{VICTIM_VERSION}]
    resource: {VICTIM_RESOURCE}
    kind: Widget
    namespaced: true
tenants:
  - name: attacker
    groups: [{GROUP}]
    tokens: [{ATTACKER_TOKEN}]
  - name: victim
    groups: [{VICTIM_GROUP}]
    tokens: [{VICTIM_TOKEN}]
"""
# What /readyz must not tell a caller without credentials.
QUALIFIED = (f"{RESOURCE}.{GROUP}", f"{VICTIM_RESOURCE}.{VICTIM_GROUP}")
GROUPS = (GROUP, VICTIM_GROUP)
ATTACKER_BASE = f"/apis/{GROUP}/{PRIMARY}/namespaces/{NAMESPACE}/{RESOURCE}"
ATTACKER_OTHER = f"/apis/{GROUP}/{OTHER}/namespaces/{NAMESPACE}/{RESOURCE}"
VICTIM_BASE = f"/apis/{VICTIM_GROUP}/{VICTIM_VERSION}/namespaces/{VICTIM_NS}/{VICTIM_RESOURCE}"
JSON, JSON_PATCH, MERGE_PATCH = (
    "application/json",
    "application/json-patch+json",
    "application/merge-patch+json",
)

SLOW_MS = 250.0  # the victim's GET p99 target, and what counts as "slow"
RSS_TARGET = 1.5  # peak RSS over RSS before


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Sizes and durations of one run."""

    objects: int = 1000
    """Attacker objects loaded straight into etcd."""
    size: int = 100 * 1024
    """Bytes per attacker object."""
    baseline: float = 5.0
    """Seconds of victim traffic without attack before each attack."""
    hold: float = 30.0
    """Seconds an attack holds its connections (and the least length of every attack window)."""
    recovery: float = 5.0
    """Seconds after an attack during which the victim's GETs still count as 'slow' time."""
    settle: float = 10.0
    """Seconds the victim's watch may take, after a window, to deliver the window's writes."""
    patch_rounds: int = 20
    """Doubling rounds of the amplification patch."""
    depth_ops: int = 10
    """Copy-into-own-child ops of the depth patch (each doubles the depth)."""
    lists: int = 32
    """LISTs that never read."""
    watches: int = 20
    """WATCHes that never read."""
    nofile_low: int = 1024
    """The server's RLIMIT_NOFILE in attack 4, which opens as many connections."""
    trickle_interval: float = 1.0
    """Seconds between header bytes of a trickling connection."""
    get_interval: float = 0.05
    """Seconds between the starts of the victim's GETs."""
    writes_per_s: float = 20.0
    """The victim writer's rate."""
    request_timeout: float = 120.0
    """Client timeout of any one request (a victim GET, the attacker's patch)."""
    rss_cap_mb: int = 4096
    """The server is killed once its RSS passes this."""
    as_limit_gb: float = 6.0
    """The server's RLIMIT_AS (a backstop behind the RSS cap)."""


FULL = Settings()
QUICK = Settings(
    objects=400,
    size=10 * 1024,
    baseline=0.5,
    hold=1.5,
    recovery=0.5,
    settle=3.0,
    patch_rounds=14,
    lists=8,
    watches=8,
    nofile_low=256,
    trickle_interval=0.3,
    request_timeout=20.0,
    rss_cap_mb=1024,
)


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    return head + (
        " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


# -- answers ----------------------------------------------------------------------------------------


@dataclass
class Answers:
    """Every HTTP answer either tenant got: (when, who, code, what)."""

    log: list[tuple[float, str, int, str]] = field(default_factory=list)

    def add(self, who: str, code: int, what: str) -> None:
        self.log.append((time.monotonic(), who, code, what))

    def server_errors(self, t0: float, t1: float) -> list[tuple[str, int, str]]:
        return [(who, code, what) for t, who, code, what in self.log if t0 <= t <= t1 and code >= 500]


# -- the server -------------------------------------------------------------------------------------


class Server:
    """``watchcache serve`` with its resource limits, its log in a file, and an RSS watch (every 50 ms)
    that kills it once its RSS passes the cap."""

    def __init__(self, etcd: Etcd, *, core: str, settings: Settings, nofile: int, log_path: str) -> None:
        self.wc = Watchcache(etcd, core=core, config_yaml=CONFIG_YAML, log_path=log_path)
        self.settings = settings
        self.nofile = nofile
        self.log_path = log_path
        self.rss = 0
        self.peak = 0
        self.killed_at = 0
        self.gone = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.wc.url

    @property
    def pid(self) -> int:
        assert self.wc.proc is not None
        return self.wc.proc.pid

    def alive(self) -> bool:
        return self.wc.proc is not None and self.wc.proc.poll() is None and not self.killed_at

    def spawn(self) -> None:
        self.wc.spawn()
        _limit(self.pid, resource.RLIMIT_NOFILE, self.nofile)
        _limit(self.pid, resource.RLIMIT_AS, int(self.settings.as_limit_gb * 2**30))
        self._watch = asyncio.create_task(self._watch_rss(), name="abuse-rss-watch")

    async def _watch_rss(self) -> None:
        cap = self.settings.rss_cap_mb * 1024
        proc = self.wc.proc
        assert proc is not None
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                self.rss = mem_kib(proc.pid, "VmRSS")
                self.peak = max(self.peak, self.rss)
                if self.rss > cap and not self.killed_at:
                    self.killed_at = self.rss
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            await asyncio.sleep(0.05)
        self.gone.set()

    def reset_peak(self) -> None:
        self.peak = self.rss

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await asyncio.to_thread(self.wc.stop)


def _limit(pid: int, which: int, value: int) -> None:
    """Set both limits of ``which`` for process ``pid`` to ``value`` (or to its hard limit if lower)."""
    hard = resource.prlimit(pid, which)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.prlimit(pid, which, (value, value))


def log_findings(text: str) -> list[str]:
    """ERROR lines of a stretch of the server's log, with the exception each ended in, and EMFILE."""
    found = []
    errors = [line for line in text.splitlines() if " ERROR " in line]
    if errors:
        kinds = Counter(
            m.group(1) for m in re.finditer(r"^(\w+(?:\.\w+)*(?:Error|Exception|Exhausted)\b)", text, re.M)
        )
        found.append(f"{len(errors)} ERROR log line(s)" + (f" ({codes_text(kinds)})" if kinds else ""))
    emfile = text.count("Too many open files")
    if emfile:
        found.append(f"EMFILE x{emfile} in the log")
    return found


# -- the victim -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Get:
    start: float
    end: float
    code: int  # 0: no answer (timeout, connection failed)
    error: str = ""  # why it failed

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass(frozen=True)
class GetStats:
    n: int
    p99: float | None
    max: float | None
    failed: int
    slow_s: float
    """From the window's start to the end of its last slow or failed GET (0 when none was)."""
    errors: Counter[str] = field(default_factory=Counter)
    """Why GETs failed: the status code, or the client's exception."""


@dataclass(frozen=True)
class WatchCheck:
    owed: int
    """Writes acknowledged in the window."""
    lost: int
    """Of those, never received."""
    dup: int
    """Events received in the window that had been received before."""
    ooo: int
    """Events received in the window with a lower resourceVersion than the one before."""
    restarts: int
    """Times the watch ended and was opened again (from its last resourceVersion) in the window."""


class Victim:
    """The second tenant: a loop of GETs, a steady writer and one watch, all through the API."""

    def __init__(self, url: str, *, tag: str, settings: Settings, answers: Answers) -> None:
        self.url = url
        self.tag = tag
        self.settings = settings
        self.answers = answers
        self.gets: list[Get] = []
        self.writes: list[tuple[float, int]] = []  # (acknowledged at, resourceVersion)
        self.events: list[tuple[float, int]] = []  # (received at, resourceVersion)
        self.get_started: float | None = None  # the GET in flight
        self.restarts: list[float] = []  # when the watch had to be opened again
        self._tasks: list[asyncio.Task[None]] = []
        auth = {"Authorization": f"Bearer {VICTIM_TOKEN}"}
        timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self.session = aiohttp.ClientSession(headers=auth, timeout=timeout)
        # A new connection per GET: what a client arriving now would see.
        self.fresh = aiohttp.ClientSession(
            headers=auth, timeout=timeout, connector=aiohttp.TCPConnector(force_close=True, limit=0)
        )
        self.watch_session = aiohttp.ClientSession(
            headers=auth, timeout=aiohttp.ClientTimeout(sock_connect=5)
        )

    def _obj(self, name: str) -> str:
        return f"{self.url}{VICTIM_BASE}/{name}"

    async def start(self) -> None:
        body = {"metadata": {"name": f"{self.tag}-get"}, "spec": {"n": 0}}
        async with self.session.post(self.url + VICTIM_BASE, json=body) as r:
            if r.status != 201:
                raise RuntimeError(f"victim create answered {r.status}: {(await r.read())[:200]!r}")
        async with self.session.get(self.url + VICTIM_BASE) as r:
            if r.status != 200:
                raise RuntimeError(f"victim LIST answered {r.status}")
            rv = (await r.json())["metadata"]["resourceVersion"]
        self._tasks = [
            asyncio.create_task(self._get_loop(), name="victim-gets"),
            asyncio.create_task(self._writer(), name="victim-writer"),
            asyncio.create_task(self._watcher(rv), name="victim-watch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in (self.session, self.fresh, self.watch_session):
            await s.close()

    async def _get_loop(self) -> None:
        url = self._obj(f"{self.tag}-get")
        while True:
            start = self.get_started = time.monotonic()
            code, error = 0, ""
            try:
                async with self.fresh.get(url) as r:
                    await r.read()
                    code = r.status
                    error = "" if code == 200 else str(code)
            except (aiohttp.ClientError, TimeoutError) as err:
                error = type(err).__name__
            end = time.monotonic()
            self.get_started = None
            self.gets.append(Get(start, end, code, error))
            if code:
                self.answers.add("victim", code, "GET")
            await asyncio.sleep(max(0.0, start + self.settings.get_interval - end))

    async def _writer(self) -> None:
        pool = 20
        interval = 1 / self.settings.writes_per_s
        due = time.monotonic()
        for i in itertools.count():
            name = f"{self.tag}-w{i % pool}"
            code = 0
            rv = 0
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                if i < pool:
                    req = self.session.post(
                        self.url + VICTIM_BASE, json={"metadata": {"name": name}, "spec": {"n": i}}
                    )
                else:
                    req = self.session.patch(
                        self._obj(name),
                        data=orjson.dumps({"spec": {"n": i}}),
                        headers={"Content-Type": MERGE_PATCH},
                    )
                async with req as r:
                    code = r.status
                    body = await r.read()
                    if code < 300:
                        rv = int(orjson.loads(body)["metadata"]["resourceVersion"])
            if rv:
                self.writes.append((time.monotonic(), rv))
            if code:
                self.answers.add("victim", code, "write")
            due = max(due + interval, time.monotonic() - 1.0)  # catch up after a stall, at most 1 s
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _watcher(self, rv: str) -> None:
        """A reflector's watch: from ``rv``; when the stream ends, again from the last event seen."""
        while True:
            try:
                params = {"watch": "true", "resourceVersion": rv}
                async with self.watch_session.get(self.url + VICTIM_BASE, params=params) as r:
                    self.answers.add("victim", r.status, "WATCH")
                    if r.status != 200:
                        await r.read()
                        raise aiohttp.ClientError(f"watch answered {r.status}")
                    async for line in r.content:
                        event = orjson.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            self.answers.add("victim", int(obj.get("code") or 0), "WATCH ERROR event")
                            rv = await self._relist()
                            break
                        rv = obj["metadata"]["resourceVersion"]
                        self.events.append((time.monotonic(), int(rv)))
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                await asyncio.sleep(0.2)
            self.restarts.append(time.monotonic())

    async def _relist(self) -> str:
        async with self.session.get(self.url + VICTIM_BASE) as r:
            self.answers.add("victim", r.status, "LIST")
            return str((await r.json())["metadata"]["resourceVersion"])

    def get_stats(self, t0: float, t1: float, t_slow: float) -> GetStats:
        """GETs that overlapped [t0, t1] (one in flight for ≥ 250 ms counts as failed so far);
        slowness is looked for until ``t_slow``.

        The loop waits for each GET, so a stall would yield one slow sample where a steady stream of
        clients would have many: as wrk2 and HdrHistogram do, a GET that took L also counts the GETs
        due meanwhile, one per interval, as having waited L - interval, L - 2 intervals, ..."""
        now = time.monotonic()
        gets = list(self.gets)
        if self.get_started is not None and (now - self.get_started) * 1000 >= SLOW_MS:
            gets.append(Get(self.get_started, now, 0, "still waiting"))
        during = [g for g in gets if g.start <= t1 and g.end >= t0]
        step = self.settings.get_interval * 1000
        ms = [g.ms - k * step for g in during for k in range(max(1, int(g.ms // step)))]
        bad = [
            g.end for g in gets if g.start <= t_slow and g.end >= t0 and (g.code != 200 or g.ms >= SLOW_MS)
        ]
        return GetStats(
            n=len(during),
            p99=pct(ms, 0.99),
            max=max(ms) if ms else None,
            failed=sum(g.code != 200 for g in during),
            slow_s=max(bad) - t0 if bad else 0.0,
            errors=Counter(g.error for g in during if g.code != 200),
        )

    async def check_watch(
        self, t0: float, t1: float, *, settle: float, until: float | None = None
    ) -> WatchCheck:
        """Did the watch deliver every write acknowledged in [t0, t1], and the events received from t0
        (to ``until``, default now) once each and in order? Waits up to ``settle`` seconds for late
        events."""
        owed = [rv for t, rv in self.writes if t0 <= t <= t1]
        deadline = time.monotonic() + settle
        while owed and time.monotonic() < deadline:
            if self.events and max(rv for _, rv in self.events[-50:]) >= max(owed):
                break
            await asyncio.sleep(0.05)
        seen: set[int] = set()
        dup = ooo = 0
        last = 0
        until = time.monotonic() if until is None else until
        for t, rv in self.events:
            if t0 <= t <= until:
                dup += rv in seen
                ooo += rv < last
            seen.add(rv)
            last = rv
        return WatchCheck(
            owed=len(owed),
            lost=sum(rv not in seen for rv in owed),
            dup=dup,
            ooo=ooo,
            restarts=sum(t0 <= t <= until for t in self.restarts),
        )


# -- the attacker -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What an attack reports: notes for the table, and its own target when it has one."""

    notes: list[str] = field(default_factory=list)
    ok: bool | None = None
    """The attack-specific target (None: only the common ones apply)."""
    miss: str = ""
    """How to name the attack-specific target when missed."""
    details: list[str] = field(default_factory=list)
    """Printed below the table."""


@dataclass
class Ctx:
    """What an attack gets: the server, the run's settings, and the attacker's HTTP client."""

    server: Server
    settings: Settings
    answers: Answers
    client: aiohttp.ClientSession
    tag: str
    startup: list[list[str]]
    """For each server start so far: the resource names /readyz?verbose told while loading."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = JSON,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
    ) -> tuple[int, bytes]:
        """One request as the attacker (``auth=False``: without credentials); (code, body), code 0 when
        there was no answer."""
        headers = {"Authorization": f"Bearer {ATTACKER_TOKEN}"} if auth else {}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        try:
            async with self.client.request(
                method,
                self.server.url + path,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.settings.request_timeout),
            ) as r:
                raw = await r.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            return 0, repr(err).encode()
        self.answers.add("attacker", r.status, f"{method} {path[:60]}")
        return r.status, raw

    async def create(self, name: str, spec: dict[str, Any]) -> None:
        code, raw = await self.call("POST", ATTACKER_BASE, body={"metadata": {"name": name}, "spec": spec})
        if code != 201:
            raise RuntimeError(f"attacker create of {name} answered {code}: {raw[:200]!r}")


def answer_text(code: int, raw: bytes) -> str:
    """``403 Forbidden`` (the Status reason), or ``no answer``."""
    if code == 0:
        return "no answer"
    try:
        return f"{code} {orjson.loads(raw).get('reason', '')}".strip()
    except (orjson.JSONDecodeError, AttributeError):
        return str(code)


def codes_text(codes: Iterable[int | str] | Counter[Any]) -> str:
    """``[403, 403, 0]`` as ``403x2, no answer``; names likewise (``ServerDisconnectedError x3``)."""
    counts = codes if isinstance(codes, Counter) else Counter(codes)
    return ", ".join(
        ("no answer" if c == 0 else str(c)) + ("" if n == 1 else f"x{n}" if isinstance(c, int) else f" x{n}")
        for c, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
    )


def amplification_patch(rounds: int) -> list[dict[str, Any]]:
    """A 1 KiB leaf, then per round an ``add`` of an empty object and two ``copy`` ops of the previous
    round's node into it: each round doubles what the object holds (~4.4 KB for 20 rounds)."""
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/amp", "value": {"l0": "x" * 1024}}]
    for i in range(1, rounds + 1):
        prev = f"/spec/amp/l{i - 1}"
        ops += [
            {"op": "add", "path": f"/spec/amp/l{i}", "value": {}},
            {"op": "copy", "from": prev, "path": f"/spec/amp/l{i}/a"},
            {"op": "copy", "from": prev, "path": f"/spec/amp/l{i}/b"},
        ]
    return ops


def depth_patch(ops: int) -> list[dict[str, Any]]:
    """``copy`` of /spec into its own deepest child, ``ops`` times: the depth doubles each time."""
    out, depth = [], 0
    for _ in range(ops):
        out.append({"op": "copy", "from": "/spec", "path": "/spec" + "/a" * (depth + 1)})
        depth = 2 * depth + 1
    return out


async def json_patch_amplification(ctx: Ctx) -> Outcome:
    """1a. One small JSON patch whose ``copy`` ops double the object each round: how much memory and
    event-loop time does the server spend before it answers, and what does it answer?"""
    name = f"{ctx.tag}-amp"
    await ctx.create(name, {})
    patch = amplification_patch(ctx.settings.patch_rounds)
    size = len(orjson.dumps(patch))
    t = time.monotonic()
    code, raw = await ctx.call("PATCH", f"{ATTACKER_BASE}/{name}", body=patch, content_type=JSON_PATCH)
    took = time.monotonic() - t
    answer = answer_text(code, raw)
    return Outcome(
        [f"{size / 1000:.1f} KB patch, {ctx.settings.patch_rounds} rounds: {answer} after {took:.1f} s"]
    )


async def json_patch_depth(ctx: Ctx) -> Outcome:
    """1b. A JSON patch copying a node into its own child until the result is far deeper than the
    JSON depth limit (and Python's recursion limit): what does the server answer?"""
    name = f"{ctx.tag}-deep"
    await ctx.create(name, {})
    patch = depth_patch(ctx.settings.depth_ops)
    code, raw = await ctx.call("PATCH", f"{ATTACKER_BASE}/{name}", body=patch, content_type=JSON_PATCH)
    depth = 2 ** len(patch) - 1
    return Outcome([f"{len(patch)} copy ops (result depth {depth}): {answer_text(code, raw)}"])


def _request(path: str, *, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


async def _connect(
    port: int, *, payload: bytes, rcvbuf: int = 0, timeout: float = 3.0
) -> socket.socket | None:
    """A raw TCP connection that sends ``payload`` and is then never read (None: could not connect)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, ("127.0.0.1", port))
            if payload:
                await loop.sock_sendall(sock, payload)
    except (OSError, TimeoutError):
        sock.close()
        return None
    return sock


_TCP_ESTABLISHED = 1


def _held(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (still ESTABLISHED)."""
    return sum(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == _TCP_ESTABLISHED for s in socks)


def _status_seen(sock: socket.socket) -> int:
    """The status code at the head of what the server sent (peeked, not read); 0 for none."""
    try:
        head = sock.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return 0
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(m.group(1)) if m else 0


async def _never_read(ctx: Ctx, *, n: int, path: str, what: str) -> Outcome:
    """``n`` requests as the attacker whose client never reads the answer (4 KiB SO_RCVBUF), held
    ``hold`` seconds: are they cut off, and what do they cost meanwhile?"""
    port = int(ctx.server.url.rsplit(":", 1)[1])
    payload = _request(path, token=ATTACKER_TOKEN)
    opened = await asyncio.gather(*(_connect(port, payload=payload, rcvbuf=4096) for _ in range(n)))
    socks = [s for s in opened if s is not None]
    try:
        await asyncio.sleep(ctx.settings.hold)
        held = _held(socks)
        codes = [_status_seen(s) for s in socks]
        for code in codes:
            if code:
                ctx.answers.add("attacker", code, what)
    finally:
        for s in socks:
            s.close()
    return Outcome(
        [
            f"{len(socks)}/{n} {what} sent; {held} still held by the server after {ctx.settings.hold:g} s; "
            f"answers seen: {codes_text(codes)}"
        ]
    )


async def lists_never_read(ctx: Ctx) -> Outcome:
    """2. LISTs of the whole namespace through the non-primary version (each item re-headed, so a
    copy of the answer) whose client never reads."""
    return await _never_read(ctx, n=ctx.settings.lists, path=ATTACKER_OTHER, what=f"LISTs ({OTHER})")


async def watches_never_read(ctx: Ctx) -> Outcome:
    """3. WATCHes from resourceVersion=0 (every object's ADDED first) through the non-primary version
    whose client never reads."""
    path = f"{ATTACKER_OTHER}?watch=true&resourceVersion=0"
    return await _never_read(ctx, n=ctx.settings.watches, path=path, what=f"WATCHes ({OTHER}, rv=0)")


async def connections_without_credentials(ctx: Ctx) -> Outcome:
    """4. As many connections without credentials as the server may have files open, half idle, half
    sending a header byte now and then, held ``hold`` seconds: are they timed out, and can the victim
    still connect?"""
    s = ctx.settings
    conns = ctx.server.nofile
    port = int(ctx.server.url.rsplit(":", 1)[1])
    head = b"GET /apis HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "
    sem = asyncio.Semaphore(64)

    async def one(trickle: bool) -> socket.socket | None:
        async with sem:
            return await _connect(port, payload=head if trickle else b"", timeout=2.0)

    opened = await asyncio.gather(*(one(i % 2 == 1) for i in range(conns)))
    idle = [c for i, c in enumerate(opened) if c is not None and i % 2 == 0]
    trickling = [c for i, c in enumerate(opened) if c is not None and i % 2 == 1]
    fds = ctx.server.fds()
    try:
        deadline = time.monotonic() + s.hold
        while time.monotonic() < deadline:
            for c in trickling:
                with contextlib.suppress(OSError):
                    c.send(b"a")
            fds = max(fds, ctx.server.fds())
            await asyncio.sleep(min(s.trickle_interval, max(0.0, deadline - time.monotonic())))
        held = _held(idle + trickling)
    finally:
        for c in idle + trickling:
            c.close()
    return Outcome(
        [
            f"server RLIMIT_NOFILE {ctx.server.nofile}: {len(idle)} idle + {len(trickling)} trickling "
            f"(1 B/{s.trickle_interval:g} s) of {conns} connected; {held} still open after {s.hold:g} s; "
            f"server fds up to {fds}"
        ]
    )


def _token(data: Any) -> str:
    # json, not orjson: a forged revision may not fit in 64 bits.
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def forged_continue_tokens(ctx: Ctx) -> Outcome:
    """5. Continue tokens the server never issued: a real one with its revision moved ahead of the
    cache, and garbage. All are client mistakes: 4xx (400, or 410 for one too old), never 5xx."""
    code, raw = await ctx.call("GET", ATTACKER_BASE, params={"limit": "2"})
    if code != 200:
        raise RuntimeError(f"attacker LIST answered {code}: {raw[:200]!r}")
    real = orjson.loads(raw)["metadata"]["continue"]
    data = orjson.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    rv = int(data["rv"])
    forged = {
        "rv+1e4": _token(dict(data, rv=rv + 10**4)),
        "rv+1e6": _token(dict(data, rv=rv + 10**6)),
        "rv 2^63-1": _token(dict(data, rv=2**63 - 1)),
        "rv 2^63": _token(dict(data, rv=2**63)),
    }
    garbage = {
        "rv 1": _token(dict(data, rv=1)),
        "rv 0": _token(dict(data, rv=0)),
        "rv -5": _token(dict(data, rv=-5)),
        "rv str": _token(dict(data, rv=str(rv))),
        "rv 2^70": _token(dict(data, rv=2**70)),
        "no start": _token({"v": data["v"], "rv": rv}),
        "start 4 KiB": _token(dict(data, start="a" * 4096)),
        "other v": _token(dict(data, v="watchcache/v9")),
        "a list": _token([1, 2]),
        "not base64": "!!!!",
        "base64 of junk": base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        "10 KiB": "A" * 10240,
    }
    ahead: list[int] = []
    other: list[int] = []
    for label, token in {**forged, **garbage}.items():
        code, _ = await ctx.call("GET", ATTACKER_BASE, params={"limit": "2", "continue": token})
        (ahead if label in forged else other).append(code)
    return Outcome(
        [
            f"revision ahead x{len(ahead)}: {codes_text(ahead)}; other bad tokens x{len(other)}: "
            f"{codes_text(other)}"
        ]
    )


def _named(body: str) -> list[str]:
    """The served resources (or else their groups) that ``body`` names."""
    found = [name for name in QUALIFIED if name in body]
    return found + [g for g in GROUPS if g in body and not any(g in f for f in found)]


async def readyz_unauthenticated(ctx: Ctx) -> Outcome:
    """6. ``/readyz?verbose`` (and the other health paths) without credentials: does any answer name
    a served resource or group? While loading: what every server start of this run saw; after: now."""
    seen_after: set[str] = set()
    codes: list[int] = []
    for path in ("/readyz?verbose", "/readyz", "/livez?verbose", "/healthz?verbose", "/readyz?verbose=1"):
        code, raw = await ctx.call("GET", path, auth=False)
        codes.append(code)
        seen_after.update(_named(raw.decode(errors="replace")))
    loading = [names for names in ctx.startup if names]
    while_loading = sorted({n for names in ctx.startup for n in names})
    notes = [
        f"while loading: {', '.join(while_loading) or 'none named'} "
        f"({len(loading)}/{len(ctx.startup)} starts seen loading)",
        f"after: {', '.join(sorted(seen_after)) or 'none named'} ({codes_text(codes)})",
    ]
    return Outcome(notes, ok=not while_loading and not seen_after, miss="names resources")


def _mistakes(obj: str, tag: str) -> list[tuple[str, str, str, Any, str]]:
    """(label, method, path with query, body, content type): requests Kubernetes answers with a 4xx,
    made on the attacker's object ``obj`` (a path) or creating objects named after ``tag``."""
    get = [
        ("labelSelector 'a in ('", "labelSelector=a+in+("),
        ("labelSelector '!!'", "labelSelector=!!"),
        ("labelSelector 'a=b=c'", "labelSelector=a=b=c"),
        ("labelSelector 5 KiB", "labelSelector=" + "a" * 5000),
        ("fieldSelector spec.x", "fieldSelector=spec.x=1"),
        ("fieldSelector no operator", "fieldSelector=metadata.name"),
        ("fieldSelector 'in'", "fieldSelector=metadata.name+in+(a)"),
        ("resourceVersion abc", "resourceVersion=abc"),
        ("resourceVersion -1", "resourceVersion=-1"),
        ("resourceVersion 10^23", "resourceVersion=99999999999999999999999"),
        ("resourceVersionMatch Foo", "resourceVersion=1&resourceVersionMatch=Foo"),
        ("resourceVersionMatch without rv", "resourceVersionMatch=Exact"),
        ("limit -1", "limit=-1"),
        ("limit abc", "limit=abc"),
        ("continue with resourceVersion", "continue=abc&resourceVersion=5"),
        ("watch=maybe", "watch=maybe"),
        ("timeoutSeconds abc", "watch=true&timeoutSeconds=abc"),
        ("sendInitialEvents without match", "watch=true&sendInitialEvents=true&timeoutSeconds=1"),
    ]
    out: list[tuple[str, str, str, Any, str]] = [
        (label, "GET", f"{ATTACKER_BASE}?{q}", None, JSON) for label, q in get
    ]
    json_patches = {
        "test of a path that is not there": [{"op": "test", "path": "/no/such/thing", "value": 1}],
        "pointer without /": [{"op": "test", "path": "nonsense", "value": 1}],
        "move into own child": [{"op": "move", "from": "/spec", "path": "/spec/a"}],
        "move from nowhere": [{"op": "move", "from": "/nope", "path": "/spec/a"}],
        "remove the root": [{"op": "remove", "path": ""}],
        "replace the root by a string": [{"op": "replace", "path": "", "value": "x"}],
        "copy from nowhere": [{"op": "copy", "from": "/x/y", "path": "/spec/a"}],
        "unknown op": [{"op": "frobnicate", "path": "/spec"}],
        "op without path": [{"op": "add", "value": 1}],
        "ops that are numbers": [1, 2],
        "numeric path": [{"op": "add", "path": 5, "value": 1}],
        "index 10^20": [
            {"op": "add", "path": "/spec/arr", "value": []},
            {"op": "add", "path": "/spec/arr/99999999999999999999", "value": 1},
        ],
        "metadata a string": [{"op": "add", "path": "/metadata", "value": "x"}],
        "name a number": [{"op": "add", "path": "/metadata/name", "value": 5}],
        "labels a list": [{"op": "add", "path": "/metadata/labels", "value": ["x"]}],
        "label values numbers": [{"op": "add", "path": "/metadata/labels", "value": {"a": 1}}],
        "finalizers a number": [{"op": "add", "path": "/metadata/finalizers", "value": 5}],
        "deletionTimestamp an object": [{"op": "add", "path": "/metadata/deletionTimestamp", "value": {}}],
        "generation a string": [{"op": "add", "path": "/metadata/generation", "value": "x"}],
        "resourceVersion garbage": [{"op": "add", "path": "/metadata/resourceVersion", "value": "abc"}],
    }
    merge_patches = {
        "metadata a list": {"metadata": []},
        "labels a number": {"metadata": {"labels": 5}},
        "label value a list": {"metadata": {"labels": {"a": [1]}}},
        "annotations a number": {"metadata": {"annotations": 5}},
        "namespace a number": {"metadata": {"namespace": 7}},
        "resourceVersion garbage": {"metadata": {"resourceVersion": "zz"}},
        "apiVersion a number": {"apiVersion": 5},
        "kind a list": {"kind": []},
        "creationTimestamp a list": {"metadata": {"creationTimestamp": []}},
        "a list": [1],
    }
    out += [(f"JSON patch: {k}", "PATCH", obj, v, JSON_PATCH) for k, v in json_patches.items()]
    out += [(f"merge patch: {k}", "PATCH", obj, v, MERGE_PATCH) for k, v in merge_patches.items()]
    creates = {
        "labels a list": {"name": f"{tag}-m1", "labels": ["x"]},
        "name upper case": {"name": "Upper"},
        "finalizers a number": {"name": f"{tag}-m2", "finalizers": 5},
    }
    out += [(f"create: {k}", "POST", ATTACKER_BASE, {"metadata": v}, JSON) for k, v in creates.items()]
    out.append(("delete: preconditions a list", "DELETE", obj, {"preconditions": []}, JSON))
    return out


async def client_mistakes(ctx: Ctx) -> Outcome:
    """7. Client mistakes beyond continue tokens — bad selectors and query parameters, nonsense JSON
    and merge patches, malformed metadata — against the attacker's own objects: never a 5xx. (A 2xx
    means the server accepted what Kubernetes would refuse; counted, but not a target here.)"""
    name = f"{ctx.tag}-mistakes"
    await ctx.create(name, {})
    server_errors: list[str] = []
    accepted: list[str] = []
    probes = _mistakes(f"{ATTACKER_BASE}/{name}", ctx.tag)
    for label, method, path, body, ctype in probes:
        code, _ = await ctx.call(method, path, body=body, content_type=ctype)
        if code >= 500 or code == 0:
            server_errors.append(f"{label} ({code or 'no answer'})")
        elif code < 300:
            accepted.append(label)
        if label.startswith("create") and code < 300:
            await ctx.call("DELETE", f"{ATTACKER_BASE}/{(body or {})['metadata']['name']}")
    out = Outcome([f"{len(probes)} probes: {len(server_errors)} 5xx"])
    if server_errors:
        out.details.append("5xx for: " + "; ".join(server_errors))
    if accepted:
        out.notes.append(f"{len(accepted)} accepted with 2xx")
        out.details.append("accepted (Kubernetes refuses them): " + "; ".join(accepted))
    return out


@dataclass(frozen=True)
class Attack:
    key: str
    label: str
    run: Callable[[Ctx], Awaitable[Outcome]]


ATTACKS = [
    Attack("1a", "1a. JSON-patch amplification", json_patch_amplification),
    Attack("1b", "1b. JSON-patch copy into own child", json_patch_depth),
    Attack("2", "2. LISTs never read", lists_never_read),
    Attack("3", "3. WATCHes never read", watches_never_read),
    Attack("4", "4. connections without credentials", connections_without_credentials),
    Attack("5", "5. forged continue tokens", forged_continue_tokens),
    Attack("6", "6. /readyz?verbose without credentials", readyz_unauthenticated),
    Attack("7", "7. other client mistakes", client_mistakes),
]
# Which attacks share a server: a fresh one for each memory attack and for the lowered file limit.
SESSIONS = [["1a"], ["2"], ["3"], ["4"], ["1b", "5", "6", "7"]]
LOW_NOFILE = {"4"}


# -- the harness ------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    rss_before: int = 0  # KiB
    rss_peak: int = 0
    rss_after: int = 0
    killed_at: int = 0
    gets: GetStats | None = None
    watch: WatchCheck | None = None
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    harness_error: str = ""
    start: float = 0.0
    end: float = 0.0

    @property
    def ratio(self) -> float | None:
        return self.rss_peak / self.rss_before if self.rss_before else None

    def misses(self) -> list[str]:
        out = []
        if self.killed_at or (self.ratio is not None and self.ratio > RSS_TARGET):
            out.append("RSS")
        if self.gets is not None and (self.gets.p99 is None or self.gets.p99 >= SLOW_MS):
            out.append("p99")
        if self.gets is not None and self.gets.failed:
            out.append("GETs failed")
        if self.watch is not None and self.watch.lost:
            out.append("lost")
        if self.errors:
            out.append("5xx")
        if self.outcome.ok is False:
            out.append(self.outcome.miss)
        return out


async def probe_startup(server: Server, timeout: float = 120.0) -> list[str]:
    """From spawn until ready: ``/readyz?verbose`` without credentials, as often as it answers. The
    resource names it told while the caches loaded."""
    named: set[str] = set()
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError("watchcache serve exited while starting")
            try:
                async with s.get(server.url + "/readyz?verbose") as r:
                    named.update(_named(await r.text()))
                    if r.status == 200:
                        return sorted(named)
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.005)
    raise RuntimeError(f"watchcache serve was not ready in {timeout} s")


async def attack_window(ctx: Ctx, victim: Victim, attack: Attack, baseline: list[Row]) -> Row:
    """A baseline window, then the attack (at least ``hold`` seconds, at most its time bound), then a
    recovery period; the row of what the victim and the server went through."""
    s, server = ctx.settings, ctx.server
    tb = time.monotonic()
    await asyncio.sleep(s.baseline)
    te = time.monotonic()
    # Its watch is checked at the end of the session, when every event owed has long arrived.
    baseline.append(
        Row(
            "baseline",
            gets=victim.get_stats(tb, te, te),
            errors=ctx.answers.server_errors(tb, te),
            start=tb,
            end=te,
        )
    )
    row = Row(attack.label, rss_before=server.rss)
    server.reset_peak()
    log_mark = server.log_size()
    t0 = time.monotonic()
    task = asyncio.create_task(attack.run(ctx), name=f"attack-{attack.key}")
    bound = s.hold + s.request_timeout + 30
    gone = asyncio.create_task(server.gone.wait())
    try:
        await asyncio.wait({task, gone}, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not gone.done():
            row.outcome.notes.append(f"attack cut off at its time bound ({bound:g} s)")
        if not task.done():
            task.cancel()
        elif task.exception() is None:
            row.outcome = task.result()
        elif server.alive():
            exc = task.exception()
            assert exc is not None
            row.harness_error = "".join(traceback.format_exception(exc)).strip()
        rest = t0 + s.hold - time.monotonic()
        if rest > 0 and not gone.done():
            await asyncio.wait({gone}, timeout=rest)
    finally:
        gone.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    t1 = time.monotonic()
    row.rss_peak, row.killed_at = server.peak, server.killed_at
    if server.killed_at:
        row.outcome.notes.insert(0, f"server killed at {server.killed_at / 2**20:.1f} GiB RSS (harness cap)")
    elif not server.alive():
        row.outcome.notes.insert(
            0, f"server exited with code {server.wc.proc.poll() if server.wc.proc else '?'}"
        )
    if server.alive():
        await asyncio.sleep(s.recovery)
    row.rss_after = server.rss
    t2 = time.monotonic()
    row.gets = victim.get_stats(t0, t1, t2)
    row.watch = await victim.check_watch(t0, t2, settle=s.settle if server.alive() else 0.0)
    row.errors = ctx.answers.server_errors(t0, time.monotonic())
    row.outcome.notes += log_findings(server.log_since(log_mark))
    return row


async def run_session(
    etcd: Etcd, *, core: str, settings: Settings, attacks: list[Attack], nofile: int, tag: str,
    startup: list[list[str]], answers: Answers, baseline: list[Row], log_dir: str,
) -> list[Row]:  # fmt: skip
    """One server (fresh), the victim on it, and ``attacks`` one after another."""
    server = Server(etcd, core=core, settings=settings, nofile=nofile, log_path=f"{log_dir}/{tag}.log")
    rows: list[Row] = []
    server.spawn()
    try:
        startup.append(await probe_startup(server))
        victim = Victim(server.url, tag=tag, settings=settings, answers=answers)
        try:
            await victim.start()
            async with aiohttp.ClientSession() as client:
                ctx = Ctx(server, settings, answers, client, tag, startup)
                first_baseline = len(baseline)
                for attack in attacks:
                    if not server.alive():
                        rows.append(Row(attack.label, harness_error="the server was gone before this attack"))
                        continue
                    row = await attack_window(ctx, victim, attack, baseline)
                    rows.append(row)
                    print(f"  {progress(row)}", flush=True)
                for b in baseline[first_baseline:]:
                    b.watch = await victim.check_watch(b.start, b.end, settle=0.0, until=b.end)
        finally:
            await victim.stop()
    finally:
        await server.stop()
    return rows


def progress(row: Row) -> str:
    g, w = row.gets, row.watch
    parts = [row.label + ":"]
    if row.harness_error:
        return f"{row.label}: HARNESS ERROR {row.harness_error.splitlines()[-1]}"
    parts.append(f"RSS {mib(row.rss_before)} -> {mib(row.rss_peak)} MB")
    if g is not None:
        parts.append(
            f"GET p99 {fmt(g.p99, '.0f')} max {fmt(g.max, '.0f')} ms ({g.n} GETs, {g.failed} failed)"
        )
    if w is not None:
        parts.append(f"watch {w.owed} owed, {w.lost} lost")
    parts.append(f"5xx {len(row.errors)}")
    return " ".join(parts) + ("; " + "; ".join(row.outcome.notes) if row.outcome.notes else "")


def baseline_row(rows: list[Row]) -> Row:
    """The baseline windows of the whole run as one row."""
    gets = [r.gets for r in rows if r.gets is not None]
    watches = [r.watch for r in rows if r.watch is not None]
    p99s = [g.p99 for g in gets if g.p99 is not None]
    maxes = [g.max for g in gets if g.max is not None]
    return Row(
        f"none (baseline, {len(rows)} windows)",
        gets=GetStats(
            n=sum(g.n for g in gets),
            p99=max(p99s) if p99s else None,
            max=max(maxes) if maxes else None,
            failed=sum(g.failed for g in gets),
            slow_s=max((g.slow_s for g in gets), default=0.0),
        ),
        watch=WatchCheck(
            owed=sum(w.owed for w in watches),
            lost=sum(w.lost for w in watches),
            dup=sum(w.dup for w in watches),
            ooo=sum(w.ooo for w in watches),
            restarts=sum(w.restarts for w in watches),
        ),
        errors=[e for r in rows for e in r.errors],
        outcome=Outcome(["worst window's p99 and max"]),
    )


def table(rows: list[Row]) -> Table:
    t = Table(
        "attack",
        ["RSS MB before → peak", "x", "victim GET p99 ms", "max ms", "failed", "slow s",
         "watch lost/dup/ooo", "5xx", "met", "notes"],
        left=("met", "notes"),
    )  # fmt: skip
    for r in rows:
        if r.harness_error:
            t.add(r.label, [""] * 8 + ["harness error", r.harness_error.splitlines()[-1]])
            continue
        g, w = r.gets, r.watch
        rss = f"{mib(r.rss_before)} → {mib(r.rss_peak)}" if r.rss_before else "-"
        if r.killed_at:
            rss = f"{mib(r.rss_before)} → ≥{mib(r.killed_at)} (killed)"
        misses = r.misses()
        notes = list(r.outcome.notes)
        if g is not None and g.failed:
            notes.append("victim GETs failed: " + codes_text(g.errors))
        victim_5xx = Counter(f"{what} {code}" for who, code, what in r.errors if who == "victim")
        if victim_5xx:
            notes.append("victim got " + codes_text(victim_5xx))
        if w is not None and w.restarts:
            notes.append(f"victim watch reopened {w.restarts}x")
        if r.ratio is not None and r.ratio > RSS_TARGET and not r.killed_at:
            notes.append(f"RSS {mib(r.rss_after)} MB after the recovery time")
        t.add(
            r.label,
            [
                rss,
                f"{r.ratio:.2f}x" if r.ratio is not None else "-",
                fmt(g.p99 if g else None, ",.0f"),
                fmt(g.max if g else None, ",.0f"),
                f"{g.failed}/{g.n}" if g else "-",
                fmt(g.slow_s if g else None, ".1f"),
                f"{w.lost}/{w.dup}/{w.ooo} of {w.owed}" if w else "-",
                str(len(r.errors)),
                "yes" if not misses else f"no ({', '.join(misses)})",
                "; ".join(notes),
            ],
        )
    return t


async def load_attacker_data(etcd: Etcd, settings: Settings) -> int:
    writer = EtcdWriter(etcd.endpoint)
    try:
        # etcd takes at most 128 operations and ~1.5 MiB per transaction.
        batch = max(1, min(128, 2**20 // settings.size))
        return await writer.load(settings.objects, settings.size, namespace=NAMESPACE, batch=batch)
    finally:
        await writer.close()


async def run(settings: Settings, keys: list[str], log_dir: str) -> tuple[list[Row], list[Row]]:
    server_core, client_core = cores()
    pin_self(client_core)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    high = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (high, hard))  # the attack's own sockets
    etcd = Etcd(core=server_core)
    answers = Answers()
    rows: list[Row] = []
    baseline: list[Row] = []
    startup: list[list[str]] = []
    by_key = {a.key: a for a in ATTACKS}
    with running(etcd):
        loaded = await load_attacker_data(etcd, settings)
        print(
            f"data: attacker {RESOURCE}.{GROUP}: {settings.objects} x {settings.size // 1024} KiB = "
            f"{loaded / 1e6:.1f} MB straight into etcd (served as {PRIMARY} and {OTHER})",
            flush=True,
        )
        print(
            f"server: watchcache serve, RLIMIT_NOFILE {high} (raised to the hard limit), "
            f"{settings.nofile_low} for attack 4; RLIMIT_AS {settings.as_limit_gb:g} GiB; "
            f"killed past {settings.rss_cap_mb} MB RSS",
            flush=True,
        )
        for n, session in enumerate(SESSIONS):
            chosen = [by_key[k] for k in session if k in keys]
            if not chosen:
                continue
            low = any(a.key in LOW_NOFILE for a in chosen)
            rows += await run_session(
                etcd,
                core=server_core,
                settings=settings,
                attacks=chosen,
                nofile=settings.nofile_low if low else high,
                tag=f"s{n}-{os.getpid()}",
                startup=startup,
                answers=answers,
                baseline=baseline,
                log_dir=log_dir,
            )
    order = [a.label for a in ATTACKS]
    rows.sort(key=lambda r: order.index(r.label))
    return rows, baseline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="seconds: small data, short windows, fewer connections"
    )
    ap.add_argument(
        "--attacks", default=",".join(a.key for a in ATTACKS), help="subset, e.g. 1a,4 (default: all)"
    )
    ap.add_argument("--objects", type=int, help="attacker objects (default 1000; quick 400)")
    ap.add_argument("--size", type=int, help="bytes per attacker object (default 102400; quick 10240)")
    ap.add_argument("--hold", type=float, help="seconds each attack holds on (default 30; quick 1.5)")
    ap.add_argument("--rss-cap-mb", type=int, help="kill the server past this RSS (default 4096; quick 1024)")
    ap.add_argument("--logs", help="keep the servers' logs in this directory")
    ap.add_argument("--json", help="append one JSON object per row to this file")
    args = ap.parse_args()
    settings = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("objects", args.objects), ("size", args.size), ("hold", args.hold),
                                   ("rss_cap_mb", args.rss_cap_mb)) if v is not None}  # fmt: skip
    settings = replace(settings, **overrides)
    keys = [k for k in args.attacks.split(",") if k]
    unknown = set(keys) - {a.key for a in ATTACKS}
    if unknown:
        ap.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    print(f"machine: {machine()}")
    print(f"commit: {commit()}")
    print(
        f"victim: GET every {settings.get_interval * 1000:.0f} ms (a new connection each), "
        f"{settings.writes_per_s:g} writes/s, one watch; windows: baseline {settings.baseline:g} s, "
        f"attack ≥ {settings.hold:g} s, recovery {settings.recovery:g} s",
        flush=True,
    )
    log_dir = args.logs or tempfile.mkdtemp(prefix="wcbench-abuse-")
    os.makedirs(log_dir, exist_ok=True)
    started = time.monotonic()
    try:
        rows, baseline = asyncio.run(run(settings, keys, log_dir))
    except Exception:
        traceback.print_exc()
        print("abuse: the harness failed", file=sys.stderr)
        return 1
    finally:
        if not args.logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    all_rows = ([baseline_row(baseline)] if baseline else []) + rows
    print()
    print(table(all_rows).render())
    details = [f"- {r.label}: {d}" for r in rows for d in r.outcome.details]
    if details:
        print("\n".join(["", "Details:", *details]))
    print()
    print(
        f"Targets: peak RSS ≤ {RSS_TARGET}x the RSS before; victim GET p99 < {SLOW_MS:.0f} ms; "
        f"0 watch events lost; 0 5xx. 'slow s': from the attack's start to the end of the victim's "
        f"last GET that took ≥ {SLOW_MS:.0f} ms or failed. Run time {time.monotonic() - started:.0f} s."
    )
    if args.json:
        with open(args.json, "a") as f:
            for r in all_rows:
                f.write(json.dumps(row_json(r, settings)) + "\n")
    failed = [r for r in rows if r.harness_error]
    for r in failed:
        print(f"\n{r.label}: harness error:\n{r.harness_error}", file=sys.stderr)
    return 1 if failed else 0


def row_json(row: Row, settings: Settings) -> dict[str, Any]:
    return {
        "attack": row.label,
        "objects": settings.objects,
        "size": settings.size,
        "rss_before_kib": row.rss_before,
        "rss_peak_kib": row.rss_peak,
        "killed_at_kib": row.killed_at,
        "gets": row.gets.n if row.gets else None,
        "gets_failed": row.gets.failed if row.gets else None,
        "get_p99_ms": row.gets.p99 if row.gets else None,
        "get_max_ms": row.gets.max if row.gets else None,
        "slow_s": row.gets.slow_s if row.gets else None,
        "watch": vars(row.watch) if row.watch else None,
        "5xx": len(row.errors),
        "met": not row.misses() and not row.harness_error,
        "notes": row.outcome.notes,
    }


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""A fault soak of watchcache in front of a real 3-member etcd cluster, checked against etcd's history.

    python benchmarks/soak.py                 # 300 s of faults, ~200 watchers (a few minutes overall)
    python benchmarks/soak.py --short         # ~50 s, fewer watchers: what tests/soak/test_soak.py runs
    python benchmarks/soak.py --check DIR/history.json [--plant drop|duplicate|reorder|...]

Everything runs on loopback: an etcd cluster (``EtcdCluster``), two ``watchcache serve`` replicas given
all three endpoints, writers (through watchcache over HTTP, and straight to etcd), reflector-like
watchers (list, watch from the list's resourceVersion, re-watch from the last one, relist on 410), some
of them slow on purpose, readers doing consistent and paged lists, a history recorder (a direct etcd
watch), and a fault schedule. At the end the checker (``soak_checker.py``) judges everything against
the recorded history. See docs/soak.md. Exit code: 0 when no violation was found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from soak_checker import (  # noqa: E402
    Event,
    History,
    ListRecord,
    Report,
    Segment,
    SlowEpisode,
    WatcherRecord,
    WriteRecord,
    check,
    count_delivered,
)
from soak_etcd import DirectEtcd, Recorder  # noqa: E402
from support.etcd import EtcdCluster  # noqa: E402

from watchcache.etcd.process import free_port  # noqa: E402

log = logging.getLogger("soak")

GROUP = "wardle.example.com"
PREFIX = "/registry"
NAMESPACED = {"flunders": True, "fischers": False}
KINDS = {"flunders": "Flunder", "fischers": "Fischer"}
VERSIONS = {"flunders": ("v1alpha1", "v1beta1"), "fischers": ("v1alpha1",)}
NAMESPACES = ("ns0", "ns1", "ns2", "ns3")
BULK = "bulk"
SELECTORS = ("app=a", "app in (a,b)", "tier!=x", "app=b,tier=y", "!gone", "app notin (c)")
# The README's example configuration: a namespaced and a cluster-scoped resource.
CONFIG = (Path(__file__).parent.parent / "examples" / "watchcache.yaml").read_text()
T0 = time.monotonic()


def now() -> float:
    """Seconds since the soak started (every recorded time is on this clock)."""
    return time.monotonic() - T0


@dataclass
class Params:
    duration: float = 300.0
    watchers: int = 200
    slow_watchers: int = 10
    http_writers: int = 4
    direct_writers: int = 2
    readers: int = 4
    write_interval: float = 0.2
    """Seconds between one writer's writes."""
    padding: int = 1024
    """Bytes of filler in every ordinary object (so that slow watchers fill their buffers)."""
    big_objects: int = 6
    big_size: int = 500 * 1024
    no_quorum: float = 15.0
    pause: float = 6.0
    slow_pause: float = 20.0
    watcher_buffer: int = 100
    window: int = 200
    """``--default-watch-cache-size``: small, so that watches from old resourceVersions get 410."""
    half_open: tuple[int, int, int] = (10, 10, 10)
    """Stop-reading, reset (SO_LINGER 0) and killed-process watch connections."""
    watch_write_timeout: float = 60.0
    """``--watch-write-timeout``: how long the server waits on a client that does not read."""
    fd_release_slack: float = 25.0
    """Seconds beyond watch_write_timeout within which the half-open connections' server sockets
    must be gone, counted from the burst that fills their buffers."""
    seed: int = 1


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Replica:
    """One ``watchcache serve`` subprocess."""

    name: str
    port: int
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    peak_hwm_kib: int = 0
    fd_peak: int = 0
    incarnations: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, session: aiohttp.ClientSession) -> None:
        with open(self.log_path, "ab") as out:  # noqa: ASYNC230
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "watchcache", "serve", *self.args, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                start_new_session=True,
            )
        self.incarnations += 1
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited: see {self.log_path}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.name} not ready within 60 s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.sample()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if process.poll() is None:
                log.warning("replica %s ignored SIGTERM; killing it", self.name)
                process.kill()
                process.wait()
        self.process = None

    def status_kib(self, field_name: str) -> int:
        if self.process is None:
            return 0
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                for line in f:
                    if line.startswith(field_name + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def fds(self) -> int:
        if self.process is None:
            return 0
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return 0

    def sample(self) -> None:
        self.peak_hwm_kib = max(self.peak_hwm_kib, self.status_kib("VmHWM"))
        self.fd_peak = max(self.fd_peak, self.fds())

    def peer_ports(self) -> set[int]:
        """Remote ports of the TCP sockets this process holds (from /proc/net/tcp)."""
        if self.process is None:
            return set()
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{self.process.pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{self.process.pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        except OSError:
            return set()
        ports = set()
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[9] in inodes:
                    ports.add(int(parts[2].split(":")[1], 16))
        return ports


# -- the objects -----------------------------------------------------------------------------------


def path(resource: str, namespace: str | None, name: str | None = None, version: str | None = None) -> str:
    version = version or VERSIONS[resource][0]
    out = f"/apis/{GROUP}/{version}"
    if namespace is not None:
        out += f"/namespaces/{namespace}"
    out += f"/{resource}"
    if name is not None:
        out += f"/{name}"
    return out


def short_key(resource: str, namespace: str | None, name: str) -> str:
    return f"{resource}/{namespace}/{name}" if namespace is not None else f"{resource}/{name}"


def etcd_key(resource: str, namespace: str | None, name: str) -> bytes:
    return f"{PREFIX}/{GROUP}/{short_key(resource, namespace, name)}".encode()


def random_labels(rng: random.Random) -> dict[str, str]:
    labels = {"app": rng.choice("abc"), "tier": rng.choice("xy")}
    if rng.random() < 0.2:
        labels["gone"] = "y"
    return labels


def make_object(
    resource: str, namespace: str | None, name: str, *, labels: dict[str, str], token: str, padding: int
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": f"{GROUP}/{VERSIONS[resource][0]}",
        "kind": KINDS[resource],
        "metadata": meta,
        "spec": {"token": token, "fill": "x" * padding},
    }


def item_of(resource: str, obj: dict[str, Any]) -> tuple[str, int, str | None]:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    return (
        short_key(resource, meta.get("namespace"), meta["name"]),
        int(meta["resourceVersion"]),
        spec.get("token"),
    )


class Failed(Exception):
    """A request that did not succeed (a Status, a timeout or a connection error)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


# -- the soak --------------------------------------------------------------------------------------


@dataclass
class Stats:
    faults: Counter[str] = field(default_factory=Counter)
    write_failures: int = 0
    list_failures: Counter[int] = field(default_factory=Counter)
    relists: int = 0
    rewatches: int = 0
    failovers: int = 0
    graceful: dict[str, Any] = field(default_factory=dict)
    fd: dict[str, Any] = field(default_factory=dict)
    extra_violations: list[tuple[str, str, str]] = field(default_factory=list)


class Soak:
    def __init__(self, params: Params, workdir: Path) -> None:
        self.p = params
        self.workdir = workdir
        self.rng = random.Random(params.seed)
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self.writes: list[WriteRecord] = []
        self.flunders_written = 0
        self.lists: list[ListRecord] = []
        self.watchers: list[WatcherRecord] = []
        self.slow_episodes: list[SlowEpisode] = []
        self.fault_windows: list[tuple[float, float, str]] = []
        self.slow_until = 0.0
        self.half_open_task: asyncio.Task[None] | None = None
        self.half_open_ready = asyncio.Event()
        self.first_burst_done = asyncio.Event()
        self.slow_episode_id = 0
        self.cluster: EtcdCluster
        self.etcd: DirectEtcd
        self.recorder: Recorder
        self.replicas: list[Replica] = []
        self.session: aiohttp.ClientSession

    # -- helpers --

    def violation(self, kind: str, who: str, detail: str) -> None:
        log.error("VIOLATION %s %s: %s", kind, who, detail)
        self.stats.extra_violations.append((kind, who, detail))

    def record_write(self, write: WriteRecord) -> None:
        self.writes.append(write)
        if write.resource == "flunders":
            self.flunders_written += 1

    def flunder_writes(self) -> int:
        return self.flunders_written

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.up] or self.replicas

    async def request(
        self,
        replica: Replica,
        method: str,
        url_path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 15.0,
    ) -> tuple[int, Any, float]:
        """(status, decoded JSON, seconds); connection errors and timeouts raise Failed(0)."""
        started = time.monotonic()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self.session.request(
                method,
                replica.url + url_path,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise Failed(0, type(err).__name__) from None
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        return status, decoded, time.monotonic() - started

    async def consistent_list(
        self,
        client: str,
        *,
        replica: Replica,
        resource: str,
        namespace: str | None,
        selector: str | None,
        limit: int | None,
    ) -> ListRecord:
        """A consistent LIST (all pages of one when ``limit``), recorded for the checker."""
        query = []
        if selector:
            query.append("labelSelector=" + quote(selector))
        if limit:
            query.append(f"limit={limit}")
        base = path(resource, namespace, version=self.rng.choice(VERSIONS[resource]))
        t_start = now()
        items: list[tuple[str, int, str | None]] = []
        page_rvs: list[int] = []
        token = None
        while True:
            q = [*query, "continue=" + quote(token)] if token else query
            status, body, _ = await self.request(replica, "GET", base + ("?" + "&".join(q) if q else ""))
            if status != 200:
                reason = body.get("reason", "") if isinstance(body, dict) else ""
                raise Failed(status, reason)
            page_rvs.append(int(body["metadata"]["resourceVersion"]))
            items.extend(item_of(resource, obj) for obj in body["items"])
            token = body["metadata"].get("continue")
            if not token:
                break
        record = ListRecord(
            client=client,
            replica=replica.name,
            resource=resource,
            namespace=namespace,
            selector=selector,
            t_start=t_start,
            t_end=now(),
            rv=page_rvs[0],
            items=items,
            page_rvs=page_rvs,
        )
        self.lists.append(record)
        return record

    # -- writers --

    async def http_writer(self, index: int) -> None:
        rng = random.Random(self.p.seed * 1000 + index)
        names = [("flunders", ns, f"h{index}-{n}") for ns in NAMESPACES for n in range(6)] + [
            ("fischers", None, f"h{index}-{n}") for n in range(8)
        ]
        state: dict[tuple[str, str | None, str], int | str | None] = dict.fromkeys(names, "unknown")
        seq = 0
        replica = self.replicas[index % len(self.replicas)]
        while not self.stopping.is_set():
            await asyncio.sleep(self.p.write_interval * (0.5 + rng.random()))
            resource, ns, name = target = rng.choice(names)
            seq += 1
            token = f"h{index}-{seq}"
            try:
                if state[target] == "unknown":
                    status, body, _ = await self.request(replica, "GET", path(resource, ns, name))
                    if status == 200:
                        state[target] = int(body["metadata"]["resourceVersion"])
                    elif status == 404:
                        state[target] = None
                    else:
                        raise Failed(status)
                current = state[target]
                t_start = now()
                obj = make_object(
                    resource, ns, name, labels=random_labels(rng), token=token, padding=self.p.padding
                )
                roll = rng.random()
                if current is None:
                    op, method, url = "put", "POST", path(resource, ns)
                    body_out: Any = obj
                    content_type = "application/json"
                elif roll < 0.15:
                    op, method, url, body_out = "delete", "DELETE", path(resource, ns, name), None
                    content_type = "application/json"
                elif roll < 0.35:
                    op, method, url = "put", "PATCH", path(resource, ns, name)
                    body_out = {"metadata": {"labels": obj["metadata"]["labels"]}, "spec": {"token": token}}
                    content_type = "application/merge-patch+json"
                else:
                    op, method, url = "put", "PUT", path(resource, ns, name)
                    obj["metadata"]["resourceVersion"] = str(current)
                    body_out = obj
                    content_type = "application/json"
                status, body, _ = await self.request(
                    replica, method, url, body=body_out, content_type=content_type
                )
                if status in (200, 201):
                    rev = int(body["metadata"]["resourceVersion"])
                    self.record_write(
                        WriteRecord(
                            t_start=t_start,
                            t_ack=now(),
                            rev=rev,
                            resource=resource,
                            key=short_key(resource, ns, name),
                            op=op,
                            token=None if op == "delete" else token,
                            via=f"http-writer-{index}@{replica.name}",
                        )
                    )
                    state[target] = None if op == "delete" else rev
                else:
                    raise Failed(status)
            except Failed:
                self.stats.write_failures += 1
                state[target] = "unknown"
                replica = rng.choice(self.alive())
                await asyncio.sleep(0.3)

    async def direct_writer(self, index: int) -> None:
        rng = random.Random(self.p.seed * 2000 + index)
        names = [("flunders", ns, f"d{index}-{n}") for ns in NAMESPACES for n in range(5)] + [
            ("fischers", None, f"d{index}-{n}") for n in range(5)
        ]
        seq = 0
        while not self.stopping.is_set():
            await asyncio.sleep(self.p.write_interval * (0.5 + rng.random()))
            resource, ns, name = rng.choice(names)
            seq += 1
            token = f"d{index}-{seq}"
            key = etcd_key(resource, ns, name)
            t_start = now()
            try:
                if rng.random() < 0.2:
                    rev = await self.etcd.delete(key)
                    op = "delete"
                else:
                    obj = make_object(
                        resource, ns, name, labels=random_labels(rng), token=token, padding=self.p.padding
                    )
                    obj["metadata"]["uid"] = str(uuid.uuid4())
                    rev = await self.etcd.put(key, json.dumps(obj).encode())
                    op = "put"
            except grpc.aio.AioRpcError:
                self.stats.write_failures += 1
                await asyncio.sleep(0.3)
                continue
            if rev is not None:
                self.record_write(
                    WriteRecord(
                        t_start=t_start,
                        t_ack=now(),
                        rev=rev,
                        resource=resource,
                        key=short_key(resource, ns, name),
                        op=op,
                        token=None if op == "delete" else token,
                        via=f"direct-writer-{index}",
                    )
                )

    async def big_burst(self, burst: int) -> None:
        """Large objects through watchcache: created, updated, deleted."""
        names = [f"big-{burst}-{j}" for j in range(self.p.big_objects)]
        labels = {"app": "big", "tier": "x", "gone": "y"}
        for step in ("create", "update", "delete"):
            for name in names:
                token = f"big-{burst}-{name}-{step}"
                obj = make_object("flunders", BULK, name, labels=labels, token=token, padding=self.p.big_size)
                for _attempt in range(20):
                    replica = self.rng.choice(self.alive())
                    t_start = now()
                    try:
                        if step == "create":
                            status, body, _ = await self.request(
                                replica, "POST", path("flunders", BULK), body=obj
                            )
                        elif step == "update":
                            status, body, _ = await self.request(
                                replica, "PUT", path("flunders", BULK, name), body=obj
                            )
                        else:
                            status, body, _ = await self.request(
                                replica, "DELETE", path("flunders", BULK, name)
                            )
                    except Failed:
                        await asyncio.sleep(0.3)
                        continue
                    if status in (200, 201):
                        self.record_write(
                            WriteRecord(
                                t_start=t_start,
                                t_ack=now(),
                                rev=int(body["metadata"]["resourceVersion"]),
                                resource="flunders",
                                key=short_key("flunders", BULK, name),
                                op="delete" if step == "delete" else "put",
                                token=None if step == "delete" else token,
                                via=f"big-burst@{replica.name}",
                            )
                        )
                        break
                    if status in (409, 404):
                        break  # an earlier attempt with an unknown outcome did it
                    await asyncio.sleep(0.3)

    # -- readers --

    async def reader(self, index: int) -> None:
        rng = random.Random(self.p.seed * 3000 + index)
        name = f"reader-{index}"
        while not self.stopping.is_set():
            await asyncio.sleep(0.2 + 0.3 * rng.random())
            resource = rng.choice(("flunders", "flunders", "fischers"))
            namespace = rng.choice((None, *NAMESPACES)) if NAMESPACED[resource] else None
            selector = rng.choice((None, None, *SELECTORS))
            limit = rng.choice((None, 5, 17))
            replica = rng.choice(self.alive())
            try:
                await self.consistent_list(
                    name,
                    replica=replica,
                    resource=resource,
                    namespace=namespace,
                    selector=selector,
                    limit=limit,
                )
            except Failed as err:
                self.stats.list_failures[err.code] += 1
                await asyncio.sleep(0.3)

    # -- watchers --

    async def open_watch(
        self, replica: Replica, url_path: str, *, rcvbuf: int | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
        """A raw HTTP/1.1 watch request; (reader, writer, status, error body if not 200)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", replica.port)), 5
            )
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        try:
            writer.write(
                f"GET {url_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode()
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            status = int(head.split(b" ", 2)[1])
            if status == 200:
                return reader, writer, status, b""
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await asyncio.wait_for(reader.readexactly(length), 15) if length else b""
            writer.close()
            return reader, writer, status, body
        except BaseException:
            writer.close()
            raise

    async def watcher(self, record: WatcherRecord, home: int) -> None:
        rng = random.Random(f"{record.name}-{self.p.seed}")
        current = home
        rv: int | None = None
        while not self.stopping.is_set():
            replica = self.replicas[current]
            if rv is None:
                try:
                    listed = await self.consistent_list(
                        record.name,
                        replica=replica,
                        resource=record.resource,
                        namespace=record.namespace,
                        selector=record.selector,
                        limit=rng.choice((None, None, 50)),
                    )
                except Failed as err:
                    self.stats.list_failures[err.code] += 1
                    if err.code == 0:
                        current = 1 - current
                    await asyncio.sleep(0.3 + 0.3 * rng.random())
                    continue
                rv = listed.rv
                record.observed.append(("list", rv))
            query = [f"watch=true&resourceVersion={rv}&allowWatchBookmarks=true"]
            if record.selector:
                query.append("labelSelector=" + quote(record.selector))
            if not record.slow:
                query.append(f"timeoutSeconds={rng.randint(10, 40)}")
            url = path(record.resource, record.namespace, version=rng.choice(VERSIONS[record.resource]))
            url += "?" + "&".join(query)
            try:
                reader, writer, status, body = await self.open_watch(
                    replica, url, rcvbuf=4096 if record.slow else None
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                current = 1 - current
                self.stats.failovers += 1
                await asyncio.sleep(0.2)
                continue
            if status != 200:
                code = 0
                with contextlib.suppress(ValueError, AttributeError):
                    code = int(json.loads(body).get("code", status))
                if code == 410:
                    rv = None
                    self.stats.relists += 1
                await asyncio.sleep(0.3 + 0.3 * rng.random())
                continue
            segment = Segment(replica=replica.name, start_rev=rv)
            record.segments.append(segment)
            self.stats.rewatches += 1
            try:
                rv, relist = await self.read_watch(record, segment, reader, writer, rv)
            finally:
                writer.close()
            if relist:
                rv = None
                self.stats.relists += 1
            if segment.end == "reset":
                current = 1 - current
                self.stats.failovers += 1
            elif segment.end == "closed":
                current = home

    async def read_watch(
        self,
        record: WatcherRecord,
        segment: Segment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rv: int,
    ) -> tuple[int, bool]:
        """Read one watch stream into ``segment``; returns (last resourceVersion, relist?)."""
        pending = b""
        episode: SlowEpisode | None = None
        episode_seen = 0
        resumed_at = 0.0
        try:
            while True:
                if (
                    record.slow
                    and episode is None
                    and now() < self.slow_until
                    and episode_seen != self.slow_episode_id
                ):
                    episode_seen = self.slow_episode_id
                    episode = SlowEpisode(record.name, now(), 0.0, False, 0)
                    # Stop reading for real: the socket's (small) receive buffer fills, then the
                    # server's send buffer, and the server's writes block.
                    writer.transport.pause_reading()
                    # At least slow_pause seconds, and long enough for 3 buffers' worth of changes
                    # to reach the server (faults may quiet the writers meanwhile).
                    wanted = self.flunder_writes() + 3 * self.p.watcher_buffer
                    limit = episode.t_begin + 3 * self.p.slow_pause
                    while (now() < self.slow_until or self.flunder_writes() < wanted) and now() < limit:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                    writer.transport.resume_reading()
                    episode.t_end = now()
                    resumed_at = time.monotonic()
                    self.slow_episodes.append(episode)
                if episode is not None and not episode.ended_by_server and time.monotonic() - resumed_at > 30:
                    episode = None  # not cut off: the checker reports it
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.strip().split(b";")[0], 16)
                if size == 0:
                    segment.end = "closed"
                    break
                data = await reader.readexactly(size + 2)
                pending += data[:-2]
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line:
                        continue
                    t = now()
                    msg = json.loads(line)
                    kind = msg["type"]
                    obj = msg["object"]
                    if kind == "ERROR":
                        segment.end = "expired" if obj.get("code") == 410 else "error"
                        return rv, obj.get("code") == 410
                    new_rv = int(obj["metadata"]["resourceVersion"])
                    if kind == "BOOKMARK":
                        segment.bookmarks.append(new_rv)
                        record.observed.append(("bookmark", new_rv))
                    else:
                        key, _, token = item_of(record.resource, obj)
                        segment.events.append(Event(new_rv, kind, key, token))
                        segment.recv_times.append(t)
                        record.observed.append(("event", new_rv))
                        if episode is not None:
                            episode.events_after_resume += 1
                    rv = new_rv
        except (asyncio.IncompleteReadError, OSError, ValueError, asyncio.LimitOverrunError):
            segment.end = "reset"
        except asyncio.CancelledError:
            segment.end = "stopped"
            raise
        if episode is not None:
            episode.ended_by_server = True
        return rv, False

    # -- faults --

    def fault(self, kind: str, started: float) -> None:
        self.stats.faults[kind] += 1
        self.fault_windows.append((started, now(), kind))
        log.info("fault %s done (%.1f s)", kind, now() - started)

    async def kill_leader(self) -> None:
        started = now()
        leader = await self.cluster.leader(timeout=30)
        leader.kill()
        await asyncio.sleep(2)
        await leader.start()
        await leader.wait_ready(60)
        await self.cluster.wait_healthy(60)
        self.fault("kill-9-leader+restart", started)

    async def pause_member(self) -> None:
        started = now()
        member = await self.cluster.leader(timeout=30)
        member.pause()
        await asyncio.sleep(self.p.pause)
        member.resume()
        await self.cluster.wait_healthy(60)
        self.fault("sigstop/sigcont-member", started)

    async def restart_all(self) -> None:
        started = now()
        for member in self.cluster.members:
            await member.stop()
        for member in self.cluster.members:
            await member.start()
        for member in self.cluster.members:
            await member.wait_ready(60)
        self.fault("restart-all-members", started)

    async def compact(self) -> None:
        started = now()
        # Never past what the history recorder has: the truth must survive compaction.
        revision = self.recorder.last_rev
        await self.etcd.compact(revision)
        log.info("compacted etcd at %d", revision)
        self.fault("compact", started)

    async def restart_replica(self) -> None:
        started = now()
        replica = self.replicas[1]
        await replica.stop()
        await asyncio.sleep(2)
        await replica.start(self.session)
        self.fault("restart-watchcache-replica", started)

    async def burst(self) -> None:
        started = now()
        # Slow watchers stop reading just before the burst fills their buffers.
        if self.half_open_task is None:
            self.half_open_task = asyncio.create_task(self.half_open(), name="half-open")
            await self.half_open_ready.wait()
        self.slow_episode_id += 1
        self.slow_until = now() + self.p.slow_pause
        await self.big_burst(self.stats.faults["big-object-burst"])
        self.first_burst_done.set()
        self.fault("big-object-burst", started)
        self.stats.faults["slow-watcher-episode"] += 1

    async def no_quorum(self) -> None:
        """Two members stopped: RV=0 reads served, consistent reads and writes fail fast, /readyz
        says so, and service comes back by itself."""
        started = now()
        leader = await self.cluster.leader(timeout=30)
        stopped = [*[m for m in self.cluster.members if m is not leader][:1], leader]
        for member in stopped:
            member.kill()
        t_lost = time.monotonic()
        results: dict[str, list[tuple[float, float, int]]] = {
            "rv0": [],
            "consistent": [],
            "write": [],
            "readyz": [],
        }
        probes = {
            "rv0": ("GET", path("flunders", None) + "?resourceVersion=0"),
            "consistent": ("GET", path("flunders", None)),
            "write": ("POST", path("fischers", None)),
            "readyz": ("GET", "/readyz"),
        }

        async def probe(replica: Replica, what: str) -> None:
            method, url = probes[what]
            n = 0
            while time.monotonic() - t_lost < self.p.no_quorum:
                n += 1
                body = (
                    make_object("fischers", None, f"nq-{replica.name}-{n}", labels={}, token="nq", padding=0)
                    if what == "write"
                    else None
                )
                since = time.monotonic() - t_lost
                try:
                    status, answer, seconds = await self.request(replica, method, url, body=body, timeout=30)
                except Failed:
                    status, answer, seconds = 0, None, time.monotonic() - t_lost - since
                results[what].append((since, seconds, status))
                is_status = (
                    isinstance(answer, dict) and answer.get("kind") == "Status" and answer.get("reason")
                )
                if what in ("consistent", "write") and status in (503, 504) and not is_status:
                    self.violation(
                        "graceful", replica.name, f"{what} answered {status} without a Status: {answer!r}"
                    )
                if what == "rv0" and status != 200:
                    self.violation(
                        "graceful", replica.name, f"resourceVersion=0 list failed without quorum: {status}"
                    )
                if what in ("consistent", "write") and status not in (503, 504):
                    self.violation(
                        "graceful",
                        replica.name,
                        f"{what} without quorum answered {status} {answer!r:.300}, want 503/504",
                    )
                await asyncio.sleep(0.25)

        await asyncio.gather(*(probe(r, what) for r in self.alive() for what in probes))
        t_back = time.monotonic()
        for member in stopped:
            await member.start()
        # Service must resume by itself: consistent reads and /readyz on every replica.
        recovered: dict[str, float] = {}
        deadline = t_back + 60
        while len(recovered) < len(self.alive()) and time.monotonic() < deadline:
            for replica in self.alive():
                if replica.name in recovered:
                    continue
                with contextlib.suppress(Failed):
                    s1, _, _ = await self.request(replica, "GET", path("flunders", None), timeout=10)
                    s2, _, _ = await self.request(replica, "GET", "/readyz", timeout=10)
                    if s1 == 200 and s2 == 200:
                        recovered[replica.name] = time.monotonic() - t_back
            await asyncio.sleep(0.2)
        for replica in self.alive():
            if replica.name not in recovered:
                self.violation("graceful", replica.name, "did not recover within 60 s of quorum returning")
        grace = 5.5  # two failed health probes (1 s apart, each up to 1 s), plus slack
        fail_fast = [s for w in ("consistent", "write") for since, s, _ in results[w] if since >= grace]
        everything = [s for w in ("consistent", "write") for _, s, _ in results[w]]
        for since, seconds, _ in [r for w in ("consistent", "write") for r in results[w]]:
            bound = 2.5 if since >= grace else 7.0
            if seconds > bound:
                self.violation(
                    "graceful",
                    "no-quorum",
                    f"a request {since:.1f} s into the window took {seconds:.2f} s (> {bound} s)",
                )
        ready_503 = [since for since, _, status in results["readyz"] if status == 503]
        late_200 = [since for since, _, status in results["readyz"] if status == 200 and since >= grace]
        if not ready_503 or late_200:
            self.violation(
                "graceful",
                "readyz",
                f"/readyz did not report the lost quorum (503 at {ready_503[:3]}, 200 at {late_200[:3]})",
            )
        g = self.stats.graceful
        g.setdefault("windows", 0)
        g["windows"] += 1
        g["max_fail_fast_s"] = max([g.get("max_fail_fast_s", 0.0), *fail_fast])
        g["max_any_s"] = max([g.get("max_any_s", 0.0), *everything])
        g["rv0_served"] = g.get("rv0_served", 0) + sum(1 for _, _, s in results["rv0"] if s == 200)
        g["rv0_total"] = g.get("rv0_total", 0) + len(results["rv0"])
        g["samples"] = {w: len(v) for w, v in results.items()}
        g["codes"] = dict(Counter(f"{w}:{s}" for w in ("consistent", "write") for _, _, s in results[w]))
        g["readyz_503_after_s"] = min(ready_503) if ready_503 else None
        g["recovery_s"] = max(recovered.values()) if recovered else None
        await self.cluster.wait_healthy(60)
        self.fault("no-quorum-window", started)

    async def half_open(self) -> None:
        """Connections that vanish or stop reading: the replica must release their sockets.

        Opened just before the first big-object burst, which fills the stopped readers' socket
        buffers at once, so the server's writes block from then on: the bound runs from there.
        """
        replica = self.replicas[0]
        baseline = sorted(replica.fds() for _ in range(3))[1]
        opened_at = time.monotonic()
        url = path("flunders", None) + "?watch=true&resourceVersion=0"
        ports: dict[str, set[int]] = {
            "stop-reading": set(),
            "stop-reading+timeoutSeconds": set(),
            "reset": set(),
            "killed-process": set(),
        }
        stop_n, reset_n, kill_n = self.p.half_open

        def connect(kind: str, query: str = "", rcvbuf: int | None = 4096) -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.connect(("127.0.0.1", replica.port))
            sock.sendall(f"GET {url}{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            ports[kind].add(sock.getsockname()[1])
            return sock

        # Never read again (a client that stopped reading, or a peer that vanished without a FIN).
        stuck = [connect("stop-reading") for _ in range(stop_n)]
        # The same, with a watch timeout that expires while the server is blocked writing to it.
        stuck += [connect("stop-reading+timeoutSeconds", "&timeoutSeconds=5") for _ in range(stop_n)]
        resets = [connect("reset", rcvbuf=None) for _ in range(reset_n)]
        child = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", _VANISHING_CLIENT, str(replica.port), url, str(kill_n)],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        ports["killed-process"] = {int(p) for p in line.split()}
        await asyncio.sleep(1.0)
        peak = replica.fds()
        for sock in resets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST
        child.kill()
        child.wait()
        self.half_open_ready.set()
        await self.first_burst_done.wait()
        filled_at = time.monotonic()
        released: dict[str, float] = {}
        bound = self.p.watch_write_timeout + self.p.fd_release_slack
        while len(released) < len(ports) and time.monotonic() - filled_at < bound:
            held = replica.peer_ports()
            for kind, group in ports.items():
                if kind not in released and not (group & held):
                    released[kind] = round(time.monotonic() - filled_at, 1)
            await asyncio.sleep(0.5)
        for sock in stuck:
            sock.close()
        after = sorted(replica.fds() for _ in range(3))[1]
        self.stats.fd |= {
            "replica": replica.name,
            "baseline": baseline,
            "peak": peak,
            "after": after,
            "released_after_burst_s": released,
            "opened_before_burst_s": round(filled_at - opened_at, 1),
            "connections": {k: len(v) for k, v in ports.items()},
        }
        for kind in ports:
            if kind not in released:
                self.violation(
                    "fd",
                    replica.name,
                    f"{kind} connections still held {bound:g} s after the burst that blocked them",
                )
        self.stats.faults["half-open-clients"] += 1

    async def schedule(self) -> None:
        steps = [
            self.kill_leader,
            self.burst,
            self.pause_member,
            self.compact,
            self.restart_replica,
            self.restart_all,
            self.burst,
            self.no_quorum,
            self.compact,
            self.kill_leader,
        ]
        gap = max(1.0, self.p.duration / (len(steps) + 1) - 3)
        for step in steps:
            await asyncio.sleep(gap)
            log.info("fault %s at %.1f s", step.__name__, now())
            await step()

    async def monitor(self) -> None:
        while True:
            for replica in self.replicas:
                replica.sample()
            await asyncio.sleep(0.5)

    # -- the run --

    async def run(self) -> dict[str, Any]:
        p = self.p
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for old in self.workdir.glob("replica-*.log"):
            old.unlink()
        self.cluster = EtcdCluster(3, extra_args=["--heartbeat-interval=50", "--election-timeout=500"])
        tasks: list[asyncio.Task[Any]] = []
        started = time.monotonic()
        try:
            await self.cluster.start()
            self.etcd = DirectEtcd(self.cluster.endpoints)
            config = self.workdir / "watchcache.yaml"
            config.write_text(CONFIG)
            args = [
                "--etcd-servers",
                ",".join(self.cluster.endpoints),
                "--config",
                str(config),
                "--etcd-prefix",
                PREFIX,
                "--watcher-buffer",
                str(p.watcher_buffer),
                "--default-watch-cache-size",
                str(p.window),
                "--watch-write-timeout",
                str(p.watch_write_timeout),
                "--log-level",
                "warning",
            ]
            ports = [free_port(), free_port()]
            self.replicas = [
                Replica(f"replica-{c}", ports[i], args, self.workdir / f"replica-{c}.log")
                for i, c in enumerate("ab")
            ]
            for replica in self.replicas:
                await replica.start(self.session)
            idle_before = sorted(self.replicas[0].fds() for _ in range(3))[1]
            start_rev, initial = await self.etcd.range_prefix(PREFIX.encode() + b"/")
            self.recorder = Recorder(self.etcd, PREFIX.encode() + b"/", start_rev)
            tasks.append(asyncio.create_task(self.recorder.run(), name="recorder"))
            tasks.append(asyncio.create_task(self.monitor(), name="monitor"))
            workers: list[asyncio.Task[Any]] = []
            workers += [asyncio.create_task(self.http_writer(i)) for i in range(p.http_writers)]
            workers += [asyncio.create_task(self.direct_writer(i)) for i in range(p.direct_writers)]
            workers += [asyncio.create_task(self.reader(i)) for i in range(p.readers)]
            watch_tasks = [
                asyncio.create_task(self.watcher(w, i % 2)) for i, w in enumerate(self.make_watchers())
            ]
            log.info("running %d watchers; faults for %.0f s", len(watch_tasks), p.duration)
            await asyncio.sleep(3)
            schedule = asyncio.create_task(self.schedule())
            await asyncio.sleep(p.duration)
            await schedule
            if self.half_open_task is not None:
                await self.half_open_task
            self.stopping.set()
            await asyncio.gather(*workers)
            await asyncio.sleep(2)  # let in-flight events arrive
            for task in watch_tasks:
                task.cancel()
            await asyncio.gather(*watch_tasks, return_exceptions=True)
            await self.session.close()  # the readers' and writers' pooled connections too
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await asyncio.sleep(3)
            self.stats.fd["idle_before"] = idle_before
            self.stats.fd["idle_after"] = sorted(self.replicas[0].fds() for _ in range(3))[1]
            marker = await self.etcd.put(PREFIX.encode() + b"/soak-end", b"")
            await self.recorder.wait_for(marker)
            final_rev, final = await self.etcd.range_prefix(PREFIX.encode() + b"/", revision=marker)
            metrics = await self.scrape()
            for replica in self.replicas:
                replica.sample()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for replica in self.replicas:
                await replica.stop()
            await self.session.close()
            with contextlib.suppress(AttributeError):
                await self.etcd.close()
            await self.cluster.stop()
        elapsed = time.monotonic() - started
        history = History(
            truth=self.recorder.events,
            initial=[(kv.key.decode(), int(kv.mod_revision), kv.value.decode()) for kv in initial],
            start_rev=start_rev,
            final_state=[(kv.key.decode(), int(kv.mod_revision), kv.value.decode()) for kv in final],
            final_rev=final_rev,
            prefix=f"{PREFIX}/{GROUP}",
            writes=self.writes,
            watchers=self.watchers,
            lists=self.lists,
            slow_episodes=self.slow_episodes,
            fault_windows=self.fault_windows,
        )
        (self.workdir / "history.json").write_text(history.to_json())
        report = check(history, namespaced=NAMESPACED)
        if self.recorder.gap:
            report.add("truth", "recorder", self.recorder.gap)
        for kind, who, detail in self.stats.extra_violations:
            report.add(kind, who, detail)
        return self.summary(history, report, elapsed, metrics)

    def make_watchers(self) -> list[WatcherRecord]:
        rng = self.rng
        out = []
        for i in range(self.p.watchers):
            slow = i < self.p.slow_watchers
            if slow:
                resource, ns, sel = "flunders", None, None
            else:
                roll = rng.random()
                if roll < 0.1:
                    resource, ns, sel = "flunders", None, None
                elif roll < 0.4:
                    resource, ns, sel = "flunders", rng.choice(NAMESPACES), None
                elif roll < 0.65:
                    resource, ns, sel = "flunders", None, rng.choice(SELECTORS)
                elif roll < 0.8:
                    resource, ns, sel = "flunders", rng.choice(NAMESPACES), rng.choice(SELECTORS)
                else:
                    resource, ns, sel = "fischers", None, rng.choice((None, *SELECTORS))
            out.append(WatcherRecord(f"watcher-{i}{'-slow' if slow else ''}", resource, ns, sel, slow))
        self.watchers = out
        return out

    async def scrape(self) -> dict[str, float]:
        totals: Counter[str] = Counter()
        for replica in self.alive():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(replica.url + "/metrics") as resp:
                    for line in (await resp.text()).splitlines():
                        if line.startswith("#") or " " not in line:
                            continue
                        name, value = line.rsplit(" ", 1)
                        base = name.split("{", 1)[0]
                        if base in (
                            "watchcache_watchers_terminated_slow_total",
                            "watchcache_relists_total",
                            "watchcache_etcd_watch_restarts_total",
                            "watchcache_events_dispatched_total",
                        ):
                            totals[base] += float(value)
        return dict(totals)

    def summary(
        self, history: History, report: Report, elapsed: float, metrics: dict[str, float]
    ) -> dict[str, Any]:
        return {
            "parameters": {
                "duration_s": self.p.duration,
                "watchers": self.p.watchers,
                "slow_watchers": self.p.slow_watchers,
                "writers_http": self.p.http_writers,
                "writers_direct": self.p.direct_writers,
                "readers": self.p.readers,
                "watcher_buffer": self.p.watcher_buffer,
                "watch_cache_size": self.p.window,
                "watch_write_timeout_s": self.p.watch_write_timeout,
                "big_object_bytes": self.p.big_size,
                "seed": self.p.seed,
            },
            "wall_clock_s": round(elapsed, 1),
            "writes_acknowledged": len(history.writes),
            "write_failures": self.stats.write_failures,
            "etcd_events_recorded": len(history.truth),
            "events_delivered": count_delivered(history.watchers),
            "watch_segments": report.segments_checked,
            "segments_ended_410": report.expired_segments,
            "consistent_lists_checked": report.lists_checked,
            "list_failures": dict(self.stats.list_failures),
            "relists_after_410": self.stats.relists,
            "failovers": self.stats.failovers,
            "faults": dict(self.stats.faults),
            "violations": len(report.violations),
            "violations_by_kind": report.by_kind(),
            "violation_examples": [f"{v.kind} {v.who}: {v.detail}" for v in report.violations[:20]],
            "peak_rss_mib": {r.name: round(r.peak_hwm_kib / 1024, 1) for r in self.replicas},
            "no_quorum": self.stats.graceful,
            "fd": self.stats.fd,
            "slow_episodes": len(history.slow_episodes),
            "slow_cut_off": sum(1 for e in history.slow_episodes if e.ended_by_server),
            "latency_p99_s": {
                "during_slow_episodes": report.latency_p99_slow,
                "outside": report.latency_p99_calm,
                "samples": report.latency_samples,
            },
            "recorder_restarts": self.recorder.restarts,
            "metrics": metrics,
        }


_VANISHING_CLIENT = textwrap.dedent(
    """
    import socket, sys, time
    port, url, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {url} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
    time.sleep(3600)
    """
)


def print_table(summary: dict[str, Any]) -> None:
    fd = summary["fd"]
    nq = summary["no_quorum"]
    rows = [
        (
            "duration (faults) / wall clock",
            f"{summary['parameters']['duration_s']:.0f} s / {summary['wall_clock_s']} s",
        ),
        (
            "watchers (slow) / readers / writers",
            f"{summary['parameters']['watchers']} ({summary['parameters']['slow_watchers']}) / "
            f"{summary['parameters']['readers']} / {summary['parameters']['writers_http']} http + "
            f"{summary['parameters']['writers_direct']} direct",
        ),
        ("writes acknowledged", summary["writes_acknowledged"]),
        ("events delivered (checked)", summary["events_delivered"]),
        ("watch segments (ended by 410)", f"{summary['watch_segments']} ({summary['segments_ended_410']})"),
        ("consistent lists checked", summary["consistent_lists_checked"]),
        ("faults injected", ", ".join(f"{k} x{v}" for k, v in sorted(summary["faults"].items()))),
        ("violations", f"{summary['violations']} {summary['violations_by_kind'] or ''}"),
        ("peak RSS (VmHWM)", ", ".join(f"{k} {v} MiB" for k, v in summary["peak_rss_mib"].items())),
        (
            "no quorum: max fail-fast latency",
            f"{nq.get('max_fail_fast_s', 0):.3f} s (any: {nq.get('max_any_s', 0):.3f} s)",
        ),
        ("no quorum: rv=0 reads served", f"{nq.get('rv0_served')}/{nq.get('rv0_total')}"),
        (
            "no quorum: /readyz 503 after / recovery",
            f"{nq.get('readyz_503_after_s')} s / {nq.get('recovery_s')} s",
        ),
        ("fds of replica A: idle before / idle after", f"{fd.get('idle_before')} / {fd.get('idle_after')}"),
        (
            "fds baseline / peak / after",
            f"{fd.get('baseline')} / {fd.get('peak')} / {fd.get('after')} "
            f"(released {fd.get('released_after_burst_s')} s after the burst)",
        ),
        ("slow watcher episodes cut off", f"{summary['slow_cut_off']}/{summary['slow_episodes']}"),
        (
            "fast watcher p99 latency slow/calm",
            f"{summary['latency_p99_s']['during_slow_episodes']} / {summary['latency_p99_s']['outside']} s",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for example in summary["violation_examples"]:
        print("  !", example)


PLANTS = ("drop", "duplicate", "reorder", "list-item", "page-rv", "rv-backwards")


def plant(history: History, kind: str, seed: int = 0) -> str:
    """Plant one bug in a recorded history (as a buggy watchcache would have produced it)."""
    rng = random.Random(seed)
    if kind in ("drop", "duplicate", "reorder"):
        candidates = [
            (w, s) for w in history.watchers for s in w.segments if len(s.events) >= 3 and s.end != "stopped"
        ] or [(w, s) for w in history.watchers for s in w.segments if len(s.events) >= 3]
        watcher, segment = rng.choice(candidates)
        i = rng.randrange(0, len(segment.events) - 1)
        events = segment.events
        if kind == "drop":
            gone = events.pop(i)
            segment.recv_times.pop(i)
            return f"dropped {gone.brief()} from {watcher.name}"
        if kind == "duplicate":
            events.insert(i + 1, events[i])
            segment.recv_times.insert(i + 1, segment.recv_times[i])
            return f"duplicated {events[i].brief()} for {watcher.name}"
        events[i], events[i + 1] = events[i + 1], events[i]
        return f"swapped {events[i].brief()} and {events[i + 1].brief()} for {watcher.name}"
    if kind == "list-item":
        record = rng.choice([r for r in history.lists if r.items])
        gone = record.items.pop(rng.randrange(len(record.items)))
        return f"removed {gone[0]} from a list of {record.client}"
    if kind == "page-rv":
        record = rng.choice([r for r in history.lists if len(r.page_rvs) > 1])
        record.page_rvs[-1] += 1
        return f"moved the last page of a paged list of {record.client} to another revision"
    if kind == "rv-backwards":
        watcher = rng.choice([w for w in history.watchers if len(w.observed) > 3])
        i = rng.randrange(1, len(watcher.observed))
        what, rv = watcher.observed[i]
        watcher.observed.insert(i + 1, (what, rv - 1))
        return f"made {watcher.name} observe {rv - 1} after {rv}"
    raise ValueError(f"unknown plant {kind!r}; one of {PLANTS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of fault schedule (default 300)"
    )
    parser.add_argument("--short", action="store_true", help="the test suite's version: ~50 s, 60 watchers")
    parser.add_argument("--watchers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="directory for history.json and summary.json")
    parser.add_argument("--check", type=Path, default=None, help="only check a recorded history.json")
    parser.add_argument("--plant", choices=PLANTS, default=None, help="with --check: plant one bug first")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.check is not None:
        history = History.from_json(args.check.read_text())
        if args.plant:
            print("planted:", plant(history, args.plant, args.seed))
        report = check(history, namespaced=NAMESPACED)
        for v in report.violations[:20]:
            print(f"! {v.kind} {v.who}: {v.detail}")
        print(f"{len(report.violations)} violations; {report.by_kind()}")
        return 1 if report.violations else 0
    params = Params(seed=args.seed)
    if args.short:
        params = Params(
            duration=45.0,
            watchers=60,
            slow_watchers=4,
            http_writers=3,
            direct_writers=2,
            readers=3,
            no_quorum=8.0,
            pause=4.0,
            slow_pause=16.0,
            window=200,
            watch_write_timeout=20.0,
            big_objects=3,
            half_open=(4, 4, 4),
            seed=args.seed,
        )
    if args.duration is not None:
        params.duration = args.duration
    if args.watchers is not None:
        params.watchers = args.watchers
    out = args.out or Path(tempfile.mkdtemp(prefix="watchcache-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(Soak(params, out).run())
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    print(f"\n  history and summary in {out}")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())

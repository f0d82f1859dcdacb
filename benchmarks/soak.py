#!/usr/bin/env python
"""A fault soak of watchcache in front of a real 3-member etcd cluster, checked against etcd's history.

    python benchmarks/soak.py                 # 300 s of faults, ~200 watchers (a few minutes overall)
    python benchmarks/soak.py --short         # ~50 s, fewer watchers: what tests/soak/test_soak.py runs
    python benchmarks/soak.py --check DIR/history.json [--plant drop|duplicate|reorder|...]

Everything runs on loopback: an etcd cluster (``EtcdCluster``), two ``watchcache serve`` replicas given
all three endpoints and serving the etcd v3 API too, writers (through watchcache over HTTP and through
its etcd front, and straight to etcd), reflector-like watchers (list, watch from the list's
resourceVersion, re-watch from the last one, relist on 410), some of them slow on purpose, and etcd
clients watching through the front as k8s.io/apiserver's cacher does, readers doing consistent and
paged lists (and Ranges through the front), a history recorder (a direct etcd watch), and a fault
schedule. At the end the checker (``soak_checker.py``) judges everything against
the recorded history. See docs/soak.md. Exit code: 0 when no violation was found.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
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
import orjson  # noqa: E402
from aetcd.rpc import kv_pb2, rpc_pb2  # noqa: E402
from soak_checker import (  # noqa: E402
    MISSING_PREV_KV,
    Bounds,
    Event,
    GetRecord,
    History,
    ListRecord,
    Report,
    RequestRecord,
    Segment,
    SlowEpisode,
    Truth,
    WatcherRecord,
    WriteRecord,
    check,
    count_delivered,
    digest,
    kv_digest,
)
from soak_etcd import DirectEtcd, Recorder, prefix_end  # noqa: E402
from support.etcd import EtcdCluster  # noqa: E402
from support.etcdv3 import EtcdV3, RpcFailed  # noqa: E402

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
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# Written (outside every resource) to move etcd's revision past a stopped replica's caches.
FILLER_KEY = PREFIX.encode() + b"/soak-filler"
OBJECTS = f"{PREFIX}/{GROUP}/"
"""The key prefix of every object (the checker's keys are what follows it)."""
TENANT = "wardle"
TOKEN = "soak-wardle-token"
"""The REST clients' bearer token, and the etcd clients' password (``Auth.Authenticate``)."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The README's example configuration (a namespaced and a cluster-scoped resource), with one tenant
# owning the group, so that the etcd front's clients authenticate as an aggregated server does. Its
# limits are raised out of the way: the soak is about the caches under faults (benchmarks/abuse.py is
# about limits), and every client here is that one tenant.
CONFIG = (Path(__file__).parent.parent / "examples" / "watchcache.yaml").read_text() + textwrap.dedent(
    f"""
    tenants:
      - name: {TENANT}
        groups: [{GROUP}]
        tokens: [{TOKEN}]
        limits:
          requestsPerSecond: 100000
          burst: 100000
          maxInFlight: 10000
          maxQueued: 10000
          maxWatches: 100000
          maxConnections: 100000
          maxBytesInFlight: 4294967296
    """
)
# The etcd clients' channels: reconnect within a second of a replica coming back (grpc's default
# backoff grows to two minutes), and notice a replica that stopped answering.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
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
    etcd_watchers: int = 24
    """Clients of the replicas' etcd front watching as k8s.io/apiserver's cacher does."""
    etcd_writers: int = 2
    """Writers through the etcd front, with k8s.io/apiserver's transactions."""
    etcd_readers: int = 1
    """Ranges through the etcd front: consistent, paged, serializable, at a past revision."""
    progress_interval: float = 1.0
    """``--etcd-progress-notify-interval``: short, so that every etcd watch gets progress notifications."""
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
    bookmark_interval: float = 1.0
    """``--watch-bookmark-interval``: short, so that every watch gets bookmarks to check."""
    relist_pause: float = 5.0
    """Seconds a replica is stopped (SIGSTOP) while etcd is compacted past its caches: longer than
    etcd's keepalive (1 s + 2 s here), which drops its connections meanwhile."""
    catch_up: float = 30.0
    """At the end, seconds every watcher has to reach etcd's last revision for its filter."""
    bounds: Bounds = field(default_factory=Bounds)
    """The checker's delivery and recovery bounds."""
    seed: int = 1


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Replica:
    """One ``watchcache serve`` subprocess."""

    name: str
    port: int
    etcd_port: int
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    peak_hwm_kib: int = 0
    fd_peak: int = 0
    incarnations: int = 0
    loads: list[tuple[str, float, float]] = field(default_factory=list)
    """(name, started, ready) of each start."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def etcd_target(self) -> str:
        """The replica's etcd front, as a grpc target."""
        return f"127.0.0.1:{self.etcd_port}"

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, session: aiohttp.ClientSession) -> None:
        started = now()
        with open(self.log_path, "ab") as out:  # noqa: ASYNC230
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [
                    sys.executable,
                    "-m",
                    "watchcache",
                    "serve",
                    *self.args,
                    "--port",
                    str(self.port),
                    "--etcd-listen-port",
                    str(self.etcd_port),
                ],
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
                        self.loads.append((self.name, started, now()))
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

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None:
            self.process.send_signal(sig)

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


def key_values(kvs: list[Any]) -> list[tuple[str, int, str, int, int]]:
    """etcd's key-values as the history keeps them: (key, mod_revision, value, create_revision, version)."""
    return [
        (kv.key.decode(), int(kv.mod_revision), kv.value.decode(), int(kv.create_revision), int(kv.version))
        for kv in kvs
    ]


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


def item_of(resource: str, obj: dict[str, Any], version: str) -> tuple[str, int, str | None, str]:
    """(key, resourceVersion, token, fingerprint of the whole object) of an object read through
    ``version``; a malformed object raises KeyError, TypeError or ValueError."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    return (
        short_key(resource, meta.get("namespace"), meta["name"]),
        int(meta["resourceVersion"]),
        spec.get("token"),
        digest(obj, f"{GROUP}/{version}"),
    )


class Failed(Exception):
    """A request that did not succeed (a Status, a timeout or a connection error)."""

    def __init__(self, code: int, reason: str = "", rv: int | None = None) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason
        self.rv = rv
        """The resourceVersion the request was made from (a list's snapshot), if any."""


def status_of(status: int, body: Any) -> tuple[int, str]:
    """(code, reason) of an answer: a Status' own, else the HTTP status."""
    if isinstance(body, dict):
        return int(body.get("code") or status), str(body.get("reason") or "")
    return status, ""


# -- the etcd front's clients ------------------------------------------------------------------------


def etcd_range(resource: str, namespace: str | None) -> tuple[bytes, bytes]:
    """The key range of a resource's (or one namespace's) objects: what the etcd clients watch."""
    prefix = f"{OBJECTS}{resource}/" + (f"{namespace}/" if namespace is not None else "")
    return prefix.encode(), prefix_end(prefix.encode())


def failed_of(err: RpcFailed, rv: int | None = None) -> Failed:
    """An etcd front's error in the checker's codes (see ``RequestRecord.protocol``): no answer (a
    connection that failed) 0, etcd's UNAVAILABLE 503, DEADLINE_EXCEEDED 504, RESOURCE_EXHAUSTED 429,
    a compacted revision 410; anything else 500."""
    code = err.code
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in err.message:
        number = 410
    elif code == grpc.StatusCode.UNAVAILABLE:
        number = 503 if err.message.startswith("etcdserver:") else 0
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        number = 504
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        number = 429
    else:
        number = 500
    return Failed(number, f"{code.name}: {err.message}"[:300], rv)


def rpc_failed(err: grpc.aio.AioRpcError) -> RpcFailed:
    return RpcFailed(err.code(), err.details() or "")


def kv_fingerprint(kv: Any) -> str:
    return kv_digest(
        kv.value, create_revision=kv.create_revision, mod_revision=kv.mod_revision, version=kv.version
    )


def token_of(value: bytes) -> str | None:
    """The ``spec.token`` of an object's value; a value that is not an object raises ValueError."""
    obj = orjson.loads(value)
    if not isinstance(obj, dict):
        raise ValueError(f"not an object: {value[:100]!r}")
    spec = obj.get("spec")
    return spec.get("token") if isinstance(spec, dict) else None


def front_item(kv: Any) -> tuple[str, int, str | None, str]:
    """(key, mod_revision, token, fingerprint of the KeyValue) of a Range's key-value."""
    return kv.key.decode()[len(OBJECTS) :], int(kv.mod_revision), token_of(kv.value), kv_fingerprint(kv)


def front_event(event: Any) -> Event:
    """An etcd watch event as the checker judges it: a PUT of a new key (create_revision ==
    mod_revision) is ADDED, of an existing one MODIFIED (with its prev_kv's fingerprint), a DELETE is
    DELETED carrying its prev_kv (the previous value's token and fingerprint)."""
    kv = event.kv
    key = kv.key.decode()[len(OBJECTS) :]
    prev = event.prev_kv if event.HasField("prev_kv") else None
    if event.type == kv_pb2.Event.DELETE:
        if prev is None:
            return Event(int(kv.mod_revision), "DELETED", key, None, MISSING_PREV_KV)
        return Event(int(kv.mod_revision), "DELETED", key, token_of(prev.value), kv_fingerprint(prev))
    kind = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
    if prev is not None:
        prev_fp: str | None = kv_fingerprint(prev)
    else:
        prev_fp = MISSING_PREV_KV if kind == "MODIFIED" else None
    return Event(int(kv.mod_revision), kind, key, token_of(kv.value), kv_fingerprint(kv), prev_fp)


class FrontClient:
    """One client of the replicas' etcd front, as one aggregated API server is: a channel to each
    replica, authenticated with etcd's own flow as the soak's tenant (``Auth.Authenticate``, then the
    ``token`` metadata), and authenticated again when a token is refused — the replica restarted, or
    the token went unused past its TTL — as clientv3 does."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str, EtcdV3] = {}
        self.reauthentications = 0

    async def client(self, replica: Replica) -> EtcdV3:
        """The channel to ``replica``, authenticated (RpcFailed when that fails)."""
        client = self._clients.get(replica.name)
        if client is None:
            client = await self._stack.enter_async_context(
                EtcdV3(replica.etcd_target, options=CHANNEL_OPTIONS)
            )
            self._clients[replica.name] = client
        if client.token is None:
            client.token = await client.authenticate(TENANT, TOKEN)
        return client

    def refused(self, replica: Replica, err: RpcFailed) -> bool:
        """Whether ``err`` refused this client's token on ``replica`` (forgotten: the next call
        authenticates again)."""
        client = self._clients.get(replica.name)
        if (
            client is None
            or err.code != grpc.StatusCode.UNAUTHENTICATED
            or "invalid auth token" not in err.message
        ):
            return False
        client.token = None
        self.reauthentications += 1
        return True

    async def call(self, replica: Replica, service: str, method: str, request: Any) -> Any:
        for attempt in range(2):
            client = await self.client(replica)
            try:
                return await client.call(service, method, request)
            except RpcFailed as err:
                if attempt or not self.refused(replica, err):
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._stack.aclose()


# -- the soak --------------------------------------------------------------------------------------


@dataclass
class Stats:
    faults: Counter[str] = field(default_factory=Counter)
    write_failures: int = 0
    list_failures: Counter[int] = field(default_factory=Counter)
    relists: int = 0
    rewatches: int = 0
    failovers: int = 0
    catch_up_s: float | None = None
    reauthentications: int = 0
    """Times an etcd client's token was refused (a replica restarted, or it expired) and renewed."""
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
        self.gets: list[GetRecord] = []
        self.requests: list[RequestRecord] = []
        self.compactions: list[tuple[float, int]] = []
        self.forced_relists: list[tuple[str, float, float, int]] = []
        self.client_errors: list[tuple[str, str]] = []
        self.reached: Counter[str] = Counter()
        """The highest resourceVersion each watcher has observed."""
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

    def failed(
        self,
        client: str,
        replica: Replica,
        op: str,
        t_start: float,
        err: Failed,
        *,
        rv: int | None = None,
        protocol: str = "rest",
    ) -> None:
        """Record a request that did not succeed (the checker judges whether a fault explains it)."""
        self.requests.append(
            RequestRecord(
                client,
                replica.name,
                op,
                t_start,
                now(),
                err.code,
                err.reason,
                err.rv if rv is None else rv,
                protocol,
            )
        )

    def record_write(self, write: WriteRecord) -> None:
        self.writes.append(write)
        if write.resource == "flunders":
            self.flunders_written += 1

    def acknowledged(
        self,
        t_start: float,
        rev: int,
        *,
        resource: str,
        ns: str | None,
        name: str,
        op: str,
        token: str,
        via: str,
    ) -> None:
        """Record a write the service (or etcd) acknowledged at ``rev``: a delete carries no token."""
        self.record_write(
            WriteRecord(
                t_start=t_start,
                t_ack=now(),
                rev=rev,
                resource=resource,
                key=short_key(resource, ns, name),
                op=op,
                token=None if op == "delete" else token,
                via=via,
            )
        )

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
            decoded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            decoded = raw.decode("utf-8", "replace")
        return status, decoded, time.monotonic() - started

    async def list_objects(
        self,
        client: str,
        *,
        replica: Replica,
        resource: str,
        namespace: str | None,
        selector: str | None,
        limit: int | None,
        field_selector: str | None = None,
        rv_param: int | None = None,
        match: str | None = None,
    ) -> ListRecord:
        """A LIST (all pages of one when ``limit``), recorded for the checker: consistent when
        ``rv_param`` is None, else from resourceVersion ``rv_param`` (``match`` Exact or NotOlderThan)."""
        query = []
        if selector:
            query.append("labelSelector=" + quote(selector))
        if field_selector:
            query.append("fieldSelector=" + quote(field_selector))
        if rv_param is not None:
            query.append(f"resourceVersion={rv_param}")
        if match:
            query.append(f"resourceVersionMatch={match}")
        if limit:
            query.append(f"limit={limit}")
        version = self.rng.choice(VERSIONS[resource])
        base = path(resource, namespace, version=version)
        t_start = now()
        items: list[tuple[str, int, str | None, str]] = []
        page_rvs: list[int] = []
        token = None
        while True:
            q = [*query, "continue=" + quote(token)] if token else query
            if token:  # a continued list names its snapshot in the token, not in the query
                q = [x for x in q if not x.startswith("resourceVersion")]
            status, body, _ = await self.request(replica, "GET", base + ("?" + "&".join(q) if q else ""))
            if status != 200:
                code, reason = status_of(status, body)
                raise Failed(code, reason, page_rvs[0] if page_rvs else rv_param)
            try:
                page_rvs.append(int(body["metadata"]["resourceVersion"]))
                items.extend(item_of(resource, obj, version) for obj in body["items"])
                token = body["metadata"].get("continue")
            except (KeyError, TypeError, ValueError) as err:
                raise Failed(-1, f"malformed list: {err!r}: {body!r:.200}") from None
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
            items=list(items),
            page_rvs=page_rvs,
            field_selector=field_selector,
            rv_param=rv_param,
            match=match,
            version=version,
        )
        self.lists.append(record)
        return record

    async def get_object(
        self,
        client: str,
        *,
        replica: Replica,
        resource: str,
        namespace: str | None,
        name: str,
        rv_param: int | None,
    ) -> GetRecord:
        """A GET (consistent when ``rv_param`` is None), recorded for the checker; a 404 is an answer."""
        version = self.rng.choice(VERSIONS[resource])
        url = path(resource, namespace, name, version=version)
        if rv_param is not None:
            url += f"?resourceVersion={rv_param}"
        t_start = now()
        status, body, _ = await self.request(replica, "GET", url)
        found = None
        if status == 200:
            try:
                _, rv, token, fingerprint = item_of(resource, body, version)
            except (KeyError, TypeError, ValueError) as err:
                raise Failed(-1, f"malformed object: {err!r}: {body!r:.200}") from None
            found = (rv, token, fingerprint)
        elif status != 404:
            raise Failed(*status_of(status, body))
        record = GetRecord(
            client=client,
            replica=replica.name,
            resource=resource,
            key=short_key(resource, namespace, name),
            t_start=t_start,
            t_end=now(),
            found=found,
            rv_param=rv_param,
            version=version,
        )
        self.gets.append(record)
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
            what, t_start = "get", now()
            try:
                if state[target] == "unknown":
                    status, body, _ = await self.request(replica, "GET", path(resource, ns, name))
                    if status == 200:
                        state[target] = int(body["metadata"]["resourceVersion"])
                    elif status == 404:
                        state[target] = None
                    else:
                        raise Failed(*status_of(status, body))
                current = state[target]
                what, t_start = "write", now()
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
                    self.acknowledged(
                        t_start,
                        rev,
                        resource=resource,
                        ns=ns,
                        name=name,
                        op=op,
                        token=token,
                        via=f"http-writer-{index}@{replica.name}",
                    )
                    state[target] = None if op == "delete" else rev
                else:
                    raise Failed(*status_of(status, body))
            except Failed as err:
                self.failed(f"http-writer-{index}", replica, what, t_start, err)
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
                self.acknowledged(
                    t_start,
                    rev,
                    resource=resource,
                    ns=ns,
                    name=name,
                    op=op,
                    token=token,
                    via=f"direct-writer-{index}",
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
                    except Failed as err:
                        self.failed("big-burst", replica, "write", t_start, err)
                        await asyncio.sleep(0.3)
                        continue
                    if status in (200, 201):
                        self.acknowledged(
                            t_start,
                            int(body["metadata"]["resourceVersion"]),
                            resource="flunders",
                            ns=BULK,
                            name=name,
                            op="delete" if step == "delete" else "put",
                            token=token,
                            via=f"big-burst@{replica.name}",
                        )
                        break
                    self.failed("big-burst", replica, "write", t_start, Failed(*status_of(status, body)))
                    if status in (409, 404):
                        break  # an earlier attempt with an unknown outcome did it
                    await asyncio.sleep(0.3)

    # -- readers --

    async def reader(self, index: int) -> None:
        """Lists of every kind (consistent, paged, resourceVersion=0, NotOlderThan, Exact) and GETs."""
        rng = random.Random(self.p.seed * 3000 + index)
        name = f"reader-{index}"
        seen: list[int] = []  # resourceVersions of this reader's lists, for NotOlderThan and Exact
        while not self.stopping.is_set():
            await asyncio.sleep(0.2 + 0.3 * rng.random())
            resource = rng.choice(("flunders", "flunders", "fischers"))
            namespace = rng.choice((None, *NAMESPACES)) if NAMESPACED[resource] else None
            replica = rng.choice(self.alive())
            roll = rng.random()
            t_start = now()
            try:
                if roll < 0.25:
                    writer = rng.choice(("h", "d"))
                    n = rng.randrange(self.p.http_writers if writer == "h" else self.p.direct_writers)
                    ns = rng.choice(NAMESPACES) if NAMESPACED[resource] else None
                    rv_param = rng.choice((None, None, 0, seen[-1] if seen else None))
                    await self.get_object(
                        name,
                        replica=replica,
                        resource=resource,
                        namespace=ns,
                        name=f"{writer}{n}-{rng.randrange(5)}",
                        rv_param=rv_param,
                    )
                    continue
                rv_param, match = None, None
                if roll < 0.35:
                    rv_param = 0
                elif roll < 0.45 and seen:
                    rv_param, match = seen[-1], rng.choice((None, "NotOlderThan"))
                elif roll < 0.6 and seen:
                    # Exact: a recent revision (from a snapshot or the window), or an older one (from
                    # etcd, or 410 once compacted).
                    rv_param, match = rng.choice((seen[-1], seen[max(0, len(seen) - 30)])), "Exact"
                record = await self.list_objects(
                    name,
                    replica=replica,
                    resource=resource,
                    namespace=namespace,
                    selector=rng.choice((None, None, *SELECTORS)),
                    field_selector=rng.choice(
                        (None,) * 8 + ("metadata.name!=h0-1", "metadata.namespace=ns1")
                    ),
                    limit=rng.choice((None, 5, 17)),
                    rv_param=rv_param,
                    match=match,
                )
                seen.append(record.rv)
            except Failed as err:
                self.failed(name, replica, "get" if roll < 0.25 else "list", t_start, err)
                self.stats.list_failures[err.code] += 1
                await asyncio.sleep(0.3)

    # -- watchers --

    async def open_watch(
        self, replica: Replica, url_path: str, *, rcvbuf: int | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
        """A raw HTTP/1.1 watch request; (reader, writer, status, error body if not 200).

        Deadlines are ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11 the latter
        loses a cancellation that arrives as the awaited read completes (gh-86296), and a watcher
        whose cancellation was lost goes on watching, so the soak waited for it forever."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(5):
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", replica.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        try:
            writer.write(
                f"GET {url_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
                f"Authorization: {AUTH['Authorization']}\r\n\r\n".encode()
            )
            await writer.drain()
            async with asyncio.timeout(15):
                head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status == 200:
                return reader, writer, status, b""
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            async with asyncio.timeout(15):
                body = await reader.readexactly(length) if length else b""
            writer.close()
            return reader, writer, status, body
        except BaseException:
            writer.close()
            raise

    def observe(self, record: WatcherRecord, what: str, rv: int, *, in_order: bool = True) -> None:
        """The watcher saw ``rv``; ``in_order``: it counts for the resourceVersion-order check (an
        initial state's ADDEDs carry their objects' own, unordered, resourceVersions)."""
        if in_order:
            record.observed.append((what, rv))
        self.reached[record.name] = max(self.reached[record.name], rv)

    async def watcher(self, record: WatcherRecord, home: int) -> None:
        """A reflector-like client: start (a list, or a watch that begins with the current state, as
        ``record.mode`` says), watch, re-watch from the last resourceVersion, start over on 410."""
        rng = random.Random(f"{record.name}-{self.p.seed}")
        current = home
        rv: int | None = None  # None: start over
        while True:  # until the soak cancels it, after the writers have stopped and it caught up
            replica = self.replicas[current]
            initial = ""
            if rv is None and record.mode == "list":
                t_start = now()
                try:
                    listed = await self.list_objects(
                        record.name,
                        replica=replica,
                        resource=record.resource,
                        namespace=record.namespace,
                        selector=record.selector,
                        field_selector=record.field_selector,
                        limit=rng.choice((None, None, 50)),
                    )
                except Failed as err:
                    self.failed(record.name, replica, "list", t_start, err)
                    self.stats.list_failures[err.code] += 1
                    if err.code == 0:
                        current = 1 - current
                    await asyncio.sleep(0.3 + 0.3 * rng.random())
                    continue
                rv = listed.rv
                self.observe(record, "list", rv)
            elif rv is None:
                initial = record.mode
            query = ["watch=true"]
            if initial == "rv0":
                query.append("resourceVersion=0")
            elif initial == "send-initial":
                query.append("sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
            elif not initial:
                query.append(f"resourceVersion={rv}")
            if record.bookmarks:
                query.append("allowWatchBookmarks=true")
            if record.selector:
                query.append("labelSelector=" + quote(record.selector))
            if record.field_selector:
                query.append("fieldSelector=" + quote(record.field_selector))
            if not record.slow:
                query.append(f"timeoutSeconds={rng.randint(10, 40)}")
            version = rng.choice(VERSIONS[record.resource])
            url = path(record.resource, record.namespace, version=version) + "?" + "&".join(query)
            start_rev = 0 if initial else rv
            assert start_rev is not None
            t_start = now()
            try:
                reader, writer, status, body = await self.open_watch(
                    replica, url, rcvbuf=4096 if record.slow else None
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                self.failed(
                    record.name, replica, "watch", t_start, Failed(0, type(err).__name__), rv=start_rev
                )
                current = 1 - current
                self.stats.failovers += 1
                await asyncio.sleep(0.2)
                continue
            except ValueError as err:
                self.failed(record.name, replica, "watch", t_start, Failed(-1, f"malformed answer: {err}"))
                await asyncio.sleep(0.2)
                continue
            if status != 200:
                try:
                    answer = orjson.loads(body)
                except orjson.JSONDecodeError:
                    answer = None
                code, reason = status_of(status, answer)
                self.failed(record.name, replica, "watch", t_start, Failed(code, reason), rv=start_rev)
                if code == 410:
                    rv = None
                    self.stats.relists += 1
                await asyncio.sleep(0.3 + 0.3 * rng.random())
                continue
            segment = Segment(
                replica=replica.name,
                start_rev=start_rev,
                initial=initial,
                version=version,
                t_start=t_start,
                t_open=now(),
            )
            record.segments.append(segment)
            self.stats.rewatches += 1
            try:
                resume, relist = await self.read_watch(record, segment, reader, writer, version)
            finally:
                writer.close()
                segment.t_end = now()
            if relist or (initial == "send-initial" and segment.initial_end < 0):
                rv = None  # 410, or the initial state was cut short: start over
                self.stats.relists += relist
            elif resume is not None:
                rv = resume
            if segment.end == "reset":
                current = 1 - current
                self.stats.failovers += 1
            elif segment.end == "closed":
                current = home
            elif segment.end in ("error", "malformed"):
                await asyncio.sleep(0.3 + 0.3 * rng.random())

    async def read_watch(
        self,
        record: WatcherRecord,
        segment: Segment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        version: str,
    ) -> tuple[int | None, bool]:
        """Read one watch stream into ``segment``; returns (where to resume: the highest
        resourceVersion seen, None for none; relist?)."""
        pending = b""
        episode: SlowEpisode | None = None
        episode_seen = 0
        resumed_at = 0.0
        resume: int | None = None if segment.initial else segment.start_rev
        # Until the initial-events-end bookmark (send-initial) or for the whole stream (rv0, unset:
        # nothing marks the end of the initial state), events are not in resourceVersion order.
        unordered = bool(segment.initial)
        line = b""
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
                    self.slow_episodes.append(episode)  # t_end 0 while it lasts (and if the soak ends)
                    # Stop reading for real: the socket's (small) receive buffer fills, then the
                    # server's send buffer, and the server's writes block.
                    writer.transport.pause_reading()
                    # At least slow_pause seconds, and long enough for 3 buffers' worth of changes
                    # to reach the server (faults may quiet the writers meanwhile); but reading
                    # again before the server's write timeout would drop the connection, so that
                    # what ends the stream is the server noticing the overflow.
                    wanted = self.flunder_writes() + 3 * self.p.watcher_buffer
                    limit = episode.t_begin + min(3 * self.p.slow_pause, self.p.watch_write_timeout - 5)
                    while (now() < self.slow_until or self.flunder_writes() < wanted) and now() < limit:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                    writer.transport.resume_reading()
                    episode.t_end = now()
                    resumed_at = time.monotonic()
                if episode is not None and not episode.ended_by_server and time.monotonic() - resumed_at > 30:
                    episode = None  # not cut off: the checker reports it
                size_line = await reader.readuntil(b"\r\n")
                line = size_line
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
                    msg = orjson.loads(line)
                    kind = msg["type"]
                    obj = msg["object"]
                    if kind == "ERROR":
                        code = obj.get("code")
                        segment.end = "expired" if code == 410 else "error"
                        segment.detail = line.decode("utf-8", "replace")
                        if episode is not None:
                            episode.ended_by_server = True  # with an error (a 410 after a reload)
                        return resume, code == 410
                    if kind == "BOOKMARK":
                        meta = obj["metadata"]
                        new_rv = int(meta["resourceVersion"])
                        if (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                            segment.initial_end = len(segment.bookmarks)
                            if segment.initial == "send-initial":
                                unordered = False
                        segment.bookmarks.append(new_rv)
                        segment.bookmark_at.append(len(segment.events))
                        segment.bookmark_times.append(t)
                        self.observe(record, "bookmark", new_rv)
                    elif kind in ("ADDED", "MODIFIED", "DELETED"):
                        key, new_rv, token, fingerprint = item_of(record.resource, obj, version)
                        segment.events.append(Event(new_rv, kind, key, token, fingerprint))
                        segment.recv_times.append(t)
                        self.observe(record, "event", new_rv, in_order=not unordered)
                        if episode is not None:
                            episode.events_after_resume += 1
                    else:
                        raise ValueError(f"unknown event type {kind!r}")
                    resume = new_rv if resume is None else max(resume, new_rv)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            segment.end = "reset"
        except asyncio.CancelledError:
            segment.end = "stopped"
            raise
        except (ValueError, KeyError, TypeError, asyncio.LimitOverrunError) as err:
            # Not a network failure: what the server sent is not a watch stream.
            segment.end = "malformed"
            segment.detail = f"{err!r}: {line[:300]!r}"
        if episode is not None:
            episode.ended_by_server = True
        return resume, False

    # -- the etcd front's clients --

    async def etcd_list(
        self,
        client: str,
        front: FrontClient,
        *,
        replica: Replica,
        resource: str,
        namespace: str | None,
        revision: int = 0,
        serializable: bool = False,
        limit: int = 0,
    ) -> ListRecord:
        """A Range of the resource's (or namespace's) keys through ``replica``'s etcd front, in pages
        of ``limit`` at the first page's revision as k8s.io/apiserver's GetList reads them: consistent
        (``revision`` 0), serializable, or at ``revision``. Recorded for the checker as a list; a
        failure raises Failed."""
        key, end = etcd_range(resource, namespace)
        t_start = now()
        items: list[tuple[str, int, str | None, str]] = []
        at, count, pages = revision, None, 0
        while True:
            request = rpc_pb2.RangeRequest(
                key=key, range_end=end, limit=limit, revision=at, serializable=serializable and not at
            )
            try:
                answer = await front.call(replica, "KV", "Range", request)
            except RpcFailed as err:
                raise failed_of(err, at or None) from None
            pages += 1
            at = at or int(answer.header.revision)
            count = int(answer.count) if count is None else count
            try:
                items.extend(front_item(kv) for kv in answer.kvs)
            except (ValueError, TypeError) as err:
                raise Failed(-1, f"malformed Range: {err!r}") from None
            if not answer.more or not answer.kvs:
                break
            key = answer.kvs[-1].key + b"\0"
        record = ListRecord(
            client=client,
            replica=replica.name,
            resource=resource,
            namespace=namespace,
            selector=None,
            t_start=t_start,
            t_end=now(),
            rv=at,
            items=list(items),
            page_rvs=[at] * pages,
            rv_param=revision if revision or serializable else None,
            match="Exact" if revision else None,
            version="etcd",
            raw=True,
            count=count,
        )
        self.lists.append(record)
        return record

    async def etcd_watcher(self, record: WatcherRecord, home: int) -> None:
        """An etcd client watching through the front as k8s.io/apiserver's cacher does: a Range of its
        prefix (the reflector's list), then Watch(prefix, start_revision = that revision + 1,
        prev_kv, progress_notify), asking for progress now and then (as its consistent reads do).
        After a broken stream it watches again from its last revision + 1, on the other replica (as
        clientv3 fails over); after a compacted cancel it lists again (the reflector's relist on the
        410 the cacher makes of it)."""
        rng = random.Random(f"{record.name}-{self.p.seed}")
        front = FrontClient()
        current = home
        rv: int | None = None  # None: list again
        try:
            while True:  # until the soak cancels it, after the writers have stopped and it caught up
                replica = self.replicas[current]
                if rv is None:
                    t_start = now()
                    try:
                        listed = await self.etcd_list(
                            record.name,
                            front,
                            replica=replica,
                            resource=record.resource,
                            namespace=record.namespace,
                            limit=rng.choice((0, 0, 50)),
                        )
                    except Failed as err:
                        self.failed(record.name, replica, "list", t_start, err, protocol="etcd")
                        self.stats.list_failures[err.code] += 1
                        if err.code == 0:
                            current = 1 - current
                        await asyncio.sleep(0.3 + 0.3 * rng.random())
                        continue
                    rv = listed.rv
                    self.observe(record, "list", rv)
                end, resume = await self.etcd_watch(record, front, replica, rv, rng)
                if end == "retry":
                    continue  # its token was refused: authenticated again
                if end == "expired":
                    rv = None
                    self.stats.relists += 1
                    continue
                rv = resume
                if end in ("reset", "unanswered"):
                    current = 1 - current
                    self.stats.failovers += 1
                    await asyncio.sleep(0.2)
                elif end != "closed":
                    await asyncio.sleep(0.3 + 0.3 * rng.random())
        finally:
            await front.close()
            self.stats.reauthentications += front.reauthentications

    async def etcd_watch(
        self, record: WatcherRecord, front: FrontClient, replica: Replica, rv: int, rng: random.Random
    ) -> tuple[str, int]:
        """One Watch of ``record``'s prefix from ``rv`` + 1 on ``replica``; (how it ended: a segment's
        end, ``unanswered`` (no watch was created), ``failed`` or ``retry``; the revision to resume
        after)."""
        key, end = etcd_range(record.resource, record.namespace)
        t_start = now()
        try:
            client = await front.client(replica)
        except RpcFailed as err:
            return self.etcd_watch_refused(record, front, replica, err, t_start=t_start, rv=rv)
        async with client.watch_stream() as stream:
            try:
                await stream.create(key, end, start_revision=rv + 1, prev_kv=True, progress_notify=True)
                async with asyncio.timeout(15):
                    created = await stream.call.read()
                if created is grpc.aio.EOF:
                    raise RpcFailed(await stream.call.code(), await stream.call.details() or "")
            except grpc.aio.AioRpcError as err:
                return self.etcd_watch_refused(
                    record, front, replica, rpc_failed(err), t_start=t_start, rv=rv
                )
            except TimeoutError:
                no_answer = RpcFailed(
                    grpc.StatusCode.UNAVAILABLE, "no answer to the watch's creation in 15 s"
                )
                return self.etcd_watch_refused(record, front, replica, no_answer, t_start=t_start, rv=rv)
            except RpcFailed as err:
                return self.etcd_watch_refused(record, front, replica, err, t_start=t_start, rv=rv)
            if created.canceled:  # created and cancelled at once: compacted (a 410), or refused
                code = 410 if created.compact_revision > rv + 1 else 500
                reason = f"cancelled: compact_revision {created.compact_revision} {created.cancel_reason}"
                failed = Failed(code, reason, rv)
                self.failed(record.name, replica, "watch", t_start, failed, protocol="etcd")
                return ("expired" if code == 410 else "failed"), rv
            segment = Segment(
                replica=replica.name, start_rev=rv, version="etcd", t_start=t_start, t_open=now()
            )
            record.segments.append(segment)
            self.stats.rewatches += 1
            progress = asyncio.create_task(
                self.etcd_request_progress(stream, rng), name=f"{record.name}-progress"
            )
            try:
                return await self.read_etcd_watch(record, segment, stream.call, created.watch_id, rv)
            finally:
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
                segment.t_end = now()

    def etcd_watch_refused(
        self,
        record: WatcherRecord,
        front: FrontClient,
        replica: Replica,
        err: RpcFailed,
        *,
        t_start: float,
        rv: int,
    ) -> tuple[str, int]:
        """A Watch that failed before it was created: a refused token is authenticated again (``retry``);
        anything else is recorded."""
        if front.refused(replica, err):
            return "retry", rv
        failed = failed_of(err, rv)
        self.failed(record.name, replica, "watch", t_start, failed, protocol="etcd")
        return ("unanswered" if failed.code == 0 else "failed"), rv

    async def etcd_request_progress(self, stream: Any, rng: random.Random) -> None:
        """A RequestProgress every few seconds (k8s.io/apiserver sends one for a consistent read from
        its cache): its answer (``watch_id -1``) is a bookmark of every watch of the stream."""
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            while True:
                await asyncio.sleep(2 + 4 * rng.random())
                await stream.request_progress()

    async def read_etcd_watch(
        self, record: WatcherRecord, segment: Segment, call: Any, watch_id: int, rv: int
    ) -> tuple[str, int]:
        """Read one etcd watch stream into ``segment``; (its end, the revision to resume after)."""
        resume = rv
        try:
            while True:
                answer = await call.read()
                if answer is grpc.aio.EOF:
                    code = await call.code()
                    segment.end = "reset" if code == grpc.StatusCode.UNAVAILABLE else "error"
                    segment.detail = f"{code.name}: {await call.details()}"
                    return segment.end, resume
                t = now()
                if answer.watch_id == -1 and not answer.events:
                    # A RequestProgress answer: every event up to its revision has been sent.
                    self.etcd_bookmark(record, segment, int(answer.header.revision), t)
                elif answer.watch_id != watch_id or answer.created:
                    raise ValueError(f"an answer of another watch, or a second created: {answer}")
                elif answer.canceled:
                    segment.detail = f"compact_revision {answer.compact_revision}: {answer.cancel_reason}"
                    if not answer.compact_revision:
                        segment.end = "error"
                    elif answer.compact_revision <= resume + 1:
                        segment.end = "error"
                        segment.detail = (
                            f"cancelled as compacted at {answer.compact_revision}, but the watch is at "
                            f"{resume + 1}: {answer.cancel_reason}"
                        )
                    else:
                        segment.end = "expired"
                    return segment.end, resume
                elif answer.events:
                    for event in answer.events:
                        got = front_event(event)
                        segment.events.append(got)
                        segment.recv_times.append(t)
                        self.observe(record, "event", got.rev)
                        resume = max(resume, got.rev)
                else:  # a progress notification
                    self.etcd_bookmark(record, segment, int(answer.header.revision), t)
        except grpc.aio.AioRpcError as err:
            segment.end = "reset" if err.code() == grpc.StatusCode.UNAVAILABLE else "error"
            segment.detail = f"{err.code().name}: {err.details()}"
        except asyncio.CancelledError:
            segment.end = "stopped"
            raise
        except (ValueError, KeyError, TypeError) as err:
            segment.end = "malformed"
            segment.detail = repr(err)[:300]
        return segment.end, resume

    def etcd_bookmark(self, record: WatcherRecord, segment: Segment, revision: int, t: float) -> None:
        segment.bookmarks.append(revision)
        segment.bookmark_at.append(len(segment.events))
        segment.bookmark_times.append(t)
        self.observe(record, "bookmark", revision)

    async def etcd_writer(self, index: int) -> None:
        """Writes through the etcd front as k8s.io/apiserver's etcd3 store makes them: create as
        ``Txn(If ModRevision(k)==0 Then Put)``, GuaranteedUpdate and delete as
        ``Txn(If ModRevision(k)==rev Then Put|DeleteRange(prev_kv) Else Get)``, taking the current
        revision from the Get when the compare failed (and from a Range after an unknown outcome)."""
        rng = random.Random(self.p.seed * 4000 + index)
        name = f"etcd-writer-{index}"
        targets = [("flunders", ns, f"e{index}-{n}") for ns in NAMESPACES for n in range(4)] + [
            ("fischers", None, f"e{index}-{n}") for n in range(5)
        ]
        state: dict[tuple[str, str | None, str], int | None] = {}  # absent: unknown
        front = FrontClient()
        replica = self.replicas[index % len(self.replicas)]
        seq = 0
        try:
            while not self.stopping.is_set():
                await asyncio.sleep(self.p.write_interval * (0.5 + rng.random()))
                target = rng.choice(targets)
                resource, ns, obj_name = target
                key = etcd_key(resource, ns, obj_name)
                seq += 1
                token = f"e{index}-{seq}"
                t_start = now()
                try:
                    if target not in state:
                        found = await front.call(replica, "KV", "Range", rpc_pb2.RangeRequest(key=key))
                        state[target] = int(found.kvs[0].mod_revision) if found.kvs else None
                    current = state[target]
                    t_start = now()
                    obj = make_object(
                        resource, ns, obj_name, labels=random_labels(rng), token=token, padding=self.p.padding
                    )
                    obj["metadata"]["uid"] = str(uuid.uuid4())
                    put = rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=key, value=json.dumps(obj).encode())
                    )
                    get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
                    modified = rpc_pb2.Compare(
                        result=rpc_pb2.Compare.EQUAL,
                        target=rpc_pb2.Compare.MOD,
                        key=key,
                        mod_revision=current or 0,
                    )
                    if current is None:
                        op, txn = "put", rpc_pb2.TxnRequest(compare=[modified], success=[put])
                    elif rng.random() < 0.15:
                        delete = rpc_pb2.RequestOp(
                            request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, prev_kv=True)
                        )
                        op, txn = (
                            "delete",
                            rpc_pb2.TxnRequest(compare=[modified], success=[delete], failure=[get]),
                        )
                    else:
                        op, txn = "put", rpc_pb2.TxnRequest(compare=[modified], success=[put], failure=[get])
                    answer = await front.call(replica, "KV", "Txn", txn)
                except RpcFailed as err:
                    failed = failed_of(err)
                    self.failed(name, replica, "write", t_start, failed, protocol="etcd")
                    self.stats.write_failures += 1
                    state.pop(target, None)  # the outcome is unknown: read it again
                    if failed.code == 0:
                        replica = self.replicas[1 - self.replicas.index(replica)]
                    await asyncio.sleep(0.3)
                    continue
                if answer.succeeded:
                    rev = int(answer.header.revision)
                    self.acknowledged(
                        t_start,
                        rev,
                        resource=resource,
                        ns=ns,
                        name=obj_name,
                        op=op,
                        token=token,
                        via=f"{name}@{replica.name}",
                    )
                    state[target] = None if op == "delete" else rev
                elif answer.responses:  # the compare failed: the Get says what is there now
                    kvs = answer.responses[0].response_range.kvs
                    state[target] = int(kvs[0].mod_revision) if kvs else None
                else:  # a create that found the key (an earlier unknown outcome made it)
                    state.pop(target, None)
        finally:
            await front.close()
            self.stats.reauthentications += front.reauthentications

    async def etcd_reader(self, index: int) -> None:
        """Ranges through the etcd front: consistent (some paged), serializable, and at a revision it
        saw (a recent one, or an older one: from the window, from etcd, or compacted)."""
        rng = random.Random(self.p.seed * 5000 + index)
        name = f"etcd-reader-{index}"
        front = FrontClient()
        seen: list[int] = []
        try:
            while not self.stopping.is_set():
                await asyncio.sleep(0.2 + 0.3 * rng.random())
                resource = rng.choice(("flunders", "flunders", "fischers"))
                namespace = rng.choice((None, *NAMESPACES)) if NAMESPACED[resource] else None
                replica = rng.choice(self.alive())
                roll = rng.random()
                revision = 0
                if roll > 0.7 and seen:
                    revision = rng.choice((seen[-1], seen[max(0, len(seen) - 30)]))
                t_start = now()
                try:
                    record = await self.etcd_list(
                        name,
                        front,
                        replica=replica,
                        resource=resource,
                        namespace=namespace,
                        revision=revision,
                        serializable=0.5 < roll <= 0.7,
                        limit=rng.choice((0, 5, 17)),
                    )
                except Failed as err:
                    self.failed(name, replica, "list", t_start, err, protocol="etcd")
                    self.stats.list_failures[err.code] += 1
                    await asyncio.sleep(0.3)
                    continue
                seen.append(record.rv)
        finally:
            await front.close()
            self.stats.reauthentications += front.reauthentications

    # -- faults --

    def fault(self, kind: str, started: float, replica: Replica | None = None) -> None:
        """A fault is over: its window excuses delays and errors (of one replica's clients only,
        when it is a fault of one replica)."""
        self.stats.faults[kind] += 1
        self.fault_windows.append((started, now(), kind if replica is None else f"{kind}@{replica.name}"))
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
        self.compactions.append((now(), revision))
        log.info("compacted etcd at %d", revision)
        self.fault("compact", started)

    async def compact_past_stopped_replica(self) -> None:
        """Compact etcd past a replica's caches while it cannot hear of it: stop the replica
        (SIGSTOP), let etcd drop its connections (keepalive), write, compact, continue it (SIGCONT).
        Its caches must reload from a fresh list, and every watch open on it must end with a 410."""
        started = now()
        replica = self.replicas[1]
        relists = await self.relists_of(replica)
        replica.signal(signal.SIGSTOP)
        stopped = now()
        try:
            await asyncio.sleep(self.p.relist_pause)
            # Two revisions past anything it has seen: it must resume from a compacted one.
            for _ in range(2):
                for _attempt in range(50):
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        filler = await self.etcd.put(FILLER_KEY, b"")
                        break
                    await asyncio.sleep(0.1)
            await self.recorder.wait_for(filler)
            revision = self.recorder.last_rev
            await self.etcd.compact(revision)
            self.compactions.append((now(), revision))
            log.info("compacted etcd at %d past %s", revision, replica.name)
        finally:
            replica.signal(signal.SIGCONT)
        resumed = now()
        self.forced_relists.append((replica.name, stopped, resumed, revision))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if await self.relists_of(replica) > relists:
                break
            await asyncio.sleep(0.2)
        else:
            self.violation(
                "coverage",
                replica.name,
                "did not reload its caches within 30 s after etcd was compacted past them",
            )
        self.fault("compact-past-stopped-replica", started, replica)

    async def relists_of(self, replica: Replica) -> float:
        """The replica's count of cache reloads (``watchcache_relists_total``), -1 if unknown."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.get(
                replica.url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                total = 0.0
                for line in (await resp.text()).splitlines():
                    if line.startswith("watchcache_relists_total"):
                        total += float(line.rsplit(" ", 1)[1])
                return total
        return -1.0

    async def restart_replica(self) -> None:
        started = now()
        replica = self.replicas[1]
        await replica.stop()
        await asyncio.sleep(2)
        await replica.start(self.session)
        self.fault("restart-watchcache-replica", started, replica)

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
            sock.sendall(
                f"GET {url}{query} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {AUTH['Authorization']}\r\n\r\n".encode()
            )
            ports[kind].add(sock.getsockname()[1])
            return sock

        # Never read again (a client that stopped reading, or a peer that vanished without a FIN).
        stuck = [connect("stop-reading") for _ in range(stop_n)]
        # The same, with a watch timeout that expires while the server is blocked writing to it.
        stuck += [connect("stop-reading+timeoutSeconds", "&timeoutSeconds=5") for _ in range(stop_n)]
        resets = [connect("reset", rcvbuf=None) for _ in range(reset_n)]
        child = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", _VANISHING_CLIENT, str(replica.port), url, str(kill_n), TOKEN],
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
            self.compact_past_stopped_replica,
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
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=AUTH)
        for old in self.workdir.glob("replica-*.log"):
            old.unlink()
        self.cluster = EtcdCluster(
            3,
            extra_args=[
                "--heartbeat-interval=50",
                "--election-timeout=500",
                # etcd pings its clients every second and drops a connection whose client has not
                # answered for 2 s: so a stopped replica loses its etcd watches (and misses the
                # compaction in compact_past_stopped_replica).
                "--grpc-keepalive-interval=1s",
                "--grpc-keepalive-timeout=2s",
            ],
        )
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
                "--watch-bookmark-interval",
                str(p.bookmark_interval),
                "--etcd-progress-notify-interval",
                str(p.progress_interval),
                "--log-level",
                "warning",
            ]
            self.replicas = [
                Replica(f"replica-{c}", free_port(), free_port(), args, self.workdir / f"replica-{c}.log")
                for c in "ab"
            ]
            for replica in self.replicas:
                await replica.start(self.session)
            idle_before = sorted(self.replicas[0].fds() for _ in range(3))[1]
            start_rev, initial = await self.etcd.range_prefix(PREFIX.encode() + b"/")
            self.recorder = Recorder(self.etcd, PREFIX.encode() + b"/", start_rev, clock=now)
            tasks.append(asyncio.create_task(self.recorder.run(), name="recorder"))
            tasks.append(asyncio.create_task(self.monitor(), name="monitor"))
            workers: list[asyncio.Task[Any]] = []
            workers += [
                asyncio.create_task(self.http_writer(i), name=f"http-writer-{i}")
                for i in range(p.http_writers)
            ]
            workers += [
                asyncio.create_task(self.direct_writer(i), name=f"direct-writer-{i}")
                for i in range(p.direct_writers)
            ]
            workers += [asyncio.create_task(self.reader(i), name=f"reader-{i}") for i in range(p.readers)]
            workers += [
                asyncio.create_task(self.etcd_writer(i), name=f"etcd-writer-{i}")
                for i in range(p.etcd_writers)
            ]
            workers += [
                asyncio.create_task(self.etcd_reader(i), name=f"etcd-reader-{i}")
                for i in range(p.etcd_readers)
            ]
            watch_tasks = [
                asyncio.create_task(
                    (self.etcd_watcher if w.protocol == "etcd" else self.watcher)(w, i % 2), name=w.name
                )
                for i, w in enumerate(self.make_watchers())
            ]
            log.info("running %d watchers; faults for %.0f s", len(watch_tasks), p.duration)
            await asyncio.sleep(3)
            schedule = asyncio.create_task(self.schedule())
            await asyncio.sleep(p.duration)
            await schedule
            if self.half_open_task is not None:
                await self.half_open_task
            self.stopping.set()
            self.reap(workers, await asyncio.gather(*workers, return_exceptions=True))
            await self.catch_up(start_rev, initial)
            t_stop = now()
            await self.cancel_watchers(watch_tasks)
            await self.session.close()  # the readers' and writers' pooled connections too
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=AUTH)
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
            initial=key_values(initial),
            start_rev=start_rev,
            final_state=key_values(final),
            final_rev=final_rev,
            prefix=f"{PREFIX}/{GROUP}",
            writes=self.writes,
            watchers=self.watchers,
            lists=self.lists,
            slow_episodes=self.slow_episodes,
            fault_windows=self.fault_windows,
            truth_times=self.recorder.times,
            recorder_blind=self.recorder.blind,
            gets=self.gets,
            requests=self.requests,
            loads=[load for replica in self.replicas for load in replica.loads],
            compactions=self.compactions,
            forced_relists=self.forced_relists,
            client_errors=self.client_errors,
            t_stop=t_stop,
            settings={
                "window": p.window,
                "bookmark_interval": p.bookmark_interval,
                "watcher_buffer": p.watcher_buffer,
            },
        )
        (self.workdir / "history.json").write_text(history.to_json())
        report = check(history, namespaced=NAMESPACED, bounds=p.bounds)
        self.coverage(report)
        if self.recorder.gap:
            report.add("truth", "recorder", self.recorder.gap)
        for kind, who, detail in self.stats.extra_violations:
            report.add(kind, who, detail)
        return self.summary(history, report, elapsed, metrics)

    def reap(self, tasks: list[asyncio.Task[Any]], results: list[Any]) -> None:
        """A client task that died is a finding, not noise."""
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                detail = f"task {task.get_name()} died: {result!r}"
                log.error("%s", detail)
                self.client_errors.append((task.get_name(), detail))

    async def cancel_watchers(self, tasks: list[asyncio.Task[Any]], within: float = 30.0) -> None:
        """Cancel the watchers and wait for them; one that is still running ``within`` seconds later
        is a finding (a ``client`` violation), never a soak that waits forever."""
        for task in tasks:
            task.cancel()
        _, running = await asyncio.wait(tasks, timeout=within)
        for task in running:
            detail = f"task {task.get_name()} still running {within:g} s after it was cancelled"
            log.error("%s", detail)
            self.client_errors.append((task.get_name(), detail))
        stopped = [task for task in tasks if task.done()]
        self.reap(stopped, [task.exception() if not task.cancelled() else None for task in stopped])

    async def catch_up(self, start_rev: int, initial: list[Any]) -> None:
        """The writers have stopped: give every watcher (but the deliberately slow ones) up to
        ``catch_up`` seconds to reach etcd's last revision for its filter. The checker judges
        whether each did, and how late each change arrived."""
        started = time.monotonic()
        revision = await self.etcd.revision()
        await self.recorder.wait_for(revision)
        truth = Truth(
            History(
                truth=list(self.recorder.events),
                initial=key_values(initial),
                start_rev=start_rev,
                final_state=None,
                final_rev=revision,
                prefix=f"{PREFIX}/{GROUP}",
            ),
            NAMESPACED,
        )
        targets = {}
        for watcher in self.watchers:
            _, expected = truth.expected(watcher.filter)
            if expected and not watcher.slow:
                targets[watcher.name] = expected[-1].rev
        while time.monotonic() - started < self.p.catch_up:
            if all(self.reached[name] >= rev for name, rev in targets.items()):
                break
            await asyncio.sleep(0.2)
        self.stats.catch_up_s = round(time.monotonic() - started, 1)
        behind = [name for name, rev in targets.items() if self.reached[name] < rev]
        if behind:
            log.warning(
                "%d watchers did not catch up within %g s: %s", len(behind), self.p.catch_up, behind[:5]
            )

    def coverage(self, report: Report) -> None:
        """Every path the README claims was exercised (else a bug there could not have been seen)."""
        gaps = []
        if not report.bookmarks_checked:
            gaps.append("no bookmark was received")
        for mode in ("rv0", "unset", "send-initial"):
            if not report.initial_segments[mode]:
                gaps.append(f"no {mode} watch ran")
        if not any(w.field_selector and w.segments for w in self.watchers):
            gaps.append("no watch with a fieldSelector ran")
        for kind in ("consistent", "rv0", "NotOlderThan", "Exact"):
            if not report.list_kinds[kind]:
                gaps.append(f"no {kind} list succeeded")
        if not report.gets_checked:
            gaps.append("no GET succeeded")
        if not any(e.ended_by_server for e in self.slow_episodes):
            gaps.append("no slow watcher was cut off")
        if not self.forced_relists or not report.forced_relist_expired:
            gaps.append("no watch was ended by a 410 after a replica reloaded its caches")
        front = [s for w in self.watchers if w.protocol == "etcd" for s in w.segments]
        if not any(s.events for s in front):
            gaps.append("no etcd-front watch received an event")
        if not any(s.bookmarks for s in front):
            gaps.append("no etcd-front watch received a progress notification")
        if not any(
            s.end == "expired" and s.replica == replica and s.t_open < stopped
            for s in front
            for replica, stopped, _, _ in self.forced_relists
        ):
            gaps.append("no etcd-front watch was cancelled as compacted when a replica reloaded its caches")
        if not any(w.via.startswith("etcd-writer") for w in self.writes):
            gaps.append("no write through the etcd front was acknowledged")
        ranges = [r for r in self.lists if r.raw]
        for kind, present in (
            ("consistent", any(r.rv_param is None for r in ranges)),
            ("serializable", any(r.rv_param == 0 for r in ranges)),
            ("past-revision", any(r.match == "Exact" for r in ranges)),
        ):
            if not present:
                gaps.append(f"no {kind} Range through the etcd front succeeded")
        for gap in gaps:
            report.add("coverage", "soak", gap)

    def make_watchers(self) -> list[WatcherRecord]:
        """Filters drawn at random; how each starts and what it asks for, in fixed proportions, so
        that a short soak has every kind: of every 10, one begins with resourceVersion=0, one without
        resourceVersion, two with sendInitialEvents, the rest with a list; one of every 10 does not
        ask for bookmarks; one of every 12 uses a fieldSelector."""
        rng = self.rng
        out = []
        for i in range(self.p.watchers):
            slow = i < self.p.slow_watchers
            fields = None
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
                if i % 12 == 5:
                    fields = rng.choice(
                        ("metadata.name=h0-1", "metadata.name!=d0-2", "metadata.namespace=ns2")
                        if resource == "flunders"
                        else ("metadata.name=d1-1", "metadata.name!=h0-3")
                    )
            mode = (
                "list"
                if slow
                else {0: "rv0", 1: "unset", 2: "send-initial", 3: "send-initial"}.get(i % 10, "list")
            )
            record = WatcherRecord(
                f"watcher-{i}{'-slow' if slow else ''}",
                resource,
                ns,
                sel,
                slow,
                field_selector=fields,
                mode=mode,
                bookmarks=slow or mode == "send-initial" or i % 10 != 7,
            )
            out.append(record)
        # The etcd front's watchers: of one resource's keys (two in three) or of one namespace's.
        for j in range(self.p.etcd_watchers):
            resource = ("fischers", "flunders", "flunders")[j % 3]
            namespace = NAMESPACES[j % len(NAMESPACES)] if j % 3 == 2 else None
            out.append(WatcherRecord(f"etcd-watcher-{j}", resource, namespace, None, False, protocol="etcd"))
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
                "bookmark_interval_s": self.p.bookmark_interval,
                "big_object_bytes": self.p.big_size,
                "delivery_bound_s": self.p.bounds.delivery,
                "recovery_bound_s": self.p.bounds.recovery,
                "seed": self.p.seed,
            },
            "wall_clock_s": round(elapsed, 1),
            "writes_acknowledged": len(history.writes),
            "write_failures": self.stats.write_failures,
            "etcd_events_recorded": len(history.truth),
            "events_delivered": count_delivered(history.watchers),
            "watch_segments": report.segments_checked,
            "segments_ended_410": report.expired_segments,
            "bookmarks_checked": report.bookmarks_checked,
            "initial_state_watches": dict(report.initial_segments),
            "field_selector_watches": sum(len(w.segments) for w in history.watchers if w.field_selector),
            "lists_checked": report.lists_checked,
            "list_kinds": dict(report.list_kinds),
            "gets_checked": report.gets_checked,
            "list_failures": dict(self.stats.list_failures),
            "failed_requests": dict(Counter(f"{r.op} {r.code}" for r in history.requests)),
            "answers_410_justified": report.answers_410,
            "errors_explained_by_faults": report.errors_explained,
            "forced_relist_410s": report.forced_relist_expired,
            "liveness": {
                "changes_owed": report.owed,
                "late": report.late,
                "catch_up_s": self.stats.catch_up_s,
                "delivery_outside_faults": report.delay_summary(),
            },
            "relists_after_410": self.stats.relists,
            "failovers": self.stats.failovers,
            "faults": dict(self.stats.faults),
            "violations": len(report.violations),
            "violations_by_kind": report.by_kind(),
            "violation_examples": [f"{v.kind} {v.who}: {v.detail}" for v in report.violations[:20]],
            "peak_rss_mib": {r.name: round(r.peak_hwm_kib / 1024, 1) for r in self.replicas},
            "no_quorum": self.stats.graceful,
            "fd": self.stats.fd,
            "slow_episodes": sum(1 for e in history.slow_episodes if e.t_end),
            "slow_cut_off": sum(1 for e in history.slow_episodes if e.t_end and e.ended_by_server),
            "slow_not_judged": report.slow_unjudged,
            "latency_p99_s": {
                "during_slow_episodes": report.latency_p99_slow,
                "outside": report.latency_p99_calm,
                "samples": report.latency_samples,
            },
            "recorder_restarts": self.recorder.restarts,
            "etcd_front": self.front_summary(history),
            "metrics": metrics,
        }

    def front_summary(self, history: History) -> dict[str, Any]:
        """What the etcd front's clients did (all of it checked with the rest)."""
        watchers = [w for w in history.watchers if w.protocol == "etcd"]
        segments = [s for w in watchers for s in w.segments]
        ranges = [r for r in history.lists if r.raw]
        return {
            "watchers": len(watchers),
            "watch_segments": len(segments),
            "events_delivered": sum(len(s.events) for s in segments),
            "progress_notifications": sum(len(s.bookmarks) for s in segments),
            "compacted_cancels": sum(1 for s in segments if s.end == "expired")
            + sum(1 for r in history.requests if r.protocol == "etcd" and r.op == "watch" and r.code == 410),
            "writes_acknowledged": sum(1 for w in history.writes if w.via.startswith("etcd-writer")),
            "ranges": dict(
                Counter(
                    "consistent" if r.rv_param is None else "serializable" if r.rv_param == 0 else "revision"
                    for r in ranges
                )
            ),
            "failed_requests": dict(
                Counter(f"{r.op} {r.code}" for r in history.requests if r.protocol == "etcd")
            ),
            "reauthentications": self.stats.reauthentications,
        }


_VANISHING_CLIENT = textwrap.dedent(
    """
    import socket, sys, time
    port, url, n, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {url} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
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
        (
            "watches from the current state / with fieldSelector",
            f"{summary['initial_state_watches']} / {summary['field_selector_watches']}",
        ),
        ("bookmarks checked", summary["bookmarks_checked"]),
        ("lists checked", f"{summary['lists_checked']} {summary['list_kinds']}"),
        ("GETs checked", summary["gets_checked"]),
        (
            "410s (all justified unless reported) / after the forced reload",
            f"{summary['answers_410_justified']} / {summary['forced_relist_410s']}",
        ),
        ("failed requests (op code: count)", summary["failed_requests"]),
        (
            "changes owed to watchers / late",
            f"{summary['liveness']['changes_owed']} / {summary['liveness']['late']} "
            f"(bounds {summary['parameters']['delivery_bound_s']:g} s, "
            f"fault window + {summary['parameters']['recovery_bound_s']:g} s)",
        ),
        (
            "delivery outside faults p50 / p99 / max",
            "{p50_s} / {p99_s} / {max_s} s".format(**summary["liveness"]["delivery_outside_faults"]),
        ),
        ("all watchers caught up after the writers stopped in", f"{summary['liveness']['catch_up_s']} s"),
        (
            "etcd front: watchers / segments / events / progress notifications",
            "{watchers} / {watch_segments} / {events_delivered} / {progress_notifications}".format(
                **summary["etcd_front"]
            ),
        ),
        (
            "etcd front: writes / Ranges / compacted cancels / re-authentications",
            "{writes_acknowledged} / {ranges} / {compacted_cancels} / {reauthentications}".format(
                **summary["etcd_front"]
            ),
        ),
        ("etcd front: failed requests", summary["etcd_front"]["failed_requests"]),
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
        (
            "slow watcher episodes cut off (owed too few changes to overflow)",
            f"{summary['slow_cut_off']}/{summary['slow_episodes']} ({summary['slow_not_judged']})",
        ),
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


PLANTS = (
    "drop",
    "duplicate",
    "reorder",
    "list-item",
    "page-rv",
    "rv-backwards",
    "starve-namespace",
    "refuse-selector",
    "truncate-last",
    "drop-later-streams",
    "no-410-after-relist",
    "bookmark-ahead",
    "spurious-410",
    "error-event",
)


def plant(history: History, kind: str, seed: int = 0) -> str:
    """Plant one bug in a recorded history (as a buggy watchcache would have produced it)."""
    rng = random.Random(seed)
    if kind in ("drop", "duplicate", "reorder"):
        candidates = [
            (w, s)
            for w in history.watchers
            for s in w.segments
            if len(s.events) >= 3 and s.end != "stopped" and not s.initial
        ] or [(w, s) for w in history.watchers for s in w.segments if len(s.events) >= 3 and not s.initial]
        if kind == "reorder":
            # Two events with no bookmark between them: swapped across one, the bookmark would be
            # ahead of (and behind) them too, a second and third violation of the same bug.
            pairs = [
                (w, s, i)
                for w, s in candidates
                for i in range(len(s.events) - 1)
                if i + 1 not in s.bookmark_at
            ]
            watcher, segment, i = rng.choice(pairs)
        else:
            watcher, segment = rng.choice(candidates)
            i = rng.randrange(0, len(segment.events) - 1)
        events = segment.events
        if kind == "drop":
            gone = events.pop(i)
            segment.recv_times.pop(i)
            segment.bookmark_at = [at - (at > i) for at in segment.bookmark_at]
            return f"dropped {gone.brief()} from {watcher.name}"
        if kind == "duplicate":
            events.insert(i + 1, events[i])
            segment.recv_times.insert(i + 1, segment.recv_times[i])
            segment.bookmark_at = [at + (at > i) for at in segment.bookmark_at]
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
    return _plant_liveness(history, kind, rng)


def _plant_liveness(history: History, kind: str, rng: random.Random) -> str:
    """The bugs a client sees as not being served (or served wrongly after a failure)."""
    fast = [w for w in history.watchers if not w.slow and w.segments]
    if kind == "starve-namespace":
        # No live events for namespace-scoped watchers: each stream's events come only as the
        # catch-up of the next watch, i.e. when the stream has ended.
        starved = [w for w in fast if w.namespace is not None]
        for watcher in starved:
            for segment in watcher.segments:
                end = segment.t_end or max(segment.recv_times, default=0.0)
                segment.recv_times = [end] * len(segment.events)
                segment.bookmark_times = [end] * len(segment.bookmarks)
        return (
            f"delivered the events of {len(starved)} namespace-scoped watchers only when their streams ended"
        )
    if kind == "refuse-selector":
        refused = [w for w in fast if w.selector]
        for watcher in refused:
            for segment in watcher.segments:
                history.requests.append(
                    RequestRecord(
                        watcher.name,
                        segment.replica,
                        "watch",
                        segment.t_start,
                        segment.t_open or segment.t_start,
                        500,
                        "InternalError",
                        segment.start_rev,
                    )
                )
            watcher.segments = []
            watcher.observed = [o for o in watcher.observed if o[0] == "list"]
        return f"answered 500 to every watch of {len(refused)} label-selected watchers"
    if kind == "truncate-last":
        cut = 0
        for watcher in fast:
            segment = watcher.segments[-1]
            half = len(segment.events) // 2
            cut += len(segment.events) - half
            del segment.events[half:], segment.recv_times[half:]
            keep = [
                i
                for i, at in enumerate(segment.bookmark_at)
                if at <= half and i != len(segment.bookmarks) - 1
            ]
            segment.bookmarks = [segment.bookmarks[i] for i in keep]
            segment.bookmark_at = [segment.bookmark_at[i] for i in keep]
            segment.bookmark_times = [segment.bookmark_times[i] for i in keep]
        return f"cut off the second half of every watcher's last stream ({cut} events)"
    if kind == "drop-later-streams":
        dropped = 0
        for watcher in fast[::2]:
            first = watcher.segments[0]
            dropped += sum(len(s.events) for s in watcher.segments[1:])
            watcher.segments = [first]
            history.lists = [r for r in history.lists if r.client != watcher.name or r.t_start <= first.t_end]
        return f"dropped every stream after the first for half the watchers ({dropped} events)"
    if kind == "no-410-after-relist":
        truth = Truth(history, NAMESPACED)
        changed = 0
        for replica, stopped, resumed, compacted in history.forced_relists:
            for watcher in history.watchers:
                revs, expected = truth.expected(watcher.filter)
                after = expected[bisect.bisect_left(revs, compacted) :][:3]
                for segment in watcher.segments:
                    if segment.replica == replica and segment.end == "expired" and segment.t_open < stopped:
                        # The stream goes on from the reloaded cache instead of ending with a 410.
                        segment.end = "closed"
                        segment.events += after
                        segment.recv_times += [resumed + 0.5] * len(after)
                        changed += 1
        return f"kept {changed} watches open across a reload of their replica's caches"
    if kind == "bookmark-ahead":
        moved = 0
        for watcher in history.watchers:
            for segment in watcher.segments:
                for i in range(len(segment.bookmarks)):
                    if i != segment.initial_end:
                        segment.bookmarks[i] += 1
                        moved += 1
        return f"moved {moved} bookmarks one revision ahead"
    if kind in ("spurious-410", "error-event"):
        latest = max((c for _, c in history.compactions), default=0)
        candidates = [
            (w, s)
            for w in fast
            for s in w.segments
            if s.end == "closed" and s.events and s.events[-1].rev > latest and not s.bookmarks
        ] or [(w, s) for w in fast for s in w.segments if s.end == "closed" and s.events]
        watcher, segment = max(candidates, key=lambda ws: ws[1].t_end)
        if kind == "spurious-410":
            segment.end = "expired"
            return f"ended a stream of {watcher.name} at {segment.events[-1].rev} with a 410"
        segment.end = "error"
        segment.detail = '{"type":"ERROR","object":{"kind":"Status","code":500}}'
        return f"ended a stream of {watcher.name} with an ERROR event of code 500"
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
            etcd_watchers=9,
            etcd_writers=1,
            no_quorum=8.0,
            pause=4.0,
            slow_pause=16.0,
            window=200,
            watch_write_timeout=30.0,
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

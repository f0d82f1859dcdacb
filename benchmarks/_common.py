"""Shared pieces of the benchmarks: etcd / grpc-proxy / watchcache processes pinned to cores, /proc
readings (CPU, RSS), a fast etcd loader and writer, the C load client, and table printing.

Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aetcd import rpc

HERE = Path(__file__).resolve().parent
GROUP = "wardle.example.com"
RESOURCE = "flunders"
VERSION = "v1alpha1"
NAMESPACE = "bench"
PREFIX = "/registry"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIG_YAML = f"""resources:
  - group: {GROUP}
    versions: [{VERSION}]
    resource: {RESOURCE}
    kind: Flunder
    namespaced: true
"""


def key_prefix(namespace: str = NAMESPACE) -> bytes:
    return f"{PREFIX}/{GROUP}/{RESOURCE}/{namespace}/".encode()


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


# -- cores ------------------------------------------------------------------------------------------


def cores() -> tuple[str, str]:
    """(server core, client core): different cores when there are two or more."""
    n = len(os.sched_getaffinity(0))
    if n >= 2 and shutil.which("taskset"):
        cpus = sorted(os.sched_getaffinity(0))
        return str(cpus[0]), str(cpus[1])
    return "", ""


def pinned(cmd: Sequence[str], core: str) -> list[str]:
    return ["taskset", "-c", core, *cmd] if core else list(cmd)


def pin_self(core: str) -> None:
    if core:
        os.sched_setaffinity(0, {int(core)})


# -- /proc ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem_kib(pid: int, field_name: str = "VmHWM") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def raise_open_files(needed: int) -> tuple[int, str]:
    """Raise this process's RLIMIT_NOFILE (its children, the servers and the client, inherit it): the
    soft limit to the hard one, and the hard one too when that is below ``needed`` and the process
    may (root, CAP_SYS_RESOURCE; at most /proc/sys/fs/nr_open). Returns the soft limit now and what
    was done, or says why it could not be done."""
    import resource  # noqa: PLC0415 - POSIX only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed, f"RLIMIT_NOFILE raised to {needed} (the hard limit was {hard})"
        except (ValueError, OSError) as err:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard, (
                f"RLIMIT_NOFILE: the hard limit {hard} is too low for {needed} descriptors and could not "
                f"be raised ({err}): raising it needs CAP_SYS_RESOURCE, or `ulimit -Hn` before starting"
            )
    if soft == hard:
        return hard, f"RLIMIT_NOFILE {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard, f"RLIMIT_NOFILE soft limit raised to the hard one, {hard}"


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        etcd = subprocess.run(
            ["etcd", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        etcd_v = etcd.split("\n")[0].replace("etcd Version: ", "etcd ")
    except (OSError, subprocess.SubprocessError):
        etcd_v = "etcd ?"
    return (
        f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Linux {os.uname().release}, "
        f"Python {sys.version.split()[0]}, {etcd_v}"
    )


# -- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, what: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up in {timeout} s")


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tmpdir(tag: str) -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix=f"wcbench-{tag}-", dir=base)


@dataclass
class Etcd:
    """A single-member etcd with its data dir on tmpfs, pinned to ``core``."""

    core: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    data_dir: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Etcd:
        self.port, peer = free_port(), free_port()
        self.data_dir = _tmpdir("etcd")
        cmd = [
            "etcd",
            "--name", "bench",
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
            "--quota-backend-bytes", str(8 * 2**30),
            "--log-level", "error",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            pinned(cmd, self.core), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as r:
                return b'"true"' in r.read()

        _wait(healthy, "etcd", proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class GrpcProxy:
    """``etcd grpc-proxy start`` in front of ``etcd``, pinned to ``core``."""

    etcd: Etcd
    core: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    data_dir: str = ""

    def start(self) -> GrpcProxy:
        self.port = free_port()
        self.data_dir = _tmpdir("proxy")
        cmd = [
            "etcd", "grpc-proxy", "start",
            "--endpoints", f"127.0.0.1:{self.etcd.port}",
            "--listen-addr", f"127.0.0.1:{self.port}",
            "--data-dir", self.data_dir,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            pinned(cmd, self.core), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def up() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                return r.status == 200

        _wait(up, "grpc-proxy", proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class Watchcache:
    """``watchcache serve`` (this checkout, this Python) against ``etcd``, pinned to ``core``."""

    etcd: Etcd
    core: str = ""
    port: int = 0
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    config: str = ""
    config_yaml: str = CONFIG_YAML
    log_path: str = ""
    """Where the server's stderr (its log) goes; nowhere when empty."""
    etcd_front: bool = False
    """Also serve the etcd v3 API (``--etcd-listen-port``), on :attr:`etcd_port`."""
    etcd_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Watchcache:
        self.spawn()
        self.wait_ready()
        return self

    def spawn(self) -> Watchcache:
        """Start the process without waiting for it to listen or load its caches."""
        self.port = free_port()
        front = []
        if self.etcd_front:
            self.etcd_port = free_port()
            front = ["--etcd-listen-port", str(self.etcd_port)]
        fd, self.config = tempfile.mkstemp(prefix="wcbench-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(self.config_yaml)
        cmd = [
            sys.executable, "-m", "watchcache", "serve",
            "--etcd-servers", self.etcd.endpoint,
            "--config", self.config,
            "--port", str(self.port),
            "--log-level", "warning",
            *front,
            *self.extra,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(open(self.log_path, "ab")) if self.log_path else subprocess.DEVNULL
            self.proc = subprocess.Popen(
                pinned(cmd, self.core), stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until ``/readyz`` answers 200 (every cache loaded)."""

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                return r.status == 200

        _wait(ready, "watchcache serve", timeout=timeout, proc=self.proc)

    def stop(self) -> None:
        _stop(self.proc)
        with contextlib.suppress(OSError):
            os.unlink(self.config)


@contextlib.contextmanager
def running(*servers: Any) -> Iterator[None]:
    started = []
    try:
        for s in servers:
            s.start()
            started.append(s)
        yield
    finally:
        for s in reversed(started):
            s.stop()


# -- etcd writes ------------------------------------------------------------------------------------


def make_value(
    seq: int, size: int, ts: int = 0, name: str | None = None, namespace: str = NAMESPACE
) -> bytes:
    """A Flunder of about ``size`` bytes whose ``bench`` annotation carries ``seq`` and ``ts`` (ns),
    early in the object so the load client finds it fast."""
    head = (
        f'{{"apiVersion":"{GROUP}/{VERSION}","kind":"Flunder","metadata":{{"name":"{name or f"o-{seq}"}",'
        f'"namespace":"{namespace}","annotations":{{"bench":"{seq} {ts}"}}}},"spec":{{"pad":"'
    )
    tail = '"}}'
    pad = max(0, size - len(head) - len(tail))
    return (head + "x" * pad + tail).encode()


class EtcdWriter:
    """Puts straight to etcd over gRPC (aetcd's generated stubs)."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(endpoint.removeprefix("http://"))
        self.kv = rpc.KVStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def put(self, key: bytes, value: bytes) -> int:
        resp = await self.kv.Put(rpc.PutRequest(key=key, value=value))
        return int(resp.header.revision)

    async def revision(self) -> int:
        resp = await self.kv.Range(rpc.RangeRequest(key=b"\0", count_only=True))
        return int(resp.header.revision)

    async def load(self, n: int, size: int, namespace: str = NAMESPACE, batch: int = 128) -> int:
        """``n`` objects of ``size`` bytes, in transactions of ``batch`` puts, 8 in flight; returns the
        raw value bytes written."""
        prefix = key_prefix(namespace)
        total = 0
        sem = asyncio.Semaphore(8)

        async def txn(lo: int, hi: int) -> None:
            ops = []
            for i in range(lo, hi):
                value = make_value(i, size, namespace=namespace)
                ops.append(
                    rpc.RequestOp(request_put=rpc.PutRequest(key=prefix + f"o-{i:07d}".encode(), value=value))
                )
            async with sem:
                await self.kv.Txn(rpc.TxnRequest(success=ops))

        tasks = []
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            total += sum(len(make_value(i, size, namespace=namespace)) for i in range(lo, hi))
            tasks.append(asyncio.ensure_future(txn(lo, hi)))
        await asyncio.gather(*tasks)
        return total


# -- the C load client ------------------------------------------------------------------------------


def build_client() -> str:
    """Compile benchmarks/wclient.c with the machine's ``cc`` (cached by source hash)."""
    src = HERE / "wclient.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"wcbench-wclient-{digest}"
    if not out.exists():
        cc = os.environ.get("CC", "cc")
        tmp = f"{out}.{os.getpid()}"
        subprocess.run([cc, "-O2", "-o", tmp, str(src)], check=True)
        os.replace(tmp, out)
    return str(out)


# -- output -----------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    left: tuple[str, ...] = ()
    """Columns of text, left-aligned; the others are figures, right-aligned."""

    def add(self, label: str, cells: Sequence[str]) -> None:
        self.rows.append((label, list(cells)))

    def render(self) -> str:
        width0 = max([len(self.title)] + [len(r[0]) for r in self.rows])
        widths = [
            max([len(c)] + [len(r[1][i]) for r in self.rows if i < len(r[1])])
            for i, c in enumerate(self.columns)
        ]
        just = [str.ljust if c in self.left else str.rjust for c in self.columns]
        end = "-|" if self.columns[-1] in self.left else ":|"
        lines = [
            "| "
            + self.title.ljust(width0)
            + " | "
            + " | ".join(j(c, w) for c, w, j in zip(self.columns, widths, just, strict=True))
            + " |",
            "|-" + "-" * width0 + "-|-" + "-|-".join("-" * w for w in widths) + end,
        ]
        for label, cells in self.rows:
            lines.append(
                "| "
                + label.ljust(width0)
                + " | "
                + " | ".join(j(c, w) for c, w, j in zip(cells, widths, just, strict=False))
                + " |"
            )
        return "\n".join(lines)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)

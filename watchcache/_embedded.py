"""Real etcd processes on loopback: one member, a single-node etcd, a multi-member cluster.

This module owns the lifecycle of etcd *processes* started by watchcache itself: the private etcd
of ``watchcache serve --embedded-etcd`` and the etcds of the test suite (a session etcd, private
ones that tests restart, kill with SIGKILL or freeze with SIGSTOP, and 3-member clusters). It does
not speak etcd's gRPC API; it only spawns ``etcd`` from ``PATH``, probes it over its HTTP endpoints
(``/health`` and the ``/v3/maintenance/status`` JSON gateway) and stops it. Client URLs speak plain
HTTP unless an :class:`EtcdServerTLS` is given, in which case they speak HTTPS (and may require client
certificates), and the probes go over TLS too; peer URLs are always plain HTTP on loopback.

Nothing here is bound to an event loop: a process is a :class:`subprocess.Popen` (which returns at
once), and every wait is ``await asyncio.sleep`` polling against a deadline. So one object may be
started under one ``asyncio.run()`` and stopped under another (as a sync pytest session fixture
does).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "EmbeddedEtcd",
    "EtcdCluster",
    "EtcdMember",
    "EtcdNotFoundError",
    "EtcdServerTLS",
    "EtcdStartError",
    "etcd_binary",
    "free_port",
]

log = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_POLL_INTERVAL = 0.05
_PROBE_TIMEOUT = 1.0
_START_ATTEMPTS = 3
# etcd preallocates a 64 MB WAL segment plus the next one: ~128 MB per member. Only use the
# (RAM-backed) /dev/shm when it has comfortably more than that per member.
_SHM_BYTES_PER_MEMBER = 256 * 1024 * 1024
_LOG_EXCERPT_LINES = 40

# Last-resort cleanup: processes still alive when the interpreter exits (a crashed test run, a
# forgotten stop()) are killed rather than leaked; they run in their own session, so nothing else
# would stop them.
_live_processes: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live_processes):
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
    _live_processes.clear()


class EtcdNotFoundError(FileNotFoundError):
    """No ``etcd`` executable on ``PATH``."""


class EtcdStartError(RuntimeError):
    """An etcd process exited during start-up or did not become healthy in time."""

    def __init__(self, message: str, *, exit_code: int | None, log: str) -> None:
        super().__init__(f"{message}\n--- etcd log ---\n{log}" if log else message)
        self.exit_code = exit_code
        """The process's exit code, or ``None`` if it was still running (a timeout)."""
        self.log = log
        """What this run of the process logged (its start and end, if long)."""

    @property
    def port_clash(self) -> bool:
        """Whether the process died because one of its ports was taken (worth a retry)."""
        return self.exit_code is not None and "address already in use" in self.log


def etcd_binary() -> str:
    """The path of the ``etcd`` executable on ``PATH``; raises :class:`EtcdNotFoundError`."""
    path = shutil.which("etcd")
    if path is None:
        raise EtcdNotFoundError(
            "etcd executable not found on PATH; install it (Debian/Ubuntu: "
            "`apt-get install etcd-server`, or run scripts/setup) or point --etcd-servers at an "
            "existing etcd"
        )
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports (holding each open until all are chosen)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _temp_parent(members: int) -> str | None:
    """Pick where temp dirs go: /dev/shm (fast fsync) when usable and roomy, else the default."""
    shm = "/dev/shm"
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)):
        return None
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return None
    return shm if free >= members * _SHM_BYTES_PER_MEMBER else None


@dataclass(frozen=True, slots=True)
class EtcdServerTLS:
    """TLS on an etcd member's client URLs (etcd's ``--cert-file``, ``--key-file``,
    ``--trusted-ca-file``, ``--client-cert-auth``)."""

    cert_file: str
    """etcd's serving certificate (PEM); it must name 127.0.0.1 (IP SAN). With ``client_cert_auth``,
    etcd's own JSON gateway (``/v3/...``, used by :meth:`EtcdMember.status`) dials etcd with it as a
    client certificate, so it then needs the clientAuth extended key usage as well."""
    key_file: str
    """Private key (PEM) of ``cert_file``."""
    ca_file: str
    """CA bundle (PEM) that signed ``cert_file``; with ``client_cert_auth`` it also verifies clients."""
    client_cert_auth: bool = True
    """Require a client certificate signed by ``ca_file`` from every client (``--client-cert-auth``)."""
    probe_cert_file: str | None = None
    """Client certificate (PEM) the health probes present; needed with ``client_cert_auth``."""
    probe_key_file: str | None = None
    """Private key (PEM) of ``probe_cert_file``."""

    def __post_init__(self) -> None:
        if (self.probe_cert_file is None) != (self.probe_key_file is None):
            raise ValueError("EtcdServerTLS: give both probe_cert_file and probe_key_file, or neither")

    def args(self) -> list[str]:
        """The etcd flags that serve the client URLs over TLS."""
        flags = [f"--cert-file={self.cert_file}", f"--key-file={self.key_file}"]
        if self.client_cert_auth:
            flags += [f"--trusted-ca-file={self.ca_file}", "--client-cert-auth"]
        return flags

    def probe_context(self) -> ssl.SSLContext:
        """A client context that verifies etcd against ``ca_file`` and presents the probe certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.probe_cert_file is not None and self.probe_key_file is not None:
            context.load_cert_chain(self.probe_cert_file, self.probe_key_file)
        return context


async def _http_json(
    port: int,
    *,
    method: str,
    path: str,
    body: bytes | None,
    time_limit: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    """One HTTP/1.0 request to 127.0.0.1:``port`` (over TLS with ``tls``); returns (status code,
    decoded JSON body)."""
    async with asyncio.timeout(time_limit):
        if tls is None:
            reader, writer = await asyncio.open_connection(_HOST, port)
        else:
            reader, writer = await asyncio.open_connection(_HOST, port, ssl=tls, server_hostname=_HOST)
        try:
            head = f"{method} {path} HTTP/1.0\r\nHost: {_HOST}:{port}\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode("ascii") + b"\r\n" + (body or b""))
            await writer.drain()
            raw = await reader.read()  # HTTP/1.0: the server closes after the response
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line = header_block.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"malformed HTTP response from port {port}: {raw[:80]!r}")
    return int(status_line[1]), json.loads(payload)


@dataclass(eq=False)
class EtcdMember:
    """One etcd process on loopback, with a fixed name, data dir and pair of ports.

    The process is started by :meth:`start`, which returns as soon as it is spawned;
    :meth:`wait_ready` waits for it to answer ``/health``. :meth:`restart` brings the same member
    back on the same ports and data dir (etcd then ignores the ``--initial-*`` flags and rejoins
    with what its data dir says).
    """

    name: str
    """The member name (``--name``); unique within its cluster."""
    data_dir: Path
    """etcd's ``--data-dir``; kept by :meth:`kill` and :meth:`stop`, so restarts keep data."""
    client_port: int
    """Port of the client URL (gRPC and HTTP gateway), on 127.0.0.1."""
    peer_port: int
    """Port of the peer (raft) URL, on 127.0.0.1."""
    initial_cluster: str
    """``--initial-cluster``: ``NAME=http://127.0.0.1:PEER_PORT`` per member, joined by commas."""
    initial_cluster_state: Literal["new", "existing"] = "new"
    """``--initial-cluster-state``: ``new`` when bootstrapping, ``existing`` when joining."""
    initial_cluster_token: str = "watchcache-etcd"
    """``--initial-cluster-token``; tells apart clusters bootstrapped from the same member list."""
    extra_args: Sequence[str] = ()
    """More etcd flags, appended after the ones above (e.g. ``--election-timeout=500``)."""
    log_path: Path | None = None
    """Where stdout and stderr go (appended); default: ``{data_dir}.log``, beside the data dir (etcd
    warns about foreign files inside its data dir)."""
    client_tls: EtcdServerTLS | None = None
    """Serve the client URL over HTTPS (None: plain HTTP); the probes then use TLS as well."""
    member_id: str | None = field(default=None, init=False)
    """etcd's member id (decimal, as the JSON gateway prints it), known after :meth:`status`."""
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _paused: bool = field(default=False, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)
    _probe_tls: ssl.SSLContext | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.log_path is None:
            self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")

    @property
    def client_url(self) -> str:
        """``http://127.0.0.1:CLIENT_PORT`` (``https://`` with :attr:`client_tls`): what clients (and
        ``--etcd-servers``) connect to."""
        scheme = "https" if self.client_tls is not None else "http"
        return f"{scheme}://{_HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://127.0.0.1:PEER_PORT``: what other members connect to."""
        return f"http://{_HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a paused process is running)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """Whether the process is stopped by :meth:`pause` (SIGSTOP)."""
        return self.running and self._paused

    @property
    def pid(self) -> int | None:
        """The process id while :attr:`running`, else ``None``."""
        return self._process.pid if self._process is not None and self.running else None

    def command(self) -> list[str]:
        """The full etcd command line this member runs."""
        return [
            etcd_binary(),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            f"--initial-cluster-state={self.initial_cluster_state}",
            f"--initial-cluster-token={self.initial_cluster_token}",
            "--log-level=warn",
            "--logger=zap",
            "--log-outputs=stderr",
            *(self.client_tls.args() if self.client_tls is not None else ()),
            *self.extra_args,
        ]

    def _probe_context(self) -> ssl.SSLContext | None:
        """The TLS context of the probes (built once: it reads the certificate files)."""
        if self.client_tls is None:
            return None
        if self._probe_tls is None:
            self._probe_tls = self.client_tls.probe_context()
        return self._probe_tls

    async def start(self) -> None:
        """Spawn the process and return at once (see :meth:`wait_ready`).

        Raises :class:`RuntimeError` if it is already running, :class:`EtcdNotFoundError` if there
        is no etcd binary.
        """
        if self.running:
            raise RuntimeError(f"etcd member {self.name!r} is already running")
        self._reap()
        command = self.command()
        self._probe_tls = None  # certificate files may have been replaced since the last run
        assert self.log_path is not None  # set by __post_init__
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # Opening a local file and Popen (fork+exec) return at once; only waiting would block.
        with open(self.log_path, "ab") as log_file:  # noqa: ASYNC230
            self._log_offset = log_file.tell()
            # The child keeps its own copy of the fd; ours closes with the `with`. A new session
            # keeps a terminal's Ctrl-C away from etcd: its owner stops it after draining clients.
            process = subprocess.Popen(  # noqa: ASYNC220
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process = process
        self._paused = False
        _live_processes.add(process)
        log.debug(
            "started etcd member %s (pid %d) client %s peer %s",
            self.name,
            process.pid,
            self.client_url,
            self.peer_url,
        )
        await asyncio.sleep(0)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/health`` answers ``"health": "true"`` (which needs a quorum).

        Raises :class:`EtcdStartError` (with what etcd logged) if the process exits meanwhile or
        the deadline passes, :class:`RuntimeError` if it was never started.
        """
        deadline = time.monotonic() + timeout
        while True:
            process = self._process
            if process is None:
                raise RuntimeError(f"etcd member {self.name!r} is not running")
            code = process.poll()
            if code is not None:
                raise EtcdStartError(
                    f"etcd member {self.name!r} exited with code {code} before becoming healthy",
                    exit_code=code,
                    log=self.run_log(),
                )
            remaining = deadline - time.monotonic()
            # Probe at least once, even with no time left (a member of a cluster whose start-up
            # deadline was spent on its peers is likely healthy already).
            if await self.healthy(timeout=min(_PROBE_TIMEOUT, max(remaining, 0.2))):
                log.debug("etcd member %s is healthy", self.name)
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(
                    f"etcd member {self.name!r} at {self.client_url} not healthy within {timeout:g} s",
                    exit_code=None,
                    log=self.run_log(),
                )
            await asyncio.sleep(_POLL_INTERVAL)

    async def healthy(self, *, timeout: float = _PROBE_TIMEOUT) -> bool:
        """One probe of ``/health``: ``True`` iff it answers ``"health": "true"`` in time."""
        try:
            _, body = await _http_json(
                self.client_port,
                method="GET",
                path="/health",
                body=None,
                time_limit=timeout,
                tls=self._probe_context(),
            )
        except (OSError, TimeoutError, ValueError):
            return False
        return isinstance(body, dict) and body.get("health") == "true"

    async def status(self, *, timeout: float = _PROBE_TIMEOUT) -> dict[str, Any]:
        """The member's ``/v3/maintenance/status`` (JSON gateway form: 64-bit ids as strings).

        Also records :attr:`member_id`. Raises :class:`OSError`, :class:`TimeoutError` or
        :class:`ValueError` when the member does not answer properly.
        """
        code, body = await _http_json(
            self.client_port,
            method="POST",
            path="/v3/maintenance/status",
            body=b"{}",
            time_limit=timeout,
            tls=self._probe_context(),
        )
        if code != 200 or not isinstance(body, dict):
            raise ValueError(f"etcd member {self.name!r}: status answered {code}: {body!r}")
        member_id = body.get("header", {}).get("member_id")
        if isinstance(member_id, str):
            self.member_id = member_id
        return body

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaps.

        Does nothing if the member is not running. The data dir is kept. If cancelled while waiting,
        the process is killed before the cancellation propagates.
        """
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                self._terminate()
                deadline = time.monotonic() + timeout
                # No loop-independent exit notification exists for a Popen: poll.
                while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(_POLL_INTERVAL)
                if process.poll() is None:
                    log.warning(
                        "etcd member %s did not exit within %g s of SIGTERM; killing it",
                        self.name,
                        timeout,
                    )
        except BaseException:
            self.kill()
            raise
        self.kill()
        log.debug("stopped etcd member %s", self.name)

    def _terminate(self) -> None:
        """Send SIGTERM (and SIGCONT, so that a paused member can act on it)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
                process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap at once, as a crash would; keeps the data dir. No-op if not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            # SIGKILL cannot be caught or delayed (not even by SIGSTOP), so this wait is brief.
            process.wait(timeout=10)
        self._reap()

    def _reap(self) -> None:
        process = self._process
        if process is not None and process.poll() is not None:
            _live_processes.discard(process)
            self._process = None
            self._paused = False

    def pause(self) -> None:
        """Freeze the process with SIGSTOP (it keeps its sockets but answers nothing)."""
        process = self._require_running()
        process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Unfreeze the process with SIGCONT."""
        process = self._require_running()
        process.send_signal(signal.SIGCONT)
        self._paused = False

    async def restart(self, *, ready_timeout: float | None = 30.0) -> None:
        """Stop (if running) and start again on the same ports and data dir.

        Waits up to ``ready_timeout`` seconds for health unless it is ``None`` (a member restarted
        while its cluster has no quorum cannot become healthy alone).
        """
        await self.stop()
        await self.start()
        if ready_timeout is not None:
            await self.wait_ready(ready_timeout)

    def run_log(self, max_lines: int = _LOG_EXCERPT_LINES) -> str:
        """What the latest run of the process logged ('' if nothing); if longer than
        ``max_lines``, its first and last lines (flag errors come first, fatal errors last)."""
        assert self.log_path is not None
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read(1024 * 1024).decode("utf-8", "replace")
        except OSError:
            return ""
        lines = text.splitlines()
        if len(lines) > max_lines:
            head = max_lines // 4
            lines = [*lines[:head], "...", *lines[head - max_lines :]]
        return "\n".join(lines)

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"etcd member {self.name!r} is not running")
        return process


class _TempDirOwner:
    """The lifecycle shared by :class:`EmbeddedEtcd` and :class:`EtcdCluster`: members in one
    temp dir."""

    def __init__(
        self,
        *,
        size: int,
        base_dir: str | os.PathLike[str] | None,
        extra_args: Sequence[str],
        start_timeout: float,
        client_tls: EtcdServerTLS | None,
    ) -> None:
        if size < 1:
            raise ValueError(f"an etcd cluster needs at least one member, not {size}")
        self._size = size
        self._base_dir = base_dir
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._client_tls = client_tls
        self._root: Path | None = None
        self._members: list[EtcdMember] = []

    @property
    def root(self) -> Path | None:
        """The temp dir holding every member's data dir and log while started, else ``None``."""
        return self._root

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (and succeeded, once it returns) and :meth:`stop` not
        since."""
        return self._root is not None

    @property
    def members(self) -> list[EtcdMember]:
        """The members, in name order (empty before :meth:`start`)."""
        return list(self._members)

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL (for ``--etcd-servers``); raises if not started."""
        if not self._members:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return [member.client_url for member in self._members]

    def _member_names(self) -> list[str]:
        return [f"etcd{i}" for i in range(self._size)]

    async def start(self) -> None:
        """Start every member and wait until all are healthy; no-op if already started.

        Retries (fresh ports, fresh dir) up to 3 times when a port was taken meanwhile. On failure,
        everything started so far is stopped and removed.
        """
        if self._root is not None:
            return
        parent = os.fspath(self._base_dir) if self._base_dir is not None else _temp_parent(self._size)
        for attempt in range(1, _START_ATTEMPTS + 1):
            root = Path(tempfile.mkdtemp(prefix="watchcache-etcd-", dir=parent))
            names = self._member_names()
            ports = _free_ports(2 * len(names))
            token = f"watchcache-{root.name}"
            initial_cluster = ",".join(
                f"{name}=http://{_HOST}:{ports[2 * i + 1]}" for i, name in enumerate(names)
            )
            self._members = [
                EtcdMember(
                    name=name,
                    data_dir=root / f"{name}.etcd",
                    client_port=ports[2 * i],
                    peer_port=ports[2 * i + 1],
                    initial_cluster=initial_cluster,
                    initial_cluster_token=token,
                    extra_args=self._extra_args,
                    client_tls=self._client_tls,
                )
                for i, name in enumerate(names)
            ]
            self._root = root
            try:
                for member in self._members:
                    await member.start()
                deadline = time.monotonic() + self._start_timeout
                for member in self._members:
                    await member.wait_ready(max(0.0, deadline - time.monotonic()))
            except EtcdStartError as exc:
                await self.stop()
                if not exc.port_clash or attempt == _START_ATTEMPTS:
                    raise
                log.info("etcd port clash (attempt %d of %d); retrying", attempt, _START_ATTEMPTS)
                continue
            except BaseException:
                await self.stop()
                raise
            log.info("etcd started: %s (dir %s)", ",".join(self.endpoints), root)
            return

    async def stop(self) -> None:
        """Stop every member and remove the temp dir; idempotent.

        Members stop one after the other: a leader stopping together with its followers would
        wait seconds for a leadership transfer that cannot happen, one stopping alone hands over
        at once.
        """
        members, root = self._members, self._root
        try:
            for member in members:
                await member.stop()
        finally:
            for member in members:
                member.kill()
            self._members = []
            self._root = None
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class EmbeddedEtcd(_TempDirOwner):
    """A private single-member etcd in its own temp dir (in /dev/shm when possible).

    ``async with EmbeddedEtcd() as etcd: ... etcd.endpoints ...``; the temp dir and its data go away
    on :meth:`stop`. The member can be restarted, killed or paused through :attr:`member`.
    """

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        client_tls: EtcdServerTLS | None = None,
    ) -> None:
        """``base_dir``: where to create the temp dir (default: /dev/shm if roomy, else the system
        temp dir). ``extra_args``: more etcd flags. ``start_timeout``: seconds to become healthy.
        ``client_tls``: serve clients over HTTPS (default: plain HTTP)."""
        super().__init__(
            size=1,
            base_dir=base_dir,
            extra_args=extra_args,
            start_timeout=start_timeout,
            client_tls=client_tls,
        )

    @property
    def member(self) -> EtcdMember:
        """The one etcd process; raises :class:`RuntimeError` before :meth:`start`."""
        if not self._members:
            raise RuntimeError("EmbeddedEtcd is not started")
        return self._members[0]

    def _member_names(self) -> list[str]:
        return ["etcd"]


class EtcdCluster(_TempDirOwner):
    """``size`` etcd members (default 3) on loopback, sharing one temp dir; same lifecycle as
    :class:`EmbeddedEtcd`. Members are named ``etcd0``, ``etcd1``, ..."""

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        client_tls: EtcdServerTLS | None = None,
    ) -> None:
        """``size``: number of members. Other arguments as for :class:`EmbeddedEtcd`."""
        super().__init__(
            size=size,
            base_dir=base_dir,
            extra_args=extra_args,
            start_timeout=start_timeout,
            client_tls=client_tls,
        )

    def _reachable(self) -> list[EtcdMember]:
        return [member for member in self._members if member.running and not member.paused]

    async def leader(self, timeout: float = 10.0) -> EtcdMember:
        """The current leader: a running, unpaused member that reports itself as leader.

        Polls until there is one (e.g. after the old leader was killed); raises
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for member in self._reachable():
                try:
                    status = await member.status()
                except (OSError, TimeoutError, ValueError):
                    continue
                if member.member_id is not None and status.get("leader") == member.member_id:
                    return member
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no etcd member reported itself leader within {timeout:g} s")
            await asyncio.sleep(_POLL_INTERVAL)

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running, unpaused member answers ``/health`` (so the cluster has a
        leader and a quorum); raises :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            members = self._reachable()
            if not members:
                raise RuntimeError("no etcd member is running")
            healthy = [await member.healthy() for member in members]
            if all(healthy):
                return
            if time.monotonic() >= deadline:
                sick = [m.name for m, ok in zip(members, healthy, strict=True) if not ok]
                raise TimeoutError(f"etcd members {sick} not healthy within {timeout:g} s")
            await asyncio.sleep(_POLL_INTERVAL)

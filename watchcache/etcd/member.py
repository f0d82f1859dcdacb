"""One etcd process on loopback: spawned, probed over HTTP, stopped, and never leaked.

An :class:`EtcdMember` is one etcd process with a fixed name, data dir and pair of ports. This module
does not speak etcd's gRPC API: it spawns ``etcd`` from ``PATH``, probes it over its HTTP ``/health``
endpoint and stops it; a process still alive when the interpreter exits is killed.

Nothing here is bound to an event loop: a process is a :class:`subprocess.Popen` forked by one
long-lived spawner thread, and every wait is ``await asyncio.sleep`` polling against a deadline. So
one object may be started under one ``asyncio.run()`` and stopped under another (as a sync pytest
session fixture does). Each process dies with the process that started it, however that ends: it is
started through :mod:`.lifeline`'s shim, which arms the kernel's parent-death signal.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import logging
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from .lifeline import shim_command

__all__ = [
    "HOST",
    "ClientTLS",
    "EtcdMember",
    "EtcdNotFoundError",
    "EtcdStartError",
    "etcd_binary",
    "http_json",
    "in_spawner_thread",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

HOST = "127.0.0.1"
_POLL_INTERVAL = 0.05
_PROBE_TIMEOUT = 1.0
_LOG_EXCERPT_LINES = 40

# Last-resort cleanup: processes still alive when the interpreter exits (a crashed test run, a
# forgotten stop()) are killed rather than leaked; they run in their own session, so nothing else
# would stop them.
_live_processes: set[subprocess.Popen[bytes]] = set()


# Every etcd is forked by this one thread, which lives as long as the process: the parent-death signal
# an etcd gets (see .lifeline) fires when the *thread* that forked it exits, so a process forked by
# the thread of some short-lived event loop would die with that thread. Forking here also keeps the
# fork off the event loop.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchcache-etcd-spawner")


def _spawn(command: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """In the spawner thread: start ``command`` through the death-signal shim, its output appended to
    ``log_path``; returns the process and the log's offset where this run starts."""
    with open(log_path, "ab") as log_file:
        offset = log_file.tell()
        # The child keeps its own copy of the fd; ours closes with the `with`. A new session keeps a
        # terminal's Ctrl-C and hangup away from etcd: its owner stops it after draining clients.
        process = subprocess.Popen(
            shim_command(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _live_processes.add(process)
    return process, offset


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap (what a start cancelled while forking started after all)."""
    with contextlib.suppress(OSError):
        process.kill()
    process.wait()
    _live_processes.discard(process)


async def in_spawner_thread(start: Callable[[], _T], *, undo: Callable[[_T], None]) -> _T:
    """Run ``start`` (which starts processes) in the spawner thread and return what it returns. If
    cancelled meanwhile, ``undo`` is applied to its result once there is one (in that thread)."""
    spawned = _SPAWNER.submit(start)
    try:
        return await asyncio.wrap_future(spawned)
    except asyncio.CancelledError:

        def undo_when_done(done: concurrent.futures.Future[_T]) -> None:
            if not done.cancelled() and done.exception() is None:
                undo(done.result())

        spawned.add_done_callback(undo_when_done)
        raise


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


class ClientTLS(Protocol):
    """TLS on a member's client URLs: its etcd flags, and the context its probes dial with."""

    def args(self) -> list[str]: ...

    def probe_context(self) -> ssl.SSLContext: ...


async def http_json(
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
            reader, writer = await asyncio.open_connection(HOST, port)
        else:
            reader, writer = await asyncio.open_connection(HOST, port, ssl=tls, server_hostname=HOST)
        try:
            head = f"{method} {path} HTTP/1.0\r\nHost: {HOST}:{port}\r\n"
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
    client_tls: ClientTLS | None = None
    """Serve the client URL over HTTPS (None: plain HTTP); the probes then use TLS as well."""
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
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
        return f"{scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://127.0.0.1:PEER_PORT``: what other members connect to."""
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a stopped, SIGSTOPped one is running)."""
        return self._process is not None and self._process.poll() is None

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
        log_path = self.log_path
        process, self._log_offset = await in_spawner_thread(
            lambda: _spawn(command, log_path), undo=lambda spawned: _kill(spawned[0])
        )
        self._process = process
        log.debug(
            "started etcd member %s (pid %d) client %s peer %s",
            self.name,
            process.pid,
            self.client_url,
            self.peer_url,
        )

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
            _, body = await http_json(
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

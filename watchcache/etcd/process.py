"""The private etcd of ``watchcache serve --embedded-etcd``: members in one temp dir.

An :class:`EtcdGroup` is members (:mod:`.member`) sharing one temp dir (in /dev/shm when roomy) on
free loopback ports, started together (retried on a port clash) and removed together; the temp dir
has a janitor (:mod:`.lifeline`) that removes it if its owner dies without doing so (SIGKILL);
:class:`EmbeddedEtcd` is the group of one that ``--embedded-etcd`` and ``watchcache demo`` start. The
test suite's clusters build on these classes (``tests/support/etcd.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from .lifeline import janitor_command
from .member import HOST, ClientTLS, EtcdMember, EtcdStartError, in_spawner_thread

__all__ = ["EmbeddedEtcd", "EtcdGroup", "free_port"]

log = logging.getLogger(__name__)

_START_ATTEMPTS = 3
_JANITOR_EXIT_TIMEOUT = 10.0
_POLL_INTERVAL = 0.02
# etcd preallocates a 64 MB WAL segment plus the next one: ~128 MB per member. Only use the
# (RAM-backed) /dev/shm when it has comfortably more than that per member.
_SHM_BYTES_PER_MEMBER = 256 * 1024 * 1024


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports (holding each open until all are chosen)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
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


class _Janitor:
    """The janitor of one temp dir (see :mod:`.lifeline`) and the write end of its lifeline."""

    def __init__(self, process: subprocess.Popen[bytes], lifeline: int) -> None:
        self._process = process
        self._lifeline: int | None = lifeline

    @classmethod
    async def start(cls, root: Path) -> _Janitor | None:
        """Start the janitor of ``root`` (``None`` where there is no interpreter to run it)."""
        command = janitor_command(os.fspath(root))
        if command is None:
            log.warning("no Python interpreter to watch %s: it is left behind if watchcache is killed", root)
            return None
        # Cancelled while spawning: cutting its lifeline sets it to work at once.
        return await in_spawner_thread(lambda: cls._spawn(command), undo=lambda janitor: janitor._cut())

    @classmethod
    def _spawn(cls, command: list[str]) -> _Janitor:
        # Only this process holds the write end (os.pipe's ends are not inherited by other children),
        # so the janitor reads end of file when this process closes it or ends.
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                command,
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    def _cut(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    async def release(self) -> None:
        """Cut the lifeline (the dir is removed already, so the janitor finds nothing to do) and reap
        the janitor."""
        self._cut()
        deadline = time.monotonic() + _JANITOR_EXIT_TIMEOUT
        # No loop-independent exit notification exists for a Popen: poll.
        while self._process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_INTERVAL)
        if self._process.poll() is None:
            log.warning("the janitor of a private etcd (pid %d) did not exit", self._process.pid)


class EtcdGroup:
    """Members in one temp dir, started together (retrying on port clashes) and removed together."""

    member_class: type[EtcdMember] = EtcdMember
    """What each member is (a subclass may add tools, as the test suite's do)."""

    def __init__(
        self,
        *,
        size: int,
        base_dir: str | os.PathLike[str] | None,
        extra_args: Sequence[str],
        start_timeout: float,
        client_tls: ClientTLS | None,
    ) -> None:
        if size < 1:
            raise ValueError(f"an etcd cluster needs at least one member, not {size}")
        self._size = size
        self._base_dir = base_dir
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._client_tls = client_tls
        self._root: Path | None = None
        self._janitor: _Janitor | None = None
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
                f"{name}=http://{HOST}:{ports[2 * i + 1]}" for i, name in enumerate(names)
            )
            self._members = [
                self.member_class(
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
                self._janitor = await _Janitor.start(root)
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
        members, root, janitor = self._members, self._root, self._janitor
        try:
            for member in members:
                await member.stop()
        finally:
            for member in members:
                member.kill()
            self._members = []
            self._root = None
            self._janitor = None
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
            if janitor is not None:
                await janitor.release()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EmbeddedEtcd(EtcdGroup):
    """A private single-member etcd in its own temp dir (in /dev/shm when possible).

    ``async with EmbeddedEtcd() as etcd: ... etcd.endpoints ...``; the temp dir and its data go away
    on :meth:`stop`.
    """

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        client_tls: ClientTLS | None = None,
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

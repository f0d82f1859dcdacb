"""The test suite's etcd tools: members it can kill, freeze and restart, clusters, TLS on etcd.

They build on the product's own process handling (``watchcache.etcd.member`` and ``.process``), which
starts and stops etcd; what only tests need — SIGSTOP/SIGCONT, restarts on the same data dir, leader
lookup, several members, etcd serving TLS — lives here, out of the wheel.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aetcd

from watchcache.etcd.member import EtcdMember, http_json
from watchcache.etcd.process import EmbeddedEtcd, EtcdGroup

__all__ = ["EtcdCluster", "EtcdServer", "EtcdServerTLS", "Member"]

POLL_INTERVAL = 0.05


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


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (``T`` in /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/stat", "rb") as stat:
                # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces).
                if stat.read().rpartition(b")")[2].split()[0] != b"T":
                    return False
    except FileNotFoundError:
        return False
    return True


@dataclass(eq=False)
class Member(EtcdMember):
    """An etcd member a test may freeze (SIGSTOP), unfreeze, restart and ask for its status."""

    member_id: str | None = field(default=None, init=False)
    """etcd's member id (decimal, as the JSON gateway prints it), known after :meth:`status`."""
    _paused: bool = field(default=False, init=False, repr=False)

    @property
    def paused(self) -> bool:
        """Whether the process is stopped by :meth:`pause` (SIGSTOP)."""
        return self.running and self._paused

    async def start(self) -> None:
        await super().start()
        self._paused = False

    def pause(self) -> None:
        """Freeze the process with SIGSTOP (it keeps its sockets but answers nothing). Returns once
        every thread of it is stopped: a signal is delivered asynchronously, and a thread still running
        on another core could otherwise answer one more request."""
        process = self._require_running()
        process.send_signal(signal.SIGSTOP)
        self._paused = True
        deadline = time.monotonic() + 5.0
        while not _all_threads_stopped(process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd (pid {process.pid}) did not stop on SIGSTOP within 5 s")
            time.sleep(0.001)

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

    async def status(self, *, timeout: float = 1.0) -> dict[str, Any]:
        """The member's ``/v3/maintenance/status`` (JSON gateway form: 64-bit ids as strings).

        Also records :attr:`member_id`. Raises :class:`OSError`, :class:`TimeoutError` or
        :class:`ValueError` when the member does not answer properly.
        """
        code, body = await http_json(
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

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"etcd member {self.name!r} is not running")
        return process


class EtcdServer(EmbeddedEtcd):
    """A single-member etcd whose member a test may kill, freeze or restart."""

    member_class = Member

    @property
    def member(self) -> Member:
        member = super().member
        assert isinstance(member, Member)
        return member


class EtcdCluster(EtcdGroup):
    """``size`` etcd members (default 3) on loopback, sharing one temp dir; same lifecycle as
    :class:`EmbeddedEtcd`. Members are named ``etcd0``, ``etcd1``, ..."""

    member_class = Member

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

    @property
    def members(self) -> list[Member]:
        return [m for m in self._members if isinstance(m, Member)]

    def _reachable(self) -> list[Member]:
        return [member for member in self.members if member.running and not member.paused]

    async def leader(self, timeout: float = 10.0) -> Member:
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
            await asyncio.sleep(POLL_INTERVAL)

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
            await asyncio.sleep(POLL_INTERVAL)


# -- clients of a test etcd ------------------------------------------------------------------------------

RPC_TIMEOUT = 10.0
"""Seconds any single etcd RPC of a test client may take (a hung etcd fails the test, not hangs)."""


def host_port(endpoint: str) -> tuple[str, int]:
    """Split ``http://host:port`` into ``(host, port)``."""
    parts = urlsplit(endpoint)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not an etcd endpoint: {endpoint!r}")
    return parts.hostname, parts.port


def etcd_client(endpoint: str, *, timeout: float = RPC_TIMEOUT) -> aetcd.Client:
    """A direct aetcd client for ``endpoint``; use as ``async with etcd_client(url) as kv:``.

    ``timeout`` bounds each RPC (shorten it when retrying through a failover: etcd itself holds a
    request up to 7 s when it cannot reach the leader).
    """
    host, port = host_port(endpoint)
    return aetcd.Client(host=host, port=port, timeout=timeout)


def unique_prefix() -> str:
    """A fresh etcd key prefix such as ``/registry-t1a2b3c4d``."""
    return f"/registry-t{secrets.token_hex(4)}"

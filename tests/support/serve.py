"""``watchcache serve`` as a user runs it: the installed console script in a subprocess, its banner
read, and the processes and files it leaves (or does not leave) behind."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from watchcache.etcd.lifeline import has_exited

from .waiting import wait_until

__all__ = [
    "EXAMPLE_CONFIG_FILE",
    "WATCHCACHE",
    "Banner",
    "live_processes_mentioning",
    "read_banner",
    "start_serve",
    "wait_ready",
]

WATCHCACHE = str(Path(sys.executable).with_name("watchcache"))
"""The console script pip installed (``.venv/bin/watchcache``), as ``./scripts/serve`` runs it."""

EXAMPLE_CONFIG_FILE = str(Path(__file__).resolve().parents[2] / "examples" / "watchcache.yaml")
"""The example configuration's path (``support.wardle.EXAMPLE_CONFIG`` is its text)."""


@dataclass(frozen=True)
class Banner:
    """What ``watchcache serve`` printed on stdout once serving."""

    lines: list[str]
    url: str
    """The first URL the "Try:" commands use (the one to reach the service from this machine)."""
    etcd_dir: Path | None
    """The private etcd's temp dir (``--embedded-etcd``), else None."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def start_serve(*args: str, log: Path | None = None, **popen: Any) -> asyncio.subprocess.Process:
    """``watchcache serve --config EXAMPLE ARGS...`` in its own session (so that a signal to its
    process group reaches it as a terminal's would, and nothing else); stdout piped unless given,
    stderr appended to ``log`` if given."""
    popen.setdefault("stdout", asyncio.subprocess.PIPE)
    popen.setdefault("start_new_session", True)
    command = [WATCHCACHE, "serve", "--config", EXAMPLE_CONFIG_FILE, *args]
    if log is None:
        popen.setdefault("stderr", asyncio.subprocess.PIPE)
        return await asyncio.create_subprocess_exec(*command, **popen)
    with _append(log) as stderr:  # the child keeps its own copy
        return await asyncio.create_subprocess_exec(*command, stderr=stderr, **popen)


def _append(path: Path) -> BinaryIO:
    return open(path, "ab")  # closed by the caller's `with`


async def read_banner(proc: asyncio.subprocess.Process, *, within: float = 60.0) -> Banner:
    """Read stdout up to the banner's last line ("Stop with ...")."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(within):
        while not (lines and lines[-1].startswith("Stop with")):
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"watchcache serve ended before its banner: {lines}")
            lines.append(line.decode().rstrip("\n"))
    text = "\n".join(lines)
    server = re.search(r"kubectl --server (\S+)", text)
    assert server is not None, text
    etcd_dir = re.search(r"private etcd at \S+, data in (\S+) ", text)
    return Banner(lines=lines, url=server[1], etcd_dir=Path(etcd_dir[1]) if etcd_dir else None)


async def wait_ready(url: str, *, within: float = 30.0) -> None:
    """Poll ``{url}/readyz`` until it answers 200."""
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            try:
                async with session.get(f"{url}/readyz") as reply:
                    return reply.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, within=within, message=f"{url}/readyz answering 200")


def live_processes_mentioning(text: str) -> dict[int, str]:
    """Every process (pid: command line) with ``text`` in its command line that has not finished
    exiting (see :func:`watchcache.etcd.lifeline.has_exited`)."""
    found = {}
    needle = text.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline and not has_exited(int(entry.name)):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found

"""etcdctl 3.4 (``ETCDCTL_API=3``) against an :class:`EtcdTarget`: one-shot commands and streaming ones.

``await etcdctl(target, "get", key)`` runs one command with the target's endpoints, TLS and ``--user``
and returns its exit code, stdout and stderr; ``async with EtcdctlStream(target, "watch", …) as watch``
runs a long-lived command (watch, lease keep-alive) whose output is read line by line and which is
killed when the block ends. Every call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any, Self

from support.etcd_target import EtcdTarget

__all__ = ["EtcdctlResult", "EtcdctlStream", "etcdctl", "etcdctl_argv"]

SETUP_HINT = "run ./scripts/setup: it installs etcdctl (Debian package etcd-client)"


def _binary() -> str:
    found = shutil.which("etcdctl")
    if found is None:
        raise AssertionError(f"etcdctl is not on PATH; {SETUP_HINT}")
    return found


def _env() -> dict[str, str]:
    """The environment without any ETCDCTL_* setting of the caller, and with the v3 API."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def etcdctl_argv(target: EtcdTarget, *args: str, dial_timeout: float = 5.0) -> list[str]:
    """The command line: etcdctl, the target's connection flags, a dial timeout, then ``args``."""
    return [_binary(), *target.connection_args(), f"--dial-timeout={dial_timeout:g}s", *args]


@dataclass(frozen=True)
class EtcdctlResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (``-w json``)."""
        return json.loads(self.stdout)

    def describe(self) -> str:
        command = " ".join(self.argv)
        return f"$ {command}\nexit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


async def etcdctl(
    target: EtcdTarget,
    *args: str,
    stdin: str | None = None,
    timeout: float = 30.0,
    dial_timeout: float = 5.0,
    check: bool = True,
) -> EtcdctlResult:
    """Run ``etcdctl <connection flags> args`` (with ``stdin`` as its input, if given).

    Killed after ``timeout`` seconds (an AssertionError). With ``check`` a non-zero exit fails the test.
    """
    argv = etcdctl_argv(target, *args, dial_timeout=dial_timeout)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        out, err = await process.communicate()
        raise AssertionError(
            f"$ {' '.join(argv)} did not finish within {timeout:g} s\n{out.decode()}\n{err.decode()}"
        ) from None
    assert process.returncode is not None
    result = EtcdctlResult(argv, process.returncode, out.decode(), err.decode())
    if check:
        assert result.returncode == 0, f"etcdctl failed\n{result.describe()}"
    return result


class EtcdctlStream:
    """A long-running etcdctl command (``watch``, ``lease keep-alive``), read line by line.

    ``async with EtcdctlStream(target, "watch", "--prefix", key) as watch: await watch.readline()``;
    leaving the block kills the process (if still running) and collects stderr into :attr:`stderr`.
    """

    def __init__(self, target: EtcdTarget, *args: str, dial_timeout: float = 5.0) -> None:
        self.argv = etcdctl_argv(target, *args, dial_timeout=dial_timeout)
        self.stderr = ""
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._pending: asyncio.Future[bytes] | None = None

    async def __aenter__(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def readline(self, timeout: float = 10.0) -> str:
        """The next line of stdout, without its newline. AssertionError when nothing comes within
        ``timeout`` seconds or the command ends."""
        line = await self.poll_line(timeout)
        if line is None:
            raise AssertionError(f"$ {' '.join(self.argv)}: no output within {timeout:g} s")
        return line

    async def poll_line(self, timeout: float) -> str | None:
        """The next line of stdout, or ``None`` if none comes within ``timeout`` seconds (the line is
        then still read by the next call). AssertionError when the command ends."""
        assert self._process is not None and self._process.stdout is not None
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._process.stdout.readline())
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return None
        raw = self._pending.result()
        self._pending = None
        if not raw:
            code = await self.wait()
            raise AssertionError(f"$ {' '.join(self.argv)} ended (exit {code}):\n{self.stderr}")
        return raw.decode().removesuffix("\n")

    async def read_json_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read ``-w json`` watch responses (one JSON object per line) until ``count`` events have come;
        return the events (etcd's JSON: ``type`` is absent for PUT and 1 for DELETE, keys and values
        base64)."""
        events: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(events) < count:
            line = await self.readline(max(0.0, deadline - loop.time()))
            events += json.loads(line).get("Events") or []
        return events

    async def wait(self, timeout: float = 10.0) -> int:
        """Wait for the command to end by itself; its exit code (stderr is then in :attr:`stderr`).
        Unread stdout is dropped."""
        assert self._process is not None
        if self._pending is not None:
            await asyncio.wait({self._pending}, timeout=timeout)
            self._pending = None
        async with asyncio.timeout(timeout):
            _, err = await self._process.communicate()
        self.stderr = err.decode()
        assert self._process.returncode is not None
        self.returncode = self._process.returncode
        return self.returncode

    async def stop(self) -> None:
        """Kill the command if it still runs, and collect stderr."""
        process = self._process
        if process is None or self.returncode is not None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if self._pending is not None:
            await asyncio.wait({self._pending})
            self._pending = None
        _, err = await process.communicate()
        self.stderr = err.decode()
        self.returncode = process.returncode

"""The real kubectl (on PATH) as a test drives it: one-shot commands with their output, and
long-running ones (``get --watch``) read line by line, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

KUBECTL = shutil.which("kubectl")
"""The kubectl binary, or None (tests using it are skipped)."""

COMMAND_TIMEOUT = 60.0
"""Seconds a one-shot kubectl command may take."""


class KubectlFailed(AssertionError):
    """A command that should have succeeded did not."""


class Kubectl:
    """kubectl against one server, with a private HOME and cache and no kubeconfig.

    ``ca``: the server's CA over HTTPS; ``token``: a bearer token (sent over HTTPS only).
    """

    def __init__(self, server: str, home: Path, *, ca: Path | None = None, token: str | None = None) -> None:
        assert KUBECTL is not None, "kubectl is not installed"
        self.base = [KUBECTL, f"--server={server}", f"--cache-dir={home / 'cache'}", "--request-timeout=20s"]
        if ca is not None:
            self.base.append(f"--certificate-authority={ca}")
        if token is not None:
            self.base.append(f"--token={token}")
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "none")}

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """A running kubectl whose stdout and stderr are pipes (read them, then :meth:`stop` it)."""
        return await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )

    @staticmethod
    async def stop(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    async def run(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of one command."""
        proc = await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                out, err = await proc.communicate(stdin)
        finally:
            await self.stop(proc)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def __call__(self, *args: str, stdin: bytes | None = None) -> str:
        """The stdout of a command that must succeed."""
        code, out, err = await self.run(*args, stdin=stdin)
        if code != 0:
            raise KubectlFailed(f"kubectl {' '.join(args)} failed ({code}): {err}")
        return out

    async def fails(self, *args: str, stdin: bytes | None = None) -> str:
        """The stderr of a command that must fail."""
        code, out, err = await self.run(*args, stdin=stdin)
        if code == 0:
            raise KubectlFailed(f"kubectl {' '.join(args)} succeeded: {out}")
        return err

    async def json(self, *args: str) -> Any:
        return json.loads(await self(*args, "-o", "json"))


async def read_lines(stream: asyncio.StreamReader, until: str, *, timeout: float = 30.0) -> list[str]:
    """Lines from ``stream`` up to and including the first that contains ``until``."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"the stream ended before {until!r}; read {lines}")
            lines.append(raw.decode().rstrip("\n"))
            if until in lines[-1]:
                return lines

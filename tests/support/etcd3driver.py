"""The Go etcd client driver (``tests/clients/etcd3driver/main.go``): build it, run a scenario, read
its JSON lines.

The driver is built with Debian's Go and etcd 3.4.23 clientv3 sources (packages ``golang-go`` and
``golang-etcd-server-dev``, which ``scripts/setup`` installs) in GOPATH mode, offline. The binary is kept
in the system temp dir under a name derived from the source, the Go version and the clientv3 version,
so a test session builds it at most once (~15-30 s the first time, nothing after).

Usage::

    driver = Etcd3Driver(build_driver())
    run = await driver.run("update", target)
    stale = run.step("update-stale")
    assert stale["succeeded"] is False and stale["responses"][0]["type"] == "range"
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.etcd_target import EtcdTarget

__all__ = ["DriverRun", "DriverUnavailable", "Etcd3Driver", "build_driver"]

SOURCE_DIR = Path(__file__).resolve().parent.parent / "clients" / "etcd3driver"
GO_SOURCES = Path("/usr/share/gocode")
"""Where Debian's ``golang-*-dev`` packages put Go sources (a GOPATH)."""
CLIENTV3 = GO_SOURCES / "src" / "go.etcd.io" / "etcd" / "clientv3"
SETUP_HINT = (
    "run ./scripts/setup: it installs Go and etcd's Go client sources (Debian packages golang-go and "
    "golang-etcd-server-dev; CI gets them the same way)"
)
BUILD_TIMEOUT = 600.0
PRUNE_AFTER = 24 * 3600.0


class DriverUnavailable(RuntimeError):
    """Go or the clientv3 sources are missing, or the driver does not build."""


def _fingerprint(go: str) -> str:
    """A digest of what the binary depends on: the driver's source, Go, and the clientv3 sources."""
    digest = hashlib.sha256()
    for source in sorted(SOURCE_DIR.glob("*.go")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=True)
    digest.update(version.stdout.encode())
    etcd_version = GO_SOURCES / "src" / "go.etcd.io" / "etcd" / "version" / "version.go"
    if etcd_version.is_file():
        digest.update(etcd_version.read_bytes())
    return digest.hexdigest()[:20]


def build_driver(cache_root: Path | None = None) -> Path:
    """Build the driver (or find it already built) and return the binary's path.

    ``cache_root`` defaults to ``$TMPDIR/watchcache-etcd3driver-<uid>``; the Go build cache lives there
    too. Raises :class:`DriverUnavailable` with what to do when Go or clientv3 is missing or the build
    fails.
    """
    go = shutil.which("go")
    if go is None:
        raise DriverUnavailable(f"the Go toolchain (`go`) is not on PATH; {SETUP_HINT}")
    if not CLIENTV3.is_dir():
        raise DriverUnavailable(f"etcd's Go client sources are missing ({CLIENTV3}); {SETUP_HINT}")
    root = cache_root or Path(tempfile.gettempdir()) / f"watchcache-etcd3driver-{os.getuid()}"
    binary = root / _fingerprint(go) / "etcd3driver"
    if binary.is_file():
        os.utime(binary.parent)  # in use: not pruned
        return binary
    root.mkdir(parents=True, exist_ok=True)
    # Build in a private directory and move the result into place: concurrent sessions (other
    # worktrees) may build the same binary at the same time.
    with tempfile.TemporaryDirectory(dir=root, prefix="build-") as work:
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{work}{os.pathsep}{GO_SOURCES}",
            "GOCACHE": str(root / "gocache"),
            "GOFLAGS": "",
            "CGO_ENABLED": "0",  # no C compiler needed
        }
        built = Path(work) / "etcd3driver"
        try:
            result = subprocess.run(
                [go, "build", "-o", str(built), "."],
                cwd=SOURCE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DriverUnavailable(f"building {SOURCE_DIR} took over {BUILD_TIMEOUT:g} s") from exc
        if result.returncode != 0:
            raise DriverUnavailable(
                f"building {SOURCE_DIR} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
                f"\nIf packages are missing, {SETUP_HINT}"
            )
        binary.parent.mkdir(exist_ok=True)
        os.replace(built, binary)
    _prune(root, keep=binary.parent)
    return binary


def _prune(root: Path, *, keep: Path) -> None:
    """Remove binaries of other sources that no session used for a day (each is ~20 MB)."""
    stale = time.time() - PRUNE_AFTER
    for entry in root.iterdir():
        if entry == keep or entry.name == "gocache" or entry.name.startswith("build-"):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and entry.stat().st_mtime < stale:
                shutil.rmtree(entry)


@dataclass(frozen=True)
class DriverRun:
    """One finished run of a scenario: its JSON lines (each has a ``"step"``), exit code and stderr."""

    argv: list[str]
    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    def steps(self, name: str) -> list[dict[str, Any]]:
        """Every line whose step is ``name``, in order."""
        return [line for line in self.lines if line.get("step") == name]

    def step(self, name: str) -> dict[str, Any]:
        """The one line whose step is ``name``."""
        found = self.steps(name)
        assert len(found) == 1, f"expected one {name!r} line, got {len(found)}\n{self.describe()}"
        return found[0]

    @property
    def error(self) -> dict[str, Any] | None:
        """The ``{"step": "error", "at": …, "error": …}`` line, if the scenario failed."""
        errors = self.steps("error")
        return errors[0] if errors else None

    def describe(self) -> str:
        """The run, for assertion messages."""
        shown = "\n".join(json.dumps(line) for line in self.lines)
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{shown}\nstderr:\n{self.stderr}"


class Etcd3Driver:
    """Runs scenarios of the built driver against an :class:`EtcdTarget`."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    async def run(
        self,
        scenario: str,
        target: EtcdTarget,
        *args: str,
        resource: str = "flunders",
        timeout: float = 30.0,
        check: bool = True,
    ) -> DriverRun:
        """Run ``scenario`` (``create``, ``update``, ``delete``, ``list``, ``watch``, ``lease``,
        ``compactor``, ``health``) with extra ``args`` (``--count``, ``--limit``, ``--ttl``,
        ``--compacted``).

        The driver gets ``timeout`` for the whole scenario and is killed 10 s after it. With ``check``
        (the default) anything but a clean finish (exit 0, last line ``done``) fails the test.
        """
        argv = [
            str(self.binary),
            scenario,
            *target.connection_args(),
            f"--prefix={target.prefix}",
            f"--resource={resource}",
            f"--timeout={timeout:g}s",
            *args,
        ]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout + 10):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            stdout, stderr = await process.communicate()
            raise AssertionError(
                f"etcd3driver {scenario} hung past {timeout + 10:g} s\n"
                f"{stdout.decode(errors='replace')}\n{stderr.decode(errors='replace')}"
            ) from None
        lines = []
        for raw in stdout.decode(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                raise AssertionError(f"etcd3driver printed a line that is not JSON: {raw!r}") from None
        assert process.returncode is not None
        run = DriverRun(argv, process.returncode, lines, stderr.decode(errors="replace"))
        if check:
            assert run.returncode == 0 and lines and lines[-1] == {"step": "done"}, (
                f"etcd3driver {scenario} failed\n{run.describe()}"
            )
        return run

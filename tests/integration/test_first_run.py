"""A new user's first minutes with the command line: what ``scripts/setup`` says while it installs,
``watchcache --version``, a banner whose suggestions work when bound to every interface, and a log
that keeps warnings for what an operator must see."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
from support.etcd import EtcdServer
from support.serve import WATCHCACHE, read_banner, start_serve, wait_ready

REPO = Path(__file__).parent.parent.parent


def pyproject() -> dict[str, object]:
    with open(REPO / "pyproject.toml", "rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_version_prints_the_package_version() -> None:
    """``watchcache --version`` and ``watchcache version`` print ``watchcache X.Y.Z``: pyproject's
    version, the installed distribution's and the package's own."""
    import watchcache  # noqa: PLC0415 - the version the package itself reports

    version = pyproject()["version"]
    assert version == importlib.metadata.version("watchcache") == watchcache.__version__
    for args in (["--version"], ["version"]):
        code, out, err = await run(WATCHCACHE, *args)
        assert (code, out, err) == (0, f"watchcache {version}\n", "")
    code, out, _ = await run(WATCHCACHE, "--help")
    assert code == 0 and "--version" in out and "version" in out


async def test_banner_bound_to_every_interface_suggests_a_reachable_address(
    etcd_endpoints: list[str], prefix: str, tmp_path: Path
) -> None:
    """With ``--bind-address 0.0.0.0`` the banner says so, and its kubectl, curl and etcdctl
    suggestions use 127.0.0.1 (0.0.0.0 is an address to listen on, not to connect to); those
    suggestions work as printed."""
    proc = await start_serve(
        "--etcd-servers",
        ",".join(etcd_endpoints),
        "--etcd-prefix",
        prefix,
        "--bind-address",
        "0.0.0.0",
        "--port",
        "0",
        "--etcd-listen-port",
        "0",
        log=tmp_path / "stderr",
    )
    try:
        banner = await read_banner(proc)
        first = banner.lines[0]
        port = re.search(r"serving http://0\.0\.0\.0:(\d+) \(every interface\)", first)
        assert port is not None, banner.text
        assert f"http://127.0.0.1:{port[1]} from this machine" in first
        assert f"http://{socket.gethostname()}:{port[1]} from others" in first
        suggestions = banner.lines[banner.lines.index("Try:") + 1 : -1]
        assert len(suggestions) == 4 and not any("0.0.0.0" in line for line in suggestions), suggestions
        assert banner.url == f"http://127.0.0.1:{port[1]}"
        await wait_ready(banner.url)
        curl = next(line.split()[-1] for line in suggestions if line.strip().startswith("curl"))
        async with aiohttp.ClientSession() as session, session.get(curl) as reply:
            assert reply.status == 200
            assert (await reply.json())["kind"] == "FlunderList"
        etcdctl = next(line.split() for line in suggestions if line.strip().startswith("etcdctl"))
        assert etcdctl[2].startswith("127.0.0.1:")
        code, _, err = await run(*etcdctl, env={**os.environ, "ETCDCTL_API": "3"})
        assert code == 0, err
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()


async def test_client_errors_log_at_info_server_errors_at_warning(
    own_etcd: EtcdServer, tmp_path: Path
) -> None:
    """kubectl apply's GET before a create is an ordinary 404: one ``info`` line. A server error (etcd
    gone: 5xx) is a ``warning``."""
    log = tmp_path / "stderr"
    proc = await start_serve(
        "--etcd-servers",
        own_etcd.endpoints[0],
        "--etcd-request-timeout",
        "1",
        "--port",
        "0",
        "--log-format",
        "json",
        log=log,
    )
    try:
        banner = await read_banner(proc)
        await wait_ready(banner.url)
        base = f"{banner.url}/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/missing") as missing:
                assert missing.status == 404
            own_etcd.member.kill()
            flunder = {
                "apiVersion": "wardle.example.com/v1alpha1",
                "kind": "Flunder",
                "metadata": {"name": "a"},
            }
            async with session.post(base, json=flunder) as failed:
                failed_code = failed.status
            assert failed_code >= 500
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    levels = {(r["code"], r["level"]) for r in records if "code" in r and "reason" in r}
    assert (404, "info") in levels and (404, "warning") not in levels, records
    assert (failed_code, "warning") in levels, records


def test_setup_says_what_it_installs_before_pip_runs(tmp_path: Path) -> None:
    """The first ``./scripts/setup`` (and so ``./scripts/serve``) spends a minute or two in pip; before
    that it names, on stderr, every package it installs (from pyproject.toml).

    Run in a copy of the checkout whose .venv has no pip, so that pip fails at once after the message
    (the real install is what ``./scripts/test`` itself starts with)."""
    for tool in ("etcd", "etcdctl", "go"):  # present, so that setup does not reach for apt-get
        assert shutil.which(tool), tool
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copytree(REPO / "scripts", copy / "scripts")
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(copy / ".venv")], check=True, timeout=60
    )
    done = subprocess.run(
        [str(copy / "scripts" / "setup")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0  # no pip in this .venv
    said, _, rest = done.stderr.partition("No module named pip")
    assert rest, done.stderr
    message = [line for line in said.splitlines() if line.startswith("scripts/setup: installing watchcache")]
    assert len(message) == 1, done.stderr
    project = pyproject()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict) and isinstance(project["dependencies"], list)
    for spec in [*project["dependencies"], *extras["test"], *extras["speed"]]:
        name = re.match(r"[\w.-]+", spec)
        assert name is not None and name[0] in message[0], (name, message)

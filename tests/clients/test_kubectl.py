"""The real kubectl (on PATH) against the running service over TLS, with validation on."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.certs import TestCA

from watchcache.service import Service

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

FLUNDER = """\
apiVersion: wardle.example.com/v1alpha1
kind: Flunder
metadata:
  name: {name}
  namespace: default
  labels:
    app: "{app}"
spec:
  size: {size}
"""

FISCHER = """\
apiVersion: wardle.example.com/v1alpha1
kind: Fischer
metadata:
  name: {name}
disallowedFlunders: [a, b]
"""


class Kubectl:
    def __init__(self, service: Service, ca: TestCA, home: Path) -> None:
        self.base = [
            "kubectl",
            f"--server={service.url}",
            f"--certificate-authority={ca.cert_file}",
            f"--cache-dir={home / 'cache'}",
            "--request-timeout=20s",
            # Without credentials kubectl prompts for a user name over HTTPS; authentication is off
            # in this service (no tenants), so any token does.
            "--token=unused",
        ]
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "none")}

    async def start(self, *args: str, stdin: bytes | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )

    async def __call__(self, *args: str, stdin: bytes | None = None, ok: bool = True) -> str:
        proc = await self.start(*args, stdin=stdin)
        async with asyncio.timeout(60):
            out, err = await proc.communicate(stdin)
        if ok and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {err.decode()}")
        return out.decode() + (err.decode() if not ok else "")

    async def json(self, *args: str) -> Any:
        return json.loads(await self(*args, "-o", "json"))


@pytest.fixture
def kubectl(tls_service: Service, test_ca: TestCA, tmp_path: Path) -> Kubectl:
    return Kubectl(tls_service, test_ca, tmp_path)


async def test_api_resources_lists_the_served_resources(kubectl: Kubectl) -> None:
    """kubectl api-resources shows both configured resources with their scope and kind."""
    out = await kubectl("api-resources", "--api-group=wardle.example.com")
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert lines["flunders"][-2:] == ["true", "Flunder"]
    assert lines["fischers"][-2:] == ["false", "Fischer"]


async def test_create_get_apply_patch_replace_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    """create -f, get -o json, apply -f (create then change), patch (merge, json), replace and delete
    all work with validation on."""
    manifest = tmp_path / "a.yaml"
    manifest.write_text(FLUNDER.format(name="a", app="x", size=1))
    assert "created" in await kubectl("create", "-f", str(manifest))
    got = await kubectl.json("get", "flunders", "a", "-n", "default")
    assert got["spec"] == {"size": 1} and got["metadata"]["uid"]

    applied = tmp_path / "b.yaml"
    applied.write_text(FLUNDER.format(name="b", app="y", size=1))
    assert "created" in await kubectl("apply", "-f", str(applied))
    applied.write_text(FLUNDER.format(name="b", app="y", size=2))
    assert "configured" in await kubectl("apply", "-f", str(applied))
    assert (await kubectl.json("get", "flunder", "b", "-n", "default"))["spec"] == {"size": 2}
    assert "unchanged" in await kubectl("apply", "-f", str(applied))

    await kubectl("patch", "flunder", "a", "-n", "default", "--type=merge", "-p", '{"spec":{"size":5}}')
    await kubectl(
        "patch",
        "flunder",
        "a",
        "-n",
        "default",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/color","value":"red"}]',
    )
    assert (await kubectl.json("get", "flunder", "a", "-n", "default"))["spec"] == {"size": 5, "color": "red"}

    manifest.write_text(FLUNDER.format(name="a", app="x", size=9))
    assert "replaced" in await kubectl("replace", "-f", str(manifest))
    assert (await kubectl.json("get", "flunder", "a", "-n", "default"))["spec"] == {"size": 9}

    listed = await kubectl.json("get", "flunders", "-n", "default", "-l", "app=y")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]

    assert "deleted" in await kubectl("delete", "flunder", "a", "b", "-n", "default")
    out = await kubectl("get", "flunder", "a", "-n", "default", ok=False)
    assert "NotFound" in out or "not found" in out


async def test_cluster_scoped_resource(kubectl: Kubectl, tmp_path: Path) -> None:
    """A cluster-scoped resource works with create, get and delete."""
    manifest = tmp_path / "f.yaml"
    manifest.write_text(FISCHER.format(name="fi"))
    await kubectl("apply", "-f", str(manifest))
    assert (await kubectl.json("get", "fischers", "fi"))["disallowedFlunders"] == ["a", "b"]
    await kubectl("delete", "fischer", "fi")


async def test_get_watch_streams_changes(kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl get -w prints the current objects, then a change made afterwards."""
    manifest = tmp_path / "w.yaml"
    manifest.write_text(FLUNDER.format(name="w1", app="x", size=1))
    await kubectl("create", "-f", str(manifest))
    watcher = await kubectl.start("get", "flunders", "-n", "default", "-w", "--output-watch-events")
    assert watcher.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await watcher.stdout.readline()).decode()
            while "w1" not in first:
                first = (await watcher.stdout.readline()).decode()
            manifest.write_text(FLUNDER.format(name="w2", app="x", size=1))
            await kubectl("create", "-f", str(manifest))
            line = ""
            while "w2" not in line:
                line = (await watcher.stdout.readline()).decode()
                assert line, "kubectl get -w ended early"
        assert "ADDED" in line
    finally:
        watcher.kill()
        await watcher.wait()


async def test_server_dry_run_delete_apply_create_write_nothing(kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl's --dry-run=server (DeleteOptions.dryRun in a DELETE body, dryRun=All on the query of
    create and apply) reports what would happen and changes nothing."""
    manifest = tmp_path / "d.yaml"
    manifest.write_text(FLUNDER.format(name="d", app="x", size=1))
    await kubectl("create", "-f", str(manifest))
    before = await kubectl.json("get", "flunder", "d", "-n", "default")

    out = await kubectl("delete", "flunder", "d", "-n", "default", "--dry-run=server")
    assert "deleted (server dry run)" in out
    assert await kubectl.json("get", "flunder", "d", "-n", "default") == before

    manifest.write_text(FLUNDER.format(name="d", app="x", size=7))
    out = await kubectl("apply", "-f", str(manifest), "--dry-run=server", "-o", "json")
    assert json.loads(out)["spec"] == {"size": 7}
    assert await kubectl.json("get", "flunder", "d", "-n", "default") == before

    other = tmp_path / "e.yaml"
    other.write_text(FLUNDER.format(name="e", app="x", size=1))
    assert "created (server dry run)" in await kubectl("create", "-f", str(other), "--dry-run=server")
    out = await kubectl("get", "flunder", "e", "-n", "default", ok=False)
    assert "NotFound" in out or "not found" in out


async def test_diff_shows_the_change_and_writes_nothing(kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl diff (a server-side dry-run patch) shows the change a manifest would make, exits 1 as
    diff does for differences, and leaves the object as it was."""
    manifest = tmp_path / "f.yaml"
    manifest.write_text(FLUNDER.format(name="f", app="x", size=1))
    await kubectl("apply", "-f", str(manifest))
    before = await kubectl.json("get", "flunder", "f", "-n", "default")

    manifest.write_text(FLUNDER.format(name="f", app="x", size=3))
    proc = await kubectl.start("diff", "-f", str(manifest))
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 1, (proc.returncode, out.decode(), err.decode())
    diff = out.decode()
    assert "-  size: 1" in diff and "+  size: 3" in diff, diff
    assert await kubectl.json("get", "flunder", "f", "-n", "default") == before


def _connections(service: Service, protocol: str) -> float:
    """Connections of ``protocol`` the service accepted (its metric)."""
    assert service.api is not None
    for line in service.api.metrics.render().decode().splitlines():
        if line.startswith(f'watchcache_http_connections_total{{protocol="{protocol}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_kubectl_speaks_http2_by_alpn(kubectl: Kubectl, tls_service: Service, tmp_path: Path) -> None:
    """kubectl negotiates h2 by ALPN: apply, get and a watch seeing a change all go over HTTP/2
    connections (the service's count of connections by protocol), none over HTTP/1.1."""
    manifest = tmp_path / "h2.yaml"
    manifest.write_text(FLUNDER.format(name="h2a", app="x", size=1))
    await kubectl("apply", "-f", str(manifest))
    watcher = await kubectl.start("get", "flunders", "-n", "default", "-w", "--output-watch-events")
    assert watcher.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = ""
            while "h2a" not in line:
                line = (await watcher.stdout.readline()).decode()
                assert line, "kubectl get -w ended early"
            manifest.write_text(FLUNDER.format(name="h2a", app="x", size=2))
            await kubectl("apply", "-f", str(manifest))
            while "MODIFIED" not in line:
                line = (await watcher.stdout.readline()).decode()
                assert line, "kubectl get -w ended early"
    finally:
        watcher.kill()
        await watcher.wait()
    got = await kubectl.json("get", "flunder", "h2a", "-n", "default")
    assert got["spec"]["size"] == 2
    assert _connections(tls_service, "h2") >= 3
    assert _connections(tls_service, "http/1.1") == 0

"""What kubectl prints, word for word: ``get`` as tables with the server's columns (``-o wide``, ``-A``,
``--watch``), what is invalid about a manifest, and a misspelled kind — as against kube-apiserver."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from support import columns
from support.kubectl import Kubectl, read_lines
from support.rest import Api
from support.wardle import fischer, flunder, flunder_path

from watchcache.service import Service

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

AGE = re.compile(r"[0-9]+s")
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
KEY_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
MANIFEST = "apiVersion: wardle.example.com/v1alpha1\nkind: {kind}\nmetadata:\n{metadata}\nspec: {{size: 1}}\n"


@pytest.fixture
async def service(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    async with columns.serve(etcd_endpoints, prefix) as svc:
        yield svc


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, service.url)


@pytest.fixture
def kubectl(service: Service, tmp_path: Path) -> Kubectl:
    return Kubectl(service.url, tmp_path)


def words(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def manifest(tmp_path: Path, metadata: str, kind: str = "Flunder") -> str:
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST.format(kind=kind, metadata=metadata))
    return str(path)


# -- get ----------------------------------------------------------------------------------------------


async def test_get_prints_the_servers_columns(api: Api, kubectl: Kubectl) -> None:
    """kubectl get prints the server's columns, upper-cased; -o wide adds those of priority > 0, -A
    adds NAMESPACE; a resource without printer columns shows NAME and CREATED AT."""
    await api.create(columns.FULL)
    out = words(await kubectl("get", "flunders", "-n", "default"))
    assert out[0] == columns.HEADERS and len(out) == 2
    assert out[1][:7] == ["full", "2", "2", "true", "second", '{"id":1,"tag":"\\u003cb\\u003e"}', "web"]
    assert AGE.fullmatch(out[1][7])
    wide = words(await kubectl("get", "flunders", "-n", "default", "-o", "wide"))
    assert wide[0] == [*columns.HEADERS[:-1], "COLOR", "AGE"] and wide[1][7] == "red"
    everywhere = words(await kubectl("get", "flunders", "-A"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"] and everywhere[1][:2] == ["default", "full"]
    assert words(await kubectl("get", "flunder", "full", "-n", "default", "--no-headers"))[0][0] == "full"
    created = await api.create(fischer("fi"))
    assert words(await kubectl("get", "fischers")) == [
        ["NAME", "CREATED", "AT"],
        ["fi", created["metadata"]["creationTimestamp"]],
    ]


async def test_get_watch_prints_a_row_per_change(api: Api, kubectl: Kubectl) -> None:
    """kubectl get --watch prints the header and the current rows, then one row per change with the
    changed cells (the columns come with the watch's first Table only)."""
    await api.create(columns.FULL)
    watcher = await kubectl.start("get", "flunders", "-n", "default", "--watch")
    assert watcher.stdout is not None
    try:
        header, full = await read_lines(watcher.stdout, "full")
        assert header.split() == columns.HEADERS and full.split()[0] == "full"
        await api.create(flunder("later", size=7))
        [added] = await read_lines(watcher.stdout, "later")
        assert added.split()[:2] == ["later", "7"]
        await api.ok("PUT", flunder_path("default", "later"), body=flunder("later", size=8))
        [modified] = await read_lines(watcher.stdout, "later")
        assert modified.split()[:2] == ["later", "8"]
    finally:
        await Kubectl.stop(watcher)


# -- what is invalid --------------------------------------------------------------------------------------


async def test_create_says_what_is_invalid(kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl create prints the kind, the name, each field and kube's rule for it."""
    err = await kubectl.fails("create", "-f", manifest(tmp_path, "  name: Bad_Name\n  namespace: default"))
    assert err == (
        f'The Flunder "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_RULE}\n'
    )
    err = await kubectl.fails("create", "-f", manifest(tmp_path, "  namespace: default"))
    assert (
        err == 'The Flunder "" is invalid: metadata.name: Required value: name or generateName is required\n'
    )
    err = await kubectl.fails(
        "create", "-f", manifest(tmp_path, '  namespace: default\n  labels: {"-x-": "ok"}')
    )
    assert err == (
        'The Flunder "" is invalid: \n'
        "* metadata.name: Required value: name or generateName is required\n"
        f'* metadata.labels: Invalid value: "-x-": {KEY_RULE}\n'
    )


async def test_get_and_patch_say_what_is_invalid(api: Api, kubectl: Kubectl) -> None:
    """A bad name on the command line, and a JSON patch that does not apply, name their object."""
    err = await kubectl.fails("get", "flunder", "Bad_Name", "-n", "default")
    assert (
        err
        == f'The Flunder "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_RULE}\n'
    )
    await api.create(flunder("p"))
    remove = '[{"op":"remove","path":"/spec/x"}]'
    err = await kubectl.fails("patch", "flunder", "p", "-n", "default", "--type=json", "-p", remove)
    assert err == (
        'The Flunder "p" is invalid: patch: Invalid value: the JSON patch cannot be applied: '
        "operation 0 (remove): path /spec/x does not exist\n"
    )


# -- a misspelled kind ------------------------------------------------------------------------------------


async def test_a_misspelled_kind_is_reported_as_such(kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl create -f with a kind the server does not serve validates against /openapi/v2 (the v3
    document has no PATCH for that kind), which it downloads as protobuf, finds no schema, and reports
    the real problem; kubectl explain reads the same document."""
    path = manifest(tmp_path, "  name: typo\n  namespace: default", kind="Flounder")
    err = await kubectl.fails("create", "-f", path)
    assert err == (
        f'error: resource mapping not found for name: "typo" namespace: "default" from "{path}": '
        'no matches for kind "Flounder" in version "wardle.example.com/v1alpha1"\n'
        "ensure CRDs are installed first\n"
    )
    out = await kubectl("explain", "fischers", "--output=plaintext-openapiv2")
    assert out.startswith("KIND:     Fischer\nVERSION:  wardle.example.com/v1alpha1\n"), out

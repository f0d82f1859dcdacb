"""The suite's layout, its markers, and the fixtures every directory shares.

- ``tests/unit``: pure logic, no processes, no sockets (marker ``unit``; ``pytest -m unit`` runs them in
  seconds).
- ``tests/integration``: the service and the library against a real etcd, through real sockets (marker
  ``etcd``).
- ``tests/clients``: real clients — kubectl, the kubernetes Python client, etcdctl, the Go etcd client
  (markers ``clients`` and ``etcd``).
- ``tests/soak``: the benchmark scripts run end to end: the fault soak and each ``--quick`` mode (markers
  ``soak`` and ``etcd``).
- ``tests/support``: what the tests share — etcd processes and clients, waiting, the wardle sample's
  objects, paths and keys, a REST client, a test CA.

``pytest -m "not etcd"`` starts no etcd: every etcd here is a fixture, created only for a test that asks.
Tests share the session etcd and stay independent by writing only under their own ``prefix``; tests that
restart, kill, pause or compact etcd take ``own_etcd`` (or ``etcd_cluster``) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aetcd
import pytest
from support.certs import CertFiles, TestCA
from support.etcd import EtcdCluster, EtcdServer, etcd_client, unique_prefix
from support.tenants import serve
from support.wardle import EXAMPLE_CONFIG

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

_DIRECTORY_MARKERS = {
    "unit": ("unit",),
    "integration": ("etcd",),
    "clients": ("clients", "etcd"),
    "soak": ("soak", "etcd"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its directory (see the module docstring)."""
    root = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(root) if item.path.is_relative_to(root) else None
        if relative is None or len(relative.parts) < 2:
            continue
        for marker in _DIRECTORY_MARKERS.get(relative.parts[0], ()):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    """One started etcd for the whole session (sync, so that any test's event loop may use it)."""
    server = EtcdServer()
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


@pytest.fixture
def etcd_endpoints(etcd: EtcdServer) -> list[str]:
    """The session etcd's client URLs."""
    return etcd.endpoints


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, e.g. ``/registry-t1a2b3c4d``."""
    return unique_prefix()


@pytest.fixture
async def own_etcd() -> AsyncIterator[EtcdServer]:
    """A private, started single-member etcd for this test only (restart, kill, compact freely)."""
    server = EtcdServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def etcd_cluster() -> AsyncIterator[EtcdCluster]:
    """A private, started, healthy 3-member etcd cluster for this test only."""
    # Faster than etcd's defaults (100 ms / 1 s) so that failover tests elect quickly, yet with
    # room for a loaded CI machine: loopback round trips are well under a millisecond.
    cluster = EtcdCluster(3, extra_args=["--heartbeat-interval=50", "--election-timeout=500"])
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def etcd_kv(etcd_endpoints: list[str]) -> AsyncIterator[aetcd.Client]:
    """An aetcd client connected to the session etcd, for writing "straight to etcd"."""
    async with etcd_client(etcd_endpoints[0]) as client:
        yield client


# -- the HTTP service --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A throwaway CA for the session's TLS tests."""
    return TestCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def serving_cert(test_ca: TestCA) -> CertFiles:
    """A serving certificate for 127.0.0.1/localhost signed by ``test_ca``."""
    return test_ca.issue("watchcache-serving", server=True)


@pytest.fixture
async def service(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    """watchcache serving the example resources over plain HTTP on a free loopback port."""
    options = ServiceOptions(
        config=parse_config(EXAMPLE_CONFIG),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        yield svc


@pytest.fixture
async def tls_service(
    etcd_endpoints: list[str], prefix: str, serving_cert: CertFiles
) -> AsyncIterator[Service]:
    """watchcache serving the example resources over HTTPS (certificate from ``test_ca``)."""
    options = ServiceOptions(
        config=parse_config(EXAMPLE_CONFIG),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
        tls_cert_file=serving_cert.cert,
        tls_private_key_file=serving_cert.key,
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        yield svc


@pytest.fixture
async def tls_svc(
    etcd_endpoints: list[str], prefix: str, serving_cert: CertFiles, test_ca: TestCA
) -> AsyncIterator[Service]:
    """The three-tenant service over HTTPS, verifying client certificates with ``test_ca``."""
    async with serve(
        etcd_endpoints,
        prefix,
        tls_cert_file=serving_cert.cert,
        tls_private_key_file=serving_cert.key,
        client_ca_file=test_ca.cert_file,
    ) as service:
        yield service

"""Shared fixtures: real etcd processes (one per session, private ones, 3-member clusters), a
unique key prefix per test, and a direct etcd client.

Tests share the session etcd and stay independent by writing only under their own ``prefix``.
Tests that restart, kill, pause or compact etcd take ``own_etcd`` (or ``etcd_cluster``) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aetcd
import pytest
from certs import CertFiles, TestCA
from etcd_helpers import etcd_client, unique_prefix
from support.etcd import EtcdCluster, EtcdServer

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions


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

# The resources the service tests serve: the README's example configuration itself.
EXAMPLE_CONFIG = (Path(__file__).parent.parent / "examples" / "watchcache.yaml").read_text()


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

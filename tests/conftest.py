"""Shared fixtures: real etcd processes (one per session, private ones, 3-member clusters), a
unique key prefix per test, and a direct etcd client.

Tests share the session etcd and stay independent by writing only under their own ``prefix``.
Tests that restart, kill, pause or compact etcd take ``own_etcd`` (or ``etcd_cluster``) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aetcd
import pytest
from etcd_helpers import etcd_client, unique_prefix

from watchcache._embedded import EmbeddedEtcd, EtcdCluster


@pytest.fixture(scope="session")
def etcd() -> Iterator[EmbeddedEtcd]:
    """One started etcd for the whole session (sync, so that any test's event loop may use it)."""
    server = EmbeddedEtcd()
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


@pytest.fixture
def etcd_endpoints(etcd: EmbeddedEtcd) -> list[str]:
    """The session etcd's client URLs."""
    return etcd.endpoints


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, e.g. ``/registry-t1a2b3c4d``."""
    return unique_prefix()


@pytest.fixture
async def own_etcd() -> AsyncIterator[EmbeddedEtcd]:
    """A private, started single-member etcd for this test only (restart, kill, compact freely)."""
    server = EmbeddedEtcd()
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

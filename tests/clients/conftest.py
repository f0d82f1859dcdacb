"""Targets for the real-client tests (etcdctl and the Go clientv3 driver) and the built driver.

A *target kind* is what the clients talk to: ``"etcd"``, a real etcd 3.4, and ``"front"``, watchcache's
etcd front (``watchcache serve --etcd-listen-port``) serving the example configuration's resources to
the tenant ``wardle``. Each kind names three fixtures, each giving an :class:`EtcdTarget`: ``plain`` (a
shared backend and a fresh key prefix), ``tls`` (the same served over TLS, the client presenting a
certificate) and ``private`` (a backend of the test's own, which it may compact), plus the
``name:password`` that ``--user`` sends — on the plain target, or on a target of its own where the
plain one does not check users (the front's plain target runs without tenants, as a loopback
development server does: every client is the one anonymous tenant; its ``--user`` target has the
tenant ``wardle``, as do its TLS and private targets). Every test runs against both kinds.

Tests take ``etcd_target`` (parametrized by kind and by connection: ``plain``, ``tls``, ``user``),
``tls_etcd_target`` or ``private_etcd_target`` (by kind only), and ``etcd3driver``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from support.certs import CertFiles, TestCA
from support.etcd import EtcdServer, EtcdServerTLS
from support.etcd3driver import DriverUnavailable, Etcd3Driver, build_driver
from support.etcd_target import ClientTLS, EtcdTarget
from support.wardle import EXAMPLE_CONFIG

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions


@dataclass(frozen=True)
class TargetKind:
    plain: str
    """Fixture: an :class:`EtcdTarget` over plain gRPC on a shared backend, with a fresh prefix."""
    tls: str
    """Fixture: the same over TLS, the client presenting a certificate from the test CA."""
    private: str
    """Fixture: an :class:`EtcdTarget` on a backend of its own (compaction is global to a backend)."""
    user: str
    """What ``--user`` sends in the ``user`` connection mode."""
    user_target: str | None = None
    """Fixture: the target the ``user`` connection mode adds :attr:`user` to, when not ``plain``."""


TARGET_KINDS: dict[str, TargetKind] = {
    "etcd": TargetKind(
        plain="real_etcd_target",
        tls="real_etcd_tls_target",
        private="own_etcd_target",
        user="wardle:s3cr3t-wardle",
    ),
    "front": TargetKind(
        plain="front_target",
        tls="front_tls_target",
        private="own_front_target",
        user="wardle:s3cr3t-wardle",
        user_target="front_tenants_target",
    ),
}

CONNECTIONS = ["plain", "tls", "user"]


@pytest.fixture(scope="session")
def etcd3driver() -> Etcd3Driver:
    """The Go clientv3 driver, built once (a missing Go toolchain fails the tests: run scripts/setup)."""
    try:
        binary = build_driver()
    except DriverUnavailable as exc:
        problem = str(exc)
    else:
        return Etcd3Driver(binary)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(params=sorted(TARGET_KINDS))
def target_kind(request: pytest.FixtureRequest) -> TargetKind:
    kind: TargetKind = TARGET_KINDS[request.param]
    return kind


@pytest.fixture(params=CONNECTIONS)
def etcd_target(request: pytest.FixtureRequest, target_kind: TargetKind) -> EtcdTarget:
    """Where the clients point: each target kind, over plain gRPC, over TLS, and with ``--user``."""
    if request.param == "tls":
        target: EtcdTarget = request.getfixturevalue(target_kind.tls)
        return target
    if request.param == "user":
        target = request.getfixturevalue(target_kind.user_target or target_kind.plain)
        return target.with_user(target_kind.user)
    target = request.getfixturevalue(target_kind.plain)
    return target


@pytest.fixture
def tls_etcd_target(request: pytest.FixtureRequest, target_kind: TargetKind) -> EtcdTarget:
    """Each target kind over TLS only (for tests of what happens without a client certificate)."""
    target: EtcdTarget = request.getfixturevalue(target_kind.tls)
    return target


@pytest.fixture
def private_etcd_target(request: pytest.FixtureRequest, target_kind: TargetKind) -> EtcdTarget:
    """A target on a backend of the test's own, for compaction."""
    target: EtcdTarget = request.getfixturevalue(target_kind.private)
    return target


# -- kind "etcd": a real etcd 3.4 ------------------------------------------------------------------------


@pytest.fixture
def real_etcd_target(etcd: EtcdServer, prefix: str) -> EtcdTarget:
    return EtcdTarget(name="etcd", endpoints=tuple(etcd.endpoints), prefix=prefix)


@pytest.fixture
def own_etcd_target(own_etcd: EtcdServer, prefix: str) -> EtcdTarget:
    return EtcdTarget(name="etcd", endpoints=tuple(own_etcd.endpoints), prefix=prefix)


@pytest.fixture(scope="session")
def etcd_client_cert(test_ca: TestCA) -> CertFiles:
    """A client certificate from the test CA (CN ``wardle``: the tenant, for the front)."""
    return test_ca.issue("wardle")


@pytest.fixture(scope="session")
def tls_etcd(test_ca: TestCA) -> Iterator[EtcdServer]:
    """A session etcd serving clients over TLS only, requiring client certificates from ``test_ca``."""
    server = test_ca.issue("etcd-clients-tls-server", server=True)
    probe = test_ca.issue("etcd-clients-tls-probe")
    tls = EtcdServerTLS(
        server.cert, server.key, test_ca.cert_file, probe_cert_file=probe.cert, probe_key_file=probe.key
    )
    etcd = EtcdServer(client_tls=tls)
    asyncio.run(etcd.start())
    try:
        yield etcd
    finally:
        asyncio.run(etcd.stop())


@pytest.fixture
def real_etcd_tls_target(
    tls_etcd: EtcdServer, test_ca: TestCA, etcd_client_cert: CertFiles, prefix: str
) -> EtcdTarget:
    return EtcdTarget(
        name="etcd",
        endpoints=tuple(tls_etcd.endpoints),
        prefix=prefix,
        tls=ClientTLS(cacert=test_ca.cert_file, cert=etcd_client_cert.cert, key=etcd_client_cert.key),
    )


# -- kind "front": watchcache's etcd front ------------------------------------------------------------

FRONT_GROUP = "wardle.example.com"
FRONT_USER = ("wardle", "s3cr3t-wardle")


def front_config(*, tenants: bool) -> str:
    """The example configuration (flunders, namespaced; fischers, cluster-scoped), with the README's
    tenant ``wardle`` (owning their group, authenticating with ``s3cr3t-wardle``) or without tenants."""
    config = yaml.safe_load(EXAMPLE_CONFIG)
    if tenants:
        name, token = FRONT_USER
        config["tenants"] = [{"name": name, "groups": [FRONT_GROUP], "tokens": [token]}]
    return yaml.safe_dump(config)


@asynccontextmanager
async def serve_front(
    endpoints: list[str], prefix: str, *, tenants: bool = True, **options: Any
) -> AsyncIterator[Service]:
    """watchcache serving the etcd front (and REST) over ``endpoints`` under ``prefix``, caches ready."""
    opts = ServiceOptions(
        config=parse_config(front_config(tenants=tenants)),
        etcd_servers=tuple(endpoints),
        etcd_prefix=prefix,
        port=0,
        etcd_listen_port=0,
        **options,
    )
    async with Service(opts) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready(10)
        yield svc


def front_target(svc: Service, prefix: str, *, tls: ClientTLS | None = None, auth: bool) -> EtcdTarget:
    """The front as an aggregated server with ``--etcd-prefix {prefix}/wardle.example.com`` sees it."""
    scheme = "https" if tls is not None else "http"
    return EtcdTarget(
        name="front",
        endpoints=(f"{scheme}://{svc.etcd_endpoint}",),
        prefix=f"{prefix}/{FRONT_GROUP}",
        tls=tls,
        auth=auth,
    )


@pytest.fixture(name="front_target")
async def front_target_fixture(etcd: EtcdServer, prefix: str) -> AsyncIterator[EtcdTarget]:
    """The front without tenants (authentication off: every client is the anonymous tenant)."""
    async with serve_front(etcd.endpoints, prefix, tenants=False) as svc:
        yield front_target(svc, prefix, auth=False)


@pytest.fixture(name="front_tenants_target")
async def front_tenants_target_fixture(etcd: EtcdServer, prefix: str) -> AsyncIterator[EtcdTarget]:
    """The front with the tenant ``wardle``, over plain gRPC (clients authenticate as an etcd user)."""
    async with serve_front(etcd.endpoints, prefix) as svc:
        yield front_target(svc, prefix, auth=True)


@pytest.fixture(name="own_front_target")
async def own_front_target_fixture(own_etcd: EtcdServer, prefix: str) -> AsyncIterator[EtcdTarget]:
    """The front over an etcd of the test's own; the client is ``wardle`` by ``--user``.

    The front's Compact does nothing (compaction of the shared etcd is the cluster's), so the history
    it cannot replay is what its caches' windows no longer hold: here each keeps only the latest
    change (``window_events=1``), so that a superseded revision is gone as a compacted one is."""
    window = CacheSettings(window_events=1)
    async with serve_front(own_etcd.endpoints, prefix, cache=window) as svc:
        yield front_target(svc, prefix, auth=True).with_user(":".join(FRONT_USER))


@pytest.fixture(name="front_tls_target")
async def front_tls_target_fixture(
    etcd: EtcdServer, prefix: str, serving_cert: CertFiles, test_ca: TestCA, etcd_client_cert: CertFiles
) -> AsyncIterator[EtcdTarget]:
    """The front over TLS with ``test_ca`` as its client CA; the client presents CN ``wardle``."""
    options = {
        "tls_cert_file": serving_cert.cert,
        "tls_private_key_file": serving_cert.key,
        "client_ca_file": test_ca.cert_file,
    }
    async with serve_front(etcd.endpoints, prefix, **options) as svc:
        tls = ClientTLS(cacert=test_ca.cert_file, cert=etcd_client_cert.cert, key=etcd_client_cert.key)
        yield front_target(svc, prefix, tls=tls, auth=True)

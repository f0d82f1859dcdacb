"""Targets for the real-client tests (etcdctl and the Go clientv3 driver) and the built driver.

A *target kind* is what the clients talk to: today ``"etcd"``, a real etcd 3.4. Each kind names three
fixtures, each giving an :class:`EtcdTarget`: ``plain`` (a shared backend and a fresh key prefix),
``tls`` (the same served over TLS, the client presenting a certificate) and ``private`` (a backend of
the test's own, which it may compact), plus the ``name:password`` that ``--user`` sends. The etcd front
adds ``"front"`` to :data:`TARGET_KINDS` with its own three fixtures; every test then runs against both.

Tests take ``etcd_target`` (parametrized by kind and by connection: ``plain``, ``tls``, ``user``),
``tls_etcd_target`` or ``private_etcd_target`` (by kind only), and ``etcd3driver``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.certs import CertFiles, TestCA
from support.etcd import EtcdServer, EtcdServerTLS
from support.etcd3driver import DriverUnavailable, Etcd3Driver, build_driver
from support.etcd_target import ClientTLS, EtcdTarget


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


TARGET_KINDS: dict[str, TargetKind] = {
    "etcd": TargetKind(
        plain="real_etcd_target",
        tls="real_etcd_tls_target",
        private="own_etcd_target",
        user="wardle:s3cr3t-wardle",
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
    target = request.getfixturevalue(target_kind.plain)
    return target.with_user(target_kind.user) if request.param == "user" else target


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

"""Where the real etcd clients of ``tests/clients`` point: endpoints, a key prefix, TLS, an etcd user.

etcdctl and the Go driver (``tests/clients/etcd3driver``) take the same connection flags
(``--endpoints``, ``--cacert``, ``--cert``, ``--key``, ``--user``), so one :class:`EtcdTarget` serves both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["AUTH_NOT_ENABLED", "ClientTLS", "EtcdTarget"]

AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
"""What etcd answers ``Authenticate`` with when auth is off; clientv3 then goes on without a token."""


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """TLS from the client's side: the CA that signed the server, and a client certificate."""

    cacert: str
    cert: str | None = None
    key: str | None = None

    def args(self) -> list[str]:
        flags = [f"--cacert={self.cacert}"]
        if self.cert is not None and self.key is not None:
            flags += [f"--cert={self.cert}", f"--key={self.key}"]
        return flags


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    """An etcd API endpoint the clients talk to, and the part of the keyspace they may use."""

    name: str
    """What serves it: ``"etcd"`` (a real etcd) or ``"front"`` (watchcache's etcd front)."""
    endpoints: tuple[str, ...]
    """Client URLs (``http://`` or ``https://``)."""
    prefix: str
    """The apiserver's ``--etcd-prefix``: every key a test writes is under ``prefix + "/"``. Starts
    with "/", no trailing "/". (``compact_rev_key`` is the one key outside it, as for the apiserver.)"""
    tls: ClientTLS | None = None
    user: str | None = None
    """``name:password`` sent as an etcd user (etcdctl ``--user``, clientv3 ``Username``/``Password``)."""
    auth: bool = False
    """Whether the target checks :attr:`user` (the front does; a real etcd here runs with auth off, so
    it answers ``Authenticate`` with :data:`AUTH_NOT_ENABLED` and clients go on without a token)."""

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"EtcdTarget prefix must start with / and not end with /: {self.prefix!r}")
        if not self.endpoints:
            raise ValueError("EtcdTarget needs at least one endpoint")

    def key(self, *parts: str) -> str:
        """A key under the prefix: ``key("flunders", "default", "a")`` is ``PREFIX/flunders/default/a``."""
        return "/".join((self.prefix, *parts))

    def with_user(self, user: str | None) -> EtcdTarget:
        return dataclasses.replace(self, user=user)

    def connection_args(self) -> list[str]:
        """``--endpoints=…`` plus the TLS and ``--user`` flags (the same for etcdctl and the driver)."""
        flags = [f"--endpoints={','.join(self.endpoints)}"]
        if self.tls is not None:
            flags += self.tls.args()
        if self.user is not None:
            flags.append(f"--user={self.user}")
        return flags

"""What one tenant may touch through the etcd front, and where its private keys live.

A tenant sees the keys of its API groups under the storage layout — ``{prefix}/{group}/…``, the layout
an aggregated server with ``--etcd-prefix {prefix}/{group}`` writes — with full access to its
``groups`` and read access to its ``readGroups``. Two keys that k8s.io/apiserver keeps outside them are
each mapped to a private key of the tenant's, so tenants never share one: the compactor's root-level
``compact_rev_key`` and the health check's ``{prefix}/health``. Anything else is PermissionDenied:
a range is allowed only when it lies wholly inside one allowed prefix, so a ``\\0`` "from key" end,
a ``\\0`` key, or an end past the prefix (etcd grpc-proxy's namespace escapes, etcd#7750, #12282)
never reaches another tenant's keys.

The caches' progress keys (``{prefix}/{group}/{resource}``, written for consistent reads) lie inside a
tenant's groups but are never shown: :meth:`Keyspace.hidden` names them for the front to filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..keys import prefix_range_end
from .errors import PERMISSION_DENIED

__all__ = ["COMPACT_REV_KEY", "Keyspace"]

COMPACT_REV_KEY = b"compact_rev_key"
"""The key k8s.io/apiserver's compactor keeps its logical clock in, at the root of the keyspace."""


def private_prefix(prefix: str, tenant: str) -> bytes:
    """Where watchcache keeps a tenant's private keys: outside ``{prefix}/``, so in no group."""
    return f"{prefix}-watchcache/tenants/{tenant}/".encode()


@dataclass(frozen=True)
class Keyspace:
    """One tenant's view of etcd (see the module docstring)."""

    tenant: str
    writable: tuple[bytes, ...]
    """``{prefix}/{group}/`` of the groups the tenant may write."""
    readable: tuple[bytes, ...]
    """Those, and the prefixes of the groups it may only read."""
    private: dict[bytes, bytes]
    """A virtual key the tenant uses → the real key that stands for it."""
    hidden: frozenset[bytes] = field(default_factory=frozenset)
    """Keys inside the tenant's groups that are never shown (the caches' progress keys)."""

    @classmethod
    def of(
        cls,
        *,
        tenant: str,
        prefix: str,
        groups: Iterable[str],
        read_groups: Iterable[str] = (),
        hidden: Iterable[bytes] = (),
    ) -> Keyspace:
        writable = tuple(sorted(f"{prefix}/{g}/".encode() for g in set(groups)))
        read_only = tuple(f"{prefix}/{g}/".encode() for g in set(read_groups))
        own = private_prefix(prefix, tenant)
        private = {COMPACT_REV_KEY: own + COMPACT_REV_KEY, f"{prefix}/health".encode(): own + b"health"}
        return cls(tenant, writable, tuple(sorted({*writable, *read_only})), private, frozenset(hidden))

    # -- keys in, keys out ----------------------------------------------------------------------------

    def to_real(self, key: bytes) -> bytes:
        return self.private.get(key, key)

    def to_virtual(self, key: bytes) -> bytes:
        for virtual, real in self.private.items():
            if key == real:
                return virtual
        return key

    def check(self, key: bytes, end: bytes, *, write: bool) -> tuple[bytes, bytes]:
        """The real ``(key, end)`` of a request's range (``end`` b"": the one key), or
        PermissionDenied when any of it lies outside what the tenant may read (or, with ``write``,
        write). The caller has refused an empty key already."""
        prefixes = self.writable if write else self.readable
        if not end:
            real = self.private.get(key)
            if real is not None:
                return real, b""
            if write and key in self.hidden:
                raise PERMISSION_DENIED()  # the caches' own keys
            if any(key.startswith(p) for p in prefixes):
                return key, b""
            raise PERMISSION_DENIED()
        if end <= key and end != b"\0":
            # An empty range: etcd answers nothing; allowed where its start is.
            if any(key.startswith(p) for p in prefixes):
                return key, end
            raise PERMISSION_DENIED()
        for p in prefixes:
            if key >= p and end != b"\0" and end <= prefix_range_end(p):
                return key, end
        raise PERMISSION_DENIED()

    def is_hidden(self, key: bytes) -> bool:
        return key in self.hidden

    def readable_key(self, key: bytes) -> bool:
        """Whether the tenant may see ``key`` (a real key; its private keys included)."""
        return key not in self.hidden and (
            any(key.startswith(p) for p in self.readable) or key in self.private.values()
        )

    def hidden_in(self, key: bytes, end: bytes) -> list[bytes]:
        """The hidden keys inside ``[key, end)`` (``end`` b"": the one key)."""
        if not end:
            return [key] if key in self.hidden else []
        return sorted(h for h in self.hidden if key <= h < end)

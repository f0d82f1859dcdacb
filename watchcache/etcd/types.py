"""What etcd answers, as small frozen types: nothing above the adapter sees protobuf or gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["EtcdTLS", "EventType", "KeyValue", "RangeResult", "RawEvent", "TxnResult", "WatchBatch"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key at one revision, as etcd's ``mvccpb.KeyValue``."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One etcd watch event; for a DELETE, ``kv`` has only the key and the deletion's revision.

    There is no ``prev_kv``: the cache holds every key's previous state already, and asking etcd for
    it would cost etcd one extra range read per event.
    """

    type: EventType
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: events in revision order, or none (a progress notification).

    ``revision`` is the store revision the response was sent at: once a batch is received, every event
    of the watched range up to ``revision`` has been received — except for the requested progress
    notifications of etcd < 3.4.25, which is why the cache never requests them (see docs/).
    """

    revision: int
    events: tuple[RawEvent, ...]


@dataclass(frozen=True, slots=True)
class RangeResult:
    revision: int
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    """The outcome of a compare-and-swap: ``current`` is the key's state when the compare failed,
    or the previous state when a delete succeeded."""

    succeeded: bool
    revision: int
    current: KeyValue | None


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """Client TLS towards etcd (kube-apiserver's ``--etcd-cafile/--etcd-certfile/--etcd-keyfile``)."""

    cafile: str | None = None
    """PEM bundle of CAs that sign etcd's serving certificate; None uses the system roots."""
    certfile: str | None = None
    """PEM client certificate presented to etcd, if etcd requires client authentication."""
    keyfile: str | None = None
    """PEM private key of ``certfile``."""

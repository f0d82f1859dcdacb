"""Watch responses as bytes: each change's event encoded once and shared by every watcher of it.

Protobuf messages concatenate: a ``WatchResponse`` is its header and ``watch_id`` (the part of each
watcher's own) followed by its ``events`` fields, and the encoded field of a change's event — with or
without ``prev_kv`` — is made once, kept in the change's memo, and spliced into every watcher's
response. The header field is encoded once per revision (:meth:`.front.Front.header_field`) and each
watch's ``watch_id`` field once per watch: a watcher's response is a list of shared pieces, joined once,
into the HTTP/2 frame that carries it.
"""

from __future__ import annotations

from collections.abc import Iterable

from aetcd.rpc import kv_pb2, rpc_pb2

from ..cache.window import Change, ChangeType
from ..etcd.types import KeyValue

__all__ = ["event_field", "events_blob", "response", "response_parts", "to_pb", "watch_id_field"]

_EVENTS_TAG = b"\x5a"  # field 11 (events), wire type 2 (length-delimited)
_WATCH_ID_TAG = b"\x10"  # field 2 (watch_id), wire type 0 (varint)
_UINT64 = (1 << 64) - 1
_NOPUT, _NODELETE = 0, 1  # WatchCreateRequest.FilterType


def to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def event_field(change: Change, *, prev_kv: bool) -> bytes:
    """``change`` as an encoded ``events`` field of a WatchResponse, made once per form."""
    memo_key = ("etcd-event", prev_kv)
    field: bytes | None = change.memo.get(memo_key)
    if field is None:
        deleted = change.type is ChangeType.DELETED
        event = kv_pb2.Event(
            type=kv_pb2.Event.DELETE if deleted else kv_pb2.Event.PUT, kv=to_pb(change.entry.kv)
        )
        if prev_kv and change.prev is not None:
            event.prev_kv.CopyFrom(to_pb(change.prev.kv))
        body = event.SerializeToString()
        field = change.memo[memo_key] = _EVENTS_TAG + _varint(len(body)) + body
    return field


def events_blob(
    changes: list[Change], key_range: tuple[bytes, bytes] | None, prev_kv: bool, filters: frozenset[int]
) -> tuple[bytes, int]:
    """The event fields a watch is sent for ``changes`` (what one dispatch selected for it), joined, and
    how many there are; made once for every watch of the same range and options. Watches of one range
    are offered the same changes of a dispatch from their start on, so the first change, the count and
    the range name the list (kept in the last change's memo)."""
    memo_key = ("etcd-events", changes[0], len(changes), key_range, prev_kv, filters)
    memo = changes[-1].memo
    found: tuple[bytes, int] | None = memo.get(memo_key)
    if found is None:
        fields = [
            event_field(change, prev_kv=prev_kv)
            for change in changes
            if (_NODELETE if change.type is ChangeType.DELETED else _NOPUT) not in filters
        ]
        found = memo[memo_key] = (b"".join(fields), len(fields))
    return found


def watch_id_field(watch_id: int) -> bytes:
    """The encoded ``watch_id`` field (none for 0, as protobuf leaves out defaults; an int64's
    negative values take ten bytes)."""
    return _WATCH_ID_TAG + _varint(watch_id & _UINT64) if watch_id else b""


def response_parts(header_field: bytes, watch_id: bytes, events: list[bytes]) -> list[bytes]:
    """A WatchResponse as pieces: the header field, the watch's id field, the shared event fields."""
    return [header_field, watch_id, *events]


def response(header: rpc_pb2.ResponseHeader, watch_id: int, events: Iterable[bytes] = ()) -> bytes:
    """A WatchResponse of one watcher: its header and id, then shared event fields."""
    head: bytes = rpc_pb2.WatchResponse(header=header, watch_id=watch_id).SerializeToString()
    return head + b"".join(events)

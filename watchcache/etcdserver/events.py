"""Watch responses as bytes: each change's event encoded once and shared by every watcher of it.

Protobuf messages concatenate: a ``WatchResponse`` is its header and ``watch_id`` (the part of each
watcher's own) followed by its ``events`` fields, and the encoded field of a change's event — with or
without ``prev_kv`` — is made once, kept in the change's memo, and spliced into every watcher's
response. The header field is encoded once per revision (:meth:`.front.Front.header_field`) and each
watch's ``watch_id`` field once per watch: a watcher's response is a list of shared pieces, joined once,
into the HTTP/2 frame that carries it. On the fan-out's fast path even the framed message (gRPC length
prefix, header, id, events) is made once per dispatch for every watch with the same range, options and
id (:func:`watch_message`): what each watch adds is its HTTP/2 frame header.
"""

from __future__ import annotations

from collections.abc import Iterable

from aetcd.rpc import kv_pb2, rpc_pb2

from ..cache.window import Change, ChangeType
from ..etcd.types import KeyValue

__all__ = ["event_field", "response", "response_parts", "to_pb", "watch_id_field", "watch_message"]

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


class _Selected:
    """The event fields one dispatch selected for the watches of a range and options, and the framed
    messages made of them, one per header and watch id (shared by every watch that has those)."""

    __slots__ = ("blob", "count", "messages")

    def __init__(self, blob: bytes, count: int) -> None:
        self.blob = blob
        self.count = count
        self.messages: dict[tuple[bytes, bytes], tuple[list[bytes], int]] = {}


def watch_message(
    changes: list[Change],
    key_range: tuple[bytes, bytes] | None,
    prev_kv: bool,
    filters: frozenset[int],
    *,
    header_field: bytes,
    watch_id: bytes,
) -> tuple[list[bytes], int] | None:
    """The gRPC message (length prefix included) a watch is sent for ``changes`` — what one dispatch
    selected for it — as pieces and their size; None when its filters leave no event.

    Made once for every watch of the same range, options, header and id: the watches of one range are
    offered the same changes of a dispatch from their start on, so the first change, the count and the
    range name the selection (kept in the last change's memo). The pieces are shared, never changed.
    """
    memo_key = ("etcd-events", changes[0], len(changes), key_range, prev_kv, filters)
    memo = changes[-1].memo
    selected: _Selected | None = memo.get(memo_key)
    if selected is None:
        fields = [
            event_field(change, prev_kv=prev_kv)
            for change in changes
            if (_NODELETE if change.type is ChangeType.DELETED else _NOPUT) not in filters
        ]
        selected = memo[memo_key] = _Selected(b"".join(fields), len(fields))
    if not selected.count:
        return None
    message = selected.messages.get((header_field, watch_id))
    if message is None:
        size = len(header_field) + len(watch_id) + len(selected.blob)
        head = b"\0" + size.to_bytes(4, "big") + header_field + watch_id
        message = selected.messages[header_field, watch_id] = ([head, selected.blob], size + 5)
    return message


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

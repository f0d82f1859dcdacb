"""The REST front's wire format: Status errors, JSON bodies, watch-event lines and chunk framing.

A watch event line is ``{"type": ..., "object": ...}\\n`` around the object's cached bytes; it and
its HTTP/1.1 chunk framing are made once per event and kept in :attr:`WatchEvent.encoded`, which an
event made from a change shares with every watcher of its type and version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import orjson
from aiohttp import web

from ..api.watch import Shared, WatchEvent
from ..errors import StatusError

__all__ = [
    "JSON",
    "chunk",
    "event_chunk",
    "event_chunks",
    "event_line",
    "event_lines",
    "json_response",
    "list_head",
    "list_meta",
    "status_response",
]

JSON = "application/json"

_HEADS: dict[str, bytes] = {
    t: b'{"type":"' + t.encode() + b'","object":'
    for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
}


def status_response(err: StatusError, *, close: bool = False) -> web.Response:
    """The HTTP response for an error: its Kubernetes ``Status``, code and ``Retry-After``; with
    ``close``, the connection is closed after it."""
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    response = web.Response(
        body=orjson.dumps(err.status()), status=err.code, content_type=JSON, headers=headers
    )
    if close:
        response.force_close()
    return response


def json_response(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON)


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def event_line(event: WatchEvent) -> bytes:
    """The watch-stream line of ``event``, made once."""
    line = event.encoded.get("line")
    if line is None:
        line = event.encoded["line"] = _HEADS[event.type] + event.raw + b"}\n"
    return line


def event_chunk(event: WatchEvent) -> bytes:
    """The watch-stream line of ``event`` framed as one HTTP/1.1 chunk, made once."""
    framed = event.encoded.get("chunk")
    if framed is None:
        framed = event.encoded["chunk"] = chunk(event_line(event))
    return framed


def event_lines(events: list[WatchEvent]) -> bytes:
    """``events``' lines as one piece; made once for a :class:`Shared` list, for every watcher it
    goes to. (One event, or a list already joined, costs no call more: this runs per watcher.)"""
    if len(events) == 1:
        return event_line(events[0])
    if type(events) is Shared and (data := events.memo.get("lines")) is not None:
        return cast(bytes, data)
    return _joined(events, event_line, "lines")


def event_chunks(events: list[WatchEvent]) -> bytes:
    """``events``' chunks as one piece; made once for a :class:`Shared` list, for every watcher it
    goes to (as :func:`event_lines`)."""
    if len(events) == 1:
        return event_chunk(events[0])
    if type(events) is Shared and (data := events.memo.get("chunks")) is not None:
        return cast(bytes, data)
    return _joined(events, event_chunk, "chunks")


def _joined(events: list[WatchEvent], piece: Callable[[WatchEvent], bytes], key: str) -> bytes:
    """``events`` made into ``piece``s and joined; kept in a :class:`Shared` list's memo as ``key``."""
    data = b"".join([piece(event) for event in events])
    if type(events) is Shared:
        events.memo[key] = data
    return data


def list_meta(revision: int, continue_token: str | None, remaining: int | None) -> dict[str, object]:
    """A list's ``metadata`` (ListMeta): its resourceVersion, continue token and remaining count."""
    meta: dict[str, object] = {"resourceVersion": str(revision)}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return meta


def list_head(
    kind: str, api_version: str, revision: int, continue_token: str | None, remaining: int | None
) -> bytes:
    """A LIST body up to its items: ``{"kind", "apiVersion", "metadata", "items":[``."""
    meta = list_meta(revision, continue_token, remaining)
    head = orjson.dumps({"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta})
    return head[:-1] + b',"items":['

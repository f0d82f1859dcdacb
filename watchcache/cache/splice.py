"""Where an object's served JSON differs from etcd's bytes: the points a splice edits.

The cache keeps one copy of each object, etcd's value bytes (what the etcd front serves verbatim), and
serves its JSON as pieces of those bytes around two edits: ``"resourceVersion":"N"`` inserted first in
the top-level ``metadata``, and, through another version of the resource, the top-level
``apiVersion`` string replaced. :func:`find` locates both once, when the object enters the cache, and
proves them top-level; a value it cannot prove (another key order, a nested member first, a duplicate
key, escapes in ``apiVersion``) gets None, and the cache keeps a re-encoded copy of that object instead.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["Points", "find", "rv_member"]

_METADATA = re.compile(rb'"metadata"[ \t\n\r]*:[ \t\n\r]*\{')
_API_VERSION = re.compile(rb'"apiVersion"[ \t\n\r]*:[ \t\n\r]*"')
_BEFORE_KEY = frozenset(b"{, \t\n\r")
_WS = b" \t\n\r"
# An apiVersion no object has, put in the proof's splice: were the top-level apiVersion another member
# than the one found (a duplicate key), the parsed result would not show it.
_PROBE = "\x00watchcache-probe"
_PROBE_QUOTED = orjson.dumps(_PROBE)

Points = tuple[int, int]
"""``(a, at)``: where the top-level ``apiVersion`` string starts (its opening quote), and the
metadata insertion point: just after the top-level ``metadata``'s ``{``, negated when that object
is empty (the inserted member then takes no comma)."""


def rv_member(*, comma: bool) -> bytes:
    """The member inserted first in ``metadata``, its revision a ``%d`` to format (followed by a comma
    unless ``metadata`` is otherwise empty)."""
    return b'"resourceVersion":"%d",' if comma else b'"resourceVersion":"%d"'


def find(value: bytes, obj: dict[str, Any]) -> Points | None:
    """The splice points of ``value`` (whose parse is ``obj``), or None when they cannot be proven.

    Cheap byte-level proof first: the members before ``"metadata":{`` contain no ``{`` or ``[`` (so
    they are scalars, and the key is top-level), the top-level ``apiVersion`` string comes before it
    with no escape inside; then the parse of the spliced bytes must show both edits (no duplicate
    ``metadata`` or ``apiVersion`` key later overrides them). ``metadata`` must not hold a
    ``resourceVersion`` already (kube-apiserver clears it before storing).
    """
    meta = obj.get("metadata")
    api_version = obj.get("apiVersion")
    if not isinstance(meta, dict) or "resourceVersion" in meta:
        return None
    if not isinstance(api_version, str) or api_version == _PROBE:
        return None
    found = _metadata(value)
    if found is None:
        return None
    start, key, at = found
    span = _api_version(value, start, key)
    if span is None:
        return None
    a, b = span
    empty = value[at:].lstrip(_WS)[:1] == b"}"
    return (a, -at if empty else at) if _proven(value, a, b, at, empty=empty) else None


def _metadata(value: bytes) -> tuple[int, int, int] | None:
    """Where the object starts, where its top-level ``"metadata"`` key starts, and the point just
    after that object's ``{``, when only scalar members precede it."""
    start = value.find(b"{")
    if start < 0 or value[:start].strip(_WS):
        return None
    m = _METADATA.search(value, start + 1)
    if m is None:
        return None
    key = m.start()
    if value.find(b"{", start + 1, key) >= 0 or value.find(b"[", start + 1, key) >= 0:
        return None
    if value[key - 1] not in _BEFORE_KEY:
        return None
    return start, key, m.end()


def _api_version(value: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The span of the top-level ``apiVersion`` string (quotes included) among the scalar members
    between ``start`` and ``end``, when it holds no escape."""
    m = _API_VERSION.search(value, start + 1, end)
    if m is None or value[m.start() - 1] not in _BEFORE_KEY:
        return None
    a = m.end() - 1
    b = value.find(b'"', a + 1) + 1
    if b <= 0 or b > end or value.find(b"\\", a, b) >= 0:
        return None
    return a, b


def _proven(value: bytes, a: int, b: int, at: int, *, empty: bool) -> bool:
    """Whether the spliced bytes parse with both edits showing (no later duplicate key hides one)."""
    probe = b"".join((value[:a], _PROBE_QUOTED, value[b:at], rv_member(comma=not empty) % 1, value[at:]))
    try:
        spliced = orjson.loads(probe)
    except orjson.JSONDecodeError:
        return False
    meta = spliced.get("metadata")
    if spliced.get("apiVersion") != _PROBE or not isinstance(meta, dict):
        return False
    return meta.get("resourceVersion") == "1"

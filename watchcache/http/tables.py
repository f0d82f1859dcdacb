"""Table answers: LIST, GET and WATCH as ``meta.k8s.io`` Tables, for clients that ask (``kubectl get``).

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;
g=meta.k8s.io,application/json``; kube-apiserver answers the first clause it can (``negotiation``), so a
Table in ``meta.k8s.io/v1`` (or ``v1beta1``), still as ``Content-Type: application/json``. A Table is
``{"kind":"Table","apiVersion","metadata":{resourceVersion, continue, remainingItemCount},
"columnDefinitions":[…],"rows":[{"cells":[…],"object":…}]}``; a watch sends one per event, the first
with the column definitions and the others with ``"columnDefinitions":null`` (kube's ``NoHeaders``
after the first), ERROR events as they are.

Rendering is per request (its rows are made from the cached bytes, which the plain answers keep using
untouched); a watch event's Table line is made once per event, version and ``includeObject`` and shared
by every Table watcher of it, as kube-apiserver caches a watch event's Table encoding. Requests that
do not ask for a Table pay one substring test of their ``Accept`` header.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..api.spec import ResourceSpec
from ..api.table import TABLE_GROUP, TABLE_VERSIONS, TableConvertor, TableOptions, partial_object_metadata
from ..api.watch import INITIAL_EVENTS_END, WatchEvent
from .discovery import quality
from .wire import event_line

__all__ = ["TableAnswer", "Tables"]

_TABLE_HEADS: dict[str, bytes] = {
    t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")
}


def table_version(accept: str | None) -> str | None:
    """The ``meta.k8s.io`` version of the Table an ``Accept`` header asks for first, or None when its
    first answerable clause is plain JSON (or there is no Table clause at all)."""
    if not accept or "Table" not in accept:
        return None
    clauses: list[tuple[float, int, str, dict[str, str]]] = []
    for position, clause in enumerate(accept.split(",")):
        media, *raw_params = clause.split(";")
        params = {}
        for param in raw_params:
            key, _, value = param.partition("=")
            params[key.strip().lower()] = value.strip()
        q = quality(";".join(raw_params))
        if q > 0:
            clauses.append((-q, position, media.strip().lower(), params))
    for _, _, media, params in sorted(clauses):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        target = {k: params.get(k) for k in ("as", "g", "v")}
        if target == {"as": None, "g": None, "v": None}:
            return None  # plain JSON comes first
        if target["as"] == "Table" and target["g"] == TABLE_GROUP and target["v"] in TABLE_VERSIONS:
            return f"{TABLE_GROUP}/{target['v']}"
        # another conversion (PartialObjectMetadata, say) is not served: the next clause may be
    return None


class TableAnswer:
    """One request's Tables: the resource's columns, the Table version asked for, ``includeObject``."""

    def __init__(self, convertor: TableConvertor, api_version: str, options: TableOptions) -> None:
        self._convertor = convertor
        self.api_version = api_version
        self._include = options.include_object
        self._columns = orjson.dumps(convertor.definitions)
        self._memo = ("table", api_version, self._include)

    def row(self, raw: bytes, now: datetime.datetime, *, metadata: bool = False) -> bytes:
        """The row of one object's JSON (as served through the request's version); ``metadata``:
        its object is a PartialObjectMetadata unless ``includeObject=None``."""
        return self._row(orjson.loads(raw), raw, now, metadata=metadata)

    def _row(self, obj: dict[str, Any], raw: bytes, now: datetime.datetime, *, metadata: bool) -> bytes:
        cells = orjson.dumps(self._convertor.cells(obj, now))
        if self._include == "Object" and not metadata:
            shown = raw
        elif self._include == "None":
            shown = b"null"
        else:
            shown = orjson.dumps(partial_object_metadata(obj, self.api_version))
        return b'{"cells":' + cells + b',"object":' + shown + b"}"

    def rows(self, raws: Sequence[bytes], now: datetime.datetime) -> bytes:
        """Rows, comma separated (as inside a Table's ``rows``)."""
        return b",".join([self.row(raw, now) for raw in raws])

    def head(self, meta: Mapping[str, Any], *, columns: bool = True) -> bytes:
        """A Table up to its rows: ``{"kind","apiVersion","metadata","columnDefinitions","rows":[``."""
        head = orjson.dumps({"kind": "Table", "apiVersion": self.api_version, "metadata": meta})
        definitions = self._columns if columns else b"null"
        return head[:-1] + b',"columnDefinitions":' + definitions + b',"rows":['

    def single(self, raw: bytes, now: datetime.datetime) -> bytes:
        """A Table of one object, at the object's resourceVersion (a GET's answer)."""
        obj = orjson.loads(raw)
        meta = obj.get("metadata")
        revision = meta.get("resourceVersion", "") if isinstance(meta, dict) else ""
        row = self._row(obj, raw, now, metadata=False)
        return self.head({"resourceVersion": revision}) + row + b"]}"

    def _event_table(self, event: WatchEvent, now: datetime.datetime, *, columns: bool) -> bytes:
        # As kube-apiserver: the bookmark that ends a watch's initial events shows its metadata (the
        # annotation saying so) even to includeObject=Object.
        initial_end = event.type == "BOOKMARK" and INITIAL_EVENTS_END.encode() in event.raw
        row = self.row(event.raw, now, metadata=initial_end)
        head = self.head({"resourceVersion": str(event.revision)}, columns=columns)
        return _TABLE_HEADS[event.type] + head + row + b"]}}\n"

    def event_lines(self, events: Sequence[WatchEvent], *, columns: bool) -> tuple[bytes, bool]:
        """The watch-stream lines of ``events``; the first Table among them carries the column
        definitions when ``columns``. Returns the lines and whether they still owe the columns."""
        now = datetime.datetime.now(datetime.UTC)
        lines = []
        for event in events:
            if event.type == "ERROR":
                lines.append(event_line(event))
                continue
            if columns:
                lines.append(self._event_table(event, now, columns=True))
                columns = False
                continue
            line = event.encoded.get(self._memo)
            if line is None:
                line = event.encoded[self._memo] = self._event_table(event, now, columns=False)
            lines.append(line)
        return b"".join(lines), columns


class Tables:
    """Every resource's Table columns, made once, and what a request asks for."""

    def __init__(self, specs: Sequence[ResourceSpec]) -> None:
        self._convertors = {(spec.group, spec.resource): TableConvertor(spec) for spec in specs}

    def answer(self, spec: ResourceSpec, accept: str | None, query: Mapping[str, str]) -> TableAnswer | None:
        """The Table a request asks for (400 for a bad ``includeObject``), or None for plain JSON."""
        version = table_version(accept)
        if version is None:
            return None
        convertor = self._convertors[(spec.group, spec.resource)]
        return TableAnswer(convertor, version, TableOptions.from_query(query))

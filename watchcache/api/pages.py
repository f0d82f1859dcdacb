"""LIST answers: a page of cached entries, the result of the Python API, and continue tokens.

A continue token is opaque to clients: base64url JSON naming the revision of the list's snapshot and
the key after which the next page starts (relative to the resource's prefix, so a token can never
point outside the resource). Anything else presented as a token is 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..cache.store import Codec, Entry, Snapshot
from ..errors import BadRequestError
from ..selectors import Selector

__all__ = ["Cut", "ListResult", "Page", "Piece", "cut_page", "decode_continue", "encode_continue"]

_CONTINUE_VERSION = "watchcache/v1"


@dataclass(frozen=True, slots=True)
class ListResult:
    """One LIST answer: raw items are the objects' JSON, spliced from the cached values."""

    resource_version: str
    continue_token: str | None
    remaining_item_count: int | None
    raw_items: list[bytes]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items as dicts (parsed on each access)."""
        return [orjson.loads(raw) for raw in self.raw_items]


@dataclass(frozen=True, slots=True)
class Page:
    """One LIST answer as references to the cache's entries, whose bytes every reader shares.

    Nothing is copied until a reader asks: :meth:`item` gives one item's bytes as served through
    the page's version (spliced from the cached value), and :class:`Piece` a run of them joined
    once, so a front can write a large answer piece by piece without ever holding a second copy of
    it.
    """

    revision: int
    continue_token: str | None
    remaining_item_count: int | None
    entries: Sequence[Entry]
    api_version: str
    codec: Codec

    def item(self, entry: Entry) -> bytes:
        assert entry.served, "a page holds only objects served over REST"
        return self.codec.served(entry, self.api_version)

    def pieces(self, size: int) -> Iterator[Piece]:
        """The items in runs of about ``size`` bytes (at least one item each), none built yet."""
        run: list[Entry] = []
        total = 0
        for entry in self.entries:
            run.append(entry)
            # About the item's size (its value's, the resourceVersion and a comma more): not the
            # entry's size property, a call per item of every LIST.
            total += len(entry.value) + 33
            if total >= size:
                yield Piece(self, run, total)
                run, total = [], 0
        if run:
            yield Piece(self, run, total)

    def result(self) -> ListResult:
        return ListResult(
            str(self.revision),
            self.continue_token,
            self.remaining_item_count,
            [self.item(entry) for entry in self.entries],
        )


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of a page's items: about how many bytes it makes, and its bytes when asked."""

    page: Page
    entries: Sequence[Entry]
    size: int

    def __len__(self) -> int:
        return len(self.entries)

    def render(self) -> bytes:
        """The items' JSON, comma separated (as inside a list's ``items``): every item's pieces
        joined at once, the one copy of them the answer makes."""
        return self.page.codec.join(self.entries, self.page.api_version)


@dataclass(frozen=True, slots=True)
class Cut:
    """What part of a state a LIST answers with."""

    start: bytes
    end: bytes
    selector: Selector
    limit: int
    api_version: str


def cut_page(snap: Snapshot, cut: Cut, *, prefix: bytes, codec: Codec, more_in_etcd: bool = False) -> Page:
    """The page of ``snap`` that ``cut`` asks for, with the token of the next one."""
    entries = snap.entries
    i = snap.position(cut.start)
    stop = snap.position(cut.end) if cut.end else len(entries)
    selector, limit = cut.selector, cut.limit
    items: list[Entry] = []
    last: Entry | None = None
    while i < stop and (not limit or len(items) < limit):
        entry = entries[i]
        i += 1
        last = entry
        if entry.served and (selector.empty or selector.matches(entry.name, entry.namespace, entry.labels)):
            items.append(entry)
    more = i < stop or more_in_etcd
    token = None
    remaining = None
    if more and last is not None:
        token = encode_continue(snap.revision, last.key, prefix)
        if selector.empty and not more_in_etcd:
            left = entries[i:stop] if snap.unserved else ()
            remaining = stop - i - sum(not e.served for e in left)
    return Page(snap.revision, token, remaining, items, cut.api_version, codec)


def encode_continue(revision: int, last_key: bytes, prefix: bytes) -> str:
    suffix = last_key[len(prefix) :].decode()
    raw = orjson.dumps({"v": _CONTINUE_VERSION, "rv": revision, "start": suffix + "\0"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str, prefix: bytes) -> tuple[int, bytes]:
    """(revision, first key to return) of a continue token; 400 for anything not ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(data, dict) or data.get("v") != _CONTINUE_VERSION:
            raise ValueError("not a watchcache continue token")
        revision, start = data["rv"], data["start"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision <= 0:
            raise ValueError("bad revision")
        # The start key only bounds a range inside the list's own range, so any string is
        # harmless; the length bound keeps keys sane.
        if not isinstance(start, str) or not start or len(start) > 1024:
            raise ValueError("bad start key")
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as err:
        raise BadRequestError(f"invalid continue token: {err}") from None
    return revision, prefix + start.encode()

"""Watch-event lines and HTTP/1.1 chunks: one piece per batch, made once for a list many watchers share."""

from __future__ import annotations

from watchcache.api.watch import Shared, WatchEvent
from watchcache.http.wire import event_chunks, event_lines


def events() -> list[WatchEvent]:
    return [
        WatchEvent("ADDED", b'{"metadata":{"name":"a"}}', 5),
        WatchEvent("DELETED", b'{"metadata":{"name":"b"}}', 6),
    ]


LINES = (
    b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n'
    b'{"type":"DELETED","object":{"metadata":{"name":"b"}}}\n'
)


def test_lines_and_chunks_of_a_batch() -> None:
    batch = events()
    assert event_lines(batch) == LINES
    assert event_lines(batch[:1]) == LINES.split(b"\n", 1)[0] + b"\n"
    first, second = LINES.splitlines(keepends=True)
    assert event_chunks(batch) == b"%x\r\n%b\r\n%x\r\n%b\r\n" % (len(first), first, len(second), second)


def test_a_shared_list_is_joined_once_for_every_watcher() -> None:
    """The dispatch hands one Shared list to many watchers: its lines and its chunks are each made
    by the first and the same bytes object is handed to every other; a plain list is joined anew."""
    shared = Shared(events())
    lines, chunks = event_lines(shared), event_chunks(shared)
    assert lines == LINES
    assert event_lines(shared) is lines and event_chunks(shared) is chunks
    plain = events()
    assert event_lines(plain) == lines and event_lines(plain) is not event_lines(plain)

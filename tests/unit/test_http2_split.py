"""The HTTP/2 transport cuts a message of shared pieces into frames without copying them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watchcache.transport.http2 import split

pieces = st.lists(st.binary(min_size=0, max_size=40), max_size=8)


@given(pieces, st.data())
def test_split_cuts_at_the_size_and_keeps_every_byte_in_order(
    parts: list[bytes], data: st.DataObject
) -> None:
    whole = b"".join(parts)
    size = data.draw(st.integers(0, len(whole)))
    head, rest = split(list(parts), size)
    assert b"".join(bytes(p) for p in head) == whole[:size]
    assert b"".join(bytes(p) for p in rest) == whole[size:]


def test_split_hands_out_the_pieces_themselves_and_views_of_the_one_it_cuts() -> None:
    shared, tail = b"x" * 10, b"y" * 10
    head, rest = split([shared, tail], 15)
    assert head[0] is shared  # not a copy
    assert isinstance(head[1], memoryview) and isinstance(rest[0], memoryview)
    assert head[1].obj is tail and rest[0].obj is tail

"""When parked watches end (``timeoutSeconds``): the shared deadline buckets of ``watchcache/http/watch.py``,
in memory with stand-ins for the watches."""

from __future__ import annotations

import asyncio
from typing import Any

from support.waiting import wait_until

from watchcache.http.watch import _Deadlines


class Watch:
    """Stands in for a parked watch: records when it was ended."""

    def __init__(self) -> None:
        self.ended_at: float | None = None
        self.bucket: dict[Any, None] | None = None

    def end(self) -> None:
        assert self.ended_at is None, "ended twice"
        self.ended_at = asyncio.get_running_loop().time()
        if self.bucket is not None:  # as a parked watch leaves its bucket when it ends
            self.bucket.pop(self, None)


async def test_watches_end_in_deadline_order_no_earlier_and_at_most_a_tick_late() -> None:
    """Three short deadlines out of order and one long one: each short one ends at or after its
    deadline and at most FINE seconds late; the long one (COARSE buckets) does not end meanwhile."""
    deadlines = _Deadlines()
    loop = asyncio.get_running_loop()
    start = loop.time()
    delays = [0.3, 0.1, 0.2]
    watches = [Watch() for _ in delays]
    for watch, delay in zip(watches, delays, strict=True):
        watch.bucket = deadlines.add(watch, delay)
    long = Watch()
    long.bucket = deadlines.add(long, 120.0)
    await wait_until(lambda: all(w.ended_at is not None for w in watches), within=5, interval=0.01)
    for watch, delay in zip(watches, delays, strict=True):
        assert watch.ended_at is not None
        late = watch.ended_at - (start + delay)
        assert -0.002 <= late <= _Deadlines.FINE + 0.1, (delay, late)
    assert long.ended_at is None
    deadlines.close()


async def test_a_watch_closed_before_its_deadline_is_not_ended() -> None:
    """A watch that leaves its bucket (its connection closed) is not ended by the timer; its
    bucket-mates still are."""
    deadlines = _Deadlines()
    gone, stays = Watch(), Watch()
    gone.bucket = deadlines.add(gone, 0.05)
    stays.bucket = deadlines.add(stays, 0.05)
    assert gone.bucket is stays.bucket
    gone.bucket.pop(gone)
    await wait_until(lambda: stays.ended_at is not None, within=5, interval=0.01)
    assert gone.ended_at is None
    deadlines.close()

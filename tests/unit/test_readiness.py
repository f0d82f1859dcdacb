"""What a cache that has not loaded answers, and how its feed retries: in memory, milliseconds per test.

A cache still loading from an etcd that answers is 429 (retry shortly); one whose feed cannot reach etcd
is 503 ``etcd is unreachable (<cause>)``. The feed retries with a capped exponential backoff and logs
the first failure of a series and the recovery, each once. The same against a real etcd, stopped and
paused: tests/integration/test_etcd_unreachable.py.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from support.memory_etcd import MemoryEtcd
from support.waiting import wait_until

from watchcache.cache.backoff import Backoff
from watchcache.cache.cacher import Cache
from watchcache.cache.settings import CacheSettings
from watchcache.cache.store import Codec
from watchcache.errors import (
    EtcdUnreachableError,
    InternalError,
    StatusError,
    TimedOutError,
    TooManyRequestsError,
)
from watchcache.etcd.types import RangeResult
from watchcache.keys import KeyLayout

LAYOUT = KeyLayout("/registry", "wardle.example.com", "flunders", True)
CODEC = Codec(("wardle.example.com/v1alpha1",))
FEED_LOGGER = "watchcache.cache.reflector"


class GatedEtcd(MemoryEtcd):
    """A keyspace whose ranges wait for ``gate`` and then fail with ``failure`` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.failure: StatusError | None = None
        self.failed = 0

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        await self.gate.wait()
        if self.failure is not None:
            self.failed += 1
            raise self.failure
        return await super().range(
            key, range_end, revision=revision, limit=limit, count_only=count_only, serializable=serializable
        )


def started(etcd: GatedEtcd) -> Cache:
    settings = CacheSettings(retry_backoff_max=0.02)
    cache = Cache(source=etcd, layout=LAYOUT, codec=CODEC, settings=settings, name="flunders")
    cache.start()
    return cache


def not_ready(cache: Cache) -> StatusError:
    with pytest.raises(StatusError) as raised:
        cache.check_ready()
    return raised.value


def test_backoff_doubles_up_to_its_cap_and_starts_over() -> None:
    """Each delay is drawn from the upper half of its step; steps double from ``first`` and stop at
    ``cap``, which no delay exceeds; reset() starts over."""
    backoff = Backoff(first=0.05, cap=1.0)
    steps = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for step in steps:
        assert step / 2 <= backoff.delay() <= step
    backoff.reset()
    assert backoff.delay() <= 0.05


async def test_loading_from_an_etcd_that_answers_is_429() -> None:
    """While the first list is on its way (etcd has not failed it), the cache is still loading: 429
    with Retry-After; once it is in, the cache serves."""
    etcd = GatedEtcd()
    cache = started(etcd)
    try:
        error = not_ready(cache)
        assert isinstance(error, TooManyRequestsError)
        assert error.status()["message"] == "the cache of flunders is still loading; retry shortly"
        assert error.status()["details"] == {"retryAfterSeconds": 1}
        etcd.gate.set()
        await cache.wait_ready(5)
        cache.check_ready()
    finally:
        await cache.stop()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            EtcdUnreachableError("range: failed to connect to all addresses"),
            "etcd is unreachable (range: failed to connect to all addresses)",
        ),
        (
            TimedOutError("no answer from etcd to range within 5 s"),
            "etcd is unreachable (no answer from etcd to range within 5 s)",
        ),
    ],
)
async def test_a_feed_that_cannot_reach_etcd_makes_it_503(
    failure: StatusError, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the first list failed because etcd could not be reached (no connection, or no answer in
    time), the cache says so — 503 ServiceUnavailable ``etcd is unreachable (<cause>)``, a new error
    each time — instead of 429; wait_ready() ends with the same. The feed retries quietly: its first
    failure is logged at info, the others at debug, its recovery once at info; no warning."""
    caplog.set_level(logging.DEBUG, logger=FEED_LOGGER)
    etcd = GatedEtcd()
    etcd.failure = failure
    etcd.gate.set()
    cache = started(etcd)
    try:
        await wait_until(lambda: etcd.failed >= 5, message="five failed attempts")
        first, second = not_ready(cache), not_ready(cache)
        assert first is not second
        for error in (first, second):
            assert isinstance(error, EtcdUnreachableError)
            status = error.status()
            assert (status["code"], status["reason"]) == (503, "ServiceUnavailable")
            assert status["message"] == message
            assert status["details"] == {"retryAfterSeconds": 1}
        with pytest.raises(EtcdUnreachableError, match="etcd is unreachable"):
            await cache.wait_ready(0.01)

        etcd.failure = None
        await cache.wait_ready(5)
        cache.check_ready()
        await wait_until(lambda: cache.readiness.connected, message="the watch is up")
    finally:
        await cache.stop()
    feed = [r for r in caplog.records if r.name == FEED_LOGGER]
    assert not [r for r in feed if r.levelno >= logging.WARNING]
    infos = [r.getMessage() for r in feed if r.levelno == logging.INFO]
    assert len(infos) == 2, infos
    assert infos[0].startswith(f"flunders: initial list failed ({message}); retrying with backoff")
    assert infos[1].startswith("flunders: etcd watch established from revision 2 after ")
    assert len([r for r in feed if r.levelno == logging.DEBUG]) >= 4


async def test_a_feed_failing_otherwise_still_loads_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """A failure that is not etcd being unreachable (here an internal error) leaves the cache
    "still loading" (429), and is a warning — once for the series, not once per attempt."""
    caplog.set_level(logging.DEBUG, logger=FEED_LOGGER)
    etcd = GatedEtcd()
    etcd.failure = InternalError("etcd failed range: PERMISSION_DENIED")
    etcd.gate.set()
    cache = started(etcd)
    try:
        await wait_until(lambda: etcd.failed >= 5, message="five failed attempts")
        assert isinstance(not_ready(cache), TooManyRequestsError)
    finally:
        await cache.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "PERMISSION_DENIED" in warnings[0]

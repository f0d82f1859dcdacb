"""Waiting for a condition against a deadline, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aetcd

T = TypeVar("T")


async def wait_until(
    condition: Callable[[], T | Awaitable[T]],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``condition`` (sync or async) until it returns a truthy value, and return that value.

    Raises :class:`AssertionError` naming ``message`` after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {within:g} s")
        await asyncio.sleep(interval)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    within: float = 10.0,
    interval: float = 0.1,
    errors: tuple[type[BaseException], ...] = (aetcd.ClientError,),
) -> T:
    """Await ``operation()`` until it stops raising one of ``errors``; after ``within`` seconds,
    let the last error through."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await operation()
        except errors:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)

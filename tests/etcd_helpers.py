"""Helpers for tests that talk to etcd directly or wait for a condition.

Tests write "straight to etcd" with a plain aetcd client (as another etcd user would), and poll
conditions against a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import aetcd

T = TypeVar("T")

RPC_TIMEOUT = 10.0
"""Seconds any single etcd RPC of a test client may take (a hung etcd fails the test, not hangs)."""


def host_port(endpoint: str) -> tuple[str, int]:
    """Split ``http://host:port`` into ``(host, port)``."""
    parts = urlsplit(endpoint)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not an etcd endpoint: {endpoint!r}")
    return parts.hostname, parts.port


def etcd_client(endpoint: str, *, timeout: float = RPC_TIMEOUT) -> aetcd.Client:
    """A direct aetcd client for ``endpoint``; use as ``async with etcd_client(url) as kv:``.

    ``timeout`` bounds each RPC (shorten it when retrying through a failover: etcd itself holds a
    request up to 7 s when it cannot reach the leader).
    """
    host, port = host_port(endpoint)
    return aetcd.Client(host=host, port=port, timeout=timeout)


def unique_prefix() -> str:
    """A fresh etcd key prefix such as ``/registry-t1a2b3c4d``."""
    return f"/registry-t{secrets.token_hex(4)}"


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

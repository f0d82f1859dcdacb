"""A thin REST client for the tests: raw requests to one service, as one tenant (or none).

Paths are sent exactly as written (no client-side normalization of ``..`` or ``%2F``), so the tests can
send what an attacker would. Every call is bounded in time: a hung service fails the test.
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from .wardle import FISCHERS_PATH, flunders_path

JSON = "application/json"
CALL_TIMEOUT = 30.0
"""Seconds any one request may take."""


@dataclass
class Reply:
    """A response read whole."""

    status: int
    headers: Mapping[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        """The decoded JSON body, or None (empty, or not JSON)."""
        try:
            return orjson.loads(self.raw) if self.raw else None
        except orjson.JSONDecodeError:
            return None

    def is_status(self, code: int, reason: str | None = None) -> bool:
        """Whether this is a Kubernetes ``Status`` failure of ``code`` (and ``reason``)."""
        body = self.body
        return (
            self.status == code
            and isinstance(body, dict)
            and body.get("kind") == "Status"
            and body.get("apiVersion") == "v1"
            and body.get("status") == "Failure"
            and body.get("code") == code
            and (reason is None or body.get("reason") == reason)
            and isinstance(body.get("message"), str)
        )


class Api:
    """Raw HTTP requests to the service at ``base``, with one tenant's credentials (or none)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        *,
        token: str | None = None,
        authorization: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.session = session
        self.base = base
        self.ssl = ssl_context
        self.authorization = (
            authorization if authorization is not None else (f"Bearer {token}" if token else None)
        )

    def url(self, path: str, query: Mapping[str, str] | None = None) -> URL:
        url = URL(self.base + path, encoded=True)
        return url.update_query(dict(query)) if query else url

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": self.authorization} if self.authorization else {}
        headers.update(extra or {})
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: Any = None,
        content_type: str | None = JSON,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request: ``body`` is sent as JSON, ``raw`` as it is (bytes, or an async iterable for a
        chunked body)."""
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if isinstance(data, bytes):
            data = io.BytesIO(data)  # sized (Content-Length), and big ones do not block the loop
        extra = dict(headers or {})
        if data is not None and content_type is not None:
            extra.setdefault("Content-Type", content_type)
        async with (
            asyncio.timeout(CALL_TIMEOUT),
            self.session.request(
                method, self.url(path, query), data=data, headers=self._headers(extra), ssl=self.ssl or True
            ) as resp,
        ):
            return Reply(resp.status, resp.headers, await resp.read())

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """The decoded body of a call that must answer ``status``."""
        reply = await self.call(method, path, **kwargs)
        assert reply.status == status, f"{method} {path}: {reply.status} {reply.raw[:500]!r}"
        return reply.body

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST a flunder (namespaced) or a fischer; the created object."""
        namespace = obj["metadata"].get("namespace")
        path = flunders_path(namespace) if namespace else FISCHERS_PATH
        created: dict[str, Any] = await self.ok("POST", path, 201, body=obj)
        return created

    async def list(self, path: str, **query: str) -> dict[str, Any]:
        """A LIST that must succeed: its body."""
        body: dict[str, Any] = await self.ok("GET", path, query=query or None)
        return body

    @asynccontextmanager
    async def events(self, path: str, **query: str) -> AsyncIterator[WatchStream]:
        """A WATCH that must start (200): its events, read one at a time."""
        async with self.watch(path, **query) as resp:
            if resp.status != 200:
                raise AssertionError(f"watch {path}: {resp.status} {(await resp.read())[:500]!r}")
            yield WatchStream(resp)

    @asynccontextmanager
    async def watch(self, path: str, **query: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open watch response (any status); closed on leaving the block."""
        url = self.url(path, {"watch": "true", **query})
        async with asyncio.timeout(CALL_TIMEOUT):
            resp = await self.session.get(url, headers=self._headers(), ssl=self.ssl or True)
        try:
            yield resp
        finally:
            resp.close()

    async def watch_status(self, path: str) -> Reply:
        """Open a watch and only look at its answer: 200 (left unread), else its Status."""
        async with self.watch(path) as resp:
            if resp.status == 200:
                return Reply(200, resp.headers, b"")
            async with asyncio.timeout(10):
                return Reply(resp.status, resp.headers, await resp.read())


EVENT_WAIT = 5.0
"""Seconds any single expected watch event may take to arrive."""


class WatchStream:
    """Reads a watch response line by line, each read under a deadline."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, within: float = EVENT_WAIT) -> dict[str, Any] | None:
        """The next event, or None at the end of the stream."""
        async with asyncio.timeout(within):
            line = await self.response.content.readline()
        if not line:
            return None
        assert line.endswith(b"\n"), f"an event line must end with a newline: {line[:200]!r}"
        event: dict[str, Any] = orjson.loads(line)
        assert set(event) == {"type", "object"}, event
        return event

    async def take(self, count: int, within: float = EVENT_WAIT) -> list[dict[str, Any]]:
        """Exactly the next ``count`` events (fails if the stream ends first)."""
        events = []
        for _ in range(count):
            event = await self.next(within)
            assert event is not None, f"the stream ended after {events}"
            events.append(event)
        return events

    async def assert_ends(self, within: float = EVENT_WAIT) -> None:
        """The stream ends cleanly (EOF, no more events) within ``within`` seconds."""
        event = await self.next(within)
        assert event is None, f"expected the end of the stream, got {event}"
        assert self.response.content.at_eof()


def assert_status(reply: Reply, code: int, reason: str) -> dict[str, Any]:
    """The reply is a Kubernetes failure ``Status`` of this code and reason, sent with that code."""
    assert reply.status == code, f"want {code}, got {reply.status}: {reply.raw[:500]!r}"
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
    status: dict[str, Any] = reply.body
    assert status["kind"] == "Status", status
    assert status["apiVersion"] == "v1", status
    assert status["status"] == "Failure", status
    assert isinstance(status["message"], str) and status["message"], status
    assert status["reason"] == reason, status
    assert status["code"] == code, status
    return status


async def next_event(resp: aiohttp.ClientResponse, within: float = 10.0) -> dict[str, Any]:
    """The next event line of a watch stream (fails the test after ``within`` seconds)."""
    async with asyncio.timeout(within):
        line = await resp.content.readline()
    assert line, "the watch stream ended"
    event: dict[str, Any] = orjson.loads(line)
    return event

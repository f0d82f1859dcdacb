"""What the etcd front's services share: the caches by key range, etcd itself, and response headers.

A request whose range lies inside one configured resource's prefix (``{prefix}/{group}/{resource}/``)
is answered from that resource's cache; anything else in the tenant's keyspace passes through to etcd.
Every answer carries etcd's header: its cluster and member ids and raft term (learned from etcd's own
answers), and a revision of etcd's — the caches hold etcd's revisions, so both kinds of answer agree.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from aetcd.rpc import rpc_pb2

from ..api.storage import Storage
from ..cache.cacher import Cache
from ..errors import StatusError
from ..keys import prefix_range_end
from .errors import REQUEST_TIMED_OUT, TOO_MANY_REQUESTS, Context, EtcdError, abort, passed_on
from .session import Caller, Sessions

__all__ = ["FAILURES", "Context", "Front", "fail", "rpc"]

T = TypeVar("T")


class Front:
    """The etcd front's shared parts (see the module docstring)."""

    def __init__(self, *, storage: Storage, sessions: Sessions, progress_interval: float) -> None:
        self.storage = storage
        self.etcd = storage.etcd
        self.sessions = sessions
        self.progress_interval = progress_interval
        """Seconds between progress notifications to an idle watch that asked for them."""
        self.cluster_id = 0
        self.member_id = 0
        self.raft_term = 1
        self._header_field: tuple[int, bytes] = (-1, b"")
        # current_revision's batching: the fetch in flight, and the one callers wait for next.
        self._revision_fetch: asyncio.Task[None] | None = None
        self._next_revision: asyncio.Future[int] | None = None
        self._closed = False
        #: How many times etcd's current revision was read (:meth:`current_revision`).
        self.revision_reads = 0
        #: Calls passed on to etcd, by ``Service.Method`` (the rest were answered from the caches; the
        #: front's probes of etcd's current revision are not counted).
        self.forwarded: Counter[str] = Counter()

    def cache_for(self, key: bytes, end: bytes) -> Cache | None:
        """The ready cache whose resource prefix holds all of ``[key, end)`` (``end`` b"": the key)."""
        for resource in self.storage.resources:
            cache = resource.cache
            prefix = cache.layout.resource_prefix
            if not cache.ready or not key.startswith(prefix):
                continue
            if not end or (end != b"\0" and end <= prefix_range_end(prefix)):
                return cache
        return None

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=revision, raft_term=self.raft_term
        )

    def header_field(self, revision: int) -> bytes:
        """The encoded ``header`` field of a response at ``revision``, made once per revision (every
        watcher of a change is sent the same)."""
        cached = self._header_field
        if cached[0] != revision:
            encoded = rpc_pb2.WatchResponse(header=self.header(revision)).SerializeToString()
            cached = self._header_field = (revision, encoded)
        return cached[1]

    def learn(self, header: Any) -> None:
        """Keep the ids and term of etcd's own answers, for the answers the caches give."""
        if header.cluster_id:
            term = max(self.raft_term, header.raft_term)
            if (header.cluster_id, header.member_id, term) != (
                self.cluster_id,
                self.member_id,
                self.raft_term,
            ):
                self._header_field = (-1, b"")
            self.cluster_id, self.member_id = header.cluster_id, header.member_id
            self.raft_term = term

    async def forward(self, service: str, method: str, request: Any) -> Any:
        self.forwarded[f"{service}.{method}"] += 1
        response = await self.etcd.forward(service, method, request)
        self.learn(response.header)
        return response

    async def current_revision(self) -> int:
        """etcd's revision now: from a Range that started after this call did (so a write this caller
        has seen acknowledged is included), shared by every caller waiting for the next one — a
        thousand watches created at once cost one or two Ranges, not a thousand."""
        waiting = self._next_revision
        if waiting is None:
            waiting = self._next_revision = asyncio.get_running_loop().create_future()
            if self._revision_fetch is None:
                self._fetch_revision()
        return await asyncio.shield(waiting)

    def _fetch_revision(self) -> None:
        answer, self._next_revision = self._next_revision, None
        assert answer is not None
        self._revision_fetch = asyncio.create_task(self._revision(answer), name="etcd-front-revision")

    async def _revision(self, answer: asyncio.Future[int]) -> None:
        try:
            # The front's own probe (a count of one key), not a call passed on: not in forwarded.
            self.revision_reads += 1
            probe = rpc_pb2.RangeRequest(key=b"\0", count_only=True, limit=1)
            response = await self.etcd.forward("KV", "Range", probe)
            self.learn(response.header)
        except Exception as err:  # every caller gets etcd's error
            answer.set_exception(err)
            answer.exception()  # retrieved here: callers that left must not leave a warning
        else:
            answer.set_result(int(response.header.revision))
        finally:
            if not answer.done():  # cancelled: so are its callers
                answer.cancel()
            self._revision_fetch = None
            if self._next_revision is not None:
                if self._closed:
                    self._next_revision.cancel()
                    self._next_revision = None
                else:
                    self._fetch_revision()

    async def close(self) -> None:
        """Stop the revision fetch in flight (its callers get CancelledError)."""
        self._closed = True
        fetch = self._revision_fetch
        if fetch is not None:
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)


def rpc(
    method: Callable[[Any, Caller, Any, Context], Awaitable[T]],
) -> Callable[[Any, Any, Context], Awaitable[T]]:
    """A servicer method: the caller is authenticated first, and every failure becomes etcd's status
    (etcd's own errors passed on as they are; the cache's mapped to etcd's words)."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Context) -> T:
        try:
            caller = self.front.sessions.caller(context)
            if caller.admission is not None:
                caller.admission.check_rate()  # every call counts, as every REST request does
            return await method(self, caller, request, context)
        except FAILURES as err:
            await fail(context, err)

    return call


FAILURES = (EtcdError, grpc.aio.AioRpcError, StatusError)
"""What a call can fail with: etcd's own errors, the etcd behind the front's, and the cache's."""


async def fail(context: Context, err: EtcdError | grpc.aio.AioRpcError | StatusError) -> NoReturn:
    """End the call with etcd's status for ``err`` (one of :data:`FAILURES`): etcd's own errors passed on
    as they are (but for the front's own deadline: :func:`passed_on`), the cache's mapped to etcd's
    words."""
    if isinstance(err, grpc.aio.AioRpcError):
        await abort(context, passed_on(err))
    elif isinstance(err, EtcdError):
        await abort(context, err)
    else:
        await abort(context, unavailable(err))


def unavailable(err: StatusError) -> EtcdError:
    """A watchcache error (over a limit, etcd unreachable, a sync that timed out) in etcd's words."""
    if err.code == 429:
        return TOO_MANY_REQUESTS()
    if err.code == 504:
        return REQUEST_TIMED_OUT()
    return EtcdError(grpc.StatusCode.UNAVAILABLE, f"etcdserver: {err.message}")

"""Storage: one etcd connection and one cache per served resource — the embedded entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..cache.cacher import Cache
from ..cache.settings import CacheSettings
from ..cache.store import Codec
from ..errors import EtcdUnavailableError, EtcdUnreachableError
from ..etcd.client import EtcdClient
from ..etcd.types import EtcdTLS
from ..keys import KeyLayout
from .resource import Resource
from .spec import ResourceSpec

__all__ = ["Storage"]

log = logging.getLogger(__name__)


class Storage:
    """Shares one etcd client among the caches of every resource it serves.

    ``async with Storage(etcd_servers=[...]) as storage: flunders = storage.resource(spec)``.
    Leaving the block stops every cache (open watches end) and closes the etcd connection.
    """

    def __init__(
        self,
        etcd_servers: Sequence[str],
        *,
        prefix: str = "/registry",
        settings: CacheSettings | None = None,
        etcd_tls: EtcdTLS | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        self.prefix = prefix
        self.settings = settings or CacheSettings()
        self.etcd = EtcdClient(etcd_servers, request_timeout=request_timeout, tls=etcd_tls)
        self._resources: dict[tuple[str, str], Resource] = {}
        self._started = False
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.etcd.connect()
        self._started = True
        self._prober = asyncio.create_task(self._probe(), name="watchcache-etcd-probe")

    async def _probe(self) -> None:
        """Judge etcd's health once a second: two failed linearizable reads in a row mark it down
        (requests to etcd then get a short deadline and a 503, /readyz reports it, one warning is
        logged); any success ends the outage (see :class:`~watchcache.etcd.health.EtcdHealth`)."""
        interval = self.settings.health_interval
        failures = 0
        while True:
            await asyncio.sleep(interval)
            error = await self.etcd.probe(self.prefix.encode(), timeout=interval)
            if error is None:
                failures = 0
                continue
            failures += 1
            log.debug("etcd probe failed (%d in a row): %s", failures, error)
            if failures >= 2:
                failure = EtcdUnreachableError.of(error)
                self.etcd.health.failing(failure or EtcdUnavailableError(error.message, retry_after=1))

    async def stop_caches(self) -> None:
        """Stop every cache: open watches end (their clients see the stream close)."""
        await asyncio.gather(*(r.cache.stop() for r in self._resources.values()))

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
            self._prober = None
        await self.stop_caches()
        self._resources = {}
        await self.etcd.close()
        self._started = False

    async def __aenter__(self) -> Storage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def resource(self, spec: ResourceSpec) -> Resource:
        """The resource's API; its cache starts loading on the first call for that resource."""
        if not self._started:
            raise RuntimeError("Storage is not started: use 'async with Storage(...)'")
        key = (spec.group, spec.resource)
        existing = self._resources.get(key)
        if existing is not None:
            if existing.spec != spec:
                raise ValueError(f"{spec.qualified} is already served with another definition")
            return existing
        layout = KeyLayout(self.prefix, spec.group, spec.resource, spec.namespaced)
        codec = Codec(tuple(spec.api_version(v) for v in spec.versions), layout.resource_prefix)
        cache = Cache(
            source=self.etcd, layout=layout, codec=codec, settings=self.settings, name=spec.qualified
        )
        cache.start()
        resource = self._resources[key] = Resource(spec, cache, self.etcd)
        return resource

    @property
    def resources(self) -> list[Resource]:
        return list(self._resources.values())

    @property
    def ready(self) -> bool:
        """Every cache has loaded (readiness, as ``/readyz`` reports it)."""
        return all(r.is_ready for r in self._resources.values())

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every cache has loaded (after ``timeout``, 503 when etcd cannot be reached,
        else 429 TooManyRequests)."""
        await asyncio.gather(*(r.wait_ready(timeout) for r in self._resources.values()))

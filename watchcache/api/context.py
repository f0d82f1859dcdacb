"""One resource's parts, as its reads, writes and watches share them."""

from __future__ import annotations

from dataclasses import dataclass

from ..cache.cacher import Cache
from ..cache.store import Codec
from ..errors import BadRequestError, InvalidError, NotFoundError, TooManyRequestsError
from ..etcd.client import EtcdClient
from ..keys import KeyLayout
from .spec import ResourceSpec

__all__ = ["Context"]


@dataclass(frozen=True, slots=True)
class Context:
    """A resource's spec, its cache, and the etcd client its writes go to."""

    spec: ResourceSpec
    cache: Cache
    etcd: EtcdClient

    @property
    def layout(self) -> KeyLayout:
        return self.cache.layout

    @property
    def codec(self) -> Codec:
        return self.cache.codec

    def api_version(self, version: str | None) -> str:
        """``group/version`` of a served version (None: the first); 404 for another."""
        version = version or self.spec.versions[0]
        if version not in self.spec.versions:
            raise NotFoundError(f"version {version!r} of {self.spec.qualified} is not served")
        return self.spec.api_version(version)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the cache's initial load (503 or 429 after ``timeout``: see :meth:`check_ready`)."""
        try:
            await self.cache.wait_ready(self.cache.settings.ready_timeout if timeout is None else timeout)
        except TooManyRequestsError:
            self._etcd_down()
            raise

    def check_ready(self) -> None:
        """Unless the cache has loaded: 503 ``etcd is unreachable (<cause>)`` when its feed's last
        attempt could not reach etcd or etcd is judged down, else 429 TooManyRequests (loading)."""
        try:
            self.cache.check_ready()
        except TooManyRequestsError:
            self._etcd_down()
            raise

    def _etcd_down(self) -> None:
        # The feed has no failure yet (its first attempt may wait out a long deadline), but the
        # etcd client's probe already knows etcd does not answer.
        failure = self.etcd.health.failure
        if failure is not None:
            raise failure.fresh() from None

    async def fresh(self, revision: int | None) -> int:
        """Bring the cache to a state a read at ``revision`` may see; None means consistent."""
        await self.wait_ready()
        if revision is None:
            return await self.cache.sync()
        if revision > 0:
            await self.cache.wait_for(revision, self.cache.settings.wait_timeout)
        return revision

    def invalid(self, err: InvalidError, name: str) -> InvalidError:
        """``err`` naming the object ``name`` of this resource's kind, as every 422 must."""
        return err.about(kind=self.spec.kind, group=self.spec.group, name=name)

    def key(self, namespace: str | None, name: str) -> bytes:
        """The etcd key of an object (400 for a namespace that does not fit the scope, 422 for a
        name or namespace Kubernetes would refuse)."""
        try:
            return self.layout.object_key(namespace, name)
        except InvalidError as err:
            raise self.invalid(err, name) from None

    def scope(self, namespace: str | None) -> str | None:
        """The namespace a collection request is restricted to (validated), or None for all."""
        if not namespace:
            return None
        if not self.spec.namespaced:
            raise BadRequestError(f"{self.spec.qualified} is not namespaced")
        try:
            self.layout.list_range(namespace)  # validates
        except InvalidError as err:
            raise self.invalid(err, "") from None
        return namespace

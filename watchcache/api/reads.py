"""GET and LIST of one resource, served from its cache, as kube-apiserver's watch cache serves them.

resourceVersion unset: consistent (every write etcd acknowledged before the read is in); ``0``: any
cached state, at once; ``N``: a state at least as new as N (waiting up to 3 s, then 504);
``resourceVersionMatch=Exact``: the state at exactly N (a kept snapshot, rebuilt from the window, or
read from etcd); ``limit``/``continue``: pages of one snapshot.
"""

from __future__ import annotations

import dataclasses

from ..cache.store import Snapshot
from ..errors import BadRequestError, ExpiredError, InternalError, NotFoundError
from .context import Context
from .options import ListOptions
from .pages import Cut, Page, cut_page, decode_continue

__all__ = ["get_raw", "list_page"]


async def get_raw(
    ctx: Context, name: str, *, namespace: str | None, revision: int | None, version: str | None
) -> bytes:
    """One object's JSON as served through ``version``; 404 when absent."""
    api_version = ctx.api_version(version)
    key = ctx.key(namespace, name)
    await ctx.fresh(revision)
    entry = ctx.cache.get(key)
    if entry is None or not entry.served:
        raise NotFoundError.for_object(ctx.spec.qualified, name)
    return ctx.codec.served(entry, api_version)


async def list_page(ctx: Context, options: ListOptions) -> Page:
    """A LIST as a :class:`Page` of cached entries (see the module docstring)."""
    api_version = ctx.api_version(options.version)
    start, end = ctx.layout.list_range(ctx.scope(options.namespace))
    cut = Cut(start=start, end=end, selector=options.selector, limit=options.limit, api_version=api_version)
    cache = ctx.cache

    if options.continue_token:
        at, after = decode_continue(options.continue_token, ctx.layout.resource_prefix)
        await ctx.wait_ready()
        if at > cache.revision:
            # Another replica's token may be a little ahead of this cache; a revision etcd has
            # never reached is not one any server handed out.
            if at > await ctx.etcd.current_revision(ctx.layout.progress_key):
                raise BadRequestError(
                    f"invalid continue token: its resourceVersion {at} is newer than the storage's"
                )
            await cache.wait_for(at, cache.settings.wait_timeout)
        return await _page_at(ctx, at, dataclasses.replace(cut, start=max(after, start)))

    revision = options.revision
    await ctx.fresh(revision)
    if options.exact:
        assert revision is not None
        if revision > cache.revision:
            await cache.wait_for(revision, cache.settings.wait_timeout)
        return await _page_at(ctx, revision, cut)
    if options.limit:
        return cut_page(cache.snapshot(), cut, prefix=ctx.layout.resource_prefix, codec=ctx.codec)
    entries = cache.objects(start, end)
    selector = options.selector
    if not selector.empty:
        matches = selector.matches
        entries = (e for e in entries if matches(e.name, e.namespace, e.labels))
    return Page(cache.revision, None, None, list(entries), api_version, ctx.codec)


async def _page_at(ctx: Context, revision: int, cut: Cut) -> Page:
    prefix, codec = ctx.layout.resource_prefix, ctx.codec
    snap = ctx.cache.state_at(revision)
    if snap is not None:
        return cut_page(snap, cut, prefix=prefix, codec=codec)
    if revision > ctx.cache.revision:
        raise InternalError(f"revision {revision} is ahead of the cache")
    # Older than the window: etcd still has it unless it was compacted.
    try:
        entries, more = await ctx.cache.read_at(revision, cut.start, cut.end, cut.limit)
    except ExpiredError:
        raise ExpiredError(
            f"too old resource version: {revision}: the state there was compacted; "
            "start a new list without resourceVersion or continue"
        ) from None
    return cut_page(Snapshot(revision, entries), cut, prefix=prefix, codec=codec, more_in_etcd=more)

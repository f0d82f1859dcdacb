"""The cache's settings and counters: plain values, read by every part of the cache and by metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheSettings", "CacheStats"]


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """Tuning of every resource's cache. The defaults suit a cluster's main etcd."""

    window_events: int = 10_000
    """Recent changes kept per resource; a watch from an older resourceVersion gets 410 Expired."""
    watcher_buffer: int = 1_000
    """Changes queued per watcher; a watcher that falls further behind is ended (it re-watches)."""
    bookmark_interval: float = 50.0
    """Seconds between bookmarks to an idle watcher that allows them (Kubernetes: about a minute)."""
    wait_timeout: float = 3.0
    """Seconds a request for a resourceVersion newer than the cache waits before 504 Timeout."""
    sync_timeout: float = 5.0
    """Seconds a consistent read waits for the cache to catch up with etcd before 504 Timeout."""
    ready_timeout: float = 10.0
    """Seconds an embedded call waits for a cache that is still loading before 429."""
    list_page_size: int = 500
    """Keys per etcd range request when (re)loading a resource."""
    snapshot_ttl: float = 300.0
    """Seconds a paged list's snapshot is kept for its continue tokens."""
    max_snapshots: int = 16
    """Paged-list snapshots kept per resource (the oldest is dropped first)."""
    retry_backoff_max: float = 2.0
    """Upper bound, in seconds, of the pause between attempts to re-establish the etcd watch."""
    health_interval: float = 1.0
    """Seconds between etcd health probes; after two failures in a row requests to etcd get a 1 s
    deadline (fail fast with 503/504) and /readyz reports etcd, until a request succeeds."""


@dataclass
class CacheStats:
    """Counters of one cache, read by the metrics endpoint."""

    events_received: int = 0
    events_dispatched: int = 0
    watchers_ended_slow: int = 0
    watch_restarts: int = 0
    relists: int = 0
    progress_writes: int = 0

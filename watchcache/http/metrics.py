"""Prometheus metrics of one service instance, in a registry of its own.

Request metrics are counted as requests finish; cache metrics are read from each cache's counters
only when ``/metrics`` is scraped, so the hot paths (dispatch, lists) pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..api.storage import Storage

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _CacheCollector(Collector):
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["group", "resource"]
        gauges = {
            "watchcache_watchers": GaugeMetricFamily(
                "watchcache_watchers", "Open watchers per resource.", labels=labels
            ),
            "watchcache_cache_objects": GaugeMetricFamily(
                "watchcache_cache_objects", "Objects held in the cache per resource.", labels=labels
            ),
            "watchcache_window_events": GaugeMetricFamily(
                "watchcache_window_events", "Recent changes held for replay per resource.", labels=labels
            ),
            "watchcache_cache_revision": GaugeMetricFamily(
                "watchcache_cache_revision", "etcd revision the cache has reached.", labels=labels
            ),
            "watchcache_cache_ready": GaugeMetricFamily(
                "watchcache_cache_ready", "1 once the cache's initial list is in.", labels=labels
            ),
        }
        counters = {
            "events_received": CounterMetricFamily(
                "watchcache_events_received", "etcd events received per resource.", labels=labels
            ),
            "events_dispatched": CounterMetricFamily(
                "watchcache_events_dispatched", "Events queued to watchers per resource.", labels=labels
            ),
            "watchers_ended_slow": CounterMetricFamily(
                "watchcache_watchers_terminated_slow",
                "Watchers ended because they fell too far behind.",
                labels=labels,
            ),
            "watch_restarts": CounterMetricFamily(
                "watchcache_etcd_watch_restarts", "Times the etcd watch was re-established.", labels=labels
            ),
            "relists": CounterMetricFamily(
                "watchcache_relists", "Times the cache reloaded after a compaction.", labels=labels
            ),
            "progress_writes": CounterMetricFamily(
                "watchcache_progress_writes",
                "Progress-key writes made for consistent reads.",
                labels=labels,
            ),
        }
        for resource in self._storage.resources:
            values = [resource.spec.group, resource.spec.resource]
            gauges["watchcache_watchers"].add_metric(values, resource.watcher_count)
            gauges["watchcache_cache_objects"].add_metric(values, resource.object_count)
            gauges["watchcache_window_events"].add_metric(values, resource.window_events)
            gauges["watchcache_cache_revision"].add_metric(values, resource.revision)
            gauges["watchcache_cache_ready"].add_metric(values, 1 if resource.is_ready else 0)
            for field, family in counters.items():
                family.add_metric(values, getattr(resource.stats, field))
        yield from gauges.values()
        yield from counters.values()


class Metrics:
    """The metrics of one server (a private registry, so several servers can live in one process)."""

    def __init__(self, storage: Storage) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "watchcache_requests",
            "HTTP requests by verb, resource and status code.",
            ["verb", "group", "resource", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "watchcache_request_duration_seconds",
            "Time to answer a request (for WATCH: to set it up), by verb and resource.",
            ["verb", "group", "resource"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self._connections = Counter(
            "watchcache_http_connections",
            "Connections accepted by the REST front, by protocol (h2 or http/1.1).",
            ["protocol"],
            registry=self.registry,
        )
        self.registry.register(_CacheCollector(storage))

    def connection(self, protocol: str) -> None:
        """A connection was accepted and speaks ``protocol``."""
        self._connections.labels(protocol).inc()

    def observe(self, *, verb: str, group: str, resource: str, code: int, seconds: float) -> None:
        self._requests.labels(verb, group, resource, str(code)).inc()
        self._latency.labels(verb, group, resource).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Whether etcd serves us, as one judgement per connection, and the one log line per change of it.

An outage is judged by the storage's probe (two failed reads in a row, so a single lost request or a
failover does not count) and ends with the first call etcd answers. Callers that retry on their own
(each cache's feed, the progress writer) log their attempts at debug level: the outage's start and its
end are the two warnings, however long it lasts and however many caches wait for it.
"""

from __future__ import annotations

import logging
import time

from ..errors import EtcdUnavailableError

__all__ = ["EtcdHealth"]

log = logging.getLogger(__name__)


class EtcdHealth:
    """etcd's health as this client sees it (see the module docstring)."""

    def __init__(self) -> None:
        #: Why etcd is judged down (the 503 its callers get), or None while it serves.
        self.failure: EtcdUnavailableError | None = None
        self._since = 0.0

    @property
    def serving(self) -> bool:
        return self.failure is None

    def failing(self, failure: EtcdUnavailableError) -> None:
        """etcd is judged down: ``failure`` says why."""
        if self.failure is None:
            self._since = time.monotonic()
            log.warning(
                "%s: failing consistent reads and writes fast until etcd answers again", failure.message
            )
        self.failure = failure

    def answered(self) -> None:
        """etcd answered a call: the outage, if any, is over."""
        if self.failure is not None:
            self.failure = None
            # At the level of the outage's start, so a log filtered to warnings shows how long it was.
            log.warning("etcd is reachable again after %.1f s", time.monotonic() - self._since)

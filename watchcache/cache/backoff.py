"""The pause between attempts to reach etcd again: capped exponential, with jitter."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``first`` seconds, then twice that, four times, … up to ``cap``, each drawn from the
    upper half of its step (so caches and replicas that failed together do not retry in step) and
    never above ``cap``."""

    def __init__(self, *, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self._step = min(first, cap)

    def delay(self) -> float:
        """The next pause, in seconds; the one after it is twice as long, up to the cap."""
        step = self._step
        self._step = min(step * 2, self.cap)
        return random.uniform(step / 2, step)

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts over from ``first``."""
        self._step = min(self.first, self.cap)

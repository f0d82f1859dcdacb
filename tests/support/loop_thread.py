"""An event loop on a thread of its own, for tests whose steps are synchronous (hypothesis runs each
example as a plain function) and must drive a service that lives across examples."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Subclasses define :meth:`start` and :meth:`stop` (coroutines run on the loop); :meth:`serving`
    runs the loop, starts, yields, stops and closes the loop whatever happens."""

    def __init__(self, name: str, timeout: float = 60.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.timeout = timeout

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.timeout)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    @contextmanager
    def serving(self) -> Iterator[None]:
        self.thread.start()
        try:
            self.run(self.start())
            yield
        finally:
            try:
                self.run(self.stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)
                self.loop.close()

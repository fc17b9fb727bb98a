"""One read shared by every caller for a short while: the store is read once per scrape.

A Prometheus scrape, a readiness probe and the ``att_sms_ready`` gauge all want the same
few counts; each asking the store on its own would take a transaction each (SQLite's a
write lock) and many probes at once would queue on it. :class:`SharedRead` runs the read
at most once per ``ttl`` seconds; callers arriving meanwhile (or while it runs) get its
result, or its exception again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SharedRead"]

T = TypeVar("T")


class SharedRead(Generic[T]):
    """``get()`` returns ``read()``'s result, read again once it is ``ttl`` seconds old."""

    def __init__(
        self, read: Callable[[], T], ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._value: T | None = None
        self._error: Exception | None = None
        self.reads = 0  # how many times read() ran

    def get(self) -> T:
        with self._lock:  # one reader at a time; the others wait for its result
            now = self._clock()
            if self._at is None or now - self._at >= self._ttl:
                self.reads += 1
                try:
                    self._value, self._error = self._read(), None
                except Exception as exc:  # kept for the ttl like a value: no read storm
                    self._value, self._error = None, exc
                self._at = self._clock()
            if self._error is not None:
                raise self._error
            return self._value  # type: ignore[return-value]

"""Requests-per-minute and tokens-per-minute limits as token buckets, shared per model in-process.

Buckets use a thread lock and monotonic time rather than asyncio primitives, so two jobs on the same
model (each with its own event loop, in its own thread) draw from the same budget.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

POLL_S = 0.1  # waits wake this often to notice a cancel
EPS = 1e-9


class TokenBucket:
    """`per_minute` units a minute, refilled continuously. The burst is one second's worth (at least
    one unit), so a fresh bucket does not fire a whole minute's quota at once. A take larger than the
    burst waits for a full bucket and leaves it in debt, so big requests still pass at the set rate."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_take(self, n: float) -> float:
        """Take n and return 0, or return how long to wait before asking again."""
        with self.lock:
            self._refill()
            need = min(n, self.capacity)
            # EPS: a refill that leaves the level 1e-16 short must not ask for a wait the clock cannot
            # resolve (the waiter would spin forever on a coarse or virtual clock).
            if self.level >= need - EPS:
                self.level -= n
                return 0.0
            return (need - self.level) / self.rate

    def settle(self, n: float) -> None:
        """Correct a take by n units once the real count is known (negative gives back)."""
        with self.lock:
            self._refill()
            self.level = min(self.capacity, self.level - n)


class Limits:
    """The rpm and tpm buckets of one model (either may be None: no limit)."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None

    async def acquire(self, tokens: int, cancelled: Callable[[], bool]) -> bool:
        """Wait for one request slot and `tokens` tokens; False when cancelled while waiting."""
        for bucket, n in ((self.rpm, 1), (self.tpm, tokens)):
            while bucket is not None:
                if cancelled():
                    return False
                wait = bucket.try_take(n)
                if wait <= 0:
                    break
                await asyncio.sleep(min(wait, POLL_S))
        return True

    def settle(self, estimated: int, actual: int | None) -> None:
        if self.tpm is not None and actual is not None:
            self.tpm.settle(actual - estimated)


_SHARED: dict[tuple[str, float | None, float | None], Limits] = {}
_SHARED_LOCK = threading.Lock()


def limits_for(model_name: str, rpm: float | None, tpm: float | None) -> Limits:
    with _SHARED_LOCK:
        return _SHARED.setdefault((model_name, rpm, tpm), Limits(rpm, tpm))

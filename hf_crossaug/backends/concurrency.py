"""Adaptive concurrency (AIMD) for the endpoint backend: how many requests to keep in flight.

Why: many servers (``transformers serve``, llama.cpp, a busy vLLM) queue requests instead of answering
429 when they are full, so a fixed ``max_in_flight`` either leaves a fast server idle or piles up a queue
on a slow one, where every request waits longer and timeouts follow. The level starts at 1 (so the
best latency seen is one without queueing) and doubles per window of answers while latency holds (slow
start), then grows by one per window; it shrinks by a factor when a window's median latency climbs past
``tolerance`` times the best seen (plus a small slack), or when the server answers 429. A timeout or a
dropped connection is not a load signal (a hung request says little about the others). ``max_in_flight``
stays the cap. The waiting queue is FIFO, so requests go out in the order they were taken.

The clients' keep-alive connections follow the level (`keepalive_pools`): httpx probes the socket of every idle
connection it keeps (two system calls) each time it routes a request, so the connections opened while the level
was high, left idle once it fell, cost the client more CPU per request than any other part of the path (measured:
1.50 vs 1.73 ms of CPU per request against a fast local server, which is the bottleneck there).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque


class AdaptiveLimit:
    """A FIFO semaphore whose size follows AIMD. ``level`` is the current limit (read it for the stats)."""

    def __init__(self, cap: int, start: int = 1, tolerance: float = 2.0, backoff: float = 0.7,
                 min_window: int = 8, slack: float = 0.05):
        self.cap = max(1, cap)
        self.limit = float(min(self.cap, max(1, start)))
        # slack: seconds of extra latency that never count as climbing. An LLM answer takes hundreds of ms, so
        # 50 ms is noise there; against a server that answers in 1 ms the client's own CPU would otherwise
        # read as a queue and hold the level down.
        self.tolerance, self.backoff, self.min_window, self.slack = tolerance, backoff, min_window, slack
        self.slow_start = True
        self.baseline: float | None = None  # the lowest window median seen: latency without queueing
        # Drift only on a shrink that follows a shrink: a shrink that brought latency back says the baseline is
        # right. Drifting on every shrink ratcheted it up for good (never back down): after ~60 decreases the
        # level sat at the cap, piling requests into the server's queue (measured: 100K requests to a fast server).
        self._shrank_last = False
        self.samples: list[float] = []
        self.in_flight = 0
        self.lowest = self.highest = int(self.limit)
        self.decreases = 0
        self._released = 0  # requests finished since the last decrease
        self._guard = 0  # requests in flight at the last decrease: their 429s say nothing new
        self._waiters: deque[asyncio.Future] = deque()
        self._pools: list = []  # connection pools whose keep-alive cap follows the level

    @property
    def level(self) -> int:
        return max(1, int(self.limit))

    # ----- the semaphore -----

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < self.level:
            self.in_flight += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # whoever resolved it counted our slot
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._released += 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.level:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    # ----- the controller -----

    def on_latency(self, seconds: float) -> None:
        """One answered request; every window of answers decides to grow or shrink."""
        self.samples.append(seconds)
        if len(self.samples) < max(self.min_window, self.level):
            return
        median, self.samples = statistics.median(self.samples), []
        if self.baseline is None or median < self.baseline:
            self.baseline = median
        if median > self.tolerance * self.baseline + self.slack:
            if self._shrank_last:  # the last window shrank too and latency stayed up: the server may be slower for
                self.baseline *= 1.05  # good, so the best seen drifts up (slowly) rather than punish it forever
            self._shrink()
            self._shrank_last = True
        else:
            self._shrank_last = False
            self._set(self.limit * 2 if self.slow_start else self.limit + 1)

    def on_overload(self) -> None:
        """A 429: the server says it is full."""
        if self._released > self._guard:  # once the requests in flight at the last decrease are back
            self._shrink()
            self.samples = []

    def _shrink(self) -> None:
        self.slow_start = False
        self.decreases, self._released, self._guard = self.decreases + 1, 0, self.in_flight
        self._set(self.limit * self.backoff)

    def _set(self, limit: float) -> None:
        self.limit = min(float(self.cap), max(1.0, limit))
        self.lowest, self.highest = min(self.lowest, self.level), max(self.highest, self.level)
        for pool in self._pools:
            pool._max_keepalive_connections = self.level
        self._wake()

    def follow(self, pools: list) -> None:
        """Keep at most ``level`` idle connections in each of ``pools`` from now on ([]: stop)."""
        self._pools = list(pools)
        self._set(self.limit)

    def summary(self) -> dict:
        return {"level": self.level, "cap": self.cap, "lowest": self.lowest, "highest": self.highest,
                "decreases": self.decreases}


def keepalive_pools(clients) -> list:
    """The httpx connection pools behind ``openai.AsyncOpenAI`` clients, whose idle-connection cap can follow the
    level. The attribute path is httpx's internals: a client built another way (or a future httpx) yields no pool,
    and the connections then keep httpx's own cap (100): slower, never wrong."""
    pools = []
    for client in clients:
        pool = getattr(getattr(getattr(client, "_client", None), "_transport", None), "_pool", None)
        if isinstance(getattr(pool, "_max_keepalive_connections", None), int):
            pools.append(pool)
    return pools

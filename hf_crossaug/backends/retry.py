"""Retry policy of the endpoint backend: failure reasons, per-request backoff, Retry-After, a circuit breaker.

Why a breaker and not a cool-off per failure: on a long run a healthy server still drops the odd
keep-alive connection or answers one 503. Such a fault should cost the one request a retry, not stall
every request for seconds. A replica leaves rotation only on evidence that it is down (a streak of
failures across requests, or a high failure rate over recent requests), and comes back through a single
half-open probe, so a dead replica costs one request per cool-off instead of a stampede.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timezone

# Failures worth retrying; anything else (a 4xx other than 429) is final, reported as ``http_<status>``.
RETRY_REASONS = ("429", "5xx", "timeout", "connection", "bad_response")
# What says a replica may be down (a 429 says it is up and busy; a 4xx blames the request).
DOWN_REASONS = ("5xx", "timeout", "connection")


class RequestFailed(Exception):
    """One attempt failed; ``reason`` is a RETRY_REASONS entry, ``deadline`` or ``http_<status>``."""

    def __init__(self, reason: str, retry_after: float | None = None, detail: str = ""):
        super().__init__(reason)
        self.reason, self.retry_after, self.detail = reason, retry_after, detail


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the retries of many clients that failed together (a server restart) instead
    of sending them back in synchronised waves.
    """
    return (rng or random).uniform(0.0, min(cap, base * 2 ** attempt))


def retry_delay(failure: RequestFailed, attempt: int, connection_failures: int, base: float, cap: float,
                rng: random.Random | None = None) -> float:
    """How long one request waits before its next try.

    The first dropped connection of a request goes again at once: the client discarded the broken
    connection, so the retry opens a fresh one (a stale keep-alive socket is the usual cause). A
    Retry-After is honoured as given; everything else backs off with jitter.
    """
    if failure.retry_after is not None:
        return failure.retry_after
    if failure.reason == "connection" and connection_failures == 1:
        return 0.0
    return backoff_delay(attempt, base, cap, rng)


def classify(exc: BaseException) -> RequestFailed:
    """Map a client exception to a failure reason; unknown exceptions (bugs) propagate."""
    import openai

    if isinstance(exc, RequestFailed):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
        return RequestFailed("timeout")
    if isinstance(exc, openai.APIStatusError):
        status, headers = exc.status_code, exc.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and headers.get("retry-after-ms"):
            retry_after = (parse_retry_after(headers["retry-after-ms"]) or 0.0) / 1000
        detail = " ".join(str(exc.message).split())[:160]
        if status == 429:
            return RequestFailed("429", retry_after, detail)
        if status >= 500:
            return RequestFailed("5xx", retry_after, detail)
        return RequestFailed(f"http_{status}", None, detail)
    if isinstance(exc, openai.APIConnectionError):  # refused, reset, or a body cut off mid-way
        return RequestFailed("connection")
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, KeyError, IndexError, AttributeError)):
        return RequestFailed("bad_response", detail=f"{type(exc).__name__}")
    raise exc


def classify_quietly(exc: BaseException) -> str:
    """A short, secret-free reason for an error at start (exception messages may echo the URL)."""
    try:
        failure = classify(exc)
    except BaseException:  # noqa: BLE001
        return type(exc).__name__
    if failure.reason in ("http_401", "http_403"):
        return f"{failure.reason}, check api_key_env"
    return failure.reason


class Deadline:
    """A request's total time budget over all its tries, waits and backoffs (``request_deadline``)."""

    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but never past the deadline."""
        if seconds > 0:
            await asyncio.sleep(min(seconds, max(0.0, self.left())))


class Breaker:
    """Closed -> open -> half-open circuit breaker of one replica.

    Opens after ``threshold`` failures in a row (across requests) or when more than ``max_rate`` of the
    last ``window`` outcomes failed (with at least ``window // 2`` outcomes seen). Open for ``cooloff``
    seconds, doubling with every reopening up to ``cap``; then one probe request goes through
    (half-open): its success closes the breaker, its failure reopens it.
    """

    def __init__(self, cooloff: float = 2.0, cap: float = 30.0, threshold: int = 5, window: int = 20,
                 max_rate: float = 0.5):
        self.cooloff, self.cap, self.threshold, self.max_rate = cooloff, cap, threshold, max_rate
        self.outcomes: deque[bool] = deque(maxlen=window)  # True = failed
        self.streak = 0  # failures in a row
        self.opened = 0  # reopenings since the last close: the cool-off doubles with each
        self.open_until = 0.0  # time.monotonic(); 0 = closed
        self.probing = False  # a half-open probe is in flight
        self.trips = 0  # times opened in all, for the stats

    @property
    def is_open(self) -> bool:
        return self.open_until > 0

    def wait(self, now: float) -> float | None:
        """0 if a request may go now, seconds until it may, or None while a half-open probe is out."""
        if not self.is_open:
            return 0.0
        if now < self.open_until:
            return self.open_until - now
        return None if self.probing else 0.0

    def on_send(self) -> bool:
        """Note a send; True when it is the half-open probe (the breaker is open and past ``open_until``), whose
        outcome alone decides: pass it back to `record`."""
        if self.is_open:
            self.probing = True
        return self.is_open

    def record(self, failed: bool, now: float, probe: bool = False, in_flight: int = 0) -> bool:
        """Note one outcome; True when this outcome opened (or reopened) the breaker. While it is open, only
        the probe's outcome counts: the others were sent before it opened (nothing else goes out), so a
        hung request timing out then says nothing of now (it once reopened the breaker in the probe's place).
        A streak trips only when longer than ``in_flight`` (the requests still out at this replica): errors
        come back faster than answers, so the few failures of one burst of 64 arrive in a row (measured: a
        streak of 5 took the only replica out once per ~5,000 requests at 8% random faults)."""
        if probe:
            self.probing = False
        elif self.is_open:
            return False
        self.outcomes.append(failed)
        if not failed:
            self.streak, self.opened, self.open_until = 0, 0, 0.0
            return False
        self.streak += 1
        window = self.outcomes.maxlen or 1
        rate_high = len(self.outcomes) >= window // 2 and sum(self.outcomes) > self.max_rate * len(self.outcomes)
        if probe or self.streak >= max(self.threshold, in_flight) or rate_high:
            self.open_until = now + min(self.cap, self.cooloff * 2 ** self.opened)
            self.opened += 1
            self.trips += 1
            self.outcomes.clear()
            return True
        return False


PROBE_POLL = 0.25  # seconds between looks while a half-open probe decides whether a replica is back


@dataclass
class Replica:
    """One server of a replica set, with the load and health that dispatch decides on."""

    url: str  # as configured; may hold credentials, so only ``name`` is ever printed
    name: str
    in_flight: int = 0
    sent: int = 0
    down_until: float = 0.0  # time.monotonic() before which no new request goes here (Retry-After)
    breaker: Breaker = field(default_factory=Breaker)


def pick_replica(replicas: list[Replica], now: float) -> tuple[Replica, float]:
    """The least-loaded replica that may take a request now (ties: fewest sent); else the first one back
    and how long until then (a replica out of rotation, or paused by a Retry-After)."""
    waits = []
    for r in replicas:
        breaker = r.breaker.wait(now)
        waits.append(max(r.down_until - now, PROBE_POLL if breaker is None else breaker, 0.0))
    up = [r for r, w in zip(replicas, waits) if w <= 0]
    if up:
        return min(up, key=lambda r: (r.in_flight, r.sent)), 0.0
    wait, i = min((w, i) for i, w in enumerate(waits))
    return replicas[i], wait

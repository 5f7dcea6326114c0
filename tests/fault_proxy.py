"""A fault-injecting HTTP/1.1 proxy in front of a real OpenAI-compatible server, for endpoint tests.

Why hand-rolled on asyncio streams: the faults that matter (a body cut off mid-way, a request that is
never answered, a replica vanishing with requests in flight) need control of the raw connection that a
web framework hides. The proxy runs its own event loop in a thread, so synchronous tests drive it.

Faults are queued with :meth:`FaultProxy.push` and applied, in arrival order, to the next POST requests
(``GET /v1/models`` always passes): ``"pass"``, ``"429:<seconds>"`` (with Retry-After), an HTTP status
(``"500"``, ``"503"``, ``"400"``), ``"drop"`` (forward, then cut the response body in half and close),
``"headers"`` (forward, send the status line and headers, then close: dropped after headers),
``"close"`` (close without any response, as a server does to a stale keep-alive connection),
``"hang"`` (never answer) and ``"die"`` (the whole proxy goes away, as a crashed replica does).
With the queue empty, ``rates`` (fault -> probability, drawn from ``random.Random(seed)``) pick one.

The upstream is a server URL or, for throughput tests, an in-process handler such as
:class:`openai_standin.OpenAIStandIn`, which answers without a second hop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque

import aiohttp

GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")
_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


class FaultProxy:
    """``FaultProxy(upstream).start()``; ``.url`` is the base_url to give a client (``.../v1``).

    Counters (per path): ``received`` requests, ``forwarded`` to the server, ``delivered`` whole
    responses; ``delivered_bodies`` counts whole responses per request body (a hash), so a request
    answered twice shows. ``log`` (unless ``record=False``, for long runs) holds one dict per request:
    path, JSON body, fault, arrival time, outcome. ``delay`` (seconds) slows every forwarded POST, to
    make runs long enough to interrupt.
    """

    def __init__(self, upstream, delay: float = 0.0, rates: dict[str, float] | None = None, seed: int = 0,
                 record: bool = True):
        self.upstream = upstream.rstrip("/") if isinstance(upstream, str) else upstream
        self.delay, self.rates, self.record = delay, dict(rates or {}), record
        self._rng = random.Random(seed)
        self.faults: deque[str] = deque()
        self.received: Counter = Counter()
        self.forwarded: Counter = Counter()
        self.delivered: Counter = Counter()
        self.delivered_bodies: Counter = Counter()
        self.injected: Counter = Counter()  # faults applied, by kind
        self.log: list[dict] = []
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fault-proxy")
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._session: aiohttp.ClientSession | None = None
        self.dead = False

    # ----- control, from the test's thread -----

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def push(self, *faults: str) -> None:
        self.faults.extend(faults)

    def kill(self) -> None:
        """Close the listening socket and abort every open connection: a replica that died."""
        if not self.dead:
            self._call(self._kill())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.kill()
            self._call(self._session.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def reset_counts(self) -> None:
        self.received.clear()
        self.forwarded.clear()
        self.delivered.clear()
        self.delivered_bodies.clear()
        self.injected.clear()
        self.log.clear()

    def bodies(self, outcome: str = "forwarded") -> list[dict]:
        """JSON bodies of the generation requests that reached ``outcome`` (forwarded / delivered)."""
        return [e["body"] for e in self.log if e.get(outcome)]

    def _call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ----- the server, on the proxy's loop -----

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _kill(self) -> None:
        self.dead = True
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dead:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            while not self.dead:
                request = await _read_request(reader)
                if request is None or not await self._serve(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, aiohttp.ClientError):
            pass
        finally:
            self._writers.discard(writer)
            if self.dead:
                writer.transport.abort()
            else:
                writer.close()

    async def _serve(self, request, reader, writer) -> bool:
        """Answer one request; False closes the connection."""
        method, path, headers, body = request
        self.received[path] += 1
        fault = self._next_fault() if method == "POST" else "pass"
        self.injected[fault] += fault != "pass"
        entry = {"path": path, "fault": fault, "t": time.monotonic(), "auth": headers.get("authorization")}
        if path in GENERATION_PATHS and self.record:
            entry["body"] = json.loads(body or b"{}")
            self.log.append(entry)
        if fault == "die":
            await self._kill()
            return False
        if fault == "hang":  # hold the connection until the client gives up
            await reader.read()
            return False
        if fault.startswith("429"):
            seconds = fault.partition(":")[2] or "1"
            await _respond(writer, 429, b'{"error": {"message": "rate limited"}}', {"Retry-After": seconds})
            return True
        if fault == "close":  # no response at all
            return False
        if fault.isdigit():
            await _respond(writer, int(fault), b'{"error": {"message": "injected fault"}}')
            return True
        if self.delay and method == "POST":
            await asyncio.sleep(self.delay)
        status, content_type, data = await self._forward(method, path, headers, body)
        self.forwarded[path] += 1
        entry["forwarded"] = True
        if fault == "drop":  # a full Content-Length, half the bytes, then the connection is gone
            await _respond(writer, status, data, {"Content-Type": content_type}, cut=len(data) // 2)
            writer.transport.abort()
            return False
        if fault == "headers":  # the status line and headers, no body, then the connection is gone
            await _respond(writer, status, data, {"Content-Type": content_type}, cut=0)
            writer.transport.abort()
            return False
        await _respond(writer, status, data, {"Content-Type": content_type})
        self.delivered[path] += 1
        if method == "POST":
            self.delivered_bodies[hashlib.sha1(body).hexdigest()] += 1
        entry["delivered"] = True
        return True

    def _next_fault(self) -> str:
        if self.faults:
            return self.faults.popleft()
        draw = self._rng.random()
        for fault, rate in self.rates.items():
            if draw < rate:
                return fault
            draw -= rate
        return "pass"

    async def _forward(self, method: str, path: str, headers: dict, body: bytes):
        if callable(self.upstream):  # an in-process stand-in
            return await self.upstream(method, path, headers, body)
        keep = {k: v for k, v in headers.items() if k in ("content-type", "authorization", "accept")}
        async with self._session.request(method, self.upstream + path, data=body, headers=keep) as r:
            return r.status, r.headers.get("Content-Type", "application/json"), await r.read()


async def _read_request(reader: asyncio.StreamReader):
    """``(method, path, headers, body)`` of the next request on a keep-alive connection; None at EOF."""
    line = await reader.readline()
    if not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return method, path, headers, body


async def _respond(writer, status: int, data: bytes, headers: dict | None = None, cut: int | None = None) -> None:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **(headers or {})}.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data[:cut])
    await writer.drain()

"""A fast in-process stand-in for an OpenAI-compatible server, served through :class:`FaultProxy`.

Why: throughput and fault tests need thousands of answers per minute, which no real model gives on a
shared CPU. Answers are a function of (prompt or messages, seed), so a run broken by faults must return
exactly what a clean run returns. ``latency`` with ``capacity`` models a server that queues instead of
answering 429: at most ``capacity`` requests are worked on at once, the rest wait their turn.
``response_format``: ``"accept"`` answers JSON for a ``json_schema`` request, ``"reject"`` answers 400
to any request that carries one (servers without structured output), ``"garble"`` answers text that is
not JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter

from fault_proxy import FaultProxy

MODEL_ID = "standin/echo-1"


def standin_text(prompt, seed) -> str:
    """What the stand-in answers for a prompt (a string or a messages list) and a seed."""
    digest = hashlib.sha256(json.dumps([prompt, seed]).encode()).hexdigest()
    return f" reply {digest[:12]}"


class OpenAIStandIn:
    """``await standin(method, path, headers, body) -> (status, content_type, bytes)``; counts in ``.answered``."""

    def __init__(self, latency: float = 0.0, capacity: int | None = None, response_format: str = "accept"):
        self.latency, self.capacity, self.response_format = latency, capacity, response_format
        self.answered: Counter = Counter()  # per path
        self.busy = 0  # requests being worked on now
        self.peak_busy = 0
        self._slots: asyncio.Semaphore | None = None

    def set_capacity(self, capacity: int | None) -> None:
        """Change how many requests are worked on at once (takes effect for requests that arrive next)."""
        self.capacity, self._slots = capacity, None

    async def __call__(self, method: str, path: str, headers: dict, body: bytes):
        if method == "GET" and path.rstrip("/") == "/v1/models":
            return _json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "tests"}]})
        if path not in ("/v1/completions", "/v1/chat/completions"):
            return _json(404, {"error": {"message": f"no route {path}"}})
        request = json.loads(body)
        wants_json = (request.get("response_format") or {}).get("type") == "json_schema"
        if wants_json and self.response_format == "reject":
            return _json(400, {"error": {"message": "response_format is not supported"}})
        if self.capacity and self._slots is None:
            self._slots = asyncio.Semaphore(self.capacity)
        async with self._slots or _nothing():
            self.busy += 1
            self.peak_busy = max(self.peak_busy, self.busy)
            try:
                if self.latency:
                    await asyncio.sleep(self.latency)
            finally:
                self.busy -= 1
        self.answered[path] += 1
        chat = path.endswith("chat/completions")
        text = standin_text(request["messages"] if chat else request["prompt"], request.get("seed"))
        if wants_json and self.response_format == "accept":
            field = next(iter(request["response_format"]["json_schema"]["schema"]["properties"]))
            text = json.dumps({field: text.strip()})
        elif wants_json:  # "garble": a server that ignores the schema
            text = "Sure! " + text
        usage = {"prompt_tokens": 5, "completion_tokens": len(text.split()), "total_tokens": 5 + len(text.split())}
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
                  else {"index": 0, "text": text, "finish_reason": "stop"})
        return _json(200, {"id": "cmpl-standin", "object": "chat.completion" if chat else "text_completion",
                           "created": 0, "model": request.get("model", MODEL_ID), "choices": [choice],
                           "usage": usage})


class _nothing:
    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc):
        return None


def _json(status: int, payload: dict):
    return status, "application/json", json.dumps(payload).encode()


def start_standin(rates: dict[str, float] | None = None, seed: int = 0, record: bool = True,
                  **standin) -> FaultProxy:
    """A running stand-in behind a fault proxy; ``proxy.upstream`` is the :class:`OpenAIStandIn`."""
    return FaultProxy(OpenAIStandIn(**standin), rates=rates, seed=seed, record=record).start()


def main() -> None:
    """``python tests/openai_standin.py [--rates JSON] [--seed N]``: serve on 127.0.0.1 until stdin closes.

    Prints the base URL as the first line of stdout, so a benchmark can run the stand-in in its own process
    (its own core and GIL) and read where it listens.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rates", default="{}", help='fault -> probability, e.g. {"close": 0.05}')
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    proxy = start_standin(rates=json.loads(args.rates), seed=args.seed, record=False)
    print(proxy.url, flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    proxy.stop()


if __name__ == "__main__":
    main()

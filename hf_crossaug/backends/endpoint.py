"""Generation through an OpenAI-compatible HTTP endpoint (vLLM, TGI, ``transformers serve``, a provider).

Why this is more than a loop over ``openai`` calls: a build sends thousands of requests to servers that
rate-limit, restart and hang. Every answer goes into a :class:`RequestCache` as it arrives, so a crash or
``kill -9`` loses only the requests in flight and a rerun sends nothing twice. Retries are our own (the
client's are off) so each one is counted by reason for the dataset card. A fault costs the request that
met it (its own backoff, a dropped connection retried at once), never the run: a replica leaves rotation
only when its circuit breaker says it is down (retry.py), each request has a total deadline, and the
number in flight adapts to the server's latency under the ``max_in_flight`` cap (concurrency.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .body import default_seeds, parse_answer, request_body
from .concurrency import AdaptiveLimit, keepalive_pools
from . import structured
from .request_cache import CACHE_FILE, RequestCache, key_for
from .served import served_model
from .retry import (  # noqa: F401 - re-exported: this module's API
    DOWN_REASONS, RETRY_REASONS, Breaker, Deadline, Replica, RequestFailed, backoff_delay, classify,
    classify_quietly, parse_retry_after, pick_replica, retry_delay,
)

logger = logging.getLogger(__name__)

DUMMY_KEY = "EMPTY"  # what local OpenAI-compatible servers accept when no key is configured
class _Abort(Exception):
    """Sending more is pointless: too many failures already, or a long streak of them (a dead server)."""


@dataclass
class _Run:
    """One call's bookkeeping, by request key; ``weight``: how many prompts share a key."""

    keys: list[str]
    answers: dict = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # key -> final reason
    sent: set[str] = field(default_factory=set)  # keys sent at least once
    n_failed: int = 0  # prompts, not unique requests, make the failed fraction
    streak: int = 0
    stopped: str | None = None  # why the run stopped early

    def __post_init__(self):
        self.weight = Counter(self.keys)

    def unfinished(self) -> str:
        """``, N sent but unanswered and M not sent as the run stopped early`` for the error line (prompts)."""
        open_ = [k for k in self.keys if k not in self.answers and k not in self.failed]
        parts = [f"{n} {what}" for n, what in ((sum(k in self.sent for k in open_), "sent but unanswered"),
                                               (sum(k not in self.sent for k in open_), "not sent")) if n]
        return f", {' and '.join(parts)} as the run stopped early" if parts else ""


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` with user, password, query and fragment removed (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def api_key(config) -> str:
    """The key from the environment variable named by ``api_key_env`` (read when needed, never stored)."""
    name = getattr(config, "api_key_env", None)
    if not name:
        return DUMMY_KEY
    key = os.environ.get(name)
    if not key:
        raise RuntimeError(f"api_key_env names the environment variable {name}, which is not set")
    return key


def run_sync(coro):
    """Run a coroutine to completion from sync code, also when the calling thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _new_stats() -> dict:
    return {"requests": 0, "cache_hits": 0, "answered": 0, "retries": dict.fromkeys(RETRY_REASONS, 0),
            "failures": {}, "bad_json": 0, "prompt_tokens": 0, "completion_tokens": 0, "wall_seconds": 0.0,
            "tokens_per_s": 0.0}


class EndpointGenerator:
    """``texts, completion_tokens = gen(prompts, seeds)`` against one server or a list of replicas.

    ``config`` is duck-typed (GenerationConfig): model, revision, prompt_style, temperature, top_p,
    max_new_tokens, stop_at_newline, base_url, api_key_env, max_in_flight, request_timeout, request_deadline,
    max_retries, max_failed_fraction. A request that finally failed yields ``None`` and 0 tokens; more failures
    than ``max_failed_fraction`` raise a one-line RuntimeError after the finished answers are cached.
    """

    def __init__(self, config, cache_dir: str | Path, *, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 cooloff: float = 2.0, rng: random.Random | None = None):
        urls = [config.base_url] if isinstance(config.base_url, str) else list(config.base_url or [])
        if not urls:
            raise ValueError("the endpoint backend needs base_url, e.g. http://127.0.0.1:8000/v1")
        if config.prompt_style not in ("fewshot", "instruct"):
            raise ValueError(f"prompt_style must be 'fewshot' or 'instruct', got {config.prompt_style!r}")
        api_key(config)  # fail now, not after loading prompts, when the named variable is missing
        self.config = config
        self.replicas = [Replica(u.rstrip("/"), redact_url(u), breaker=Breaker(cooloff, backoff_cap)) for u in urls]
        self.limit = AdaptiveLimit(config.max_in_flight)  # kept across calls: later shards start where it settled
        self.cache = RequestCache(Path(cache_dir) / CACHE_FILE)
        self.backoff_base, self.backoff_cap, self.cooloff = backoff_base, backoff_cap, cooloff
        self.rng = rng or random.Random()
        self.stats = _new_stats()
        self._served: dict | None = None  # the /v1/models entry of the served model, asked once
        self._clients: dict[str, object] = {}
        self._details: dict[str, str] = {}  # a server's message per final failure reason, for the error line
        self._bar, self._shown = None, 0.0  # the caller's progress bar, and when its postfix was last drawn
        self._field: str | None = None  # structured output: the JSON field asked for in this call
        self._schema_refused = False  # a server turned down response_format: plain text from then on
        self.last_errors: list[str | None] = []  # per prompt of the last call: "bad_json" or None

    # ----- public -----

    def __call__(self, prompts: list[str], seeds: list[int] | None = None, progress=None,
                 field: str | None = None) -> tuple[list[str | None], list[int]]:
        """`hf_crossaug.backends.Generator`: ``seeds`` default to one per prompt position; ``progress``: a tqdm bar
        advanced per finished prompt, its postfix showing in-flight level and retries. ``field`` (instruct style):
        ask for JSON ``{field: text}`` and return the field (structured.py)."""
        seeds = default_seeds(self.config, prompts, seeds)
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        self._bar, self._field = progress, field if self.config.prompt_style == "instruct" else None
        try:
            return run_sync(self._generate(list(prompts), list(seeds)))
        finally:
            self._bar = self._field = None

    def provenance(self) -> dict:
        """What a card records: served model id, revision and listing details; never a URL or a key."""
        if self._served is None:
            run_sync(self._with_clients(self._check_served()))
        info = {"backend": "endpoint", "model": self.model_id, "revision": self.revision,
                "replicas": len(self.replicas)}
        for name in ("root", "owned_by", "parent"):
            if self._served.get(name) not in (None, ""):
                info[name] = self._served[name]
        return info

    @property
    def model_id(self) -> str:
        return self.config.model or self._served["id"]

    @property
    def revision(self) -> str | None:
        return self.config.revision or self._served.get("revision")

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> EndpointGenerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- one run -----

    async def _generate(self, prompts: list[str], seeds: list[int]):
        start = time.monotonic()
        try:
            run = await self._with_clients(self._answer_all(prompts, seeds))
        finally:
            self.stats["wall_seconds"] += time.monotonic() - start
            wall = self.stats["wall_seconds"]
            self.stats["tokens_per_s"] = self.stats["completion_tokens"] / wall if wall > 0 else 0.0
            self.stats["concurrency"] = self.limit.summary()
            self._show(force=True)
        unwrapped = [structured.unwrap(run.answers[k], self._field) if k in run.answers else (None, None)
                     for k in run.keys]
        texts, self.last_errors = [t for t, _ in unwrapped], [e for _, e in unwrapped]
        self.stats["bad_json"] += sum(e == "bad_json" for e in self.last_errors)
        tokens = [run.answers[k]["completion_tokens"] if k in run.answers else 0 for k in run.keys]
        reasons = Counter(run.failed[k] for k in run.keys if k in run.failed)  # per prompt, in the order they failed
        n_failed = sum(reasons.values())
        if not n_failed:
            return texts, tokens
        why = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        detail = next((f": {self._details[r]}" for r in reasons if r in self._details), "")
        head = f"generation: {n_failed} of {len(run.keys)} requests failed ({why}{detail})"
        over = n_failed > self.config.max_failed_fraction * len(run.keys)
        if not (run.stopped or over):
            logger.warning("%s; within max_failed_fraction, their texts are None", head)
            return texts, tokens
        head += run.unfinished()
        raise RuntimeError(
            f"{head} — {run.stopped or f'more than max_failed_fraction {self.config.max_failed_fraction}'}; "
            f"finished answers are cached in {self.cache.path}, rerun to continue")

    async def _with_clients(self, coro):
        """Open one client per replica for this event loop (clients are bound to the loop that made them)."""
        import openai

        key = api_key(self.config)
        self._clients = {r.url: openai.AsyncOpenAI(base_url=r.url, api_key=key, max_retries=0,
                                                   timeout=self.config.request_timeout) for r in self.replicas}
        self.limit.follow(keepalive_pools(self._clients.values()))
        try:
            return await coro
        finally:
            self.limit.follow([])
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
            self._clients = {}

    async def _answer_all(self, prompts: list[str], seeds: list[int]) -> _Run:
        await self._check_served()
        self._details = {}
        bodies = [request_body(self.config, self.model_id, p, s, self._field) for p, s in zip(prompts, seeds)]
        run = _Run([key_for(self.model_id, self.revision, b) for b in bodies])
        run.answers = self.cache.get_many(run.keys)
        hits = sum(k in run.answers for k in run.keys)
        self.stats["cache_hits"] += hits
        self._advance(hits)
        body_of = dict(zip(run.keys, bodies))
        todo = iter([k for k in dict.fromkeys(run.keys) if k not in run.answers])  # a repeated request goes once
        limit = self.config.max_failed_fraction * len(run.keys)
        cap = max(1, self.config.max_in_flight)
        max_streak = max(8, 2 * cap)  # every slot failed twice in a row, each after all its retries

        async def worker():
            for key in todo:  # workers share one iterator: each request is taken exactly once
                try:
                    run.answers[key] = await self._request(key, body_of[key], run)
                    run.streak = 0
                    self._advance(run.weight[key])
                except RequestFailed as f:
                    self._advance(run.weight[key])
                    run.failed[key] = f.reason
                    self.stats["failures"][f.reason] = self.stats["failures"].get(f.reason, 0) + 1
                    if f.detail:
                        self._details.setdefault(f.reason, f.detail)
                    run.n_failed, run.streak = run.n_failed + run.weight[key], run.streak + 1
                    if run.n_failed > limit:  # over the limit whatever the rest does: stop sending
                        run.stopped = f"more than max_failed_fraction {self.config.max_failed_fraction}"
                    elif run.streak >= max_streak:  # a dead server or a request it always rejects
                        run.stopped = f"the last {run.streak} requests all failed"
                    if run.stopped:
                        raise _Abort(run.stopped) from None

        # Twice as many workers as slots: a request waiting out its backoff holds no slot (the limiter
        # caps what is in flight), so the others keep the server busy meanwhile.
        workers = [asyncio.create_task(worker()) for _ in range(2 * cap)]
        try:
            await asyncio.gather(*workers)
        except _Abort:
            pass  # run.stopped says why
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return run

    # ----- one request -----

    async def _request(self, key: str, body: dict, run: _Run) -> dict:
        """Send until answered, out of retries or past ``request_deadline``; the answer is cached before returning."""
        cfg, deadline, drops, failure, attempt = self.config, None, 0, None, 0
        while True:
            await self.limit.acquire()
            try:  # a slot first, then the replica: no wait between the pick and the send (one half-open probe)
                replica = await self._replica(deadline, attempt, failure)
                deadline = deadline or Deadline(cfg.request_deadline)  # counted from the first send
                if run.stopped or deadline.left() <= 0:  # stopped: woken by a slot freed as the run stopped
                    raise _Abort(run.stopped) if run.stopped else self._past_deadline(deadline, attempt, failure)
            except BaseException:
                self.limit.release()
                raise
            probe = replica.breaker.on_send()
            run.sent.add(key)
            sent = structured.plain(body) if self._schema_refused else body  # decided now, not before the wait
            replica.in_flight += 1
            replica.sent += 1
            self.stats["requests"] += 1
            sent_at = time.monotonic()
            try:
                response = await asyncio.wait_for(self._send(replica, sent), min(cfg.request_timeout, deadline.left()))
                answer = parse_answer(response) | ({"format": "json"} if structured.FORMAT_KEY in sent else {})
            except asyncio.CancelledError:  # the run stopped: no outcome, so no verdict on the replica
                replica.breaker.probing = False
                raise
            except Exception as exc:  # noqa: BLE001 - classify() re-raises what it does not know
                failure = classify(exc)
            else:
                failure = None
            finally:
                replica.in_flight -= 1
                self.limit.release()
            now = time.monotonic()
            if failure is None:
                replica.breaker.record(False, now, probe, replica.in_flight)
                self.limit.on_latency(now - sent_at)
                self.cache.put(key, answer)
                self.stats["answered"] += 1
                self.stats["prompt_tokens"] += answer["prompt_tokens"]
                self.stats["completion_tokens"] += answer["completion_tokens"]
                return answer
            self._note_failure(replica, failure, now, probe)
            if structured.refused(failure, sent):  # again at once as plain text; not a retry of the request
                if not self._schema_refused:
                    logger.warning("%s refused response_format (%s: %s); asking for plain text from now on",
                                   replica.name, failure.reason, failure.detail)
                self._schema_refused = True
                continue
            if failure.reason not in RETRY_REASONS:
                raise failure
            drops += failure.reason == "connection"
            delay = retry_delay(failure, attempt, drops, self.backoff_base, self.backoff_cap, self.rng)
            if delay >= deadline.left():  # waiting would end past the deadline
                raise self._past_deadline(deadline, attempt + 1, failure)
            if attempt == cfg.max_retries:
                raise failure
            self.stats["retries"][failure.reason] += 1
            self._show()
            await asyncio.sleep(delay)
            attempt += 1

    async def _replica(self, deadline: Deadline | None, tries: int, last: RequestFailed | None) -> Replica:
        """A replica that may take a request now, waiting while all are out of rotation or paused."""
        replica, wait = pick_replica(self.replicas, time.monotonic())
        while wait > 0:
            if deadline is not None and deadline.left() <= 0:
                raise self._past_deadline(deadline, tries, last)
            await (deadline.sleep(wait) if deadline else asyncio.sleep(wait))
            replica, wait = pick_replica(self.replicas, time.monotonic())
        return replica

    def _note_failure(self, replica: Replica, failure: RequestFailed, now: float, probe: bool) -> None:
        """What one failed try says about the replica (down? paused?) and the server's load (429: too much)."""
        if replica.breaker.record(failure.reason in DOWN_REASONS, now, probe, replica.in_flight):
            logger.info("replica %s out of rotation for %.1fs after %s", replica.name,
                        replica.breaker.open_until - now, failure.reason)
        if failure.retry_after is not None:  # the server said when to come back: nothing goes there before
            replica.down_until = max(replica.down_until, now + failure.retry_after)
        if failure.reason == "429":
            self.limit.on_overload()

    @staticmethod
    def _past_deadline(deadline: Deadline, tries: int, last: RequestFailed | None) -> RequestFailed:
        why = f", last {last.reason}" if last else ""
        return RequestFailed("deadline", detail=f"no answer within request_deadline {deadline.seconds:g}s "
                                                f"({tries} tries{why})")

    def _advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.update(n)
            self._show()

    def _show(self, force: bool = False) -> None:
        """The progress bar's postfix: requests in flight / the adaptive level, retries and failures so far."""
        now = time.monotonic()
        if self._bar is None or (not force and now - self._shown < 0.5):
            return
        self._shown = now
        self._bar.set_postfix(in_flight=f"{self.limit.in_flight}/{self.limit.level}",
                              retries=sum(self.stats["retries"].values()),
                              failed=sum(self.stats["failures"].values()))

    async def _send(self, replica: Replica, body: dict):
        client = self._clients[replica.url]
        if "messages" in body:
            return await client.chat.completions.create(**body)
        return await client.completions.create(**body)

    # ----- the served model -----

    async def _check_served(self) -> None:
        """Ask every replica for ``/v1/models`` once: an unreachable set fails now, in one line, before any work."""
        if self._served is None:
            self._served = await served_model(self.replicas, self._clients, self.config.model,
                                              min(self.config.request_timeout, 30.0), self.cooloff)

"""Generation through an OpenAI-compatible HTTP endpoint (vLLM, TGI, ``transformers serve``, a provider).

Why this is more than a loop over ``openai`` calls: a build sends thousands of requests to servers that
rate-limit, restart and hang. Every answer goes into a :class:`RequestCache` as it arrives, so a crash or
``kill -9`` loses only the requests in flight and a rerun sends nothing twice. Retries are our own (the
client's are off) so each one is counted by reason for the dataset card, and a list of replicas is
served least-loaded first, with a replica that fails cooled off while the others carry the work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import logging
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .request_cache import CACHE_FILE, RequestCache, key_for

logger = logging.getLogger(__name__)

# Failures worth retrying; anything else (a 4xx other than 429) is final, reported as ``http_<status>``.
RETRY_REASONS = ("429", "5xx", "timeout", "connection", "bad_response")
DUMMY_KEY = "EMPTY"  # what local OpenAI-compatible servers accept when no key is configured


@dataclass
class Replica:
    """One server of a replica set, with the load and health that dispatch decides on."""

    url: str  # as configured; may hold credentials, so only ``name`` is ever printed
    name: str
    in_flight: int = 0
    sent: int = 0
    down_until: float = 0.0  # time.monotonic() before which no new request goes here
    failures: int = 0  # consecutive failures: the cool-off doubles with each


class RequestFailed(Exception):
    """One attempt failed; ``reason`` is a RETRY_REASONS entry or ``http_<status>``."""

    def __init__(self, reason: str, retry_after: float | None = None, detail: str = ""):
        super().__init__(reason)
        self.reason, self.retry_after, self.detail = reason, retry_after, detail


class _Abort(Exception):
    """Sending more is pointless: too many failures already, or a long streak of them (a dead server)."""


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` with user, password, query and fragment removed (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


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


def pick_replica(replicas: list[Replica], now: float) -> tuple[Replica, float]:
    """The least-loaded replica that is up (ties: fewest sent); if all cool off, the first back and the wait."""
    up = [r for r in replicas if r.down_until <= now]
    if up:
        return min(up, key=lambda r: (r.in_flight, r.sent)), 0.0
    soonest = min(replicas, key=lambda r: r.down_until)
    return soonest, soonest.down_until - now


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
            "failures": {}, "prompt_tokens": 0, "completion_tokens": 0, "wall_seconds": 0.0, "tokens_per_s": 0.0}


class EndpointGenerator:
    """``texts, completion_tokens = gen(prompts, seeds)`` against one server or a list of replicas.

    ``config`` is duck-typed (GenerationConfig): model, revision, prompt_style, temperature, top_p,
    max_new_tokens, stop_at_newline, base_url, api_key_env, max_in_flight, request_timeout, max_retries,
    max_failed_fraction. A request that finally failed yields ``None`` and 0 tokens; more failures than
    ``max_failed_fraction`` raise a one-line RuntimeError after the finished answers are cached.
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
        self.replicas = [Replica(u.rstrip("/"), redact_url(u)) for u in urls]
        self.cache = RequestCache(Path(cache_dir) / CACHE_FILE)
        self.backoff_base, self.backoff_cap, self.cooloff = backoff_base, backoff_cap, cooloff
        self.rng = rng or random.Random()
        self.stats = _new_stats()
        self._served: dict | None = None  # the /v1/models entry of the served model, asked once
        self._clients: dict[str, object] = {}
        self._details: dict[str, str] = {}  # a server's message per final failure reason, for the error line

    # ----- public -----

    def __call__(self, prompts: list[str], seeds: list[int]) -> tuple[list[str | None], list[int]]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        return run_sync(self._generate(list(prompts), list(seeds)))

    def provenance(self) -> dict:
        """What a card records: served model id, revision and listing details; never a URL or a key."""
        if self._served is None:
            run_sync(self._with_clients(self._check_served()))
        info = {"backend": "endpoint", "model": self.model_id, "revision": self.revision,
                "replicas": len(self.replicas)}
        for field in ("root", "owned_by", "parent"):
            if self._served.get(field) not in (None, ""):
                info[field] = self._served[field]
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
            keys, answers, failed, stopped = await self._with_clients(self._answer_all(prompts, seeds))
        finally:
            self.stats["wall_seconds"] += time.monotonic() - start
            wall = self.stats["wall_seconds"]
            self.stats["tokens_per_s"] = self.stats["completion_tokens"] / wall if wall > 0 else 0.0
        reasons = Counter(failed[k] for k in keys if k in failed)  # per prompt, in the order they failed
        texts = [answers[k]["text"] if k in answers else None for k in keys]
        tokens = [answers[k]["completion_tokens"] if k in answers else 0 for k in keys]
        n_failed = sum(reasons.values())
        if not n_failed:
            return texts, tokens
        why = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        detail = next((f": {self._details[r]}" for r in reasons if r in self._details), "")
        head = f"generation: {n_failed} of {len(keys)} requests failed ({why}{detail})"
        over = n_failed > self.config.max_failed_fraction * len(keys)
        if not (stopped or over):
            logger.warning("%s; within max_failed_fraction, their texts are None", head)
            return texts, tokens
        unsent = sum(t is None for t in texts) - n_failed
        head += f", {unsent} not sent as the run stopped early" if unsent else ""
        raise RuntimeError(
            f"{head} — {stopped or f'more than max_failed_fraction {self.config.max_failed_fraction}'}; "
            f"finished answers are cached in {self.cache.path}, rerun to continue")

    async def _with_clients(self, coro):
        """Open one client per replica for this event loop (clients are bound to the loop that made them)."""
        import openai

        key = api_key(self.config)
        self._clients = {r.url: openai.AsyncOpenAI(base_url=r.url, api_key=key, max_retries=0,
                                                   timeout=self.config.request_timeout) for r in self.replicas}
        try:
            return await coro
        finally:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
            self._clients = {}

    async def _answer_all(self, prompts: list[str], seeds: list[int]):
        """Each prompt's key, answers by key, failure reasons by key, and why the run stopped early (or None)."""
        await self._check_served()
        self._details = {}
        bodies = [self._body(p, s) for p, s in zip(prompts, seeds)]
        keys = [key_for(self.model_id, self.revision, b) for b in bodies]
        answers: dict = self.cache.get_many(keys)
        self.stats["cache_hits"] += sum(k in answers for k in keys)
        body_of = dict(zip(keys, bodies))
        todo = iter([k for k in dict.fromkeys(keys) if k not in answers])  # a repeated request goes once
        failed: dict[str, str] = {}
        weight, n_failed, streak = Counter(keys), 0, 0  # prompts, not unique requests, make the fraction
        limit = self.config.max_failed_fraction * len(keys)
        n_workers = max(1, self.config.max_in_flight)
        max_streak = max(8, 2 * n_workers)  # every worker failed twice in a row, each after all its retries

        async def worker():
            nonlocal n_failed, streak
            for key in todo:  # workers share one iterator: each request is taken exactly once
                try:
                    answers[key] = await self._request(key, body_of[key])
                    streak = 0
                except RequestFailed as f:
                    failed[key] = f.reason
                    self.stats["failures"][f.reason] = self.stats["failures"].get(f.reason, 0) + 1
                    if f.detail:
                        self._details.setdefault(f.reason, f.detail)
                    n_failed, streak = n_failed + weight[key], streak + 1
                    if n_failed > limit:  # over the limit whatever the rest does: stop sending
                        raise _Abort(f"more than max_failed_fraction {self.config.max_failed_fraction}") from None
                    if streak >= max_streak:  # a dead server or a request it always rejects
                        raise _Abort(f"the last {streak} requests all failed") from None

        workers = [asyncio.create_task(worker()) for _ in range(n_workers)]
        stopped = None
        try:
            await asyncio.gather(*workers)
        except _Abort as abort:
            stopped = str(abort)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return keys, answers, failed, stopped

    def _body(self, prompt: str, seed: int) -> dict:
        """The request JSON; it is also what the cache key hashes, so it holds every sampling choice."""
        cfg = self.config
        body = {"model": self.model_id, "max_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                "seed": int(seed)}
        if cfg.temperature > 0:  # greedy ignores top_p, as the local backend does
            body["top_p"] = cfg.top_p
        if cfg.prompt_style == "instruct":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
            if cfg.stop_at_newline:
                body["stop"] = ["\n"]
        return body

    # ----- one request -----

    async def _request(self, key: str, body: dict) -> dict:
        """Send until answered or out of retries; the answer is committed to the cache before returning."""
        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            replica, wait = pick_replica(self.replicas, time.monotonic())
            while wait > 0:  # every replica is cooling off: wait for the first one back
                await asyncio.sleep(wait)
                replica, wait = pick_replica(self.replicas, time.monotonic())
            replica.in_flight += 1
            replica.sent += 1
            self.stats["requests"] += 1
            try:
                response = await asyncio.wait_for(self._send(replica, body), cfg.request_timeout)
                answer = self._parse(response)
            except Exception as exc:  # noqa: BLE001 - classify() re-raises what it does not know
                failure = classify(exc)
            else:
                replica.failures = 0
                self.cache.put(key, answer)
                self.stats["answered"] += 1
                self.stats["prompt_tokens"] += answer["prompt_tokens"]
                self.stats["completion_tokens"] += answer["completion_tokens"]
                return answer
            finally:
                replica.in_flight -= 1
            retryable = failure.reason in RETRY_REASONS
            if retryable:  # the replica's health matters to every request, retried or not
                self._cool_off(replica, failure)
            if not retryable or attempt == cfg.max_retries:
                raise failure
            self.stats["retries"][failure.reason] += 1
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng))
        raise AssertionError("unreachable")

    def _cool_off(self, replica: Replica, failure: RequestFailed) -> None:
        """Keep new requests off a failing replica for a while: Retry-After if given, else doubling."""
        if failure.retry_after is not None:
            pause = failure.retry_after
        else:
            replica.failures += 1
            pause = min(self.backoff_cap, self.cooloff * 2 ** (replica.failures - 1))
        replica.down_until = max(replica.down_until, time.monotonic() + pause)
        if len(self.replicas) > 1:
            logger.info("replica %s cooling off %.1fs after %s", replica.name, pause, failure.reason)

    async def _send(self, replica: Replica, body: dict):
        client = self._clients[replica.url]
        if "messages" in body:
            return await client.chat.completions.create(**body)
        return await client.completions.create(**body)

    @staticmethod
    def _parse(response) -> dict:
        """The served text as returned (nothing stripped) and its token counts; raises on a malformed reply."""
        choice = response.choices[0]
        text = choice.message.content if hasattr(choice, "message") else choice.text
        if text is None:
            text = ""
        usage = getattr(response, "usage", None)
        return {"text": text, "finish_reason": choice.finish_reason,
                "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0)}

    # ----- the served model -----

    async def _check_served(self) -> None:
        """Ask every replica for ``/v1/models`` once: an unreachable set fails now, in one line, before any work."""
        if self._served is not None:
            return
        timeout = min(self.config.request_timeout, 30.0)
        listings, errors = {}, []
        for replica in self.replicas:
            try:
                page = await asyncio.wait_for(self._clients[replica.url].models.list(), timeout)
                listings[replica.name] = [m.to_dict() for m in page.data]
            except Exception as exc:  # noqa: BLE001 - any failure means "not usable now"
                reason = classify_quietly(exc)
                errors.append(f"{replica.name} ({reason})")
                replica.down_until = time.monotonic() + self.cooloff
        if not listings:
            raise RuntimeError(f"endpoint unreachable: {'; '.join(errors)} — start the server or fix base_url")
        if errors:
            logger.warning("endpoint replicas unreachable at start, continuing without them: %s", "; ".join(errors))
        self._served = self._pick_model(listings)

    def _pick_model(self, listings: dict[str, list[dict]]) -> dict:
        wanted = self.config.model
        for name, models in listings.items():
            ids = [m.get("id") for m in models]
            if wanted is None:
                if not models:
                    raise RuntimeError(f"endpoint {name} lists no models; set the generator model to the served id")
                if len(models) > 1:
                    logger.warning("endpoint %s serves %d models, using %s (set model to choose)",
                                   name, len(models), ids[0])
                return models[0]
            if wanted in ids:
                return models[ids.index(wanted)]
        logger.warning("no replica lists model %s in /v1/models; sending requests for it anyway", wanted)
        return {"id": wanted}


def classify_quietly(exc: BaseException) -> str:
    """A short, secret-free reason for an error at start (exception messages may echo the URL)."""
    try:
        failure = classify(exc)
    except BaseException:  # noqa: BLE001
        return type(exc).__name__
    if failure.reason in ("http_401", "http_403"):
        return f"{failure.reason}, check api_key_env"
    return failure.reason

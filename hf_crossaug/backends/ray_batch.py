"""The generate stage as a Ray Data job: ``ray.data.llm``'s HTTP processor against OpenAI-compatible servers.

For offline batch inference on many nodes. Each replica in ``base_url`` (one vLLM / llama.cpp /
``transformers serve`` per node, or one load-balanced URL) gets a Ray Data HTTP processor; Ray spreads
the request actors over the cluster. The request bodies (and per-row seeds) are those of the
``endpoint`` backend, so a server that honours ``seed`` returns the same texts through either path.

It shares the ``endpoint`` backend's request cache (same keys, same folder): answers are committed in
the driver as Ray streams them back, so a killed job loses only the batches in flight and a rerun sends
only what is missing. Retries are Ray's own (429/408/5xx and dropped connections, exponential backoff),
so failures are counted but retries are not broken down by reason.

    pip install 'hf_crossaug[ray]'
    # recipe: generation: {backend: ray, base_url: [http://node1:8000/v1, ...], model: SERVED_ID, shard_size: 10000}

or from Python: ``generate_with_ray(prompts_dataset, GenerationConfig(...))`` -> the Dataset with
``generation`` and ``generated_tokens`` columns. Pass ``ray_address`` (or set ``RAY_ADDRESS``) to join a
running cluster; without one, a local Ray instance is started.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.request
from pathlib import Path

from ..utils.fingerprint import shard_seed
from .body import default_seeds, request_body
from .endpoint import api_key, redact_url
from .request_cache import CACHE_FILE, RequestCache, key_for

logger = logging.getLogger(__name__)

LIGHT_CPU = 0.05  # CPUs Ray reserves per request actor and per pre/postprocess task
ROW = "_hf_crossaug_row"  # carries each row's position through Ray (which does not keep order)
ANSWER = "_hf_crossaug_answer"  # the parsed answer as JSON ("null" for a failed request)


def _parse(response) -> dict | None:
    """One answer as the request cache stores it (text, finish reason, token counts); None for an error body
    (e.g. a 4xx that Ray did not retry)."""
    try:
        choice = response["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        usage = response.get("usage") or {}
        return {"text": text or "", "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0)}
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def _ray_processor(config, url: str, headers: dict, n_rows: int, in_flight: int):
    """One ``ray.data.llm`` HTTP processor for one replica: ``in_flight`` actors, each sending its batches."""
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    endpoint = url.rstrip("/") + ("/chat/completions" if config.prompt_style == "instruct" else "/completions")
    batch_size = max(1, min(64, math.ceil(n_rows / max(1, in_flight))))
    processor_config = HttpRequestProcessorConfig(
        url=endpoint, headers=headers, batch_size=batch_size, concurrency=max(1, in_flight),
        max_retries=config.max_retries,
        # every stage waits on the network or moves a few strings: none should hold a whole CPU (with
        # Ray's default of 1 CPU per task, a one-CPU Ray deadlocks: the preprocess task starves the actor)
        http_request_stage={"num_cpus": LIGHT_CPU},
    )

    def preprocess(row: dict) -> dict:
        return {"payload": request_body(config, config.model, row["prompt"], int(row["seed"]))}

    def postprocess(row: dict) -> dict:
        return {ROW: row[ROW], ANSWER: json.dumps(_parse(row.get("http_response")))}

    light = {"num_cpus": LIGHT_CPU}
    return build_processor(processor_config, preprocess=preprocess, postprocess=postprocess,
                           preprocess_map_kwargs=light, postprocess_map_kwargs=light)


def ray_answers(prompts: list[str], seeds: list[int], config, ray_address: str | None = None, on_answer=None
                ) -> list[dict | None]:
    """One answer per prompt (None where the request failed), as one Ray Data job over all replicas;
    ``on_answer(i, answer)`` is called in the driver as each answer streams back (to commit it at once)."""
    import ray
    import ray.data

    urls = config.base_urls() if hasattr(config, "base_urls") else (
        [config.base_url] if isinstance(config.base_url, str) else list(config.base_url or []))
    if not urls:
        raise ValueError("the ray backend needs base_url, e.g. http://127.0.0.1:8000/v1 (or a list of replicas)")
    if not config.model:
        raise ValueError("the ray backend needs model: the served model id")
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if not prompts:
        return []
    if not ray.is_initialized():
        ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
    headers = {"Authorization": f"Bearer {api_key(config)}"}
    per_replica = max(1, config.max_in_flight // len(urls))
    parts = []
    for r, url in enumerate(urls):  # rows dealt round-robin: replica r serves rows r, r + n, ...
        rows = [{ROW: i, "prompt": prompts[i], "seed": int(seeds[i])} for i in range(r, len(prompts), len(urls))]
        if rows:
            processor = _ray_processor(config, url, headers, len(rows), per_replica)
            parts.append(processor(ray.data.from_items(rows)))
    out = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    answers: list[dict | None] = [None] * len(prompts)
    for row in out.select_columns([ROW, ANSWER]).iter_rows():  # streamed: rows arrive as batches finish
        i, answer = int(row[ROW]), json.loads(row[ANSWER])
        answers[i] = answer
        if answer is not None and on_answer is not None:
            on_answer(i, answer)
    return answers


def check_failures(n_failed: int, n: int, config, where: str = "") -> None:
    """Within ``max_failed_fraction``: a warning (their texts are None); above it: one line that stops the build."""
    if not n_failed:
        return
    head = f"generation (ray): {n_failed} of {n} requests failed"
    if n_failed > config.max_failed_fraction * n:
        raise RuntimeError(f"{head} — more than max_failed_fraction {config.max_failed_fraction}{where}")
    logger.warning("%s; within max_failed_fraction, their texts are None", head)


def ray_generate(prompts: list[str], seeds: list[int], config, ray_address: str | None = None
                 ) -> tuple[list[str | None], list[int]]:
    """``texts, completion_tokens`` for prompts with their seeds (no cache; `RayGenerator` adds one)."""
    answers = ray_answers(prompts, seeds, config, ray_address)
    check_failures(sum(a is None for a in answers), len(prompts), config)
    return [a["text"] if a else None for a in answers], [a["completion_tokens"] if a else 0 for a in answers]


def generate_with_ray(prompts, config, ray_address: str | None = None):
    """The prompts Dataset with ``generation`` and ``generated_tokens`` added, as the generate stage does;
    row i is sampled with seed ``shard_seed(config.seed, i)``, the endpoint backend's seed for row i."""
    seeds = [shard_seed(config.seed, i) for i in range(len(prompts))]
    texts, tokens = ray_generate(list(prompts["prompt"]), seeds, config, ray_address)
    return prompts.add_column("generation", texts).add_column("generated_tokens", tokens)


class RayGenerator:
    """``texts, tokens = gen(prompts, seeds)``: what the generate stage calls for ``backend: ray``, one Ray
    job per shard (so set ``shard_size`` large: thousands of prompts). With ``cache_dir``, answers go to the
    request cache the ``endpoint`` backend uses, and only requests missing from it are sent."""

    def __init__(self, config, cache_dir: str | Path | None = None, ray_address: str | None = None):
        if not config.base_urls():
            raise ValueError("the ray backend needs base_url, e.g. http://127.0.0.1:8000/v1")
        api_key(config)  # fail now when the named variable is missing
        self.config, self.ray_address = config, ray_address
        self.cache = RequestCache(Path(cache_dir) / CACHE_FILE) if cache_dir is not None else None
        self.stats = {"requests": 0, "cache_hits": 0, "answered": 0, "failures": {}, "prompt_tokens": 0,
                      "completion_tokens": 0, "wall_seconds": 0.0, "tokens_per_s": 0.0}
        self._provenance: dict | None = None

    def __call__(self, prompts: list[str], seeds: list[int] | None = None, progress=None, field: str | None = None):
        """The `hf_crossaug.backends.Generator` interface; ``progress`` is advanced once the job is done.
        Structured output (``field``) is the endpoint backend's only (its config refuses it here)."""
        start = time.monotonic()
        seeds = default_seeds(self.config, prompts, seeds)
        revision = self.provenance()["revision"]
        bodies = [request_body(self.config, self.config.model, p, s) for p, s in zip(prompts, seeds)]
        keys = [key_for(self.config.model, revision, b) for b in bodies]
        answers = self.cache.get_many(keys) if self.cache else {}
        self.stats["cache_hits"] += sum(k in answers for k in keys)
        first = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        todo = [k for k in first if k not in answers]  # a repeated request goes once

        def commit(j: int, answer: dict) -> None:
            answers[todo[j]] = answer
            if self.cache is not None:
                self.cache.put(todo[j], answer)
            self.stats["answered"] += 1
            self.stats["prompt_tokens"] += answer["prompt_tokens"]
            self.stats["completion_tokens"] += answer["completion_tokens"]

        try:
            if todo:
                self.stats["requests"] += len(todo)
                ray_answers([prompts[first[k]] for k in todo], [seeds[first[k]] for k in todo], self.config,
                            self.ray_address, on_answer=commit)
        finally:
            self.stats["wall_seconds"] += time.monotonic() - start
            wall = self.stats["wall_seconds"]
            self.stats["tokens_per_s"] = self.stats["completion_tokens"] / wall if wall > 0 else 0.0
        failed = [k for k in keys if k not in answers]
        if failed:
            self.stats["failures"]["request_failed"] = self.stats["failures"].get("request_failed", 0) + len(
                set(failed))
        where = f"; finished answers are cached in {self.cache.path}, rerun to continue" if self.cache else ""
        check_failures(len(failed), len(keys), self.config, where)
        if progress is not None:
            progress.update(len(keys))
        return ([answers[k]["text"] if k in answers else None for k in keys],
                [answers[k]["completion_tokens"] if k in answers else 0 for k in keys])

    def provenance(self) -> dict:
        """Served model id and revision from the first replica that answers ``/v1/models``; never a URL."""
        if self._provenance is None:
            self._provenance = self._ask_provenance()
        return self._provenance

    def _ask_provenance(self) -> dict:
        served, errors = None, []
        for url in self.config.base_urls():
            req = urllib.request.Request(url.rstrip("/") + "/models",
                                         headers={"Authorization": f"Bearer {api_key(self.config)}"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    listing = {m.get("id"): m for m in json.load(r).get("data", [])}
            except OSError as exc:
                errors.append(f"{redact_url(url)} ({type(exc).__name__})")
                continue
            served = listing.get(self.config.model, {"id": self.config.model})
            break
        if served is None:
            raise RuntimeError(f"endpoint unreachable: {'; '.join(errors)} — start the server or fix base_url")
        info = {"backend": "ray", "model": self.config.model,
                "revision": self.config.revision or served.get("revision"), "replicas": len(self.config.base_urls())}
        for field in ("root", "owned_by", "parent"):
            if served.get(field) not in (None, ""):
                info[field] = served[field]
        return info

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

"""The generate stage as a Ray Data job: ``ray.data.llm``'s HTTP processor against OpenAI-compatible servers.

For offline batch inference on many nodes. Each replica in ``base_url`` (one vLLM / llama.cpp /
``transformers serve`` per node, or one load-balanced URL) gets a Ray Data HTTP processor; Ray spreads
the request actors over the cluster. The request bodies (and per-row seeds) are those of the
``endpoint`` backend, so a server that honours ``seed`` returns the same texts through either path.

What it does not do, unlike ``endpoint``: no request cache (a crashed job resends its shard; the
generate stage still skips finished shards) and Ray's own retries (429/408/5xx and dropped connections,
exponential backoff) instead of per-reason counts.

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
import urllib.request

from ..utils.fingerprint import shard_seed
from .endpoint import api_key, redact_url

logger = logging.getLogger(__name__)

LIGHT_CPU = 0.05  # CPUs Ray reserves per request actor and per pre/postprocess task
ROW = "_hf_crossaug_row"  # carries each row's position through Ray (which does not keep order)


def request_body(config, prompt: str, seed: int) -> dict:
    """The same request JSON the ``endpoint`` backend sends (kept in one place: EndpointGenerator._body)."""
    from .endpoint import EndpointGenerator

    return EndpointGenerator._body(_BodyOnly(config), prompt, seed)


class _BodyOnly:
    """Just enough of an EndpointGenerator for ``_body`` (no cache, no clients)."""

    def __init__(self, config):
        self.config, self.model_id = config, config.model


def _parse(response) -> tuple[str | None, int]:
    """Text and completion tokens of one answer; (None, 0) for an error body (e.g. a 4xx Ray did not retry)."""
    try:
        choice = response["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        tokens = int((response.get("usage") or {}).get("completion_tokens") or 0)
    except (KeyError, IndexError, TypeError, ValueError):
        return None, 0
    return (text or ""), tokens


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
        return {"payload": request_body(config, row["prompt"], int(row["seed"]))}

    def postprocess(row: dict) -> dict:
        text, tokens = _parse(row.get("http_response"))
        return {ROW: row[ROW], "generation": text, "generated_tokens": tokens}

    light = {"num_cpus": LIGHT_CPU}
    return build_processor(processor_config, preprocess=preprocess, postprocess=postprocess,
                           preprocess_map_kwargs=light, postprocess_map_kwargs=light)


def ray_generate(prompts: list[str], seeds: list[int], config, ray_address: str | None = None
                 ) -> tuple[list[str | None], list[int]]:
    """``texts, completion_tokens`` for prompts with their seeds, as one Ray Data job over all replicas."""
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
        return [], []
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
    texts: list[str | None] = [None] * len(prompts)
    tokens = [0] * len(prompts)
    for row in out.select_columns([ROW, "generation", "generated_tokens"]).iter_rows():
        texts[int(row[ROW])], tokens[int(row[ROW])] = row["generation"], int(row["generated_tokens"])
    failed = sum(t is None for t in texts)
    if failed:
        head = f"generation (ray): {failed} of {len(prompts)} requests failed"
        if failed > config.max_failed_fraction * len(prompts):
            raise RuntimeError(f"{head} — more than max_failed_fraction {config.max_failed_fraction}")
        logger.warning("%s; within max_failed_fraction, their texts are None", head)
    return texts, tokens


def generate_with_ray(prompts, config, ray_address: str | None = None):
    """The prompts Dataset with ``generation`` and ``generated_tokens`` added, as the generate stage does;
    row i is sampled with seed ``shard_seed(config.seed, i)``, the endpoint backend's seed for row i."""
    seeds = [shard_seed(config.seed, i) for i in range(len(prompts))]
    texts, tokens = ray_generate(list(prompts["prompt"]), seeds, config, ray_address)
    return prompts.add_column("generation", texts).add_column("generated_tokens", tokens)


class RayGenerator:
    """``texts, tokens = gen(prompts, seeds)``: what the generate stage calls for ``backend: ray``, one Ray
    job per shard (so set ``shard_size`` large: thousands of prompts)."""

    def __init__(self, config, ray_address: str | None = None):
        if not config.base_urls():
            raise ValueError("the ray backend needs base_url, e.g. http://127.0.0.1:8000/v1")
        api_key(config)  # fail now when the named variable is missing
        self.config, self.ray_address = config, ray_address

    def __call__(self, prompts: list[str], seeds: list[int]):
        return ray_generate(prompts, seeds, self.config, self.ray_address)

    def provenance(self) -> dict:
        """Served model id and revision from the first replica that answers ``/v1/models``; never a URL."""
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
        pass

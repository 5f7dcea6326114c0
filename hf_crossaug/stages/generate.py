"""The generate stage: batched local LLM generation over a prompts Dataset, sharded and resumable.

Generation is the slow stage, so finished shards are written to disk as they complete: after a crash
(or ``kill -9``) a rerun skips them, and because every shard is seeded from (seed, shard index) the
result equals an uninterrupted run. Work folders are named by an explicit fingerprint (model id +
revision, prompts, sampling parameters, seed), never by hashing model weights.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
from datasets import Dataset, Value

from ..backends.local import LocalGenerator
from ..config.generate import GenerationConfig
from ..models.resolve import GENERATOR_DEFAULT, native_dtype, resolve_model
from ..utils.files import write_atomic
from ..utils.fingerprint import content_fingerprint, fingerprint, shard_seed
from ..utils.sharding import missing_shards, run_sharded


def make_generator(config: GenerationConfig, work_dir: str | Path):
    """The generator a config asks for: in process (``local``), an OpenAI-compatible server (``endpoint``),
    whose request cache lives in the work folder, or servers driven by a Ray Data job (``ray``)."""
    if config.backend == "endpoint":
        from ..backends.endpoint import EndpointGenerator

        return EndpointGenerator(config, Path(work_dir) / "requests")
    if config.backend == "ray":  # the optional [ray] extra: one Ray Data job per shard
        from ..backends.ray_batch import RayGenerator

        return RayGenerator(config, Path(work_dir) / "requests")  # the endpoint backend's cache, shared
    return LocalGenerator(config)


def generator_provenance(generator) -> dict:
    """What a card records about a generator: a server's model id and revision, or a local model's ref."""
    return generator.provenance()


def generator_card_fields(generator) -> dict:
    """`generator_provenance` plus, for an in-process model, its parameter count (the card's limitations
    read it). Kept out of the provenance itself, which names the shard folders."""
    model = getattr(generator, "model", None)
    size = {"parameters": sum(p.numel() for p in model.parameters())} if hasattr(model, "parameters") else {}
    return {**generator_provenance(generator), **size}


def prompts_fingerprint(prompts: Dataset) -> str:
    return content_fingerprint(prompts, ["prompt"])


def generate(
    prompts: Dataset,
    config: GenerationConfig,
    work_dir: str | Path,
    generator=None,
    desc: str = "generate",
    accounting: dict | None = None,
) -> Dataset:
    """Add ``generation`` (raw continuation) and ``generated_tokens`` columns to a prompts Dataset.

    ``accounting[desc]`` (when a dict is passed) receives what this call cost: requests, cache hits,
    retries and failures by reason, prompt and completion tokens, wall seconds and tokens/s.

    Shards of ``config.shard_size`` prompts are written to ``work_dir/<fingerprint>/`` as they
    finish (the endpoint backend: once the one call for all missing shards returns, its request cache
    holding each answer meanwhile); existing shards are reused, so a rerun after a crash continues where
    it stopped.
    """
    if config.backend == "local":  # the shard fingerprint names the dtype that actually ran
        config = dataclasses.replace(config, dtype=native_dtype(config.dtype))
    if generator is None and config.backend != "local":
        generator = make_generator(config, work_dir)  # cheap: the server says which model it serves
    provenance = (generator_provenance(generator) if generator else
                  resolve_model(config.model, GENERATOR_DEFAULT, config.revision).provenance())
    fp = fingerprint(provenance, config.sampling_fingerprint(), prompts_fingerprint(prompts))
    folder = Path(work_dir) / f"{desc}-{fp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fingerprint.json").write_text(json.dumps(
        {"generator": provenance, "sampling": config.sampling_fingerprint(),
         "prompts": prompts_fingerprint(prompts), "num_prompts": len(prompts)}, indent=2))

    def make_runner():
        gen = generator or LocalGenerator(config)
        if config.backend == "endpoint":
            return _endpoint_runner(prompts, gen, config, missing_shards(folder, len(prompts), config.shard_size), desc)
        if config.backend != "local":  # ray: one Ray Data job per shard
            return lambda shard, i, bar: _with_columns(shard, _request_rows(
                shard["prompt"], range(i * config.shard_size, i * config.shard_size + len(shard)), gen, config, bar,
                desc))
        return lambda shard, i, bar: _run_timed_shard(folder, shard, gen, config, i, bar, fp)

    before, start = copy.deepcopy(getattr(generator, "stats", {})), time.perf_counter()
    out = run_sharded(prompts, folder, config.shard_size, make_runner, desc, unit="prompt")
    if accounting is not None:
        after, wall = getattr(generator, "stats", {}), time.perf_counter() - start
        accounting[desc] = _cost(before, after, out, wall) if after else _local_cost(out, folder)
    return out


def _run_timed_shard(folder: Path, shard: Dataset, generator: LocalGenerator, config: GenerationConfig, index: int,
                     bar, fp: str) -> Dataset:
    """`_run_shard`, its wall time kept beside the shard, so a resumed build reports what its cached shards
    cost when they were made (not their tokens over the seconds of this run)."""
    start = time.perf_counter()
    out = _run_shard(shard, generator, config, index, bar, fp)
    write_atomic(folder / f"shard-{index:05d}.cost.json", json.dumps({"wall_s": time.perf_counter() - start}))
    return out


def _local_cost(out: Dataset, folder: Path) -> dict:
    """Rows and tokens of the local backend, over the wall time of every shard (this run's and cached ones);
    ``wall_s`` and ``tokens_per_s`` are None when a cached shard's time was never recorded."""
    tokens = int(sum(out["generated_tokens"]))
    cost = {"rows": len(out), "completion_tokens": tokens, "wall_s": None, "tokens_per_s": None}
    shards, costs = list(folder.glob("shard-*.parquet")), list(folder.glob("shard-*.cost.json"))
    if len(costs) == len(shards):
        wall = sum(json.loads(p.read_text())["wall_s"] for p in costs)
        cost.update(wall_s=round(wall, 1), tokens_per_s=round(tokens / wall, 1) if wall > 0 else 0.0)
    return cost


GAUGES = ("concurrency",)  # generator stats that are levels (the adaptive in-flight limit), not running counts


def _cost(before: dict, after: dict, out: Dataset, wall: float) -> dict:
    """One generate call's share of a server generator's running counters."""
    delta = {}
    for key, value in after.items():
        if key in GAUGES:  # a level, not a counter: what it ended at (and its range) is the story
            delta[key] = value
        elif isinstance(value, dict):
            delta[key] = {k: v - before.get(key, {}).get(k, 0) for k, v in value.items()
                          if v - before.get(key, {}).get(k, 0)}
        elif isinstance(value, (int, float)) and key not in ("tokens_per_s", "wall_seconds"):
            delta[key] = value - before.get(key, 0)
    delta["wall_s"] = round(wall, 1)
    delta["tokens_per_s"] = round(delta.get("completion_tokens", 0) / wall, 1) if wall > 0 else 0.0
    return delta


def _endpoint_runner(prompts: Dataset, generator, config: GenerationConfig, todo: list[int], field: str):
    """The shard runner of the endpoint backend: the first missing shard sends the prompts of every missing
    shard in one call, and each shard is then a slice of the answers.

    Why not one call per shard: a shard ends when its slowest request does, so a hung request (cut only by
    ``request_timeout``) would idle every other slot at each shard boundary. In one call it holds only its
    own slot. A crash still loses nothing: every answer is in the request cache as it arrives, and the
    rerun finds them there before it writes the shards."""
    size = config.shard_size
    rows = [r for i in todo for r in range(i * size, min((i + 1) * size, len(prompts)))]
    position = {r: j for j, r in enumerate(rows)}
    columns: dict[str, list] = {}

    def run(shard: Dataset, index: int, bar) -> Dataset:
        if not columns:
            columns.update(_request_rows(prompts.select(rows)["prompt"], rows, generator, config, bar, field))
        picked = [position[index * size + j] for j in range(len(shard))]
        return _with_columns(shard, {name: [values[p] for p in picked] for name, values in columns.items()})

    return run


def _request_rows(prompts: list[str], rows, generator, config: GenerationConfig, bar, field: str) -> dict[str, list]:
    """Rows through a server: every prompt in flight at once (up to ``max_in_flight``), each with its own seed
    from (seed, row index), so answers do not depend on sharding or on which replica served them. A request
    that failed for good comes back as ``None`` and is dropped by the clean stage. With ``structured_output``
    the server is asked for JSON holding ``field`` (the stage's ``desc``: the task's generated column), and
    ``generation_error`` says which answers were not that JSON."""
    seeds = [shard_seed(config.seed, r) for r in rows]
    structured = {"field": field} if config.structured_output else {}
    texts, counts = generator(list(prompts), seeds, progress=bar, **structured)  # advances the bar
    columns = {"generation": texts, "generated_tokens": counts}
    if structured:
        columns["generation_error"] = generator.last_errors
    return columns


def _with_columns(shard: Dataset, columns: dict[str, list]) -> Dataset:
    for name, values in columns.items():  # an all-None error column is still a string column
        shard = shard.add_column(name, values, feature=Value("string") if name == "generation_error" else None)
    return shard


def _run_shard(shard: Dataset, generator: LocalGenerator, config: GenerationConfig, index: int, bar,
               fp: str) -> Dataset:
    """Generate one shard with a batched ``Dataset.map``: rows go in length order (less padding) and
    come back in their original order. The fingerprint is explicit, so ``datasets`` never hashes the
    model held by the closure."""
    torch.manual_seed(shard_seed(config.seed, index))
    lengths = [len(p) for p in shard["prompt"]]
    order = sorted(range(len(shard)), key=lambda j: (lengths[j], j))
    tokens = [0]

    def run(batch: dict) -> dict:
        texts, counts = generator(batch["prompt"])
        tokens[0] += sum(counts)
        bar.update(len(texts))
        bar.set_postfix(tokens=tokens[0])
        return {"generation": texts, "generated_tokens": counts}

    out = shard.select(order).map(run, batched=True, batch_size=config.batch_size, keep_in_memory=True,
                                  new_fingerprint=f"{fp}-{index:05d}")
    return out.select(sorted(range(len(order)), key=order.__getitem__)).flatten_indices()

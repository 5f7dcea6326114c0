"""The generate stage: batched local LLM generation over a prompts Dataset, sharded and resumable.

Generation is the slow stage, so finished shards are written to disk as they complete: after a crash
(or ``kill -9``) a rerun skips them, and because every shard is seeded from (seed, shard index) the
result equals an uninterrupted run. Work folders are named by an explicit fingerprint (model id +
revision, prompts, sampling parameters, seed), never by hashing model weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
from datasets import Dataset, concatenate_datasets
from tqdm.auto import tqdm

from .models import GENERATOR_DEFAULT, ModelRef, file_sha256, resolve_model


@dataclass
class GenerationConfig:
    """Sampling and batching for the generate stage; every field is part of the fingerprint."""

    model: str | None = None  # None -> embedded SmolLM2-135M-Instruct; else a Hub id or folder
    revision: str | None = None
    prompt_style: str = "fewshot"  # "fewshot" completion or "instruct" (chat template)
    n_shots: int = 4
    temperature: float = 0.8
    top_p: float = 0.9
    # Applied to the continuation only: over the prompt it would ban the few-shot scaffolding.
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = 40
    batch_size: int = 16
    shard_size: int = 64
    seed: int = 42
    dtype: str = "float32"  # or "bfloat16" (fast on CPUs with AMX)
    stop_at_newline: bool = True  # only the first line is kept, so stop once every row has one
    # a peft LoRA adapter folder merged into the model (DAFTT's fine-tuned generator); None = the base model
    adapter: str | None = None

    def sampling_fingerprint(self) -> dict:
        keys = ("prompt_style", "n_shots", "temperature", "top_p", "no_repeat_ngram_size",
                "max_new_tokens", "seed", "dtype", "stop_at_newline", "batch_size", "shard_size")
        out = {k: getattr(self, k) for k in keys}
        if self.adapter:  # the adapter's content, not its path, decides what is generated
            out["adapter_sha256"] = adapter_sha256(self.adapter)
        return out


def adapter_sha256(folder: str | Path) -> str:
    path = Path(folder) / "adapter_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"LoRA adapter folder {folder} has no adapter_model.safetensors")
    return file_sha256(path)


class ContinuationNoRepeatNGram:
    """``no_repeat_ngram_size`` restricted to generated tokens (rows are left-padded, so they align)."""

    def __init__(self, n: int, prompt_len: int):
        self.n, self.prompt_len = n, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        gen = input_ids[:, self.prompt_len :]
        if gen.shape[1] < self.n:
            return scores
        for row, seq in enumerate(gen.tolist()):
            prefix = tuple(seq[-(self.n - 1) :]) if self.n > 1 else ()
            banned = [seq[i + self.n - 1] for i in range(len(seq) - self.n + 1)
                      if tuple(seq[i : i + self.n - 1]) == prefix]
            if banned:
                scores[row, banned] = -float("inf")
        return scores


class StopAtNewline:
    """Per-row stopping once a row's continuation contains a newline token."""

    def __init__(self, newline_ids: torch.Tensor, prompt_len: int):
        self.newline_ids, self.prompt_len = newline_ids, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        gen = input_ids[:, self.prompt_len :]
        return torch.isin(gen, self.newline_ids).any(dim=1)


class LocalGenerator:
    """A causal LM loaded once with transformers, generating batches with left padding."""

    def __init__(self, config: GenerationConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.ref: ModelRef = resolve_model(config.model, GENERATOR_DEFAULT, config.revision)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(config.dtype)
        if dtype is None:
            raise ValueError(f"generation dtype must be float32 or bfloat16, got {config.dtype!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(self.ref.path, revision=self.ref_revision())
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            self.ref.path, revision=self.ref_revision(), dtype=dtype, use_safetensors=True
        ).eval()
        if config.adapter:  # merged once: generation then runs at the base model's speed
            from peft import PeftModel

            adapter_sha256(config.adapter)  # a clear error for a folder without the safetensors file
            self.model = PeftModel.from_pretrained(self.model, config.adapter).merge_and_unload().eval()
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        decoded = [self.tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in vocab]
        self.newline_ids = torch.tensor([i for i, s in enumerate(decoded) if "\n" in s])

    def ref_revision(self) -> str | None:
        return self.config.revision if self.ref.path == self.ref.name else None

    def format_prompts(self, prompts: list[str]) -> list[str]:
        if self.config.prompt_style != "instruct" or not self.tokenizer.chat_template:
            return prompts
        return [
            self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True)
            for p in prompts
        ]

    @torch.inference_mode()
    def __call__(self, prompts: list[str]) -> tuple[list[str], list[int]]:
        """Continuations (decoded, special tokens stripped) and their token counts."""
        cfg = self.config
        enc = self.tokenizer(self.format_prompts(prompts), return_tensors="pt", padding=True)
        prompt_len = enc["input_ids"].shape[1]
        processors, stops = [], []
        if cfg.no_repeat_ngram_size:
            processors.append(ContinuationNoRepeatNGram(cfg.no_repeat_ngram_size, prompt_len))
        if cfg.stop_at_newline and cfg.prompt_style == "fewshot" and len(self.newline_ids):
            stops.append(StopAtNewline(self.newline_ids, prompt_len))
        from transformers import LogitsProcessorList, StoppingCriteriaList

        out = self.model.generate(
            **enc,
            do_sample=cfg.temperature > 0,
            temperature=cfg.temperature if cfg.temperature > 0 else None,
            top_p=cfg.top_p if cfg.temperature > 0 else None,
            max_new_tokens=cfg.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList(stops),
        )
        gen = out[:, prompt_len:]
        mask = gen != self.tokenizer.pad_token_id
        texts = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        return texts, mask.sum(dim=1).tolist()


def fingerprint(*parts) -> str:
    """Explicit fingerprint from JSON-able parts (never model weights)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def content_fingerprint(ds: Dataset, columns: list[str] | None = None) -> str:
    """Hash of a Dataset's content (in-memory datasets get random fingerprints from ``datasets``)."""
    h = hashlib.sha256()
    for col in columns or ds.column_names:
        h.update(col.encode())
        for value in ds[col]:
            h.update(json.dumps(value, default=str).encode())
            h.update(b"\0")
    return h.hexdigest()[:16]


def prompts_fingerprint(prompts: Dataset) -> str:
    return content_fingerprint(prompts, ["prompt"])


def _shard_seed(seed: int, shard: int) -> int:
    return int(hashlib.sha256(f"{seed}:{shard}".encode()).hexdigest()[:8], 16)


def generate(
    prompts: Dataset,
    config: GenerationConfig,
    work_dir: str | Path,
    generator: LocalGenerator | None = None,
    desc: str = "generate",
) -> Dataset:
    """Add ``generation`` (raw continuation) and ``generated_tokens`` columns to a prompts Dataset.

    Shards of ``config.shard_size`` prompts are written to ``work_dir/<fingerprint>/`` as they
    finish; existing shards are reused, so a rerun after a crash continues where it stopped.
    """
    generator_ref = generator.ref if generator else resolve_model(config.model, GENERATOR_DEFAULT, config.revision)
    fp = fingerprint(generator_ref.provenance(), config.sampling_fingerprint(), prompts_fingerprint(prompts))
    folder = Path(work_dir) / f"{desc}-{fp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fingerprint.json").write_text(json.dumps(
        {"generator": generator_ref.provenance(), "sampling": config.sampling_fingerprint(),
         "prompts": prompts_fingerprint(prompts), "num_prompts": len(prompts)}, indent=2))
    def make_runner():
        gen = generator or LocalGenerator(config)
        return lambda shard, i, bar: _run_shard(shard, gen, config, i, bar, fp)

    return run_sharded(prompts, folder, config.shard_size, make_runner, desc, unit="prompt")


def run_sharded(rows: Dataset, folder: Path, shard_size: int, make_runner, desc: str, unit: str = "row") -> Dataset:
    """Process ``rows`` in shards of ``shard_size``, each written atomically to ``folder`` as it finishes.

    Shared by every slow stage (generation, translation). Existing shards are reused, so a rerun after
    a crash continues where it stopped. ``make_runner()`` is called only when a shard is missing (so a
    finished run never loads a model) and returns ``run(shard, index, bar) -> Dataset``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, -(-len(rows) // shard_size))
    paths = [folder / f"shard-{i:05d}.parquet" for i in range(n_shards)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    done_rows = sum(min(shard_size, len(rows) - i * shard_size) for i in range(n_shards) if i not in todo)
    if todo:
        run = make_runner()
        bar = tqdm(total=len(rows), initial=done_rows, desc=desc, unit=unit, dynamic_ncols=True)
        datasets.disable_progress_bars()
        try:
            for i in todo:
                shard = rows.select(range(i * shard_size, min((i + 1) * shard_size, len(rows))))
                run(shard, i, bar).to_parquet(str(paths[i]) + ".tmp")
                os.replace(str(paths[i]) + ".tmp", paths[i])  # atomic: a kill never leaves half a shard
        finally:
            datasets.enable_progress_bars()
            bar.close()
    shards = [Dataset.from_parquet(str(p), keep_in_memory=True) for p in paths]
    return concatenate_datasets(shards) if len(shards) > 1 else shards[0]


def _run_shard(shard: Dataset, generator: LocalGenerator, config: GenerationConfig, index: int, bar,
               fp: str) -> Dataset:
    """Generate one shard with a batched ``Dataset.map``: rows go in length order (less padding) and
    come back in their original order. The fingerprint is explicit, so ``datasets`` never hashes the
    model held by the closure."""
    torch.manual_seed(_shard_seed(config.seed, index))
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

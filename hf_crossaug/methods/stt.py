"""Self-Translate-Train fine-tuning (arXiv 2407.00454): LoRA-tune the LLM itself on English source data
plus its own filtered translations of it, then evaluate the LLM on the target task by label likelihood.

The translations are an ordinary build: a recipe with ``route: self-translate`` and ``items_from: source``
translates the labelled source rows with the LLM (few-shot, filtered, optionally code-switched) and
writes a dataset folder with its card. This module only adds the recipe's ``stt:`` section: render
source + translated rows in the task's ``lm.classify`` format, fine-tune with
:func:`hf_crossaug.stages.finetune.finetune_lora`, and score every label's verbalisation before and after.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
from datasets import Dataset

from ..version import __version__
from ..config.base import check_options
from ..config.finetune import FinetuneConfig, SttConfig
from ..stages.source import load_configured
from ..stages.finetune import (ADAPTER_FILE, DONE_FILE, Adapter, answer_logprobs, answer_text, finetune_lora,
                       load_causal_lm)
from ..models.resolve import GENERATOR_DEFAULT, resolve_model
from ..config.tasks import TaskSpec
from ..utils.files import check_replaceable, staged_output

EVAL_FILE = "evaluation.json"


def classify_rows(task: TaskSpec, rows: Dataset, label_column: str = "label") -> Dataset:
    """Labelled rows as ``lm.classify`` prompt -> label name pairs."""
    template = task.templates["lm.classify"]
    return Dataset.from_dict({"prompt": [template.format(**r) for r in rows],
                              "answer": [answer_text(task.labels[r[label_column]]) for r in rows]})


def predict_labels(model, tokenizer, task: TaskSpec, rows: Dataset, batch_size: int = 8) -> np.ndarray:
    """Prompted classification: the label whose verbalisation is most likely after ``lm.classify``."""
    prompts = [task.templates["lm.classify"].format(**r) for r in rows]
    answers = [answer_text(name) for name in task.labels]
    return answer_logprobs(model, tokenizer, prompts, answers, batch_size=batch_size).argmax(-1)


def evaluate_lm(model_ref: str, adapters: Mapping[str, Adapter], task: TaskSpec, targets: Mapping[str, str],
                limit: int | None = None, seed: int = 0, batch_size: int = 8) -> dict:
    """Per-language accuracy / macro-F1 by label likelihood: of the base LLM (``"before"``) and of the LLM
    with each of ``adapters`` (one key per adapter name), on the same seeded rows."""
    from peft import PeftModel

    from ..metrics.functions import per_language_scores
    from ..students.evaluate import load_target, parse_target

    if not targets:
        raise ValueError("no targets to evaluate on: pass at least one LANG=DATA")
    t0 = time.perf_counter()
    sets = {lang: load_target(task, ref, limit=limit, seed=seed) for lang, ref in targets.items()}
    ref = resolve_model(model_ref, GENERATOR_DEFAULT)
    tokenizer, model = load_causal_lm(ref)
    model.eval()
    refs = np.concatenate([np.asarray(ds["label"]) for ds in sets.values()])
    langs = [lang for lang, ds in sets.items() for _ in range(len(ds))]
    scores = {}
    for when in ("before", *adapters):
        if when != "before" and not isinstance(model, PeftModel):
            model = PeftModel.from_pretrained(model, str(adapters[when].path), adapter_name=when).eval()
        elif when != "before":
            model.load_adapter(str(adapters[when].path), adapter_name=when)
            model.set_adapter(when)
            model.eval()
        preds = np.concatenate([predict_labels(model, tokenizer, task, ds, batch_size) for ds in sets.values()])
        scores[when] = per_language_scores(preds, refs, langs, labels=range(task.num_labels))
    return {"task": task.name, "method": "label likelihood (sum of log-probs of each label's verbalisation)",
            "template": task.templates["lm.classify"], "answers": [answer_text(n) for n in task.labels],
            "chance": round(1 / task.num_labels, 4), "limit": limit, "seed": seed,
            "targets": {lang: {k: v for k, v in parse_target(r).items() if k != "kind"} for lang, r in targets.items()},
            **scores, "seconds": round(time.perf_counter() - t0, 1)}


def export_adapter(adapter: Adapter, folder: Path) -> None:
    """Copy the adapter's files (safetensors, config, ``crossaug_adapter.json``) out of the work cache."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_FILE, "adapter_config.json", DONE_FILE):
        shutil.copy2(adapter.path / name, folder / name)


def run_stt(recipe, dataset_dir: str | Path, adapter_dir: str | Path, targets: Mapping[str, str],
            work_dir: str | Path | None = None, eval_limit: int | None = None, log=print,
            english_baseline: bool | None = None) -> dict:
    """Build the recipe's self-translated dataset, LoRA-tune the LLM on it, evaluate before/after.

    Writes the dataset folder (with its card) to ``dataset_dir`` and the adapter (safetensors, config,
    ``crossaug_adapter.json``) plus ``evaluation.json`` to ``adapter_dir``; returns the evaluation dict.
    With ``english_baseline`` (default: the recipe's ``stt.english_baseline``) a second adapter, tuned on
    the English source alone, goes to ``adapter_dir/english-only`` and is scored as ``"english_only"``.
    """
    from ..build.export import build_dataset
    from ..build.pipeline import run_pipeline

    cfg: SttConfig = recipe.stt
    if cfg is None:
        raise ValueError(f"recipe {recipe.name!r} has no 'stt' section (DAFTT recipes run with crossaug build)")
    check_options(1, eval_limit=eval_limit)
    dataset_dir, out = Path(dataset_dir), Path(adapter_dir)
    check_replaceable(out, "--adapter-output")  # before the build and the tuning, not after
    work = Path(work_dir) if work_dir else dataset_dir.parent / f".{dataset_dir.name}-work"
    task = recipe.task_spec
    summary = build_dataset(recipe, dataset_dir, work, log=log)
    raw = run_pipeline(recipe, work, log=log).raw  # cached by the build: nothing runs again
    parts = [classify_rows(task, raw, "prompt_label")]
    source = load_configured(task, recipe.source, recipe.generation.seed)
    if cfg.include_source:
        parts.insert(0, classify_rows(task, source))
    rows = Dataset.from_dict({k: [v for p in parts for v in p[k]] for k in ("prompt", "answer")})
    model = cfg.finetune.model or recipe.translate.model or GENERATOR_DEFAULT
    tune = FinetuneConfig(**{**asdict(cfg.finetune), "model": model})
    log(f"Self-Translate-Train: LoRA fine-tuning {model} on {len(rows)} rows "
        f"({len(rows) - len(raw)} English, {len(raw)} translated/code-switched)")
    adapters = {"after": finetune_lora(rows, tune, work, GENERATOR_DEFAULT, desc="stt-lora")}
    if cfg.english_baseline if english_baseline is None else english_baseline:
        log(f"English-only baseline: LoRA fine-tuning {model} on the {len(source)} English source rows alone")
        adapters["english_only"] = finetune_lora(classify_rows(task, source), tune, work, GENERATOR_DEFAULT,
                                                 desc="stt-english-lora")
    limit = eval_limit if eval_limit is not None else cfg.eval_limit
    log(f"Self-Translate-Train: label-likelihood evaluation on {', '.join(targets)} ({limit or 'all'} rows "
        "each), before and after")
    result = evaluate_lm(model, adapters, task, targets, limit, cfg.eval_seed, cfg.eval_batch_size)
    baseline = adapters.get("english_only")
    result = {"package_version": __version__, "recipe": recipe.name, "dataset": str(dataset_dir),
              "adapter": {**adapters["after"].card_fields(), "path": str(out)},
              **({"english_only_adapter": {**baseline.card_fields(), "path": str(out / "english-only")}}
                 if baseline else {}),
              "training": {"rows": len(rows), "english": len(rows) - len(raw), "translated": len(raw),
                           "translation_counts": summary["stats"]["counts"].get("translation")},
              **result}
    with staged_output(out) as tmp:  # the adapters (cached in the work folder) and their scores, at once
        export_adapter(adapters["after"], tmp)
        if baseline:
            export_adapter(baseline, tmp / "english-only")
        (tmp / EVAL_FILE).write_text(json.dumps(result, indent=2, default=str))
    return result

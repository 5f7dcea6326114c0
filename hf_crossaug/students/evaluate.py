"""Scoring a trained classifier or multiple-choice model per target language (accuracy, macro-F1, their mean)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from datasets import Dataset

from ..config.base import check_options
from ..config.tasks import MultipleChoiceSpec, TaskSpec, get_task
from ..metrics.functions import per_language_scores
from ..models.resolve import ENCODER_DEFAULT, resolve_model
from ..models.training import on_accelerator, one_line_load_errors, predict_logits
from ..stages.source import FORMATS, load_source, normalise, rename_columns
from ..utils.files import RESULTS_FILE
from .card import save_results
from .frozen import FrozenFeatureClassifier, is_frozen_student
from .modes import load_folder_or_hub
from .multiple_choice import predict_choices


def parse_target(ref: str) -> dict:
    """``FILE[@train[a:b]]`` (jsonl/csv/tsv/parquet, optionally a row slice), or
    ``FOLDER_OR_HUB_ID[:config][@split]`` (split default ``validation``)."""
    file, _, rows = ref.partition("@")
    path = Path(file).expanduser()
    if path.suffix.lower() in FORMATS or path.is_file():
        return {"ref": ref, "kind": "file", "type": file, "name": path.stem, "config": None, "split": rows or None}
    name, _, split = ref.partition("@")
    name, _, config = name.partition(":")
    return {"ref": ref, "kind": "dataset", "type": name, "name": Path(name).name or name, "config": config or None,
            "split": split or "validation"}


def load_target(task: TaskSpec, ref: str, limit: int | None = None, seed: int = 0,
                columns: dict | None = None) -> Dataset:
    """A target evaluation set, normalised like the source data (`hf_crossaug.stages.source.load_source`);
    ``columns`` renames its columns to the task's as the dataset recipe's ``source.columns`` did."""
    t = parse_target(ref)
    if t["kind"] == "file":
        return load_source(task, t["type"], split=t["split"] or "train", limit=limit, seed=seed, columns=columns)
    try:
        ds = load_folder_or_hub(t["type"], t["config"], t["split"])
    except FileNotFoundError as exc:
        raise ValueError(f"target {ref}: {str(exc).splitlines()[0]}") from None
    label_column = "label"
    if columns:
        ds, label_column = rename_columns(ds, columns, ref, label_column)
    return normalise(ds, task, ref, label_column, limit=limit, seed=seed)


def label_map(model, task: TaskSpec) -> np.ndarray:
    """Model output index -> task label id (models trained here use the task's order)."""
    id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
    if len(id2label) != task.num_labels:
        raise ValueError(f"the model has {len(id2label)} outputs, task {task.name!r} has {task.num_labels} labels")
    names = [id2label[i] for i in range(task.num_labels)]
    if set(names) == set(task.labels):
        return np.array([task.label2id()[n] for n in names])
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return np.arange(task.num_labels)
    raise ValueError(f"the model's labels {names} do not match task {task.name!r} ({', '.join(task.labels)})")


def predict(model, tokenizer, ds: Dataset, task: TaskSpec, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """Predicted task label ids over ``ds``."""
    logits = predict_logits(model, tokenizer, [list(ds[c]) for c in task.text_columns], max_length, batch_size)
    return label_map(model, task)[logits.argmax(-1)]


def evaluate_model(model_dir_or_id: str | Path, targets: Mapping[str, str], task: TaskSpec | str | None = None,
                   limit: int | None = None, seed: int = 0, batch_size: int = 64, max_length: int | None = None,
                   update_card: bool = True) -> dict:
    """Per-language accuracy and macro-F1 (plus their unweighted mean, ``avg``) of a classifier, or of a
    multiple-choice model when ``task`` is a multiple-choice task (copa, storycloze, winograd).

    ``targets`` maps a language code to a file or ``FOLDER_OR_HUB_ID[:config][@split]``; ``limit`` scores a
    seeded subset of N rows per language (`load_source`'s subset, ``seed``). When the model is a folder made
    by `train_student`, its ``crossaug_student.json`` and card are updated with the results. A folder of
    the frozen-feature backend (``crossaug_head.json``) is scored with its head on the referenced encoder.
    """
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification, AutoTokenizer


    if not targets:
        raise ValueError("no targets to evaluate on: pass at least one LANG=DATA")
    check_options(1, limit=limit, batch_size=batch_size)  # once, for every kind of model
    folder = Path(model_dir_or_id).expanduser()
    saved = json.loads((folder / RESULTS_FILE).read_text()) if (folder / RESULTS_FILE).is_file() else None
    if task is None:
        if saved is None:
            raise ValueError(f"{model_dir_or_id} was not trained by hf_crossaug; pass the task (nli, sentiment)")
        task = saved.get("task_spec") or saved["task"]  # older students name a packaged task only
    task = get_task(task)
    max_length = max_length or (saved["config"]["max_length"] if saved else 128)
    mc = isinstance(task, MultipleChoiceSpec)
    if is_frozen_student(folder):
        if mc:
            raise ValueError(f"{model_dir_or_id} is a frozen-feature classifier; it cannot score {task.name!r}")
        clf = FrozenFeatureClassifier.load(folder)
        clf.check_task(task)
        return _score(lambda ds: clf.predict(ds, task), model_dir_or_id, targets, task, limit, seed, folder, saved,
                      update_card)
    model_class, predict_fn = (AutoModelForMultipleChoice, predict_choices) if mc else (
        AutoModelForSequenceClassification, predict)
    ref = resolve_model(str(model_dir_or_id), ENCODER_DEFAULT)
    with one_line_load_errors(ref.name):
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
        model = model_class.from_pretrained(ref.path, use_safetensors=True).eval()
    on_accelerator(model)
    return _score(lambda ds: predict_fn(model, tokenizer, ds, task, max_length, batch_size), model_dir_or_id,
                  targets, task, limit, seed, folder, saved, update_card)


def _score(predict_ds, model_dir_or_id, targets: Mapping[str, str], task: TaskSpec, limit, seed, folder: Path,
           saved: dict | None, update_card: bool) -> dict:
    """Predict every target with ``predict_ds(dataset) -> label ids``; per-language scores; update the card."""
    t0 = time.perf_counter()
    preds, refs, langs, meta = [], [], [], {}
    for lang, target in targets.items():
        ds = load_target(task, target, limit=limit, seed=seed, columns=(saved or {}).get("columns"))
        preds.append(predict_ds(ds))
        refs.append(np.asarray(ds["label"]))
        langs += [lang] * len(ds)
        meta[lang] = {k: v for k, v in parse_target(target).items() if k != "kind"}
    scores = per_language_scores(np.concatenate(preds), np.concatenate(refs), langs, labels=range(task.num_labels))
    evaluation = {"model": str(model_dir_or_id), "task": task.name, "limit": limit, "seed": seed,
                  "targets": meta, "scores": scores, "seconds": round(time.perf_counter() - t0, 1)}
    if saved is not None and update_card:
        saved["evaluation"] = evaluation
        save_results(folder, saved)
    return evaluation

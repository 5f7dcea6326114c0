"""What every student shares: the synthetic dataset's build info, gold and dev loading, epoch selection,
and the results dict that ``crossaug_student.json`` and the card are rendered from."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path

from datasets import Dataset

from ..config.student import DEFAULT_MODE, MC_DEFAULT_MODE, StudentConfig
from ..config.tasks import MultipleChoiceSpec, TaskSpec, get_task, packaged_tasks
from ..models.training import balanced_class_weights, epoch_selection_args, training_dtype, writes_output
from ..stages.source import check_hub_dataset, load_source, normalise
from ..utils.files import BUILD_FILE
from ..version import __version__
from .card_data import EMBEDDED_ORIGINS
from .modes import load_synthetic
from .trainer import DistillationConfig


def build_info(dataset_ref) -> dict:
    """The dataset's ``crossaug_build.json`` (teacher, recipe, counts), or {} when unavailable."""
    if not isinstance(dataset_ref, (str, Path)):
        return {}
    folder = Path(dataset_ref).expanduser()
    try:
        if folder.is_dir():
            path = folder / BUILD_FILE
        else:
            from huggingface_hub import hf_hub_download

            check_hub_dataset(str(dataset_ref), "dataset", "folder")  # one quick call, not the download's retries
            path = Path(hf_hub_download(str(dataset_ref), BUILD_FILE, repo_type="dataset"))
        return json.loads(path.read_text()) if path.exists() else {}
    except Exception:  # no network, no such file, not a crossaug dataset: the card just says less
        return {}


def recommended_mode(config: StudentConfig, recipe: dict) -> tuple[StudentConfig, str]:
    """``config`` with its mode filled in when the command named none: the dataset recipe's ``student`` section
    (mode and config), else the default. Also says where the mode came from ("command", "recipe", "default"),
    for the results and the card."""
    if config.mode is not None:
        return config, "command"
    recommended = recipe.get("student") or {}
    if recommended:
        return replace(config, mode=recommended["mode"], config=config.config or recommended.get("config")), "recipe"
    task = config.task or recipe.get("task")
    multiple_choice = bool(task) and isinstance(get_task(task), MultipleChoiceSpec)
    return replace(config, mode=MC_DEFAULT_MODE if multiple_choice else DEFAULT_MODE), "default"


def infer_task(columns) -> TaskSpec:
    """The packaged task whose text columns a dataset has (the most specific match); a dataset built by
    hf_crossaug names its task in its build record instead (`task_of`)."""
    matches = [t for t in packaged_tasks().values() if set(t.text_columns) <= set(columns)]
    if not matches:
        raise ValueError(f"cannot tell the task from columns {', '.join(columns)}; pass the task explicitly")
    return max(matches, key=lambda t: len(t.text_columns))


def gold_and_dev(task: TaskSpec, gold_source, dev, config: StudentConfig,
                 columns: dict | None = None) -> tuple[Dataset, str, Dataset, str]:
    """Gold training rows and the model-selection set (``dev``, or ``dev_fraction`` held out of the gold
    data), each with a name for the card; ``columns``: the dataset recipe's ``source.columns`` renaming."""
    gold, gold_name = _load_labelled(task, gold_source, config.limit, config.seed, columns)
    if dev is None:
        split = gold.train_test_split(test_size=config.dev_fraction, seed=config.seed, stratify_by_column="label")
        return split["train"], gold_name, split["test"], f"{config.dev_fraction:.0%} of the gold data"
    return (gold, gold_name, *_load_labelled(task, dev, config.dev_limit, config.seed, columns))


def _load_labelled(task: TaskSpec, ref, limit: int | None, seed: int, columns=None) -> tuple[Dataset, str]:
    if isinstance(ref, Dataset):
        ds = normalise(ref, task, "dataset", limit=limit, seed=seed) if limit else ref
        return ds, "in-memory dataset"
    return load_source(task, str(ref), limit=limit, seed=seed, columns=columns), str(ref)


def source_columns(info: dict) -> dict | None:
    """The dataset recipe's ``source.columns`` (its data's column names -> the task's), so a student reads gold
    and target files in the same shape as the build read its source."""
    return ((info.get("recipe") or {}).get("source") or {}).get("columns")


def student_args(config: StudentConfig, out: Path, **overrides) -> dict:
    """`TrainingArguments` fields shared by every student: evaluate and save each epoch, keep the best
    (``overrides`` replace single fields, e.g. the frozen-feature head's eval batch size)."""
    return epoch_selection_args(str(out / "checkpoints"), config.epochs, config.learning_rate, config.batch_size,
                                config.seed, config.class_balance, training_dtype(config.dtype), **overrides)


def distillation_config(config: StudentConfig, out: Path, train_rows=None, num_labels: int | None = None,
                        **overrides) -> DistillationConfig:
    """`student_args` plus the student's distillation knobs (temperature, formulation, soft-row weight, and with
    ``class_balance`` the balanced class weights of ``train_rows``' gold labels)."""
    weights = None
    if config.class_balance:
        weights = balanced_class_weights(train_rows["label"], num_labels)
    return DistillationConfig(**student_args(config, out, **overrides), distill_temperature=config.temperature,
                              kd_formulation=config.kd_formulation, soft_weight=config.soft_weight,
                              class_weights=weights)


def fit_best_epoch(trainer, out: Path) -> tuple[dict, str | None, list[dict], float]:
    """Train, save the best epoch's model to ``out`` and drop the checkpoints.

    Returns (the best epoch's dev metrics, its checkpoint name, the per-epoch dev history, training seconds).
    """
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    history = [{"epoch": round(h["epoch"], 2), "accuracy": h["eval_accuracy"], "macro_f1": h["eval_macro_f1"]}
               for h in evals]
    best_ckpt = Path(trainer.state.best_model_checkpoint or "").name or None
    best_step = int(best_ckpt.rsplit("-", 1)[-1]) if best_ckpt else None
    # The best epoch's model is loaded at the end of training; its dev scores are already in the log.
    best = next((h for h in evals if h.get("step") == best_step), None) or trainer.evaluate()
    trainer.save_model(str(out))
    if writes_output(trainer):
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return best, best_ckpt, history, train_s


def synthetic(dataset_ref, name: str) -> Dataset:
    """One config of the synthetic data: from a mapping config -> Dataset, a folder or a Hub id."""
    if isinstance(dataset_ref, Mapping):
        return dataset_ref[name]
    return load_synthetic(dataset_ref, name)


def hub_id(ref) -> str | None:
    if ref.name in EMBEDDED_ORIGINS:
        return EMBEDDED_ORIGINS[ref.name]
    return None if Path(ref.name).expanduser().exists() else ref.name  # a local folder has no Hub id


def results_dict(config: StudentConfig, task: TaskSpec, out: Path, ref, info: dict, fit: tuple, *, mode: str,
                 dataset: dict, gold_name: str, counts: dict, dev_name: str, dev_size: int, t0: float,
                 mode_from: str = "command") -> dict:
    """What ``crossaug_student.json`` holds (and the card is rendered from); ``fit`` is `fit_best_epoch`'s;
    ``mode_from``: who chose the mode (`recommended_mode`)."""
    best, best_ckpt, history, train_s = fit
    recipe = info.get("recipe", {})
    return {
        "package_version": __version__,
        "model_name": out.name,
        "task": task.name,
        "task_spec": task.to_dict(),  # a user's own task is in no package: the student carries its spec
        "columns": source_columns(info),
        "labels": list(task.labels),
        "language": recipe.get("language"),
        "mode": mode,
        "mode_from": mode_from,
        "base_model": {**ref.provenance(), "hub_id": hub_id(ref)},
        "dataset": dataset,
        "gold": {"name": gold_name, "limit": config.limit},
        "counts": counts,
        "teacher": info.get("teacher"),
        "recipe": {**{k: recipe.get(k) for k in ("name", "language", "route")}, "task": task.name} if recipe else None,
        "selection": {"select_by": config.select_by, "dev": dev_name, "dev_size": dev_size,
                      "dev_accuracy": best["eval_accuracy"], "dev_macro_f1": best["eval_macro_f1"],
                      "best_checkpoint": best_ckpt,
                      "history": history},
        "config": asdict(config),
        "timings": {"train_s": round(train_s, 1), "total_s": round(time.perf_counter() - t0, 1)},
        "evaluation": None,
    }

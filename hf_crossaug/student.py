"""Train a student on English gold + selected synthetic data (one of the paper's modes), evaluate it per
language, and describe it in a model card.

`train_student` runs the standard ``Trainer`` workflow with `DistillationTrainer`: evaluation on a dev
set after every epoch, the best epoch (dev accuracy) loaded at the end. The dev set is English by
default (zero-shot model selection, as in the paper); ``select_by="target-dev"`` says the dev set passed
is in the target language, which is then recorded in the results and the card. The output folder is
what one uploads to the Hub: safetensors weights, tokenizer, ``crossaug_student.json`` (everything the
card is rendered from) and ``README.md``. `evaluate_model` adds per-language accuracy / macro-F1 and
re-renders the card, whose YAML then carries them in the Hub's ``model-index`` format.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from . import __version__
from .citations import card_section
from .data import FORMATS, load_source, normalise
from .models import ENCODER_DEFAULT, resolve_model
from .modes import (DEFAULT_SIZE_CONFIG, build_training_set, load_folder_or_hub, load_synthetic, parse_mode,
                    row_counts, synthetic_config)
from .tasks import TASKS, MultipleChoiceSpec, TaskSpec, get_task

RESULTS_FILE = "crossaug_student.json"
BUILD_FILE = "crossaug_build.json"
TEMPLATE = Path(__file__).parent / "templates" / "student_card.md"
SELECT_BY = ("english-dev", "target-dev")
# Hub ids of the models the embedded aliases are converted from (for the card's base_model field).
EMBEDDED_ORIGINS = {ENCODER_DEFAULT: "intfloat/multilingual-e5-small"}
TASK_TEXT = {"nli": "natural language inference", "sentiment": "sentiment"}
MODE_TEXT = {
    "SRC": "English gold data only (zero-shot transfer baseline).",
    "GEN": "generated data only, with the labels the generator was prompted with (as many rows as SRC+GEN).",
    "SRC+GEN": "English gold data plus a random sample of the generated data, with prompt labels.",
    "T": "English gold data plus the generations selected by `{s}`, trained towards the teacher's soft labels "
         "(KL divergence).",
    "T_pl": "English gold data plus the generations selected by `{s}`, with the labels the generator was "
            "prompted with (hard labels).",
}


@dataclass
class StudentConfig:
    """How a student is trained (every field lands in ``crossaug_student.json`` and the card)."""

    model: str | None = None  # None -> embedded multilingual-e5-small; else a Hub id or folder
    revision: str | None = None
    mode: str = "T-div-k"
    config: str | None = None  # dataset config; None -> derived from the mode (T-div-k -> div-k)
    task: str | None = None  # None -> from the dataset's crossaug_build.json or its columns
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 128
    temperature: float = 1.5
    kd_formulation: str = "standard"
    seed: int = 42
    select_by: str = "english-dev"  # or "target-dev" (explicit: the dev set is in the target language)
    freeze_embeddings: bool = True  # most of a small multilingual encoder's weights; keeps CPU training fast
    limit: int | None = None  # seeded subset of the English gold source
    dev_limit: int | None = None  # seeded subset of the dev set
    dev_fraction: float = 0.15  # held out from the gold data when no dev set is given

    def __post_init__(self) -> None:
        parse_mode(self.mode)
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}")
        if self.kd_formulation not in ("standard", "reference"):
            raise ValueError(f"kd_formulation must be 'standard' or 'reference', got {self.kd_formulation!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


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

            path = Path(hf_hub_download(str(dataset_ref), BUILD_FILE, repo_type="dataset"))
        return json.loads(path.read_text()) if path.exists() else {}
    except Exception:  # no network, no such file, not a crossaug dataset: the card just says less
        return {}


def infer_task(columns) -> TaskSpec:
    """The task whose text columns a dataset has (the most specific match)."""
    matches = [t for t in TASKS.values() if set(t.text_columns) <= set(columns)]
    if not matches:
        raise ValueError(f"cannot tell the task from columns {', '.join(columns)}; pass the task explicitly")
    return max(matches, key=lambda t: len(t.text_columns))


def gold_and_dev(task: TaskSpec, gold_source, dev, config: StudentConfig) -> tuple[Dataset, str, Dataset, str]:
    """Gold training rows and the model-selection set (``dev``, or ``dev_fraction`` held out of the gold
    data), each with a name for the card."""
    gold, gold_name = _load_labelled(task, gold_source, config.limit, config.seed)
    if dev is None:
        split = gold.train_test_split(test_size=config.dev_fraction, seed=config.seed, stratify_by_column="label")
        return split["train"], gold_name, split["test"], f"{config.dev_fraction:.0%} of the gold data"
    return (gold, gold_name, *_load_labelled(task, dev, config.dev_limit, config.seed))


def _load_labelled(task: TaskSpec, ref, limit: int | None, seed: int) -> tuple[Dataset, str]:
    if isinstance(ref, Dataset):
        ds = normalise(ref, task, "dataset", limit=limit, seed=seed) if limit else ref
        return ds, "in-memory dataset"
    return load_source(task, str(ref), limit=limit, seed=seed), str(ref)


def train_student(config: StudentConfig, dataset_ref, gold_source, dev=None, output_dir: str | Path = "student",
                  log=print) -> dict:
    """Train ``config.mode`` on gold + synthetic data; save model, tokenizer, results and card to ``output_dir``.

    ``dataset_ref``: a built dataset (local folder or Hub id), or a mapping config -> Dataset.
    ``gold_source``: English labelled data (file, Hub id, ``"seed"`` or a `Dataset`). ``dev``: the
    model-selection set (file, Hub id or `Dataset`); None holds ``dev_fraction`` of the gold data out
    (only with ``select_by="english-dev"``). Returns the results dict written to ``crossaug_student.json``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .metrics.functions import classification_scores
    from .trainer import DistillationConfig, DistillationTrainer, prepare_distillation_dataset

    t0 = time.perf_counter()
    mode = parse_mode(config.mode)
    if config.select_by == "target-dev" and dev is None:
        raise ValueError("select_by='target-dev' needs a target-language dev set (dev=...)")
    out = Path(output_dir)
    info = build_info(dataset_ref)
    recipe = info.get("recipe", {})
    if config.task or recipe.get("task"):
        task = get_task(config.task or recipe["task"])
    elif mode.config is None:
        raise ValueError("mode SRC needs the task: pass task=... (no synthetic data to infer it from)")
    else:
        first = _synthetic(dataset_ref, synthetic_config(mode, config.config))
        task = infer_task(first.column_names)
    if isinstance(task, MultipleChoiceSpec):
        from .multiple_choice import train_mc_student

        return train_mc_student(config, task, dataset_ref, gold_source, dev, out, info, log)

    gold, gold_name, dev_ds, dev_name = gold_and_dev(task, gold_source, dev, config)
    synthetic = None if mode.config is None else (
        dataset_ref if isinstance(dataset_ref, Mapping) else (lambda name: _synthetic(dataset_ref, name)))
    train_rows = build_training_set(mode, gold, synthetic, task, seed=config.seed, config=config.config)
    counts = row_counts(train_rows)
    used_config = synthetic_config(mode, config.config)
    if mode.draw is not None:
        used_config = f"raw (random draw sized like {config.config or DEFAULT_SIZE_CONFIG})"
    log(f"mode {mode.name}: {counts['gold']} gold + {counts['generated']} generated rows "
        f"({counts['soft']} soft); dev {len(dev_ds)} rows")

    ref = resolve_model(config.model, ENCODER_DEFAULT, config.revision)
    torch.manual_seed(config.seed)
    with _one_line_load_errors(ref.name):
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
        model = AutoModelForSequenceClassification.from_pretrained(
            ref.path, num_labels=task.num_labels, id2label=dict(enumerate(task.labels)), label2id=task.label2id(),
            use_safetensors=True)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    args = DistillationConfig(**epoch_selection_args(config, out), distill_temperature=config.temperature,
                              kd_formulation=config.kd_formulation)
    labels = list(range(task.num_labels))
    trainer = DistillationTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=prepare_distillation_dataset(train_rows, tokenizer, task.text_columns, config.max_length),
        eval_dataset=prepare_distillation_dataset(dev_ds, tokenizer, task.text_columns, config.max_length),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids, labels),
    )
    fit = fit_best_epoch(trainer, out)
    dataset = {"ref": str(dataset_ref) if isinstance(dataset_ref, (str, Path)) else None,
               "hub_id": dataset_hub_id(dataset_ref, info),
               "config": used_config if mode.config is not None else None, "license": recipe.get("license")}
    results = results_dict(config, task, out, ref, info, fit, mode=mode.name, dataset=dataset, gold_name=gold_name,
                           counts=counts, dev_name=dev_name, dev_size=len(dev_ds), t0=t0)
    save_results(out, results)
    return results


def results_dict(config: StudentConfig, task: TaskSpec, out: Path, ref, info: dict, fit: tuple, *, mode: str,
                 dataset: dict, gold_name: str, counts: dict, dev_name: str, dev_size: int, t0: float) -> dict:
    """What ``crossaug_student.json`` holds (and the card is rendered from); ``fit`` is `fit_best_epoch`'s."""
    best, best_ckpt, history, train_s = fit
    recipe = info.get("recipe", {})
    return {
        "package_version": __version__,
        "model_name": out.name,
        "task": task.name,
        "labels": list(task.labels),
        "language": recipe.get("language"),
        "mode": mode,
        "base_model": {**ref.provenance(), "hub_id": _hub_id(ref)},
        "dataset": dataset,
        "gold": {"name": gold_name, "limit": config.limit},
        "counts": counts,
        "teacher": info.get("teacher"),
        "recipe": {k: recipe.get(k) for k in ("name", "task", "language", "route")} if recipe else None,
        "selection": {"select_by": config.select_by, "dev": dev_name, "dev_size": dev_size,
                      "dev_accuracy": best["eval_accuracy"], "dev_macro_f1": best["eval_macro_f1"],
                      "best_checkpoint": best_ckpt,
                      "history": history},
        "config": asdict(config),
        "timings": {"train_s": round(train_s, 1), "total_s": round(time.perf_counter() - t0, 1)},
        "evaluation": None,
    }


def epoch_selection_args(config: StudentConfig, out: Path) -> dict:
    """`TrainingArguments` fields shared by every student: evaluate and save each epoch, keep the best."""
    return dict(
        output_dir=str(out / "checkpoints"), num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="epoch", save_only_model=True, save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="accuracy", seed=config.seed, data_seed=config.seed,
        report_to=[], logging_strategy="epoch", disable_tqdm=False, dataloader_pin_memory=torch.cuda.is_available(),
    )


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
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return best, best_ckpt, history, train_s


@contextmanager
def _one_line_load_errors(name: str):
    """``from_pretrained``'s OSError (missing folder, unknown Hub id, no network) as a one-line ValueError."""
    try:
        yield
    except OSError as exc:
        raise ValueError(f"cannot load model {name!r}: {str(exc).strip().splitlines()[0]}") from None


def _synthetic(dataset_ref, name: str) -> Dataset:
    if isinstance(dataset_ref, Mapping):
        return dataset_ref[name]
    return load_synthetic(dataset_ref, name)


def dataset_hub_id(dataset_ref, info: dict) -> str | None:
    """The Hub id of the training dataset: the id itself, or the repo a local build says it belongs to."""
    if not isinstance(dataset_ref, (str, Path)):
        return None
    if not Path(dataset_ref).expanduser().exists():
        return str(dataset_ref)
    return info.get("repo_id")


def _hub_id(ref) -> str | None:
    if ref.name in EMBEDDED_ORIGINS:
        return EMBEDDED_ORIGINS[ref.name]
    return None if Path(ref.name).expanduser().exists() else ref.name  # a local folder has no Hub id


def save_results(folder: str | Path, results: dict) -> None:
    """Write ``crossaug_student.json`` and (re-)render ``README.md`` from it."""
    folder = Path(folder)
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=str))
    if results.get("kind") == "multiple-choice":
        from .multiple_choice import mc_model_card as card
    else:
        card = model_card
    card(results).save(folder / "README.md")


# ---------------------------------------------------------------- model card

def _eval_results(results: dict, task_type: str = "text-classification", f1: bool = True):
    from huggingface_hub import EvalResult

    ev = results.get("evaluation") or {}
    task_name = {"nli": "Natural Language Inference", "sentiment": "Sentiment Classification"}.get(
        results["task"], f"Multiple Choice ({results['task']})")
    out = []
    for lang, s in (ev.get("scores") or {}).items():
        if lang == "avg":
            continue
        target = ev["targets"][lang]
        common = dict(task_type=task_type, task_name=task_name, dataset_type=target["type"],
                      dataset_name=f"{target['name']} ({lang})", dataset_config=target.get("config"),
                      dataset_split=target.get("split"), dataset_args={"language": lang})
        if ev.get("limit"):  # scored on a seeded subset (load_source's limit)
            common["dataset_args"].update(limit=ev["limit"], seed=ev.get("seed", 0))
        out.append(EvalResult(metric_type="accuracy", metric_value=round(s["accuracy"], 4),
                              metric_name=f"accuracy ({lang})", **common))
        if f1:
            out.append(EvalResult(metric_type="f1", metric_value=round(s["macro_f1"], 4),
                                  metric_name=f"macro-F1 ({lang})", metric_args={"average": "macro"}, **common))
    return out


def model_card(results: dict):
    """A `huggingface_hub.ModelCard` rendered from ``results`` (validated by ``huggingface_hub``)."""
    from huggingface_hub import ModelCard, ModelCardData

    ev = results.get("evaluation") or {}
    scores = ev.get("scores") or {}
    langs = sorted({"en", *([results["language"]] if results.get("language") else []),
                    *(k for k in scores if k != "avg")})
    base = results["base_model"]
    ds = results.get("dataset") or {}
    # SRC trains on no synthetic data, so its card names no dataset
    hub_dataset = (ds.get("hub_id") or dataset_hub_id(ds.get("ref"), {})) if ds.get("config") else None
    mode = results["mode"]
    data = ModelCardData(
        model_name=results["model_name"], base_model=base.get("hub_id"), language=langs,
        license=(results.get("dataset") or {}).get("license"), library_name="transformers",
        pipeline_tag="text-classification", datasets=[hub_dataset] if hub_dataset else None,
        metrics=["accuracy", "f1"], tags=["hf_crossaug", "cross-lingual", "knowledge-distillation", f"mode:{mode}"],
        eval_results=_eval_results(results) or None,
    )
    kind, _, strategy = mode.partition("-") if mode.startswith("T") else (mode, "", "")
    sel = results["selection"]
    selection_text = (f"the epoch with the best accuracy on {sel['dev']} ({sel['dev_size']} rows, "
                      f"{'English' if sel['select_by'] == 'english-dev' else 'TARGET-LANGUAGE'} dev, "
                      f"`select_by={sel['select_by']}`): accuracy {sel['dev_accuracy']:.4f}, "
                      f"macro-F1 {sel['dev_macro_f1']:.4f}.")
    if sel["select_by"] == "target-dev":
        selection_text += " Selecting on target-language data is not zero-shot: compare with care."
    cfg = results["config"]
    hyper = {"epochs": cfg["epochs"], "learning_rate": cfg["learning_rate"], "batch_size": cfg["batch_size"],
             "max_length": cfg["max_length"], "temperature": cfg["temperature"],
             "kd_formulation": cfg["kd_formulation"], "seed": cfg["seed"],
             "freeze_embeddings": cfg["freeze_embeddings"], "training time (s)": results["timings"]["train_s"]}
    eval_rows = [{"lang": lang, "ref": f"`{ev['targets'][lang]['ref']}`", **s} for lang, s in scores.items()
                 if lang != "avg"]
    if eval_rows and "avg" in scores:
        eval_rows.append({"lang": "**avg**", "ref": "unweighted mean over languages", **scores["avg"]})
    eval_note = (f"Each language scored on a seeded subset of {ev['limit']} rows." if ev.get("limit")
                 else "Scored on the full sets.")
    return ModelCard.from_template(
        data, template_path=str(TEMPLATE), model_name=results["model_name"], task=results["task"],
        labels=results["labels"], language=results.get("language"), package_version=results["package_version"],
        task_text=TASK_TEXT.get(results["task"], results["task"]), mode=mode, mode_description=MODE_TEXT.get(kind, MODE_TEXT.get(mode, "")).format(s=strategy),
        eval_rows=eval_rows, eval_note=eval_note, selection_text=selection_text, base=base,
        base_note=(f"converted offline from the packaged copy of `{base['hub_id']}`"
                   if base["name"] in EMBEDDED_ORIGINS else ""),
        gold=results["gold"], dataset={**ds, "hub_id": hub_dataset}, counts=results["counts"], teacher=results.get("teacher"),
        recipe=results.get("recipe"), hyperparameters=hyper,
        dev_history=", ".join(f"epoch {h['epoch']:g}: {h['accuracy']:.4f}" for h in sel["history"]) or "-",
        usage_id=results.get("repo_id") or results["model_name"], pair=len(TASKS[results["task"]].text_columns) > 1,
        citation=card_section(),
    )


# ---------------------------------------------------------------- evaluation

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


def load_target(task: TaskSpec, ref: str, limit: int | None = None, seed: int = 0) -> Dataset:
    """A target evaluation set, normalised like the source data (`hf_crossaug.data.load_source`)."""
    t = parse_target(ref)
    if t["kind"] == "file":
        return load_source(task, t["type"], split=t["split"] or "train", limit=limit, seed=seed)
    try:
        ds = load_folder_or_hub(t["type"], t["config"], t["split"])
    except FileNotFoundError as exc:
        raise ValueError(f"target {ref}: {str(exc).splitlines()[0]}") from None
    return normalise(ds, task, ref, limit=limit, seed=seed)


def _label_map(model, task: TaskSpec) -> np.ndarray:
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


@torch.inference_mode()
def predict(model, tokenizer, ds: Dataset, task: TaskSpec, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """Predicted task label ids over ``ds`` (batched, length-sorted to keep padding small)."""
    texts = [list(ds[c]) for c in task.text_columns]
    order = np.argsort([sum(len(t[i]) for t in texts) for i in range(len(ds))], kind="stable")
    device = next(model.parameters()).device
    preds = np.zeros(len(ds), dtype=np.int64)
    for b in range(0, len(order), batch_size):
        idx = order[b: b + batch_size]
        enc = tokenizer(*[[t[i] for i in idx] for t in texts], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(device)
        preds[idx] = model(**enc).logits.argmax(-1).cpu().numpy()
    return _label_map(model, task)[preds]


def evaluate_model(model_dir_or_id: str | Path, targets: Mapping[str, str], task: TaskSpec | str | None = None,
                   limit: int | None = None, seed: int = 0, batch_size: int = 64, max_length: int | None = None,
                   update_card: bool = True) -> dict:
    """Per-language accuracy and macro-F1 (plus their unweighted mean, ``avg``) of a classifier, or of a
    multiple-choice model when ``task`` is a multiple-choice task (copa, storycloze, winograd).

    ``targets`` maps a language code to a file or ``FOLDER_OR_HUB_ID[:config][@split]``; ``limit`` scores a
    seeded subset of N rows per language (`load_source`'s subset, ``seed``). When the model is a folder made
    by `train_student`, its ``crossaug_student.json`` and card are updated with the results.
    """
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification, AutoTokenizer

    from .metrics.functions import per_language_scores
    from .multiple_choice import predict_choices

    if not targets:
        raise ValueError("no targets to evaluate on: pass at least one LANG=DATA")
    folder = Path(model_dir_or_id).expanduser()
    saved = json.loads((folder / RESULTS_FILE).read_text()) if (folder / RESULTS_FILE).is_file() else None
    if task is None:
        if saved is None:
            raise ValueError(f"{model_dir_or_id} was not trained by hf_crossaug; pass the task (nli, sentiment)")
        task = saved["task"]
    task = get_task(task) if isinstance(task, str) else task
    max_length = max_length or (saved["config"]["max_length"] if saved else 128)
    mc = isinstance(task, MultipleChoiceSpec)
    model_class, predict_fn = (AutoModelForMultipleChoice, predict_choices) if mc else (
        AutoModelForSequenceClassification, predict)
    ref = resolve_model(str(model_dir_or_id), ENCODER_DEFAULT)
    with _one_line_load_errors(ref.name):
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
        model = model_class.from_pretrained(ref.path, use_safetensors=True).eval()
    if torch.cuda.is_available():
        model.cuda()
    t0 = time.perf_counter()
    preds, refs, langs, meta = [], [], [], {}
    for lang, target in targets.items():
        ds = load_target(task, target, limit=limit, seed=seed)
        preds.append(predict_fn(model, tokenizer, ds, task, max_length, batch_size))
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

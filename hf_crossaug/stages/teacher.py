"""The teacher stage: fine-tune a classifier on English source data, then label every generation.

The teacher is trained with the standard ``Trainer`` and keeps a checkpoint per epoch, because the
amb-k / easy-k strategies (dataset cartography) need the probability each epoch's model gives to
each generation, not just the final model's. Model selection uses an English dev set (held out from
the source when none is given). A trained teacher is cached by fingerprint and reused across builds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from ..config.source import SourceConfig
from ..config.teacher import TeacherConfig
from ..models.training import (WeightedCrossEntropy, balanced_class_weights, epoch_selection_args, on_accelerator,
                               predict_logits, training_dtype, writes_output)
from ..utils.fingerprint import content_fingerprint, fingerprint
from ..models.resolve import ENCODER_DEFAULT, ModelRef, resolve_model
from ..config.tasks import TaskSpec, teacher_features
from ..utils.logging import trainer_progress
from .source import load_configured

DONE_FILE = "teacher.json"


@dataclass
class Teacher:
    """A trained teacher on disk: the selected model plus one checkpoint per epoch."""

    path: Path
    base: dict
    dev_accuracy: float
    dev_size: int
    train_size: int
    epoch_checkpoints: list[str]  # per-epoch snapshots of the trainable weights, relative to ``path``
    source: str
    source_rows: int | None = None  # rows read from the source, dev hold-out included (None: cached before it)
    dtype: str = "float32"  # the precision it was trained and labels in (teachers cached before it were fp32)
    dev_history: list[float] | None = None  # dev accuracy after each epoch (None: cached before it was kept)
    train_s: float | None = None  # training wall time, seconds (its own figure when read from the cache)
    best_epoch: int | None = None  # 1-based: the epoch whose weights ``best`` holds (None: cached before it was kept)

    def card_fields(self) -> dict:
        return {"base_model": self.base, "source": self.source, "source_rows": self.source_rows,
                "dev_accuracy": self.dev_accuracy, "dev_size": self.dev_size, "train_size": self.train_size,
                "epochs": len(self.epoch_checkpoints), "dtype": self.dtype,
                **{k: v for k, v in (("dev_history", self.dev_history), ("train_s", self.train_s)) if v is not None}}


def training_fields(config: TeacherConfig) -> dict:
    """The fields that make one teacher (its cache key): not the number of self-training rounds, so round 0 of a
    self-training build reuses the plain build's teacher, nor ``source`` / ``source_limit`` (the rows read are in the
    key by content), nor ``group_by_length`` when off;
    ``class_balance`` only when on and ``dtype`` only when not float32, so the teachers built before them keep
    their keys. ``config.dtype`` must be concrete (`training_dtype`)."""
    return {k: v for k, v in asdict(config).items() if k not in ("self_training_rounds", "source_limit", "source")
            and not (k in ("class_balance", "group_by_length") and not v) and not (k == "dtype" and v == "float32")}


def teacher_source(task: TaskSpec, source_config: SourceConfig, config: TeacherConfig, source: Dataset,
                   seed: int) -> Dataset:
    """The English rows the teacher learns from: ``source`` (the rows the few-shot prompts and students get), or,
    with ``teacher.source_limit``, up to that many rows of the same source, or ``teacher.source``, gold of its own:
    a teacher can learn from more than the students see."""
    if config.source is not None:
        return load_configured(task, config.source, seed)
    if config.source_limit is None or config.source_limit == source_config.limit:
        return source
    return load_configured(task, replace(source_config, limit=config.source_limit), seed)


def split_dev(source: Dataset, config: TeacherConfig) -> tuple[Dataset, Dataset]:
    """The dev set held out of the source when none is given (stratified, seeded: the same split every time)."""
    split = source.train_test_split(test_size=config.dev_fraction, seed=config.seed, stratify_by_column="label")
    return split["train"], split["test"]


def _tokenize(ds: Dataset, tokenizer, task: TaskSpec, max_length: int) -> Dataset:
    cols = [list(ds[c]) for c in task.text_columns]
    enc = tokenizer(*cols, truncation=True, max_length=max_length)
    out = Dataset.from_dict(dict(enc))
    return out.add_column("labels", list(ds["label"])) if "label" in ds.column_names else out


def train_teacher(
    source: Dataset,
    task: TaskSpec,
    config: TeacherConfig,
    work_dir: str | Path,
    dev: Dataset | None = None,
    source_name: str = "seed",
) -> Teacher:
    """Fine-tune (or reuse a cached) teacher on ``source``; select the epoch by dev accuracy."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    from ..metrics.functions import classification_scores

    ref: ModelRef = resolve_model(config.model, ENCODER_DEFAULT, config.revision)
    config = replace(config, dtype=training_dtype(config.dtype))
    source_rows = len(source)
    if dev is None:
        source, dev = split_dev(source, config)
    fp = fingerprint(ref.provenance(), training_fields(config), content_fingerprint(source), content_fingerprint(dev),
                     task.name)
    out = Path(work_dir) / f"teacher-{fp}"
    if (out / DONE_FILE).exists():
        return Teacher(path=out, **json.loads((out / DONE_FILE).read_text()))

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(ref.path)
    model = AutoModelForSequenceClassification.from_pretrained(
        ref.path, num_labels=task.num_labels, id2label=dict(enumerate(task.labels)),
        label2id=task.label2id(), use_safetensors=True,
    )
    if config.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    args = TrainingArguments(**epoch_selection_args(str(out), config.epochs, config.learning_rate, config.batch_size,
                                                    config.seed, config.class_balance, config.dtype,
                                                    **({"train_sampling_strategy": "group_by_length"}
                                                       if config.group_by_length else {})))
    balanced = {"compute_loss_func": WeightedCrossEntropy(balanced_class_weights(source["label"], task.num_labels))
                } if config.class_balance else {}
    snapshots = EpochSnapshots(out / "epochs")
    trainer = Trainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=_tokenize(source, tokenizer, task, config.max_length),
        eval_dataset=_tokenize(dev, tokenizer, task, config.max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids,
                                                        range(task.num_labels)),
        callbacks=[snapshots], **balanced,
    )
    trainer_progress(trainer, "teacher")
    train_s = trainer.train().metrics.get("train_runtime")
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    history = [round(float(h["eval_accuracy"]), 4) for h in evals]
    best = trainer.state.best_model_checkpoint  # .../checkpoint-<step> of the epoch load_best_model_at_end kept
    best_step = int(best.rsplit("-", 1)[1]) if best else None
    best_epoch = next((i + 1 for i, h in enumerate(evals) if h.get("step") == best_step), None)
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "best"))
    info = {"base": ref.provenance(), "dev_accuracy": float(metrics["eval_accuracy"]), "dev_size": len(dev),
            "train_size": len(source), "epoch_checkpoints": snapshots.files, "source": source_name,
            "source_rows": source_rows, "dtype": config.dtype, "dev_history": history,
            "train_s": round(train_s, 1) if train_s is not None else None, "best_epoch": best_epoch}
    if writes_output(trainer):
        for ckpt in out.glob("checkpoint-*"):  # the best model is saved; full checkpoints are not needed
            shutil.rmtree(ckpt)
        (out / DONE_FILE).write_text(json.dumps(info, indent=2))
    trainer.accelerator.wait_for_everyone()  # the other processes label with the model it saved
    return Teacher(path=out, **info)


class EpochSnapshots(TrainerCallback):
    """Saves the trainable weights after every epoch (the frozen embeddings are 80% of the model,
    so a snapshot is a fraction of a checkpoint); cartography replays them on the generations."""

    def __init__(self, folder: Path):
        self.folder, self.files = folder, []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        name = f"epoch-{len(self.files) + 1:03d}.safetensors"
        if state.is_world_process_zero:  # under `accelerate launch` the processes hold the same weights
            self.folder.mkdir(parents=True, exist_ok=True)
            save_file({n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                      str(self.folder / name))
        self.files.append(f"{self.folder.name}/{name}")


def predict_probs(model, tokenizer, ds: Dataset, task: TaskSpec, max_length: int = 128,
                  batch_size: int = 64, dtype: str = "float32") -> np.ndarray:
    """Softmax probabilities of a sequence classifier over ``ds`` (under bf16 autocast with ``dtype``)."""
    logits = predict_logits(model, tokenizer, [list(ds[c]) for c in task.text_columns], max_length, batch_size,
                            dtype)
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def label(ds: Dataset, task: TaskSpec, teacher: Teacher, max_length: int = 128) -> Dataset:
    """Add ``teacher_probs``, ``teacher_label``, ``teacher_confidence`` and ``epoch_probs`` columns."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(teacher.path / "best"))
    model = on_accelerator(AutoModelForSequenceClassification.from_pretrained(str(teacher.path / "best"),
                                                                              use_safetensors=True))
    # One pass per epoch snapshot, and the final labels are the best epoch's pass: ``best`` holds that epoch's
    # weights, so a pass of its own would label every generation a second time (4 passes for 3 epochs, measured
    # as most of the teacher stage's labelling time: benchmarks/bench_stage_cost.py)
    snaps = teacher.epoch_checkpoints
    own_pass = not (snaps and teacher.best_epoch and 1 <= teacher.best_epoch <= len(snaps))
    probs = predict_probs(model, tokenizer, ds, task, max_length, dtype=teacher.dtype) if own_pass else None
    per_epoch = []
    for snap in snaps:  # the same model object, each epoch's trainable weights swapped in
        model.load_state_dict(load_file(str(teacher.path / snap)), strict=False)
        per_epoch.append(predict_probs(model, tokenizer, ds, task, max_length, dtype=teacher.dtype))
    if probs is None:
        probs = per_epoch[teacher.best_epoch - 1]
    epochs = np.stack(per_epoch, axis=1) if per_epoch else probs[:, None, :]
    new = Dataset.from_dict(
        {
            "teacher_probs": probs.tolist(),
            "teacher_label": probs.argmax(-1).tolist(),
            "teacher_confidence": probs.max(-1).tolist(),
            "epoch_probs": epochs.tolist(),
        },
        features=teacher_features(task),
    )
    from datasets import concatenate_datasets

    return concatenate_datasets([ds, new], axis=1)


def self_training_rows(raw: Dataset, view: Dataset, source: Dataset, k: int) -> Dataset:
    """What a self-training round adds to the teacher's training data: the generations whose teacher label is
    the class the prompt asked for, the ``k`` per class with the highest teacher probability, labelled with that
    class. ``view`` holds the text the teacher reads (English for translating routes), row-aligned with ``raw``;
    the rows come back in ``source``'s columns and features."""
    from ..config.select import SelectionConfig
    from .select import select

    agree = raw.select_columns(["id", "prompt_label", "teacher_label", "teacher_probs"]).add_column(
        "_row", list(range(len(raw))))
    agree = agree.filter(lambda r: r["teacher_label"] == r["prompt_label"])
    kept = select(agree, "top-k", SelectionConfig(strategies=["top-k"], k=k))
    rows = view.select(kept["_row"]).add_column("label", kept["prompt_label"])
    return rows.select_columns(list(source.column_names)).cast(source.features)

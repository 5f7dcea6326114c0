"""The teacher stage: fine-tune a classifier on English source data, then label every generation.

The teacher is trained with the standard ``Trainer`` and keeps a checkpoint per epoch, because the
amb-k / easy-k strategies (dataset cartography) need the probability each epoch's model gives to
each generation, not just the final model's. Model selection uses an English dev set (held out from
the source when none is given). A trained teacher is cached by fingerprint and reused across builds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from .generate import content_fingerprint, fingerprint
from .models import ENCODER_DEFAULT, ModelRef, resolve_model
from .tasks import TaskSpec, teacher_features

DONE_FILE = "teacher.json"


@dataclass
class TeacherConfig:
    """How the teacher is trained; every field is part of the teacher's cache key."""

    model: str | None = None  # None -> embedded multilingual-e5-small; else a Hub id or folder
    revision: str | None = None
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 128
    seed: int = 42
    dev_fraction: float = 0.15  # held out from the source when no dev set is given
    freeze_embeddings: bool = True  # 96M of e5-small's 118M weights; freezing keeps CPU training fast


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

    def card_fields(self) -> dict:
        return {"base_model": self.base, "source": self.source, "dev_accuracy": self.dev_accuracy,
                "dev_size": self.dev_size, "train_size": self.train_size, "epochs": len(self.epoch_checkpoints)}


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

    from .metrics.functions import classification_scores

    ref: ModelRef = resolve_model(config.model, ENCODER_DEFAULT, config.revision)
    if dev is None:
        split = source.train_test_split(test_size=config.dev_fraction, seed=config.seed, stratify_by_column="label")
        source, dev = split["train"], split["test"]
    fp = fingerprint(ref.provenance(), asdict(config), content_fingerprint(source), content_fingerprint(dev), task.name)
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
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="epoch", save_only_model=True, save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="accuracy", seed=config.seed,
        report_to=[], logging_strategy="epoch", use_cpu=True, disable_tqdm=False,
    )
    snapshots = EpochSnapshots(out / "epochs")
    trainer = Trainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=_tokenize(source, tokenizer, task, config.max_length),
        eval_dataset=_tokenize(dev, tokenizer, task, config.max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids),
        callbacks=[snapshots],
    )
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "best"))
    for ckpt in out.glob("checkpoint-*"):  # the best model is saved; full checkpoints are not needed
        shutil.rmtree(ckpt)
    info = {"base": ref.provenance(), "dev_accuracy": float(metrics["eval_accuracy"]), "dev_size": len(dev),
            "train_size": len(source), "epoch_checkpoints": snapshots.files, "source": source_name}
    (out / DONE_FILE).write_text(json.dumps(info, indent=2))
    return Teacher(path=out, **info)


class EpochSnapshots(TrainerCallback):
    """Saves the trainable weights after every epoch (the frozen embeddings are 80% of the model,
    so a snapshot is a fraction of a checkpoint); cartography replays them on the generations."""

    def __init__(self, folder: Path):
        self.folder, self.files = folder, []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{len(self.files) + 1:03d}.safetensors"
        save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                  str(self.folder / name))
        self.files.append(f"{self.folder.name}/{name}")


@torch.inference_mode()
def predict_probs(model, tokenizer, ds: Dataset, task: TaskSpec, max_length: int = 128,
                  batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities of a sequence classifier over ``ds`` (batched, length-sorted)."""
    model.eval()
    texts = [list(ds[c]) for c in task.text_columns]
    order = np.argsort([sum(len(t[i]) for t in texts) for i in range(len(ds))], kind="stable")
    probs = np.zeros((len(ds), task.num_labels), dtype=np.float32)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        enc = tokenizer(*[[t[i] for i in idx] for t in texts], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        probs[idx] = torch.softmax(model(**enc).logits.float(), dim=-1).numpy()
    return probs


def label(ds: Dataset, task: TaskSpec, teacher: Teacher, max_length: int = 128) -> Dataset:
    """Add ``teacher_probs``, ``teacher_label``, ``teacher_confidence`` and ``epoch_probs`` columns."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(teacher.path / "best"))
    model = AutoModelForSequenceClassification.from_pretrained(str(teacher.path / "best"), use_safetensors=True)
    probs = predict_probs(model, tokenizer, ds, task, max_length)
    per_epoch = []
    for snap in teacher.epoch_checkpoints:  # the same model object, each epoch's trainable weights swapped in
        model.load_state_dict(load_file(str(teacher.path / snap)), strict=False)
        per_epoch.append(predict_probs(model, tokenizer, ds, task, max_length))
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

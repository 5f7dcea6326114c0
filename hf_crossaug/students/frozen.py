"""The frozen-feature student (``StudentConfig.backend="frozen-features"``, ``crossaug train --backend
frozen-features``): a small head trained on cached, frozen multilingual sentence embeddings.

The encoder is never trained. Every text is encoded once (mean-pooled, L2-normalised e5 embeddings with the
``"query: "`` prefix, `hf_crossaug.models.embed.SentenceEmbedder`), and only a two-layer head learns, with the
package's `DistillationTrainer` (the same CE + KL loss and the same "evaluate each epoch, keep the best on
the dev set" settings as the fine-tuned student). Transfer to the target languages comes from the
encoder's aligned sentence space. NLI pairs are represented as [u, v, |u-v|, u*v] (Conneau et al., 2017)
of the premise and hypothesis embeddings. It is about 100x cheaper than fine-tuning the encoder, which is
why the reproduction benchmark (``benchmarks/reproduce.py``) sweeps every mode with it; it is usually less
accurate than fine-tuning.

Saved model folder: ``model.safetensors`` (the head's weights, written by the Trainer),
``crossaug_head.json`` (head sizes, labels, how features are built, and the encoder *reference*: the
encoder itself is not copied, it is loaded from that reference at prediction time), plus
``crossaug_student.json`` and ``README.md`` like every student. `FrozenFeatureClassifier.load` reads it back;
`hf_crossaug.students.evaluate.evaluate_model` detects it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch import nn

from ..config.student import BACKEND_DEFAULTS, StudentConfig
from ..config.tasks import TaskSpec, get_task
from ..models.embed import SentenceEmbedder
from ..models.training import balanced_class_weights, epoch_selection_args
from .trainer import DistillationConfig, DistillationTrainer

HEAD_FILE = "crossaug_head.json"  # marks a frozen-feature student's folder
BACKEND = "frozen-features"
# The benchmark's head hyper-parameters: the CLI's defaults for this backend (StudentConfig's defaults are
# the fine-tuned encoder's), and `train_head`'s.
FROZEN_DEFAULTS = BACKEND_DEFAULTS[BACKEND]
HIDDEN, DROPOUT = 256, 0.1
# Trainer settings that differ from the shared epoch-selection ones: a big eval batch (the head is tiny),
# no per-epoch log lines or progress bars (the benchmark trains 78+ heads), CPU (faster than a GPU round
# trip for a head this size, and what the published numbers were made with).
FROZEN_TRAINER_OVERRIDES = {"per_device_eval_batch_size": 512, "logging_strategy": "no", "disable_tqdm": True,
                            "use_cpu": True}
PAIR_FEATURES = "[u, v, |u-v|, u*v]"


def frozen_config(**fields) -> StudentConfig:
    """A `StudentConfig` for this backend with the benchmark's head hyper-parameters as defaults."""
    return StudentConfig(**{"backend": BACKEND, **fields})


class FeatureCache:
    """Sentence embeddings, each distinct text encoded once; kept in ``folder`` (if given) by ``save`` so
    a rerun, e.g. one that only adds lever rows, does not re-encode the target sets."""

    def __init__(self, embedder: SentenceEmbedder, folder: str | Path | None = None):
        self.embedder, self.vectors = embedder, {}
        self.folder = Path(folder) if folder else None
        if self.folder and (self.folder / "texts.json").is_file():
            texts = json.loads((self.folder / "texts.json").read_text())
            self.vectors = dict(zip(texts, np.load(self.folder / "vectors.npy")))
        self._saved = len(self.vectors)

    def save(self) -> None:
        """Write the cache (vectors first, then the text index, each replaced atomically)."""
        if self.folder is None or len(self.vectors) == self._saved:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        texts = list(self.vectors)
        np.save(self.folder / "vectors.tmp.npy", np.stack([self.vectors[t] for t in texts]))
        os.replace(self.folder / "vectors.tmp.npy", self.folder / "vectors.npy")
        (self.folder / "texts.tmp.json").write_text(json.dumps(texts, ensure_ascii=False))
        os.replace(self.folder / "texts.tmp.json", self.folder / "texts.json")
        self._saved = len(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in self.vectors})
        if new:
            self.vectors.update(zip(new, self.embedder(new)))
        return np.stack([self.vectors[t] for t in texts])

    def features(self, ds: Dataset, task: TaskSpec) -> np.ndarray:
        """One feature row per example: the embedding, or [u, v, |u-v|, u*v] for pair tasks."""
        if len(task.text_columns) == 1:
            return self.encode(list(ds[task.text_columns[0]]))
        u, v = (self.encode(list(ds[c])) for c in task.text_columns)
        return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


class FeatureHead(nn.Module):
    """LayerNorm -> linear -> GELU -> dropout -> linear; returns ``{"logits": ...}`` like a transformers model.
    The LayerNorm puts the tiny u*v / |u-v| features on the same scale as u and v."""

    def __init__(self, dim: int, num_labels: int, hidden: int = HIDDEN, dropout: float = DROPOUT):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels))

    def forward(self, features: torch.Tensor, **_) -> dict:
        return {"logits": self.net(features)}


def _rows(features: np.ndarray, ds: Dataset) -> Dataset:
    data = {"features": features.astype(np.float32), "labels": np.asarray(ds["label"], dtype=np.int64)}
    if "teacher_probs" in ds.column_names:
        data["teacher_probs"] = np.asarray(ds["teacher_probs"], dtype=np.float32)
        data["is_soft"] = np.asarray(ds["is_soft"], dtype=np.int64)
    return Dataset.from_dict(data).with_format("torch")


def head_trainer(model: FeatureHead, args: DistillationConfig, train_x: np.ndarray, train_rows: Dataset,
                 dev_x: np.ndarray, dev: Dataset, task: TaskSpec) -> DistillationTrainer:
    """A `DistillationTrainer` for ``model`` on feature rows, scored by accuracy / macro-F1 on ``dev``."""
    from transformers import PrinterCallback, default_data_collator

    from ..metrics.functions import classification_scores

    labels = list(range(task.num_labels))
    trainer = DistillationTrainer(
        model=model, args=args, data_collator=default_data_collator,
        train_dataset=_rows(train_x, train_rows), eval_dataset=_rows(dev_x, dev),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids, labels),
    )
    trainer.remove_callback(PrinterCallback)  # 78 runs x epochs of metric dicts would drown the table
    return trainer


def train_head(train_x: np.ndarray, train_rows: Dataset, dev_x: np.ndarray, dev: Dataset, task: TaskSpec,
               seed: int, epochs: int = FROZEN_DEFAULTS["epochs"], lr: float = FROZEN_DEFAULTS["learning_rate"],
               batch_size: int = FROZEN_DEFAULTS["batch_size"], temperature: float = 1.5,
               soft_weight: float = 1.0, class_balance: bool = False) -> FeatureHead:
    """Train one student head with `DistillationTrainer`; the best epoch on ``dev`` is kept (nothing saved)."""
    torch.manual_seed(seed)
    model = FeatureHead(train_x.shape[1], task.num_labels)
    weights = balanced_class_weights(train_rows["label"], task.num_labels) if class_balance else None
    with tempfile.TemporaryDirectory() as tmp:
        args = DistillationConfig(**epoch_selection_args(tmp, epochs, lr, batch_size, seed, class_balance,
                                                         **FROZEN_TRAINER_OVERRIDES),
                                  distill_temperature=temperature, soft_weight=soft_weight, class_weights=weights)
        head_trainer(model, args, train_x, train_rows, dev_x, dev, task).train()
    return model.eval()


@torch.inference_mode()
def predict(model: FeatureHead, x: np.ndarray) -> np.ndarray:
    """Predicted output indices (the task's label ids) for feature rows ``x``."""
    return model(torch.from_numpy(x.astype(np.float32)))["logits"].argmax(-1).numpy()


def fit_frozen(config: StudentConfig, task: TaskSpec, train_rows: Dataset, dev: Dataset, out: Path, log=print):
    """`train_student`'s frozen-feature path: encode, train the head, save it to ``out``.

    Returns (`fit_best_epoch`'s tuple, the encoder's `ModelRef`, seconds spent encoding)."""
    import time

    from .common import distillation_config, fit_best_epoch

    embedder = SentenceEmbedder(config.model, config.revision)
    cache = FeatureCache(embedder)
    t = time.perf_counter()
    train_x, dev_x = cache.features(train_rows, task), cache.features(dev, task)
    encode_s = time.perf_counter() - t
    log(f"frozen features: {len(cache.vectors)} distinct texts encoded by {embedder.ref.name} in {encode_s:.0f} s; "
        f"head input {train_x.shape[1]} dims")
    torch.manual_seed(config.seed)
    model = FeatureHead(train_x.shape[1], task.num_labels)
    args = distillation_config(config, out, train_rows, task.num_labels, **FROZEN_TRAINER_OVERRIDES)
    fit = fit_best_epoch(head_trainer(model, args, train_x, train_rows, dev_x, dev, task), out)
    (out / "training_args.bin").unlink(missing_ok=True)  # pickled; the settings are in crossaug_student.json
    head = {"backend": BACKEND, "task": task.name, "task_spec": task.to_dict(), "labels": list(task.labels),
            "text_columns": list(task.text_columns),
            "features": "embedding" if len(task.text_columns) == 1 else PAIR_FEATURES,
            "encoder": {**embedder.ref.provenance(), "prefix": embedder.prefix, "pooling": "mean, L2-normalised"},
            "input_dim": int(train_x.shape[1]), "hidden": HIDDEN, "dropout": DROPOUT, "num_labels": task.num_labels,
            "weights": "model.safetensors"}
    (out / HEAD_FILE).write_text(json.dumps(head, indent=2))
    return fit, embedder.ref, encode_s


class FrozenFeatureClassifier:
    """A saved frozen-feature student: the encoder (from its reference) + the trained head.

    >>> clf = FrozenFeatureClassifier.load("my-student")
    >>> clf.predict({"premise": ["A man plays."], "hypothesis": ["Someone plays."]})  # label ids
    """

    def __init__(self, head: FeatureHead, info: dict, embedder: SentenceEmbedder):
        self.head, self.info, self.embedder = head.eval(), info, embedder
        self.task = get_task(info.get("task_spec") or info["task"])

    @classmethod
    def load(cls, folder: str | Path) -> "FrozenFeatureClassifier":
        from safetensors.torch import load_file

        folder = Path(folder).expanduser()
        info = json.loads((folder / HEAD_FILE).read_text())
        encoder = info["encoder"]
        embedder = SentenceEmbedder(encoder["name"], None if encoder["name"].startswith("embedded:")
                                    else encoder["revision"], prefix=encoder["prefix"])
        if encoder["name"].startswith("embedded:") and embedder.ref.revision != encoder["revision"]:
            raise ValueError(f"{folder}: the head was trained on {encoder['name']} with source sha256 "
                             f"{encoder['revision']}, but this install has {embedder.ref.revision}")
        head = FeatureHead(info["input_dim"], info["num_labels"], info["hidden"], info["dropout"])
        head.load_state_dict(load_file(str(folder / info["weights"])))
        return cls(head, info, embedder)

    def check_task(self, task: TaskSpec) -> None:
        if task.name != self.task.name or list(task.labels) != list(self.info["labels"]):
            raise ValueError(f"the model was trained for task {self.task.name!r} ({', '.join(self.info['labels'])}), "
                             f"not {task.name!r}")

    def predict(self, rows: Dataset | dict, task: TaskSpec | None = None) -> np.ndarray:
        """Label ids (in the order of the task's labels) for rows with the task's text columns."""
        task = task or self.task
        self.check_task(task)
        ds = rows if isinstance(rows, Dataset) else Dataset.from_dict(rows)
        return predict(self.head, FeatureCache(self.embedder).features(ds, task))


def is_frozen_student(folder: str | Path) -> bool:
    return (Path(folder).expanduser() / HEAD_FILE).is_file()


__all__ = ["FROZEN_DEFAULTS", "FeatureCache", "FeatureHead", "FrozenFeatureClassifier", "fit_frozen", "frozen_config",
           "is_frozen_student", "predict", "train_head"]

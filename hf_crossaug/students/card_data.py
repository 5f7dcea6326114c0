"""What a student's model card says, as typed data (setfit's ``ModelCardData`` pattern).

Two producers, one renderer (`hf_crossaug.students.card`): ``crossaug train`` / ``evaluate`` / ``push`` build it
from the results dict in ``crossaug_student.json`` (`StudentCardData.from_results`), and a library user's
`DistillationTrainer` builds a minimal one from what the trainer knows (`StudentCardData.from_trainer`). This
module imports nothing heavy, so the trainer and the renderer can both sit above it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..models.resolve import ENCODER_DEFAULT
from ..utils.paths import looks_local
from ..version import __version__

# Hub ids of the models the embedded aliases are converted from (for the card's base_model field).
EMBEDDED_ORIGINS = {ENCODER_DEFAULT: "intfloat/multilingual-e5-small"}
# keys a results dict may lack: left out again by `to_results` when unset, so the round trip is exact
OPTIONAL_KEYS = ("kind", "head", "repo_id", "license", "tags", "datasets")


def dataset_hub_id(dataset_ref, info: dict) -> str | None:
    """The Hub id of the training dataset: the id itself, or the repo a local build says it belongs to."""
    if not isinstance(dataset_ref, (str, Path)):
        return None
    if not Path(dataset_ref).expanduser().exists():
        return str(dataset_ref)
    return info.get("repo_id")


@dataclass
class StudentCardData:
    """Everything a student card renders. Fields named as in ``crossaug_student.json``; ``mode`` None marks a
    library user's run (no crossaug mode, gold / synthetic split, epoch selection or evaluation to report)."""

    model_name: str
    labels: list[str]
    package_version: str = __version__
    task: str | None = None  # a packaged task's name; None: only the labels are known
    task_spec: dict | None = None  # a user's own task is in no package: the student carries its spec
    kind: str | None = None  # "multiple-choice" for multiple-choice students, else a classifier
    mode: str | None = None
    mode_from: str = "command"  # who chose the mode (`hf_crossaug.students.common.recommended_mode`)
    language: str | None = None
    columns: dict | None = None  # the dataset recipe's source.columns
    base_model: dict = field(default_factory=dict)  # name, revision, hub_id
    dataset: dict | None = None  # the synthetic data: ref, hub_id, config, license
    gold: dict | None = None
    counts: dict | None = None  # gold / generated / soft / total training rows
    teacher: dict | None = None
    recipe: dict | None = None
    selection: dict | None = None  # the epoch picked on dev, with the per-epoch history
    config: dict = field(default_factory=dict)  # StudentConfig's fields: hyperparameters and KD settings
    timings: dict = field(default_factory=dict)
    evaluation: dict | None = None  # `hf_crossaug.students.evaluate.evaluate_model`'s per-language scores
    head: dict | None = None  # a frozen-feature student's head
    repo_id: str | None = None  # the Hub repo it was pushed to (usage snippet)
    license: str | None = None  # otherwise the synthetic dataset's
    tags: list[str] = field(default_factory=list)  # extra card tags
    datasets: list[str] | None = None  # Hub ids of training data a library user names
    extra: dict = field(default_factory=dict)  # other keys of a results dict, kept for the round trip

    @classmethod
    def from_results(cls, results: dict) -> StudentCardData:
        """The card data of a ``crossaug_student.json`` results dict (`to_results` gives it back)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in results.items() if k in known},
                   extra={k: v for k, v in results.items() if k not in known})

    def to_results(self) -> dict:
        """The results-dict form (what ``crossaug_student.json`` holds)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: v for k, v in out.items() if k not in OPTIONAL_KEYS or v}
        return {**out, **self.extra}

    @property
    def multiple_choice(self) -> bool:
        return self.kind == "multiple-choice"

    @classmethod
    def from_trainer(cls, trainer, model_name: str | None = None) -> StudentCardData:
        """A library user's card data: the base model, labels, KD settings and training rows a
        `DistillationTrainer` knows (nothing about synthetic data or evaluation it was not given)."""
        args, model = trainer.args, trainer.model
        model_config = getattr(model, "config", None)
        id2label = getattr(model_config, "id2label", None) or {}
        name = getattr(model_config, "name_or_path", "") or ""
        local = not name or looks_local(name) or Path(name).expanduser().exists()
        # the epochs it trained (max_steps may stop it early), else the epochs it was set to train
        epochs = round(trainer.state.epoch, 2) if trainer.state.epoch else args.num_train_epochs
        config = {"epochs": epochs, "learning_rate": args.learning_rate,
                  "batch_size": args.per_device_train_batch_size, "temperature": args.distill_temperature,
                  "soft_weight": args.soft_weight, "hard_weight": args.hard_weight,
                  "kd_formulation": args.kd_formulation, "seed": args.seed,
                  "dtype": "bfloat16" if args.bf16 else "float32", "class_balance": args.class_weights is not None,
                  **({"max_steps": args.max_steps} if args.max_steps > 0 else {})}
        runtime = next((h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h), None)
        return cls(model_name=model_name or Path(args.output_dir).name,
                   labels=[str(id2label[i]) for i in sorted(id2label)],
                   base_model={"name": name or f"a {type(model).__name__} built in code", "revision": None,
                               "hub_id": EMBEDDED_ORIGINS.get(name, None if local else name)},
                   counts=training_rows(trainer.train_dataset), config=config,
                   timings={"train_s": round(runtime, 1)} if runtime is not None else {})


def training_rows(dataset: Any) -> dict | None:
    """Total / soft / hard-labelled rows of a training set with an ``is_soft`` column (a `datasets.Dataset`)."""
    if dataset is None or not hasattr(dataset, "__len__"):
        return None
    total = len(dataset)
    if "is_soft" not in (getattr(dataset, "column_names", None) or []):
        return {"total": total}
    soft = int(sum(dataset["is_soft"]))
    return {"total": total, "soft": soft, "hard": total - soft}

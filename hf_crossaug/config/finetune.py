"""Configuration of LoRA fine-tuning of the generator LLM: DAFTT (``daftt:``) and Self-Translate-Train (``stt:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Problem, Validated, at_least, one_of

DAFTT_MODES = ("annotate", "generate")
DAFTT_TEMPERATURE = {"annotate": 0.1, "generate": 0.8}  # the paper's values
DAFTT_FRACTION = 0.1


@dataclass
class FinetuneConfig(Validated):
    """LoRA and training settings; every field is part of the adapter's cache key."""

    model: str | None = None  # None -> the method's LLM (DAFTT: generation.model; STT: translate.model)
    revision: str | None = None
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 8
    max_length: int = 256  # prompt + answer tokens; longer prompts lose their start, never the answer
    seed: int = 42

    def problems(self) -> list[Problem]:
        return [*at_least(self, 1, "r", "alpha", "epochs", "batch_size"), *at_least(self, 8, "max_length"),
                *at_least(self, 0, "seed"),
                (0 <= self.dropout < 1, "dropout", "must be in [0, 1)"),
                (bool(self.target_modules), "target_modules", "must name at least one module (e.g. q_proj)"),
                (self.learning_rate > 0, "learning_rate", "must be > 0")]


@dataclass
class DafttConfig(Validated):
    """A recipe's ``daftt:`` section; its presence switches generation to the fine-tuned generator."""

    mode: str = "generate"  # "annotate" unlabelled source inputs, or "generate" new examples per class
    train_fraction: float | None = None  # share of the source that is the labelled subset (default 0.1)
    train_rows: int | None = None  # or an exact number of labelled rows (not both)
    inputs: int | None = None  # annotate: how many remaining source inputs to label (None = all of them)
    temperature: float | None = None  # None -> 0.1 to annotate, 0.8 to generate (the paper's values)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    @property
    def sampling_temperature(self) -> float:
        return DAFTT_TEMPERATURE[self.mode] if self.temperature is None else self.temperature

    def problems(self) -> list[Problem]:
        return [
            one_of(self, "mode", DAFTT_MODES),
            (self.train_fraction is None or self.train_rows is None, "train_rows",
             "and train_fraction are alternatives: set one"),
            (self.train_fraction is None or 0 < self.train_fraction < 1, "train_fraction", "must be in (0, 1)"),
            *at_least(self, 1, "train_rows", "inputs"), *at_least(self, 0, "temperature"),
            (self.inputs is None or self.mode == "annotate", "inputs", "is only used by mode 'annotate'"),
        ]


@dataclass
class SttConfig(Validated):
    """A recipe's ``stt:`` section: what the LLM is tuned on and how it is evaluated."""

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # model None -> translate.model
    include_source: bool = True  # train on the English source rows too (the paper's source + synthetic)
    english_baseline: bool = False  # also tune on the English source alone: the paper's baseline, scored beside
    eval_limit: int | None = 200  # seeded subset of each evaluation set (None = all rows)
    eval_seed: int = 0
    eval_batch_size: int = 8

    def problems(self) -> list[Problem]:
        return [*at_least(self, 1, "eval_limit", "eval_batch_size"), *at_least(self, 0, "eval_seed")]

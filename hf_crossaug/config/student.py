"""Configuration of a student (`crossaug train`); the training-mode names are parsed in `hf_crossaug.students.modes`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Problem, Validated, at_least, one_of, option
from .generate import DTYPES

SELECT_BY = ("english-dev", "target-dev")
KD_FORMULATIONS = ("standard", "reference")
# finetune: the whole encoder (what users train); frozen-features: a small head on cached frozen sentence
# embeddings, ~100x cheaper, the benchmark's fast sweep over every mode
STUDENT_BACKENDS = ("finetune", "frozen-features")
# what a backend trains with unless told otherwise: the frozen head is tiny (more epochs, a higher rate, big batches)
BACKEND_DEFAULTS = {"finetune": {"epochs": 3, "learning_rate": 5e-5, "batch_size": 16},
                    "frozen-features": {"epochs": 8, "learning_rate": 2e-3, "batch_size": 64}}
DEFAULT_MODE = "T-div-k"  # the data-selection paper's mode, when neither the command nor the recipe names one
MC_DEFAULT_MODE = "SRC+GEN"  # multiple choice has no teacher: every generated item with its written answer
# multiple-choice students: mode -> what it trains on (for the card)
MC_MODES = {
    "SRC": "the English items only (the English-only baseline).",
    "GEN": "the generated items only.",
    "SRC+GEN": "the English items plus every generated item (the paper's original + generated data).",
}


@dataclass
class StudentConfig(Validated):
    """How a student is trained (every field lands in ``crossaug_student.json`` and the card). The ``help``
    of each field is also its ``crossaug train`` option, so the CLI does not declare the fields again."""

    model: str | None = option(None, "base encoder: folder or Hub id (default: embedded multilingual-e5-small)")
    revision: str | None = option(None, "Hub revision of --model (branch, tag or commit)")
    mode: str | None = option(None, "SRC, GEN, SRC+GEN, T-<strategy> or T_pl-<strategy> (multiple choice: SRC, GEN, "
                              f"SRC+GEN) (default: the dataset recipe's student.mode, else {DEFAULT_MODE}; multiple "
                              f"choice {MC_DEFAULT_MODE})")
    config: str | None = option(None, "dataset config (default: from the mode, T-div-k -> div-k; SRC+GEN / GEN: the "
                                "config whose size the draw matches, raw = every generation)")
    task: str | None = option(None, "nli, sentiment, copa, storycloze or winograd (default: from the dataset)")
    backend: str = option("finetune", "finetune (the whole encoder) or frozen-features (a small head on frozen "
                          "sentence embeddings, the benchmark's fast student)")
    # None: the backend's default (BACKEND_DEFAULTS), filled in when the config is built
    epochs: int | None = option(None, "training epochs (default: 3 finetune, 8 frozen-features)")
    learning_rate: float | None = option(None, "learning rate (default: 5e-5 finetune, 2e-3 frozen-features)",
                                         "--lr")
    batch_size: int | None = option(None, "training batch size (default: 16 finetune, 64 frozen-features)")
    max_length: int = option(128, "max tokens per example (finetune; frozen-features: the encoder's limit)")
    temperature: float = option(1.5, "distillation temperature")
    # the gold / synthetic mixing lever: the loss is (CE on gold rows + soft_weight * KL on generated rows) / rows
    soft_weight: float = option(1.0, "weight of the KL term on generated rows against CE on gold rows "
                                "(1 = the paper's plain sum)")
    kd_formulation: str = option("standard", "standard (Hinton, T^2) or reference (the paper's code)")
    class_balance: bool | None = option(None, "weight the gold rows' classes equally and pick the epoch by dev "
                                        "macro-F1, for targets whose class mix is not the English data's (default: "
                                        "as the dataset's recipe trained its teacher, teacher.class_balance)")
    seed: int = option(42, "seed for sampling and training")
    select_by: str = option("english-dev", "english-dev, or target-dev when --dev is target-language")
    # most of a small multilingual encoder's weights; keeps CPU training fast
    freeze_embeddings: bool = option(True, "keep the encoder's embedding matrix frozen (finetune)")
    limit: int | None = option(None, "use a seeded subset of this many source rows")
    dev_limit: int | None = option(None, "use a seeded subset of this many dev rows")
    dev_fraction: float = option(0.15, "share of the gold data held out as dev set when no --dev is given")
    dtype: str = option("float32", "training precision: auto (bfloat16 autocast where the CPU or GPU computes it "
                        "natively, else float32), bfloat16 or float32")

    def __post_init__(self):
        for name, value in BACKEND_DEFAULTS.get(self.backend, {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        super().__post_init__()

    def problems(self) -> list[Problem]:
        return [one_of(self, "select_by", SELECT_BY), one_of(self, "kd_formulation", KD_FORMULATIONS),
                one_of(self, "backend", STUDENT_BACKENDS), one_of(self, "dtype", DTYPES),
                (self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}"),
                (self.learning_rate is None or self.learning_rate > 0, "learning_rate", "must be > 0"),
                (self.soft_weight >= 0, "soft_weight", f"must be >= 0, got {self.soft_weight}"),
                (0 < self.dev_fraction < 1, "dev_fraction", "must be in (0, 1)"),
                *at_least(self, 1, "epochs", "batch_size", "max_length", "limit", "dev_limit"),
                *at_least(self, 0, "seed")]


@dataclass
class RecommendedStudent(Validated):
    """A recipe's ``student:`` section: the training mode its data was measured to serve best. `crossaug train`
    uses it when the command names no ``--mode``, and the dataset card states it with ``why``, so a user of the
    Hub dataset gets the measured choice rather than the paper's default. The recipe checks both names against
    the configs it builds."""

    mode: str = DEFAULT_MODE
    config: str | None = None  # for SRC+GEN / GEN the config whose size the draw matches; "raw": every generation
    why: str = ""  # where it was measured, for the card

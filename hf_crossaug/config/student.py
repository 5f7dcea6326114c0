"""Configuration of a student (`crossaug train`); the training-mode names are parsed in `hf_crossaug.students.modes`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Problem, at_least, one_of

SELECT_BY = ("english-dev", "target-dev")
KD_FORMULATIONS = ("standard", "reference")
# finetune: the whole encoder (what users train); frozen-features: a small head on cached frozen sentence
# embeddings, ~100x cheaper, the benchmark's fast sweep over every mode
STUDENT_BACKENDS = ("finetune", "frozen-features")
# multiple-choice students: mode -> what it trains on (for the card)
MC_MODES = {
    "SRC": "the English items only (the English-only baseline).",
    "GEN": "the generated items only.",
    "SRC+GEN": "the English items plus every generated item (the paper's original + generated data).",
}


@dataclass
class StudentConfig:
    """How a student is trained (every field lands in ``crossaug_student.json`` and the card)."""

    model: str | None = None  # None -> embedded multilingual-e5-small; else a Hub id or folder
    revision: str | None = None
    mode: str = "T-div-k"
    config: str | None = None  # dataset config; None -> derived from the mode (T-div-k -> div-k)
    task: str | None = None  # None -> from the dataset's crossaug_build.json or its columns
    backend: str = "finetune"
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

    def problems(self) -> list[Problem]:
        return [one_of(self, "select_by", SELECT_BY), one_of(self, "kd_formulation", KD_FORMULATIONS),
                one_of(self, "backend", STUDENT_BACKENDS),
                (self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}"),
                (self.learning_rate > 0, "learning_rate", "must be > 0"),
                (0 < self.dev_fraction < 1, "dev_fraction", "must be in (0, 1)"),
                *at_least(self, 1, "epochs", "batch_size", "max_length", "limit", "dev_limit")]

"""Configuration of the teacher stage."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Problem, Validated, at_least, one_of
from .generate import DTYPES
from .source import SourceConfig


@dataclass
class TeacherConfig(Validated):
    """How the teacher is trained; every field but ``source`` / ``source_limit`` (the rows it reads are, by content)
    and ``self_training_rounds`` is part of the teacher's cache key."""

    model: str | None = None  # None -> embedded multilingual-e5-small; else a Hub id or folder
    revision: str | None = None
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 128
    seed: int = 42
    dev_fraction: float = 0.15  # held out from the source when no dev set is given
    freeze_embeddings: bool = True  # 96M of e5-small's 118M weights; freezing keeps CPU training fast
    # self-training: retrain on the source plus the generations the teacher and the prompt agree on (the k per
    # class it is surest of, with that label) and relabel, this many rounds; a weak teacher's soft labels are
    # close to flat, and the agreeing generations are in-domain data it did not have
    self_training_rounds: int = 0
    # weight the classes equally in the loss and pick the epoch by dev macro-F1: for targets whose class mix is not
    # the English data's (an SST-3 teacher never predicts neutral, 19% of SST-3 and 36-49% of MahaSent / IITP)
    class_balance: bool = False
    # the teacher may learn from more English gold than the generator's few-shot examples and the students see: up
    # to this many rows of the recipe's source (a seeded subset, as ``source.limit``); None = the rows they get
    source_limit: int | None = None
    # or English gold of its own (a file, a glob of files such as ``snli/*.jsonl``, or a Hub dataset), read as the
    # recipe's ``source:`` is; None = the recipe's source
    source: SourceConfig | None = None
    # batches of similar length (Trainer ``group_by_length``): less padding per step; the order is still seeded
    group_by_length: bool = False
    # training and labelling precision: bfloat16 autocast where the device computes it natively (auto), or pinned;
    # float32 by default, so the packaged recipes keep their data (README: measured)
    dtype: str = "float32"

    def problems(self) -> list[Problem]:
        return [*at_least(self, 1, "epochs", "batch_size", "max_length", "source_limit"),
                *at_least(self, 0, "self_training_rounds", "seed"), one_of(self, "dtype", DTYPES),
                (self.learning_rate > 0, "learning_rate", "must be > 0"),
                (0 < self.dev_fraction < 1, "dev_fraction", "must be in (0, 1)"),
                (self.source is None or self.source_limit is None, "source_limit",
                 "limits the recipe's source; with teacher.source set, give teacher.source.limit instead")]

"""Configuration of the clean stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Problem, Validated, at_least, one_of

NEAR_DUPLICATE_METHODS = ("none", "minhash", "embedding")


@dataclass
class NearDuplicateConfig(Validated):
    """Drop a row that nearly copies an earlier kept row with the same duplicate key (first one wins), so
    more volume does not buy copies (`hf_crossaug.stages.dedup`).

    ``minhash``: exact Jaccard similarity of character ``ngram`` shingles of the normalised text (MinHash LSH
    only proposes the pairs); ``embedding``: cosine of the teacher encoder's sentence embeddings (e5 scores
    unrelated sentences near 0.8: use 0.95 or more). ``none`` (the default) keeps every recipe's rows as
    they were before this existed.
    """

    method: str = "none"
    threshold: float = 0.9
    ngram: int = 5  # minhash shingle width, in characters (language-agnostic, no tokenizer needed)

    def problems(self) -> list[Problem]:
        return [one_of(self, "method", NEAR_DUPLICATE_METHODS),
                (0 < self.threshold <= 1, "threshold", f"must be in (0, 1], got {self.threshold!r}"),
                *at_least(self, 1, "ngram")]


@dataclass
class CleanConfig(Validated):
    """Bounds for a usable generation, in whitespace-separated words, and near-duplicate removal."""

    min_words: int = 3
    max_words: int = 60
    near_duplicate: NearDuplicateConfig = field(default_factory=NearDuplicateConfig)

    def problems(self) -> list[Problem]:
        return [*at_least(self, 1, "min_words"),
                (self.max_words >= self.min_words, "max_words", f"must be >= min_words ({self.min_words})")]

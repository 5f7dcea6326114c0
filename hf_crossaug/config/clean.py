"""Configuration of the clean stage."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Problem, Validated, at_least


@dataclass
class CleanConfig(Validated):
    """Bounds for a usable generation, in whitespace-separated words."""

    min_words: int = 3
    max_words: int = 60

    def problems(self) -> list[Problem]:
        return [*at_least(self, 1, "min_words"),
                (self.max_words >= self.min_words, "max_words", f"must be >= min_words ({self.min_words})")]

"""Configuration of the select stage (the strategies themselves are a registry in `hf_crossaug.stages.select`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Problem, Validated, at_least, one_of

KMEANS_BACKENDS = ("faiss", "sklearn")
RAW = "raw"  # the config that holds every kept row; each strategy adds one more config


@dataclass
class SelectionConfig(Validated):
    """How many rows each strategy keeps per class, and the knobs of the ones that need them."""

    strategies: list[str] = field(default_factory=lambda: ["rand-k", "top-k", "div-k", "amb-k", "easy-k"])
    k: int = 100  # per class
    seed: int = 42
    n_clusters: int = 25  # div-k clusters per class, as in the paper
    class_column: str = "prompt_label"
    kmeans_backend: str = "faiss"
    kmeans_niter: int = 20

    def problems(self) -> list[Problem]:
        ints = [(isinstance(getattr(self, n), int) and not isinstance(getattr(self, n), bool), n,
                 f"must be an integer, got {getattr(self, n)!r}") for n in ("k", "n_clusters", "kmeans_niter")]
        return ints + [*at_least(self, 1, "k", "n_clusters", "kmeans_niter"), *at_least(self, 0, "seed"),
                       one_of(self, "kmeans_backend", KMEANS_BACKENDS),
                       (len(set(self.strategies)) == len(self.strategies), "strategies", "must not repeat a name")]

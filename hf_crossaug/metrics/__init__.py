"""Metrics: plain functions (``functions.py``) and thin ``evaluate`` module wrappers around them.

The wrappers live in ``METRIC_DIR/<name>/<name>.py`` and load by path, so they work offline and need no Hub
account: ``load_metric("diversity").compute(embeddings=...)``. They import the plain functions from this
package, so ``hf_crossaug`` must be importable in the process that loads them (it is whenever
:func:`load_metric` is used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_crossaug.metrics.functions import (
    classification_scores,
    diversity_score,
    label_agreement,
    per_language_scores,
)

METRIC_DIR: Path = Path(__file__).resolve().parent
"""Folder holding one sub-folder per ``evaluate`` module."""

METRIC_NAMES: tuple[str, ...] = ("crossaug_accuracy", "diversity", "label_agreement")


def load_metric(name: str, **kwargs: Any):
    """``evaluate.load`` of the local module ``METRIC_DIR / name`` (no network; ``kwargs`` go to ``evaluate.load``)."""
    path = METRIC_DIR / name
    if not (path / f"{name}.py").is_file():
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    import evaluate  # imported lazily: importing the plain functions should not pay for evaluate

    return evaluate.load(str(path), **kwargs)


__all__ = [
    "METRIC_DIR",
    "METRIC_NAMES",
    "load_metric",
    "classification_scores",
    "per_language_scores",
    "diversity_score",
    "label_agreement",
]

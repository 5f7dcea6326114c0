"""Metrics as plain functions (numpy / scikit-learn only).

All arithmetic lives here. The ``evaluate`` modules next to this file only convert inputs and call these
functions, so a number reported by ``evaluate.load(...).compute(...)`` and one computed in a script or a test
are the same number by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

__all__ = [
    "classification_scores",
    "per_language_scores",
    "diversity_score",
    "label_agreement",
]


# The data-selection paper (arXiv 2407.10582): diversity score and label agreement come from it.
DATA_SELECTION_CITATION = """\
@inproceedings{fazili-etal-2024-boosting,
  title={Boosting Zero-Shot Crosslingual Performance using {LLM}-Based Augmentations with Effective Data Selection},
  author={Fazili, Barah and Agrawal, Ashish Sunil and Jyothi, Preethi},
  booktitle={Findings of the Association for Computational Linguistics: ACL 2024},
  year={2024},
  eprint={2407.10582},
  archivePrefix={arXiv}
}
"""

def _paired(a: Sequence[Any], b: Sequence[Any], names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Both sequences as arrays of the same, non-zero length (a silent length mismatch would misalign rows)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.ndim != 1 or b_arr.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D, got shapes {a_arr.shape} and {b_arr.shape}")
    if len(a_arr) != len(b_arr):
        raise ValueError(f"{names[0]} has {len(a_arr)} items but {names[1]} has {len(b_arr)}")
    if len(a_arr) == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty; there is nothing to score")
    return a_arr, b_arr


def classification_scores(
    predictions: Sequence[Any], references: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[str, float | int]:
    """Accuracy and macro-F1 of ``predictions`` against ``references``.

    Macro-F1 is reported next to accuracy because generated data is often class-imbalanced and accuracy
    alone hides a collapsed class. Pass ``labels`` (the task's full label set) so that a class the model
    never predicts and the split never contains still counts, as 0, in the macro average; without it only
    the labels seen in either list are averaged (scikit-learn's default). Ill-defined per-class F1 is 0.
    """
    preds, refs = _paired(predictions, references, ("predictions", "references"))
    macro_f1 = f1_score(
        refs,
        preds,
        labels=None if labels is None else list(labels),
        average="macro",
        zero_division=0,
    )
    return {"accuracy": float(np.mean(preds == refs)), "macro_f1": float(macro_f1), "n": int(len(refs))}


def per_language_scores(
    predictions: Sequence[Any],
    references: Sequence[Any],
    languages: Sequence[str],
    labels: Sequence[Any] | None = None,
) -> dict[str, dict[str, float | int]]:
    """:func:`classification_scores` per language, plus an ``"avg"`` entry.

    Cross-lingual results are reported per target language and as the unweighted mean over languages (each
    language counts once, whatever its test-set size), which is what ``"avg"`` holds for ``accuracy`` and
    ``macro_f1``; its ``n`` is the total number of rows. Languages are keyed in sorted order.
    """
    preds, refs = _paired(predictions, references, ("predictions", "references"))
    langs = np.asarray([str(x) for x in languages])
    if len(langs) != len(refs):
        raise ValueError(f"languages has {len(langs)} items but references has {len(refs)}")
    out: dict[str, dict[str, float | int]] = {}
    for lang in sorted(set(langs.tolist())):
        mask = langs == lang
        out[lang] = classification_scores(preds[mask], refs[mask], labels=labels)
    out["avg"] = {
        "accuracy": float(np.mean([s["accuracy"] for s in out.values()])),
        "macro_f1": float(np.mean([s["macro_f1"] for s in out.values()])),
        "n": int(len(refs)),
    }
    return out


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64; an all-zero row stays zero (cosine 0 with everything)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def diversity_score(
    embeddings: Any,
    max_exact: int = 2000,
    sample_pairs: int = 200_000,
    seed: int = 0,
    method: str = "auto",
    chunk_size: int = 16_384,
) -> dict[str, Any]:
    """Mean pairwise cosine distance ``1 - cos(v_i, v_j)`` over all unordered pairs ``i < j``.

    This is the diversity score used to compare selected subsets of generated data (a higher score means the
    examples are spread further apart in embedding space). Embeddings are L2-normalised here, so callers
    need not. ``method``:

    * ``"exact"``: uses ``sum_{i<j} cos = (||sum_i v_i||^2 - sum_i ||v_i||^2) / 2`` for normalised ``v``,
      which is O(n d) in time and memory, not O(n^2).
    * ``"sample"``: the mean over ``sample_pairs`` unordered pairs drawn uniformly with replacement (seeded
      with ``seed``); ``sample_size`` reports how many, so a reader knows the estimate is one.
    * ``"auto"`` (default): exact when ``n <= max_exact``, sampled otherwise.

    Returns ``{"diversity", "n", "method", "sample_size"}``; ``sample_size`` is ``None`` when exact.
    Fewer than two rows have no pairs, so ``diversity`` is NaN then. The value is clipped to ``[0, 2]`` to
    remove float round-off (identical vectors give exactly 0).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, dim), got shape {x.shape}")
    if method not in ("auto", "exact", "sample"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sample', got {method!r}")
    if sample_pairs < 1:
        raise ValueError(f"sample_pairs must be >= 1, got {sample_pairs}")
    n = int(x.shape[0])
    chosen = method if method != "auto" else ("exact" if n <= max_exact else "sample")
    if n < 2:
        return {"diversity": float("nan"), "n": n, "method": chosen, "sample_size": None if chosen == "exact" else 0}

    v = _l2_normalise(x)
    if chosen == "exact":
        total = v.sum(axis=0)
        pair_cos_sum = (float(total @ total) - float(np.einsum("ij,ij->", v, v))) / 2.0
        mean_cos = pair_cos_sum / (n * (n - 1) / 2.0)
        sample_size = None
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=sample_pairs)
        # j = i + an offset in [1, n-1] (mod n) is uniform over j != i, so (i, j) is uniform over ordered
        # pairs of distinct rows, hence over unordered pairs.
        j = (i + rng.integers(1, n, size=sample_pairs)) % n
        cos_sum = 0.0
        for start in range(0, sample_pairs, chunk_size):  # bounded memory for large dims
            a, b = i[start : start + chunk_size], j[start : start + chunk_size]
            cos_sum += float(np.einsum("ij,ij->", v[a], v[b]))
        mean_cos = cos_sum / sample_pairs
        sample_size = int(sample_pairs)
    diversity = float(np.clip(1.0 - mean_cos, 0.0, 2.0))
    return {"diversity": diversity, "n": n, "method": chosen, "sample_size": sample_size}


def label_agreement(
    prompt_labels: Sequence[int], teacher_labels: Sequence[int], num_labels: int | None = None
) -> dict[str, Any]:
    """How often the teacher's label matches the label the generator was prompted with.

    Low agreement flags generated text that does not carry its intended class (the reason teacher
    relabelling exists); Cohen's kappa corrects the raw rate for agreement expected by chance, which is high
    when one class dominates. ``per_class`` maps each prompt label id to the fraction of its rows the teacher
    agreed with; with ``num_labels`` every id in ``range(num_labels)`` is listed (NaN when it has no rows)
    and kappa uses the full label set. Kappa is NaN when undefined (e.g. a single class throughout).
    """
    prompt, teacher = _paired(prompt_labels, teacher_labels, ("prompt_labels", "teacher_labels"))
    prompt, teacher = prompt.astype(np.int64), teacher.astype(np.int64)
    agree = prompt == teacher
    classes = list(range(num_labels)) if num_labels is not None else sorted(set(prompt.tolist()))
    per_class: dict[int, float] = {}
    for c in classes:
        mask = prompt == c
        per_class[int(c)] = float(np.mean(agree[mask])) if mask.any() else float("nan")
    if len(np.union1d(prompt, teacher)) < 2:
        kappa = float("nan")  # one class throughout: chance agreement is 1, kappa is 0/0
    else:
        kappa = float(cohen_kappa_score(prompt, teacher, labels=classes if num_labels is not None else None))
    return {"agreement": float(np.mean(agree)), "per_class": per_class, "cohen_kappa": kappa, "n": int(len(prompt))}

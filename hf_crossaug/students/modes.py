"""Training modes of the data-selection paper (arXiv 2407.10582): which rows a student trains on.

A mode is picked by name and turns English gold data plus a built synthetic dataset into one training
set. Every output row has the task's text columns, ``label`` (class id; -100 on soft rows),
``teacher_probs`` (the teacher's class probabilities; zeros on gold rows), ``is_soft`` (1 = KL to
``teacher_probs``, 0 = cross-entropy on ``label``) and ``origin`` ("gold" or "generated"): the columns
`hf_crossaug.students.trainer.DistillationTrainer` reads.

=================  =========================================================================================
``SRC``            English gold only.
``GEN``            generations only, hard prompt labels; as many rows as ``SRC+GEN`` (drawn from ``raw``).
``SRC+GEN``        gold + a seeded random draw from ``raw`` as large as a selection config, prompt labels.
``T-<strategy>``   gold + the ``<strategy>`` config with the teacher's soft labels (KL on ``teacher_probs``).
``T_pl-<strategy>``  gold + the ``<strategy>`` config with hard prompt labels (selection without soft labels).
=================  =========================================================================================

``<strategy>`` is any name in the selection registry (`hf_crossaug.stages.select.STRATEGIES`). The random draws of
``GEN`` and ``SRC+GEN`` come from one seeded permutation of ``raw``, so ``SRC+GEN``'s generations are a
prefix of ``GEN``'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, List, Value, concatenate_datasets

from ..stages.select import STRATEGIES
from ..stages.source import check_hub_dataset, meant_as_path
from ..config.tasks import TaskSpec, get_task
from ..config.select import RAW

DEFAULT_SIZE_CONFIG = "div-k"  # the selection config whose size SRC+GEN matches (the dataset card's default)

# A synthetic dataset: a mapping config -> Dataset (a dict of them, not a DatasetDict of splits), a
# callable ``config -> Dataset``, or a local folder / Hub id loaded with ``datasets.load_dataset``.
Synthetic = Mapping | Callable[[str], Dataset] | str | Path


@dataclass(frozen=True)
class Mode:
    """What one mode trains on. ``config`` is the synthetic config it reads (None: SRC only)."""

    name: str
    gold: bool  # the English gold rows are included
    config: str | None  # "raw" for the random draws, a strategy name for T-/T_pl-
    soft: bool = False  # generated rows use the teacher's soft labels, not the prompt label
    draw: str | None = None  # "gen" / "src+gen": seeded random draw from raw

    @property
    def strategy(self) -> str | None:
        return self.config if self.config not in (None, RAW) else None


def mode_names() -> list[str]:
    """Every valid mode name, baselines first."""
    return ["SRC", "GEN", "SRC+GEN", *(f"T-{s}" for s in STRATEGIES), *(f"T_pl-{s}" for s in STRATEGIES)]


def parse_mode(name: str) -> Mode:
    """A `Mode` from its name (case-sensitive, as in the paper); one-line error listing valid names."""
    if name == "SRC":
        return Mode(name, gold=True, config=None)
    if name == "GEN":
        return Mode(name, gold=False, config=RAW, draw="gen")
    if name == "SRC+GEN":
        return Mode(name, gold=True, config=RAW, draw="src+gen")
    for prefix, soft in (("T-", True), ("T_pl-", False)):
        if name.startswith(prefix) and name[len(prefix):] in STRATEGIES:
            return Mode(name, gold=True, config=name[len(prefix):], soft=soft)
    raise ValueError(f"unknown training mode {name!r}; valid modes: {', '.join(mode_names())}")


def load_folder_or_hub(ref: str | Path, config: str | None, split: str) -> Dataset:
    """``load_dataset(ref, config, split=split)`` for a Hub id or a local Hub-layout folder.

    datasets 5.2 keys the cache of a local folder on the folder's *name* and its README's ``configs:``
    patterns only (not its path, not the files), so a rebuilt folder, or another folder with the same
    name, silently loads the old rows (and ``force_redownload`` then fails its own split-size check
    against the stale info). A local folder therefore gets a cache directory of its own, keyed on its
    absolute path and the size and mtime of every file in it. Hub ids keep the normal cache.
    """
    from datasets import config as ds_config
    from datasets import load_dataset

    kwargs = {}
    folder = Path(ref).expanduser()
    if not folder.exists():  # a Hub id, or a mistyped folder: one line within seconds, not the Hub's retries
        if meant_as_path(str(ref)):
            raise FileNotFoundError(f"dataset {ref}: no such folder (it reads as a local path, so it is not tried "
                                    "as a Hub id)")
        check_hub_dataset(str(ref), "dataset", "folder")
    if folder.is_dir():
        folder = folder.resolve()
        h = hashlib.sha256(str(folder).encode())
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
            st = f.stat()
            h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
        kwargs["cache_dir"] = str(Path(ds_config.HF_DATASETS_CACHE) / "crossaug-local" / h.hexdigest()[:16])
    try:
        return load_dataset(str(ref), config, split=split, **kwargs)
    except ValueError as exc:  # unknown config or split: datasets lists the available ones
        raise ValueError(f"dataset {ref}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # offline (no Hub check above) and not in the datasets cache
        if folder.exists():
            raise
        raise FileNotFoundError(f"dataset {ref}: no such folder, and no Hub dataset of that name could be loaded "
                                f"({str(exc).splitlines()[0]})") from None


def load_synthetic(ref: str | Path, config: str) -> Dataset:
    """The ``train`` split of one config of a built dataset (local Hub-layout folder or Hub id)."""
    return load_folder_or_hub(ref, config, "train")


def _get(synthetic: Synthetic, config: str) -> Dataset:
    if isinstance(synthetic, (str, Path)):
        return load_synthetic(synthetic, config)
    if callable(synthetic) and not isinstance(synthetic, Mapping):
        return synthetic(config)
    if config not in synthetic:
        raise ValueError(f"synthetic data has no config {config!r}; it has: {', '.join(map(str, synthetic))}")
    return synthetic[config]


def training_features(task: TaskSpec) -> Features:
    feats = {c: Value("string") for c in task.text_columns}
    feats.update({"label": Value("int64"), "teacher_probs": List(Value("float32")), "is_soft": Value("int64"),
                  "origin": Value("string")})
    return Features(feats)


def _check_synthetic(ds: Dataset, task: TaskSpec, config: str) -> None:
    need = (*task.text_columns, "prompt_label", "teacher_probs")
    missing = [c for c in need if c not in ds.column_names]
    if missing:
        raise ValueError(f"synthetic config {config!r} lacks column(s) {', '.join(missing)}; "
                         f"is it a {task.name} dataset built by hf_crossaug?")
    names = getattr(ds.features["prompt_label"], "names", None)
    if names is not None and list(names) != list(task.labels):
        raise ValueError(f"synthetic config {config!r} has labels {names}, task {task.name!r} has {list(task.labels)}")
    if len(ds) and len(ds[0]["teacher_probs"]) != task.num_labels:
        raise ValueError(f"synthetic config {config!r}: teacher_probs has width {len(ds[0]['teacher_probs'])}, "
                         f"task {task.name!r} has {task.num_labels} labels")


def _gold_rows(gold: Dataset, task: TaskSpec) -> Dataset:
    zeros = [0.0] * task.num_labels
    data = {c: list(gold[c]) for c in task.text_columns}
    data.update({"label": [int(x) for x in gold["label"]], "teacher_probs": [zeros] * len(gold),
                 "is_soft": [0] * len(gold), "origin": ["gold"] * len(gold)})
    return Dataset.from_dict(data, features=training_features(task))


def _generated_rows(ds: Dataset, task: TaskSpec, soft: bool) -> Dataset:
    data = {c: list(ds[c]) for c in task.text_columns}
    data.update({"label": [-100] * len(ds) if soft else [int(x) for x in ds["prompt_label"]],
                 "teacher_probs": [list(p) for p in ds["teacher_probs"]], "is_soft": [int(soft)] * len(ds),
                 "origin": ["generated"] * len(ds)})
    return Dataset.from_dict(data, features=training_features(task))


def synthetic_config(mode: str | Mode, config: str | None = None) -> str | None:
    """The dataset config a mode reads its generations from: ``config`` if given (T-/T_pl- modes may
    train on a differently named selection config), else the mode's strategy; ``raw`` for the random
    draws; None for ``SRC``."""
    m = parse_mode(mode) if isinstance(mode, str) else mode
    if m.config is None or m.draw is not None:
        return m.config
    return config or m.config


def build_training_set(mode: str | Mode, gold: Dataset, synthetic: Synthetic | None, task: TaskSpec | str,
                       seed: int = 42, config: str | None = None, n_gen: int | None = None) -> Dataset:
    """The training rows of ``mode`` (see the module docstring), gold rows first.

    ``gold`` is normalised source data (`hf_crossaug.stages.source.load_source`: text columns + ``label``).
    ``config``: for ``T-``/``T_pl-`` modes the selection config to read (default: the mode's strategy);
    for ``GEN``/``SRC+GEN`` the selection config whose size the random draw matches (default ``div-k``).
    ``n_gen`` overrides that size: the number of generations ``SRC+GEN`` adds (``GEN`` draws
    ``len(gold) + n_gen``); the draw takes all of ``raw`` if it is smaller.
    """
    m = parse_mode(mode) if isinstance(mode, str) else mode
    task = get_task(task)
    parts = [_gold_rows(gold, task)] if m.gold else []
    if m.config is not None:
        if synthetic is None:
            raise ValueError(f"mode {m.name!r} needs a synthetic dataset")
        name = synthetic_config(m, config)
        ds = _get(synthetic, name)
        _check_synthetic(ds, task, name)
        if m.draw is not None:
            if n_gen is None:
                n_gen = len(_get(synthetic, config or DEFAULT_SIZE_CONFIG))
            n = n_gen if m.draw == "src+gen" else len(gold) + n_gen
            order = np.random.default_rng(seed).permutation(len(ds))[: min(n, len(ds))]
            ds = ds.select(np.sort(order))
        parts.append(_generated_rows(ds, task, m.soft))
    out = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if len(out) == 0:
        raise ValueError(f"mode {m.name!r} produced no training rows")
    return out


def row_counts(ds: Dataset) -> dict[str, int]:
    """Gold / generated / soft / total rows of a training set (for results and the model card)."""
    origin, soft = np.asarray(ds["origin"]), np.asarray(ds["is_soft"])
    return {"gold": int((origin == "gold").sum()), "generated": int((origin == "generated").sum()),
            "soft": int(soft.sum()), "total": len(ds)}

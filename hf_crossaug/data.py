"""Loading labelled source data: the packaged seed set, a local file, or a Hub dataset id.

Everything is normalised to the task's columns plus an integer ``label`` (a ``ClassLabel``), so the
rest of the pipeline never sees where the data came from. Problems are reported in one line naming
the file and the column or value that is wrong.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from datasets import Dataset, load_dataset

from .tasks import TaskSpec

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
UNLABELLED = {None, -1, "-", ""}


def seed_path(task: TaskSpec) -> Path:
    """The small English seed set shipped with the package for ``task``."""
    return Path(str(resources.files("hf_crossaug") / "seed_data" / f"{task.name}.jsonl"))


def load_source(
    task: TaskSpec,
    source: str | None = None,
    split: str = "train",
    label_column: str = "label",
    limit: int | None = None,
    seed: int = 0,
    label_map: dict | None = None,
) -> Dataset:
    """Load labelled data for ``task``; ``None`` or ``"seed"`` means the packaged seed set.
    ``label_map`` renames source labels first (e.g. SST-5's five classes folded into SST-3's three).

    A local file may carry a row slice, ``FILE@train[:120]`` (or pass ``split="train[:120]"``).

    ``limit`` keeps a seeded, class-stratified-by-shuffle subset, so small-scale runs stay balanced.
    """
    if source in (None, "", "seed") and not seed_path(task).exists():
        raise FileNotFoundError(f"no packaged seed set for task {task.name!r}; pass a source file or Hub id")
    where = str(seed_path(task)) if source in (None, "", "seed") else source
    file, _, rows = where.partition("@")  # "FILE@train[:120]": a row slice of a local file
    if rows and Path(file).suffix.lower() in FORMATS:
        where, split = file, rows
    path = Path(where).expanduser()
    if path.suffix.lower() in FORMATS or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"source file not found: {path}")
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"source file {path} has an unsupported extension; use one of {', '.join(FORMATS)}")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            # a file is one "train" split; a slice of it ("train[:120]") keeps, e.g., prompt examples apart
            file_split = split if split.startswith("train[") else "train"
            ds = load_dataset(fmt, data_files=str(path), split=file_split, **kwargs)
        except Exception as exc:  # datasets raises many types for a broken file
            raise ValueError(f"source file {path} could not be read as {fmt}: {str(exc).splitlines()[0]}") from None
    else:
        ds = load_dataset(where, split=split)
    return normalise(ds, task, where, label_column, limit, seed, label_map)


def normalise(ds: Dataset, task: TaskSpec, where: str, label_column: str = "label",
              limit: int | None = None, seed: int = 0, label_map: dict | None = None) -> Dataset:
    """Keep the task's columns, map labels to ids (after ``label_map``), drop unlabelled rows (SNLI's ``-``)."""
    for col in (*task.text_columns, label_column):
        if col not in ds.column_names:
            raise ValueError(f"source {where} has no column {col!r} (columns: {', '.join(ds.column_names)})")
    names = ds.features[label_column].names if hasattr(ds.features[label_column], "names") else None
    label2id = task.label2id()

    def to_id(value):
        if value in UNLABELLED:
            return -1
        if names is not None and not isinstance(value, str):
            value = names[value]
        if label_map:
            value = label_map.get(value, value)
        if isinstance(value, str):
            if value not in label2id:
                raise ValueError(f"source {where}: unknown label {value!r} in column {label_column!r}; "
                                 f"expected one of {', '.join(task.labels)}")
            return label2id[value]
        if not 0 <= int(value) < task.num_labels:
            raise ValueError(f"source {where}: label id {value} out of range 0..{task.num_labels - 1}")
        return int(value)

    rows = {c: list(ds[c]) for c in task.text_columns}
    labels = [to_id(v) for v in ds[label_column]]
    keep = [i for i, lab in enumerate(labels) if lab >= 0 and all(rows[c][i] for c in task.text_columns)]
    data = {c: [rows[c][i] for i in keep] for c in task.text_columns}
    data["label"] = [labels[i] for i in keep]
    out = Dataset.from_dict(data, features=task.source_features())
    if limit is not None and limit < len(out):
        out = out.shuffle(seed=seed).select(range(limit)).flatten_indices()
    if len(out) == 0:
        raise ValueError(f"source {where} has no labelled rows for task {task.name!r}")
    return out

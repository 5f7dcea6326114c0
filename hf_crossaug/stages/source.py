"""Loading labelled source data: the packaged seed set, a local file, or a Hub dataset id.

Everything is normalised to the task's columns plus an integer ``label`` (a ``ClassLabel``), so the
rest of the pipeline never sees where the data came from. Problems are reported in one line naming
the file and the column or value that is wrong.
"""

from __future__ import annotations

import glob
import json
import re
from importlib import resources
from pathlib import Path

from datasets import Dataset, Json, load_dataset

from ..config.source import SourceConfig
from ..config.tasks import TaskSpec

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
UNLABELLED = {None, -1, "-", ""}


def seed_path(task: TaskSpec) -> Path:
    """The small English seed set shipped with the package for ``task``."""
    return Path(str(resources.files("hf_crossaug") / "seed_data" / f"{task.name}.jsonl"))


def load_configured(task: TaskSpec, config: SourceConfig, seed: int = 0) -> Dataset:
    """The labelled rows a recipe's ``source:`` / ``dev:`` section names, normalised to the task."""
    return load_source(task, config.path, config.split, config.label_column, config.limit, seed, config.label_map,
                       config.on_invalid, config.columns)


def texts_only(ds: Dataset, task: TaskSpec, where: str, limit: int | None = None, seed: int = 0) -> Dataset:
    """Unlabelled rows (``label_column: null``): the task's text columns, rows with empty text dropped."""
    for col in task.text_columns:
        if col not in ds.column_names:
            raise ValueError(f"source {where} has no column {col!r} (columns: {', '.join(ds.column_names)})")
    ds = ds.select_columns(list(task.text_columns))
    ds = ds.filter(lambda *texts: all(_has_text(t) for t in texts), input_columns=list(task.text_columns))
    if limit is not None and limit < len(ds):
        ds = ds.shuffle(seed=seed).select(range(limit))
    if len(ds) == 0:
        raise ValueError(f"source {where} has no rows with text in {', '.join(task.text_columns)}")
    return ds.flatten_indices()


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def check_source(task: TaskSpec, source: str | None, where: str) -> None:
    """A cheap check that ``source`` can be what it claims, before any work: a file must exist, anything
    else must look like a Hub dataset id (so a mistyped relative path fails at once, not after retries)."""
    if source in (None, "", "seed"):
        return
    file = source.partition("@")[0] if Path(source.partition("@")[0]).suffix.lower() in FORMATS else source
    path = Path(file).expanduser()
    if path.exists() or matching_files(file):
        return
    repo = file if path.suffix.lower() in FORMATS else file.partition("@")[0].partition(":")[0]  # HUB_ID:config@split
    if meant_as_path(repo):
        raise FileNotFoundError(f"{where}: {source} is not an existing file and not a Hub dataset id")
    check_hub_dataset(repo, where)


def check_hub_dataset(repo_id: str, where: str, kind: str = "file") -> None:
    """One metadata call to the Hub, so a mistyped id or an unreachable Hub is one line within seconds (not
    ~23 s of download retries then a traceback); skipped when the user is offline on purpose, since the
    datasets cache may hold the dataset."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi().dataset_info(repo_id, timeout=10)
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{where}: {repo_id} is not an existing {kind}, and no Hub dataset of that name "
                                "exists (or it is private: run `hf auth login`)") from None
    except Exception as exc:  # httpx / requests connection errors, HTTP 5xx: the Hub cannot answer now
        raise ConnectionError(f"{where}: {repo_id} is not an existing {kind}, and the Hub cannot be reached to "
                              f"load it as a dataset ({type(exc).__name__}: {_first_line(exc)})") from None


def matching_files(pattern: str) -> list[str]:
    """The files a glob such as ``snli/*.jsonl`` names, sorted (the rows' order must not depend on the disk's);
    [] when ``pattern`` is no glob. Several files are one dataset, as ``data_files`` reads them."""
    if not glob.has_magic(pattern):
        return []
    return sorted(f for f in glob.glob(str(Path(pattern).expanduser())) if Path(f).is_file())


def meant_as_path(ref: str) -> bool:
    """Whether a reference that names no existing file is still meant as a local path, so it must fail at
    once instead of being tried as a Hub id: it has a data-file extension, is not shaped like a Hub id, starts
    with ``.``/``~``/``/``, or its first folder exists here (``data/missing`` with a ``data/`` folder)."""
    path = Path(ref).expanduser()
    return (path.suffix.lower() in FORMATS or not HUB_ID.match(ref) or ref.startswith((".", "~", "/"))
            or (len(path.parts) > 1 and Path(path.parts[0]).is_dir()))


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type (some errors carry no message)."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _check_text_file(path: Path) -> None:
    """An empty file, or one that is not UTF-8, is one line naming the file (not a traceback from arrow)."""
    size = path.stat().st_size
    if size == 0 or (size < 1 << 16 and not path.read_bytes().strip()):
        raise ValueError(f"source file {path} is empty")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv", ".tsv"):
        return
    import codecs

    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as exc:
                line += chunk[:exc.start].count(b"\n")
                raise ValueError(f"source file {path} is not UTF-8 text: byte {chunk[exc.start]:#04x} on line "
                                 f"{line} ({exc.reason}); save it as UTF-8") from None
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"source file {path} is not UTF-8 text: it ends inside a character") from None


def _json_problem(path: Path) -> str | None:
    """The line where a JSON (Lines) file breaks: ``datasets`` only says "an error occurred while generating
    the dataset". A file whose first line is a JSON value of its own is JSON Lines, read line by line."""
    text = path.read_text(encoding="utf-8")  # `_check_text_file` made sure it decodes
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        json.loads(lines[0][1] if lines else "")
        jsonl = True
    except json.JSONDecodeError:
        jsonl = False
    for number, line in lines if jsonl else [(0, text)]:  # 0: a whole document, whose error has the line
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            return f"line {number or exc.lineno} is not valid JSON ({exc.msg}, column {exc.colno})"
    return None


def load_source(
    task: TaskSpec,
    source: str | None = None,
    split: str = "train",
    label_column: str | None = "label",
    limit: int | None = None,
    seed: int = 0,
    label_map: dict | None = None,
    on_invalid: str = "error",
    columns: dict | None = None,
) -> Dataset:
    """Load labelled data for ``task``; ``None`` or ``"seed"`` means the packaged seed set.
    ``label_map`` renames source labels first (e.g. SST-5's five classes folded into SST-3's three).

    A local file may carry a row slice, ``FILE@train[:120]`` (or pass ``split="train[:120]"``); a Hub dataset a
    config and a split, ``facebook/xnli:sw@validation``.

    ``limit`` keeps a seeded, class-stratified-by-shuffle subset, so small-scale runs stay balanced.
    ``columns`` renames the data's columns to the task's first (``{headline: text, topic: label}``).
    """
    if source in (None, "", "seed") and not seed_path(task).exists():
        raise FileNotFoundError(f"no packaged seed set for task {task.name!r}; pass a source file or Hub id")
    where = str(seed_path(task)) if source in (None, "", "seed") else source
    file, _, rows = where.partition("@")  # "FILE@train[:120]": a row slice of a local file
    if rows and Path(file).suffix.lower() in FORMATS:
        where, split = file, rows
    path = Path(where).expanduser()
    if path.suffix.lower() in FORMATS or path.exists():
        files = matching_files(where) or [str(path)]
        if not Path(files[0]).exists():
            raise FileNotFoundError(f"source file pattern {path} matches no file" if glob.has_magic(where)
                                    else f"source file not found: {path}")
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"source file {path} has an unsupported extension; use one of {', '.join(FORMATS)}")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        for file in files:
            if Path(file).is_file():
                _check_text_file(Path(file))
        try:
            # a file is one "train" split; a slice of it ("train[:120]") keeps, e.g., prompt examples apart
            file_split = split if split.startswith("train[") else "train"
            ds = load_dataset(fmt, data_files=files, split=file_split, **kwargs)
        except Exception as exc:  # datasets raises many types for a broken file
            where_broken = _json_problem(path) if fmt == "json" and path.is_file() else None
            raise ValueError(f"source file {path} could not be read as {fmt}: "
                             f"{where_broken or _first_line(exc)}") from None
    else:
        repo, _, hub_split = where.partition("@")  # HUB_ID[:config][@split], as evaluation targets are written
        repo, _, config = repo.partition(":")
        check_source(task, repo, "source")
        try:
            ds = load_dataset(repo, config or None, split=hub_split or split)
        except Exception as exc:  # no network, no such repo, no such split: one line, not a traceback
            raise ValueError(f"source {where}: not a local file, and loading it as a Hub dataset failed: "
                             f"{type(exc).__name__}: {_first_line(exc)}") from None
    if columns:
        ds, label_column = rename_columns(ds, columns, where, label_column)
    if label_column is None:
        return texts_only(ds, task, where, limit, seed)
    return normalise(ds, task, where, label_column, limit, seed, label_map, on_invalid)


def rename_columns(ds: Dataset, columns: dict, where: str, label_column: str) -> tuple[Dataset, str]:
    """The data's columns renamed to the task's (a column mapped to ``label`` becomes the label column). Data
    already in the task's columns passes (a student's gold or target file may be either shape)."""
    columns = {s: t for s, t in columns.items() if s in ds.column_names or t not in ds.column_names}
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"source {where}: field 'columns' names column {missing[0]!r}, which the data does not "
                         f"have (columns: {', '.join(ds.column_names)})")
    clash = [t for s, t in columns.items() if t in ds.column_names and t not in columns and t != s]
    if clash:
        raise ValueError(f"source {where}: field 'columns' renames a column to {clash[0]!r}, which the data "
                         "already has; map that one too or drop it from the mapping")
    ds = ds.rename_columns({s: t for s, t in columns.items() if s != t})
    return ds, ("label" if "label" in columns.values() else label_column)


def _has_text(value) -> bool:
    """A text cell with something in it: a non-blank string, or a non-empty list of non-blank strings
    (multiple-choice contexts and choices)."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _json_value(text: str | None):
    """A value of a mixed-kind column from the JSON text ``datasets`` stored, which holds some strings unquoted."""
    try:
        return None if text is None else json.loads(text)
    except json.JSONDecodeError:
        return text


def normalise(ds: Dataset, task: TaskSpec, where: str, label_column: str = "label",
              limit: int | None = None, seed: int = 0, label_map: dict | None = None,
              on_invalid: str = "error") -> Dataset:
    """Keep the task's columns and map labels to ids (after ``label_map``). Rows the dataset marks as
    unlabelled (SNLI's ``-`` / ``-1``) are skipped and counted. Rows with an unknown label or empty text are an
    error naming how many there are; with ``on_invalid="drop"`` they are dropped and counted instead. The
    counts are ``info.description`` (``"dropped 2 unlabelled rows (...), 1 unknown labels"``, or empty)."""
    for col in (*task.text_columns, label_column):
        if col not in ds.column_names:
            raise ValueError(f"source {where} has no column {col!r} (columns: {', '.join(ds.column_names)})")
    names = ds.features[label_column].names if hasattr(ds.features[label_column], "names") else None
    label2id = task.label2id()

    def to_id(value) -> int | None:
        """Label id, -1 for "unlabelled", None for a value that is no label of the task."""
        if value is not None and not isinstance(value, (str, int, float)):
            return None  # a list, a mapping: never a label
        if value in UNLABELLED and not isinstance(value, bool):
            return -1
        if names is not None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            value = names[value]
        if label_map:
            value = label_map.get(value, value)
        if isinstance(value, str):
            return label2id.get(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return None  # true / 1.7 are not class ids
        return int(value) if 0 <= int(value) < task.num_labels else None

    rows = {c: list(ds[c]) for c in task.text_columns}
    raw_labels = list(ds[label_column])
    if isinstance(ds.features[label_column], Json):  # text and numbers mixed: datasets decodes the text "-" as 0
        raw_labels = [_json_value(t) for t in ds.cast_column(label_column, Json(decode=False))[label_column]]
    labels = [to_id(v) for v in raw_labels]
    bad_label = [i for i, lab in enumerate(labels) if lab is None]
    empty = [i for i, lab in enumerate(labels) if lab is not None and lab >= 0
             and not all(_has_text(rows[c][i]) for c in task.text_columns)]
    if (bad_label or empty) and on_invalid != "drop":
        first = raw_labels[bad_label[0]] if bad_label else None
        first = float(f"{first:.6g}") if isinstance(first, float) else first  # 1.7, not float32's 1.7000000000000002
        parts = [f"{len(bad_label)} rows with a label that is not one of {', '.join(task.labels)} (first: "
                 f"{first!r} in row {bad_label[0]})"] if bad_label else []
        parts += [f"{len(empty)} rows with empty text (first: row {empty[0]})"] if empty else []
        raise ValueError(f"source {where}: {'; '.join(parts)}; fix them, or set on_invalid: drop to drop and count "
                         "them")
    invalid = set(bad_label) | set(empty)
    keep = [i for i, lab in enumerate(labels) if i not in invalid and lab >= 0]
    data = {c: [rows[c][i] for i in keep] for c in task.text_columns}
    data["label"] = [labels[i] for i in keep]
    out = Dataset.from_dict(data, features=task.source_features())
    drops = {"unlabelled rows (label -1, '-' or none)": labels.count(-1), "unknown labels": len(bad_label),
             "empty texts": len(empty)}  # each reason counted on its own: the card says what was left out
    dropped = [f"{n} {why}" for why, n in drops.items() if n]
    out.info.description = f"dropped {', '.join(dropped)}" if dropped else ""
    if limit is not None and limit < len(out):
        out = out.shuffle(seed=seed).select(range(limit)).flatten_indices()
    if len(out) == 0:
        raise ValueError(f"source {where} has no labelled rows for task {task.name!r}")
    return out

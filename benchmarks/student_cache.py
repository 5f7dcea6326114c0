"""Finished fine-tuned students of `reproduce.py`, kept in its work folder so a rerun skips them.

A fine-tuned student takes minutes on a CPU and every lever run repeats the SRC and SRC+GEN baselines its
significance tests need; a student is deterministic given its inputs (the same seeds reproduced the published
rows to the digit), so its predictions are cached under a key of everything that decides them: the row, seed
and student settings, the content of the synthetic configs and gold rows it reads, the dev / target data, and
the source code of the student (a change there retrains every student).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

import hf_crossaug
from hf_crossaug.utils.fingerprint import content_fingerprint

CODE = ("students", "models/training.py", "stages/source.py")  # what trains and feeds a student


def code_digest() -> str:
    root = Path(hf_crossaug.__file__).parent
    files = sorted(p for name in CODE for p in ([root / name] if name.endswith(".py") else (root / name).rglob("*.py")))
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


class StudentCache:
    """``get(key_parts, train)``: the cached ``(train_rows, predictions per language)`` or ``train()``'s, stored."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.code = code_digest()
        self.hits = 0

    def key(self, parts: dict) -> str:
        text = json.dumps({**parts, "code": self.code}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, parts: dict, train: Callable[[], tuple[int, dict]]) -> tuple[int, dict]:
        path = self.folder / f"{self.key(parts)}.json"
        if path.exists():
            record = json.loads(path.read_text())
            self.hits += 1
            return record["train_rows"], {lang: np.asarray(p, dtype=np.int64) for lang, p in record["preds"].items()}
        n_rows, preds = train()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"parts": parts, "train_rows": n_rows,
                                   "preds": {lang: np.asarray(p).astype(int).tolist() for lang, p in preds.items()}},
                                  default=str))
        os.replace(tmp, path)  # atomic: a run killed mid-write leaves no half record
        return n_rows, preds


def data_digest(synthetic: dict, gold) -> str:
    """What a student reads from a build: the content of every synthetic config and of the gold rows (a build's
    record is rewritten by every run, its data only when a stage reruns)."""
    parts = [f"{name}={content_fingerprint(ds)}" for name, ds in sorted(synthetic.items())]
    return hashlib.sha256("\n".join([*parts, f"gold={content_fingerprint(gold)}"]).encode()).hexdigest()[:32]

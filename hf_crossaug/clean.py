"""The clean stage: parse raw generations and mark everything unusable with a reason.

Cleaning never raises on a bad generation: each row gets a ``drop_reason`` (``None`` when kept), so
the counts per reason can go into the dataset card and a parse failure can never crash a build.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from datasets import Dataset

REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i'?m not able|i am unable|language model)\b", re.I
)
# Scaffolding the model should have stopped before: a sign it answered in the wrong format.
SCAFFOLD = re.compile(r"^(premise|hypothesis|sentence|answer|label|example|note|here is|here are)\b", re.I)
QUOTES = "\"'“”‘’`«»"

REASONS = ("empty", "wrong_format", "refusal", "too_short", "too_long", "echo", "duplicate")


@dataclass
class CleanConfig:
    """Bounds for a usable generation, in whitespace-separated words."""

    min_words: int = 3
    max_words: int = 60


def parse_generation(text: str) -> str:
    """First non-empty line of a continuation, without wrapping quotes or a leading list marker."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^(\d+[.)]|[-*•])\s+", "", line)
            return line.strip(QUOTES).strip()
    return ""


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def clean(ds: Dataset, column: str, config: CleanConfig | None = None, key_columns: tuple[str, ...] = ()) -> Dataset:
    """Parse ``generation`` into ``column`` and add ``drop_reason`` for unusable rows.

    ``key_columns`` (e.g. the premise) join ``column`` in the duplicate key, so the same hypothesis
    for two different premises is not a duplicate. Echo = the output repeats the premise, or copies
    one of the prompt's in-context examples.
    """
    config = config or CleanConfig()
    seen: set[tuple] = set()

    def reason(row: dict, text: str) -> str | None:
        raw = row["generation"]
        if not text:
            return "wrong_format" if raw.strip() else "empty"
        if SCAFFOLD.match(text) or text.endswith(":"):
            return "wrong_format"
        if REFUSAL.search(text):
            return "refusal"
        words = len(text.split())
        if words < config.min_words:
            return "too_short"
        if words > config.max_words:
            return "too_long"
        norm = _norm(text)
        if not norm:  # only punctuation/symbols: "" would match every example (echo) and every such row (duplicate)
            return "wrong_format"
        # an example contains the output as whole words ("man" does not echo "the fisherman")
        copies = any(f" {norm} " in f" {_norm(e)} " for e in row.get("examples") or [])
        if copies or any(_norm(row[k]) == norm for k in key_columns):
            return "echo"
        key = tuple(_norm(row[k]) for k in key_columns) + (norm,)
        if key in seen:
            return "duplicate"
        seen.add(key)
        return None

    texts, reasons = [], []
    for row in ds:  # sequential on purpose: duplicate detection needs the rows seen so far
        text = parse_generation(row["generation"])
        texts.append(text)
        reasons.append(reason(row, text))
    if column in ds.column_names:
        ds = ds.remove_columns(column)
    return ds.add_column(column, texts).add_column("drop_reason", reasons)


def drop_counts(ds: Dataset, reasons: tuple[str, ...] = REASONS) -> dict[str, int]:
    """Counts per drop reason (every known reason present, zeros included) plus ``kept``."""
    counts = Counter(r or "kept" for r in ds["drop_reason"])
    return {"kept": counts.get("kept", 0), **{r: counts.get(r, 0) for r in reasons}}

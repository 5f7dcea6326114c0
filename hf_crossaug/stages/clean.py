"""The clean stage: parse raw generations and mark everything unusable with a reason.

Cleaning never raises on a bad generation: each row gets a ``drop_reason`` (``None`` when kept), so
the counts per reason can go into the dataset card and a parse failure can never crash a build.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from datasets import Dataset

from ..config.clean import CleanConfig
from .dedup import near_duplicates

REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i'?m not able|i am unable|language model)\b", re.I
)
# Scaffolding the model should have stopped before: a sign it answered in the wrong format.
SCAFFOLD = re.compile(r"^(premise|hypothesis|sentence|answer|label|example|note|here is|here are)\b", re.I)
QUOTES = "\"'“”‘’`«»"

# request_failed: a server request that failed for good (endpoint backend); counted, never retried silently;
# near_duplicate: nearly copies an earlier kept row with the same key (clean.near_duplicate, off by default);
# bad_json: structured output was asked for and the answer was not the JSON asked for (``generation_error``)
REASONS = ("empty", "wrong_format", "refusal", "too_short", "too_long", "echo", "duplicate", "near_duplicate",
           "request_failed", "bad_json")


def parse_generation(text: str) -> str:
    """First non-empty line of a continuation, without wrapping quotes or a leading list marker."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^(\d+[.)]|[-*•])\s+", "", line)
            return line.strip(QUOTES).strip()
    return ""


def missing_reason(row: dict) -> str:
    """Why a row has no generation: the generate stage's ``generation_error`` (bad_json), else a failed request."""
    return row.get("generation_error") or "request_failed"


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def clean(ds: Dataset, column: str, config: CleanConfig | None = None, key_columns: tuple[str, ...] = (),
          embedder=None) -> Dataset:
    """Parse ``generation`` into ``column`` and add ``drop_reason`` for unusable rows.

    ``key_columns`` (e.g. the premise) join ``column`` in the duplicate key, so the same hypothesis
    for two different premises is not a duplicate; near duplicates are judged within the same key
    (``embedder``: texts -> unit vectors, for ``near_duplicate.method: embedding``). Echo = the output
    repeats the premise, or copies one of the prompt's in-context examples.
    """
    config = config or CleanConfig()
    seen: set[tuple] = set()

    def reason(row: dict, text: str) -> str | None:
        raw = row["generation"]
        if raw is None:
            return missing_reason(row)
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

    texts, reasons, groups = [], [], []
    for row in ds:  # sequential on purpose: duplicate detection needs the rows seen so far
        text = parse_generation(row["generation"] or "")
        texts.append(text)
        reasons.append(reason(row, text))
        groups.append(tuple(_norm(row[k]) for k in key_columns))
    _mark_near_duplicates(texts, groups, reasons, config, embedder)
    if column in ds.column_names:
        ds = ds.remove_columns(column)
    return ds.add_column(column, texts).add_column("drop_reason", reasons)


def _mark_near_duplicates(texts: list[str], groups: list[tuple], reasons: list, config: CleanConfig,
                          embedder) -> None:
    """Set ``near_duplicate`` in ``reasons`` among the rows the exact pass kept (first one wins)."""
    live = [i for i, r in enumerate(reasons) if r is None]
    flags = near_duplicates([texts[i] for i in live], [_norm(texts[i]) for i in live], [groups[i] for i in live],
                            config.near_duplicate, embedder)
    for i, dup in zip(live, flags):
        if dup:
            reasons[i] = "near_duplicate"


def drop_counts(ds: Dataset, reasons: tuple[str, ...] = REASONS) -> dict[str, int]:
    """Counts per drop reason (every known reason present, zeros included) plus ``kept``."""
    counts = Counter(r or "kept" for r in ds["drop_reason"])
    return {"kept": counts.get("kept", 0), **{r: counts.get(r, 0) for r in reasons}}


# ---------------------------------------------------------------- multiple-choice items (arXiv 2305.14288)

# bad_question: not one of the task's question types, or the pronoun is not in the sentence;
# bad_answer: the answer is not an option number; context_length: wrong number of story sentences.
MC_REASONS = ("empty", "wrong_format", "refusal", "bad_question", "bad_answer", "same_choices", "context_length",
              "too_short", "too_long", "echo", "duplicate", "near_duplicate", "request_failed", "bad_json")
SENTENCE_END = re.compile(r"(?<=[.!?।])\s+")


def format_regex(example_format: str) -> re.Pattern:
    """An item format as a regex: each ``{field}`` captures the rest of its line; spacing is lenient."""
    pieces = re.split(r"\{(\w+)\}", example_format.strip())
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"(?P<{piece}>[^\\n]*)")
        else:
            lines = [re.escape(line.strip()).replace(r"\ ", r"[ \t]*") for line in piece.split("\n")]
            out.append(r"[ \t]*\n\s*".join(lines))
    return re.compile("".join(out), re.I)


def parse_item(text: str, task) -> tuple[dict | None, str | None]:
    """A generated multiple-choice item: (fields with ``label``, None), or (None, drop reason)."""
    if not text.strip():
        return None, "empty"
    m = format_regex(task.example_format).search(text)
    if m is None:
        return None, "wrong_format"
    fields = {k: v.strip().strip(QUOTES).strip() for k, v in m.groupdict().items()}
    if not all(fields.values()):
        return None, "wrong_format"
    if REFUSAL.search(" ".join(fields.values())):
        return None, "refusal"
    for column, values in task.allowed.items():
        fields[column] = fields[column].lower()
        if fields[column] not in values:
            return None, "bad_question"
    if task.must_occur and f" {_norm(fields[task.must_occur[0]])} " not in f" {_norm(fields[task.must_occur[1]])} ":
        return None, "bad_question"
    answer = fields.pop("answer").rstrip(".")
    if not answer.isdigit() or not 1 <= int(answer) <= task.num_labels:
        return None, "bad_answer"
    if len({_norm(fields[c]) for c in task.choice_columns}) < task.num_labels:
        return None, "same_choices"
    if task.list_column:
        fields[task.list_column] = [s for s in SENTENCE_END.split(fields[task.list_column]) if s.strip()]
        lo, hi = task.list_range
        if not lo <= len(fields[task.list_column]) <= hi:
            return None, "context_length"
    fields["label"] = int(answer) - 1
    return fields, None


def clean_items(ds: Dataset, task, config: CleanConfig | None = None, prefix: str = "", embedder=None) -> Dataset:
    """Parse ``prefix + generation`` (``prefix``: the format's opening the prompt ended with) into the
    task's columns and ``label``, adding ``drop_reason``. Length bounds apply to the first column
    (premise / story / sentence); echo = it repeats an in-context example; duplicate = seen before;
    near_duplicate = the first column nearly copies an earlier kept item's."""
    config = config or CleanConfig()
    key = task.generated_column
    seen: set[str] = set()
    out: dict[str, list] = {c: [] for c in (*task.text_columns, "label", "drop_reason")}
    texts: list[str] = []
    for row in ds:
        fields, why = (None, missing_reason(row)) if row["generation"] is None else parse_item(
            prefix + row["generation"], task)
        if fields is not None:
            norm, words = _norm(task.text(fields, key)), len(task.text(fields, key).split())
            if words < config.min_words:
                why = "too_short"
            elif max(len(task.text(fields, c).split()) for c in task.text_columns) > config.max_words:
                why = "too_long"
            elif any(norm == _norm(e) for e in row.get("examples") or []):
                why = "echo"
            elif norm in seen:
                why = "duplicate"
            seen.add(norm)
        fields = fields or {}
        texts.append(task.text(fields, key) if fields else "")
        for c in task.text_columns:
            out[c].append(fields.get(c, [] if c == task.list_column else ""))
        out["label"].append(fields.get("label", -1))
        out["drop_reason"].append(why)
    _mark_near_duplicates(texts, [()] * len(texts), out["drop_reason"], config, embedder)
    ds = ds.remove_columns([c for c in out if c in ds.column_names])
    for c, values in out.items():
        ds = ds.add_column(c, values)
    return ds


def balance_answers(ds: Dataset, task, seed: int) -> Dataset:
    """Swap the choices of a seeded half of the items (``choices_swapped``), so the answer position
    carries no signal even when the generator copies one answer number from its examples."""
    rng = random.Random(f"{seed}:balance")
    swap = [rng.random() < 0.5 for _ in range(len(ds))]
    a, b = task.choice_columns

    def flip(row, idx):
        if not swap[idx]:
            return {"choices_swapped": False}
        return {a: row[b], b: row[a], "label": 1 - int(row["label"]), "choices_swapped": True}

    return ds.map(flip, with_indices=True, keep_in_memory=True)

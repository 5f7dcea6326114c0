"""Configuration of labelled source data (read by `hf_crossaug.stages.source.load_source`)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Problem, Validated, at_least, one_of


@dataclass
class SourceConfig(Validated):
    """Labelled English data: ``path`` is a local file or Hub id; ``None`` = the packaged seed set."""

    path: str | None = None
    split: str = "train"
    # None: unlabelled texts (a target-language ``fewshot_source`` only: the teacher labels them for the prompts)
    label_column: str | None = "label"
    limit: int | None = None  # a seeded subset, for small-scale runs
    label_map: dict | None = None  # source label (name or id) -> task label, e.g. SST-5 folded into 3 classes
    # the data's column names -> the task's (``{headline: text}``), so a user's file or Hub dataset is read as it
    # is; a column mapped to ``label`` is the label column
    columns: dict | None = None

    # rows with an unknown label or empty text: "error" (one line with their count) or "drop" (dropped, counted)
    on_invalid: str = "error"

    def problems(self) -> list[Problem]:
        named = list((self.columns or {}).values())
        return [*at_least(self, 1, "limit"), one_of(self, "on_invalid", ("error", "drop")),
                (all(isinstance(k, str) and isinstance(v, str) and v for k, v in (self.columns or {}).items()),
                 "columns", "must map each column name of the data to a column name of the task"),
                (len(set(named)) == len(named), "columns", "maps two columns of the data to the same task column")]

"""The stage contract: every step of a build is a `Stage` that declares the columns it reads and the columns it
adds, takes a `Dataset` and returns ``(Dataset, stats)``, as distilabel's steps and the ``datasets`` packaged
builders do. `hf_crossaug.build.plan` composes the stages a recipe needs; `run_stages` runs them in order.

The contract is checked at both ends of every stage, so a stage that is handed rows without a column it needs
(a template override that names a column no step makes, a plan that puts stages in the wrong order) fails with
one line naming the stage and the column, not with a ``KeyError`` deep inside it. What every stage may read but
no row carries -- the recipe, the task, the labelled source / dev / few-shot rows, the work folder, the
generator -- is in the `Context`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..config.generate import GenerationConfig
from ..config.recipe import Recipe
from ..config.tasks import TaskSpec


@dataclass
class Context:
    """What the stages of one build share besides the rows: configuration, labelled data, caches."""

    recipe: Recipe
    task: TaskSpec
    work: Path
    log: Callable[[str], None]
    source: Dataset  # labelled source rows: the teacher's training data
    shots: Dataset  # where few-shot examples come from (source, the task's pool, or target-language rows)
    source_name: str
    dev: Dataset | None = None
    teacher_rows: Dataset | None = None  # what the teacher learns from (``teacher.source_limit``); None: ``source``
    teacher_source_name: str = ""  # where those rows come from (``teacher.source``); "": ``source_name``
    generation: GenerationConfig | None = None  # the generate stage's config (DAFTT swaps in the tuned model)
    style: str | None = None  # the prompt style (DAFTT: "lm", the format the tuned model learnt)
    teacher: object | None = None  # the trained teacher, once the teacher stage ran (self-training reads it)
    _generators: dict = field(default_factory=dict)

    def __post_init__(self):
        self.generation = self.generation or self.recipe.generation
        self.style = self.style or self.generation.prompt_style
        self.teacher_rows = self.source if self.teacher_rows is None else self.teacher_rows
        self.teacher_source_name = self.teacher_source_name or self.source_name

    def generator(self):
        """One generator per generation config, shared by the stages that generate (premises, then items)."""
        from ..stages.generate import make_generator

        key = repr(self.generation)
        if key not in self._generators:
            self._generators[key] = make_generator(self.generation, self.work)
        return self._generators[key]


@dataclass(frozen=True)
class Stage:
    """One step: ``run(rows, context) -> (rows, stats)``; ``reads`` must be in its input, ``adds`` in its output.
    ``timing`` names the card's wall-time entry the stage's seconds are added to."""

    name: str
    reads: tuple[str, ...]
    adds: tuple[str, ...]
    run: Callable[[Dataset, Context], tuple[Dataset, dict]]
    timing: str | None = None

    def __call__(self, rows: Dataset, ctx: Context) -> tuple[Dataset, dict]:
        _require(f"stage {self.name!r} reads", self.reads, rows)
        out, stats = self.run(rows, ctx)
        _require(f"stage {self.name!r} promised", self.adds, out)
        return out, stats


def _require(what: str, columns: tuple[str, ...], rows: Dataset) -> None:
    missing = [c for c in columns if c not in rows.column_names]
    if missing:
        raise ValueError(f"{what} column {missing[0]!r}, which its rows do not have (columns: "
                         f"{', '.join(rows.column_names) or 'none'})")


def merge_stats(into: dict, new: dict) -> dict:
    """Nested stats merged into ``into`` (mappings key by key, so two stages can each add a count)."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_stats(into[key], value)
        else:
            into[key] = value
    return into


def run_stages(stages: list[Stage], ctx: Context, stats: dict, rows: Dataset | None = None) -> Dataset:
    """Run ``stages`` in order from ``rows`` (default: no rows yet); their stats and timings go into ``stats``."""
    rows = Dataset.from_dict({}) if rows is None else rows
    timings = stats.setdefault("timings", {})
    for stage in stages:
        t = time.perf_counter()
        rows, new = stage(rows, ctx)
        merge_stats(stats, new)
        if stage.timing:
            timings[stage.timing] = timings.get(stage.timing, 0.0) + time.perf_counter() - t
    return rows

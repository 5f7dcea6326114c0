"""DAFTT (arXiv 2310.01119): the generator LLM, LoRA-tuned on a small labelled subset in an instruction
format, either annotates unlabelled inputs (low temperature) or generates new labelled examples.

Nothing here trains or generates by itself. Rows are rendered with the task's ``lm.*`` templates, the
adapter comes from :func:`hf_crossaug.stages.finetune.finetune_lora`, and the pipeline generates through the
ordinary generate stage with the adapter merged into the generator; the result is then cleaned,
teacher-labelled, selected and built like any other generation.
"""

from __future__ import annotations

import re

from datasets import Dataset

from .clean import parse_generation
from ..config.finetune import DAFTT_FRACTION, DafttConfig
from .finetune import answer_text
from ..config.tasks import TaskSpec

ANNOTATE_REASONS = ("empty", "unknown_label")


def split_labelled(source: Dataset, config: DafttConfig, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded labelled subset of the source and the rest (whose labels DAFTT does not use)."""
    n = config.train_rows or max(1, round((config.train_fraction or DAFTT_FRACTION) * len(source)))
    if n >= len(source) and config.mode == "annotate":
        raise ValueError(f"daftt: the labelled subset ({n} rows) leaves none of the {len(source)} source rows "
                         "to annotate; lower daftt.train_rows / train_fraction")
    shuffled = source.shuffle(seed=seed)
    return (shuffled.select(range(min(n, len(source)))).flatten_indices(),
            shuffled.select(range(min(n, len(source)), len(source))).flatten_indices())


def training_rows(task: TaskSpec, subset: Dataset, mode: str, premise_step: bool, domains: list[str]) -> Dataset:
    """The labelled subset as ``prompt``/``answer`` pairs in the task's instruction format.

    annotate: inputs -> label name (``lm.classify``); generate: label (+ premise) -> the generated column
    (``lm.item``), plus, when premises are generated, one ``lm.<first column>`` pair per distinct first-column value.
    """
    prompts, answers = [], []
    for i, row in enumerate(subset):
        name = task.labels[row["label"]]
        fields = {**row, "domain": domains[i % len(domains)], "examples": "",
                  "label_description": task.label_descriptions[name]}
        if mode == "annotate":
            prompts.append(task.templates["lm.classify"].format(**fields))
            answers.append(answer_text(name))
        else:
            prompts.append(task.templates["lm.item"].format(**fields))
            answers.append(answer_text(row[task.generated_column]))
    if mode == "generate" and premise_step:
        for i, premise in enumerate(dict.fromkeys(subset[task.first_column])):
            prompts.append(task.templates[f"lm.{task.first_column}"].format(domain=domains[i % len(domains)],
                                                                            examples=""))
            answers.append(answer_text(premise))
    return Dataset.from_dict({"prompt": prompts, "answer": answers})


def annotation_prompts(task: TaskSpec, rows: Dataset, limit: int | None, seed: int) -> Dataset:
    """One ``lm.classify`` prompt per unlabelled input; the withheld gold label is kept only to report
    how often the annotation agrees with it."""
    if limit is not None and limit < len(rows):
        rows = rows.shuffle(seed=seed).select(range(limit))
    out = {"prompt_id": [f"a{i:06d}" for i in range(len(rows))],
           "prompt": [task.templates["lm.classify"].format(**r) for r in rows],
           **{c: list(rows[c]) for c in task.text_columns}, "gold_label": list(rows["label"]),
           "domain": ["source data"] * len(rows)}
    return Dataset.from_dict(out)


def parse_label(text: str, task: TaskSpec) -> int | None:
    """The label a continuation names: its first word, matched to a label name (case-insensitive)."""
    word = re.match(r"[^\W\d_]+", parse_generation(text).lower())
    return task.label2id().get(word.group(0)) if word else None


def parse_annotations(ds: Dataset, task: TaskSpec) -> Dataset:
    """Add ``prompt_label`` (the annotated class, -1 when none) and ``drop_reason`` (empty, unknown_label)."""
    labels, reasons = [], []
    for text in ds["generation"]:
        label = parse_label(text, task)
        labels.append(-1 if label is None else label)
        reasons.append(None if label is not None else ("unknown_label" if parse_generation(text) else "empty"))
    return ds.add_column("prompt_label", labels).add_column("drop_reason", reasons)

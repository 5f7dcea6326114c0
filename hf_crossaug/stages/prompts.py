"""Building class-conditioned prompts as a Dataset, one row per generation to make.

Prompt building is separate from generation so the prompts (and their fingerprint) are known before
any model runs, and so resuming a generation can check it is continuing the same work.
"""

from __future__ import annotations

import random

from datasets import Dataset

from ..config.tasks import STYLES, TaskSpec  # STYLES: lm is a fine-tuned LLM's instruction format (finetune.py)


def _examples_by_label(task: TaskSpec, source: Dataset) -> dict[int, list[dict]]:
    by_label: dict[int, list[dict]] = {i: [] for i in range(task.num_labels)}
    for row in source:
        by_label[row["label"]].append(row)
    return by_label


def render_examples(task: TaskSpec, rows: list[dict], label: int | None) -> str:
    """Render in-context examples with the task's ``example_format``."""
    out = []
    for row in rows:
        name = task.labels[row["label"] if label is None else label]
        out.append(task.example_format.format(label_description=task.label_descriptions[name], **row))
    return "".join(out)


def _rng(seed: int, *salt) -> random.Random:
    return random.Random(f"{seed}:" + ":".join(map(str, salt)))


def premise_prompts(
    task: TaskSpec, source: Dataset, n: int, domains: list[str], style: str, n_shots: int, seed: int
) -> Dataset:
    """Step one of a pair task (NLI's premises): ``n`` prompts for the first column, spread round-robin over the
    domains, each showing ``n_shots`` first-column examples in the task's ``first_example_format``."""
    first = task.first_column
    premises = sorted({row[first] for row in source})
    rows = []
    for i in range(n):
        domain = domains[i % len(domains)]
        shots = _rng(seed, "premise", i).sample(premises, min(n_shots, len(premises)))
        examples = "".join(task.first_example_format.format(**{first: p}) for p in shots)
        prompt = task.templates[f"{style}.{first}"].format(domain=domain, examples=examples)
        rows.append({"prompt_id": f"p{i:06d}", "prompt": prompt, "domain": domain})
    return Dataset.from_list(rows)


def item_prompts(
    task: TaskSpec,
    source: Dataset,
    per_class: int,
    domains: list[str],
    style: str,
    n_shots: int,
    seed: int,
    premises: list[dict] | None = None,
) -> Dataset:
    """Class-conditioned prompts for the generated column.

    For pair tasks, ``premises`` (dicts with the first column and ``domain``) are given and every one gets
    one prompt per label; for single-text tasks, ``per_class`` prompts per label are made.
    """
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(STYLES)}")
    by_label = _examples_by_label(task, source)
    for label, rows in by_label.items():
        if style == "fewshot" and not rows:
            raise ValueError(f"source data has no example of class {task.labels[label]!r} for few-shot prompts")
    template = task.templates[f"{style}.item"]
    if premises is None:
        units = [{"domain": domains[i % len(domains)]} for i in range(per_class)]
    else:
        units = premises
    rows = []
    for u, unit in enumerate(units):
        for label, name in enumerate(task.labels):
            pool = by_label[label]
            shots = _rng(seed, "item", u, label).sample(pool, min(n_shots, len(pool))) if pool else []
            fields = {
                "domain": unit["domain"],
                "label_description": task.label_descriptions[name],
                "examples": render_examples(task, shots, label).rstrip("\n"),
                **{k: v for k, v in unit.items() if k in task.text_columns},
            }
            rows.append(
                {
                    "prompt_id": f"{unit.get('prompt_id', f'u{u:06d}')}-{name}",
                    "prompt": template.format(**fields),
                    "prompt_label": label,
                    "domain": unit["domain"],
                    **{c: unit.get(c, "") for c in task.text_columns if c != task.generated_column},
                    "examples": [task.joined_text(s) for s in shots],
                }
            )
    return Dataset.from_list(rows)


def source_premises(task: TaskSpec, source: Dataset, n: int, seed: int, domain: str = "source data") -> list[dict]:
    """Draw ``n`` distinct first-column values (premises) from the source data instead of generating them."""
    first = task.first_column
    premises = sorted({row[first] for row in source})
    picked = _rng(seed, "source-premises").sample(premises, min(n, len(premises)))
    return [{"prompt_id": f"s{i:06d}", first: p, "domain": domain} for i, p in enumerate(picked)]


def multiple_choice_prompts(task, source: Dataset, n: int, style: str, n_shots: int, seed: int) -> Dataset:
    """``n`` few-shot prompts for whole multiple-choice items (arXiv 2305.14288), each showing ``n_shots``
    seeded examples of the task rendered in its ``example_format``, answers included."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(STYLES)}")
    pool = list(source)
    rows = []
    for i in range(n):
        shots = _rng(seed, "mc", i).sample(pool, min(n_shots, len(pool)))
        examples = "\n".join(task.render(s) for s in shots)
        rows.append({"prompt_id": f"m{i:06d}", "prompt": task.templates[f"{style}.item"].format(examples=examples),
                     "examples": [task.text(s, task.generated_column) for s in shots]})
    return Dataset.from_list(rows)

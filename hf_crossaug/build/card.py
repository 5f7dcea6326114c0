"""The dataset card: everything a reviewer needs to reproduce a build, validated by ``huggingface_hub``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ..citations import card_section
from ..config.recipe import Recipe
from ..config.select import SelectionConfig
from ..config.tasks import MultipleChoiceSpec
from ..version import __version__
from ..metrics.functions import diversity_score, label_agreement
from ..utils.paths import portable
from .configs import default_config
from .pipeline import PipelineResult
from ..config.select import RAW

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "dataset_card.md"


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M"


WHAT = {RAW: "every kept generation with its teacher columns", "rand-k": "k random rows per class",
        "top-k": "k rows per class with the highest teacher probability of the class",
        "div-k": "per class, k-means over sentence embeddings; best teacher probability per cluster",
        "amb-k": "per class, highest variability of the teacher's probability across epochs",
        "easy-k": "per class, highest mean of the teacher's probability across epochs"}


def config_quality(tables: dict, embeddings, num_labels: int) -> dict:
    """Per config: diversity (mean pairwise cosine distance of its rows' sentence embeddings, as in
    `hf_crossaug.metrics`) and how often the teacher's label agrees with the prompted one.

    ``tables`` maps config name -> `Dataset` with an ``id`` column; ``embeddings`` are the rows of
    ``tables["raw"]`` in order (None: no diversity). Configs without teacher columns get no agreement.
    """
    import numpy as np

    raw_ids = {i: n for n, i in enumerate(tables[RAW]["id"])}
    out = {}
    for name, ds in tables.items():
        q: dict = {"rows": len(ds)}
        if embeddings is not None and len(ds) > 1:
            idx = np.asarray([raw_ids[i] for i in ds["id"]])
            d = diversity_score(np.asarray(embeddings)[idx])
            q["diversity"] = round(d["diversity"], 4)
        if {"prompt_label", "teacher_label"} <= set(ds.column_names) and len(ds):
            a = label_agreement(ds["prompt_label"], ds["teacher_label"], num_labels)
            q["agreement"] = round(a["agreement"], 4)
            q["cohen_kappa"] = None if a["cohen_kappa"] != a["cohen_kappa"] else round(a["cohen_kappa"], 4)
        out[name] = q
    return out


@dataclass(frozen=True)
class Thresholds:
    """When the card's "Limitations" speak up: one place, so a reader (and a test) can see the rules."""

    near_chance: float = 0.15  # teacher dev accuracy at most this far above chance: its labels are near random
    small_dev: int = 100  # fewer dev rows: the dev accuracy is a rough estimate (its 95% interval is given)
    small_generator: int = 1_000_000_000  # parameters: a generator below this writes simple, repetitive text


THRESHOLDS = Thresholds()


def limitations(recipe: Recipe, stats: dict, limits: Thresholds = THRESHOLDS) -> list[str]:
    """What a reader must know before using the data, computed from the build's own figures."""
    out = []
    teacher, task = stats.get("teacher"), recipe.task_spec
    if teacher:
        acc, n, chance = teacher["dev_accuracy"], teacher["dev_size"], 1 / task.num_labels
        if acc - chance <= limits.near_chance:
            out.append(f"The teacher's dev accuracy is {acc:.3f} on {n} rows, near chance ({chance:.3f} for "
                       f"{task.num_labels} classes): its labels (`teacher_label`, `teacher_probs`) are close to "
                       "random, and so are the selections made from them.")
        if n < limits.small_dev:
            half = 1.96 * math.sqrt(acc * (1 - acc) / n)  # the normal approximation: rough, as meant
            out.append(f"The teacher's dev accuracy was measured on only {n} rows (95% interval about "
                       f"{max(acc - half, 0):.2f}-{min(acc + half, 1):.2f}).")
    if recipe.route == "zero-shot" and recipe.language != "en":
        out.append(f"The rows are in English, not {recipe.language}: on the `zero-shot` route only a multilingual "
                   f"student's transfer reaches {recipe.language}.")
    params = (stats.get("generator") or {}).get("parameters")
    if params and params < limits.small_generator:
        size = f"{params / 1e6:.0f}M" if params >= 1e6 else f"{params:,}"
        out.append(f"The generator is small ({size} parameters): expect simple, repetitive text that "
                   "often misses the class it was asked for (see the teacher = prompt label agreement below).")
    return out


REQUEST_FIELDS = ("requests", "cache_hits", "retries", "failures", "prompt_tokens", "completion_tokens", "wall_s",
                  "tokens_per_s")


FROM_CACHE = "from cache (time not recorded)"


def request_rows(stats: dict) -> list[dict]:
    """Per-stage token / request accounting from ``stats["requests"]`` (endpoint backend), one row each."""
    rows = []
    for stage, r in (stats.get("requests") or {}).items():
        if isinstance(r, dict):
            c = r.get("concurrency")  # the adaptive in-flight limit: where it ended, its range, the cap
            in_flight = f"{c['level']} ({c['lowest']}-{c['highest']} of {c['cap']})" if c else "-"
            row = {"stage": stage, **{k: _fmt(r.get(k)) for k in REQUEST_FIELDS}, "in_flight": in_flight}
            if "wall_s" in r and r["wall_s"] is None:  # shards cached by a build that kept no time
                row.update(wall_s=FROM_CACHE, tokens_per_s=FROM_CACHE)
            rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def dataset_card(recipe: Recipe, result: PipelineResult, rows: dict, reports: dict, columns: list[str],
                 repo_id: str, quality: dict | None = None, infos: DatasetInfosDict | None = None) -> DatasetCard:
    """A card a reviewer can reproduce the dataset from (validated by ``huggingface_hub``). Local paths
    are made portable (`hf_crossaug.utils.paths`): relative to the working folder, else a name (+ sha256).
    ``infos`` (`hf_crossaug.build.configs.dataset_infos`) become the YAML ``dataset_info``, as on the Hub."""
    stats, task = portable(result.stats), recipe.task_spec
    default = default_config(list(rows))
    configs = [{"config_name": n, "data_files": [{"split": "train", "path": f"data/{n}/train-*.parquet"}],
                **({"default": True} if n == default else {})} for n in rows]
    source = stats["source"]["name"]
    mc = isinstance(task, MultipleChoiceSpec)
    data = DatasetCardData(
        language=sorted({"en", recipe.language}), license=recipe.license,
        task_categories=["multiple-choice" if mc else "text-classification"],
        task_ids=list(task.hub_task_ids or ["multiple-choice-qa" if mc else "multi-class-classification"]),
        size_categories=[_size_category(rows[RAW])], annotations_creators=["machine-generated"],
        language_creators=["machine-generated"], multilinguality="multilingual" if recipe.language != "en" else "monolingual",
        source_datasets=[f"extended|{source}" if recipe.source.path not in (None, "", "seed") else "original"],
        pretty_name=recipe.name, configs=configs, tags=["synthetic", "hf_crossaug", f"route:{recipe.route}"],
    )
    if infos:
        infos.to_dataset_card_data(data)  # per config ``dataset_info: - config_name: ... features: ...``
    hashes = task.template_hashes()
    templates = [{"key": k, "hash": hashes[k], "text": v} for k, v in
                 {**task.templates, "example_format": task.example_format}.items()]
    stage_counts = [{"stage": stage, "prompts": c.get("prompts", ""), "kept": c.get("kept", ""),
                     "reasons": ", ".join(f"{k}: {v}" for k, v in c.items() if k not in ("prompts", "kept")) or "-"}
                    for stage, c in stats["counts"].items() if isinstance(c, dict)]
    sel: SelectionConfig = recipe.selection
    summaries = [{"name": n, "summary": "kept " + ", ".join(f"{task.labels[c]} {r.selected[c]}/{r.available[c]}"
                                                          for c in r.selected)} for n, r in reports.items()]
    gen = stats["recipe"]["generation"]
    return DatasetCard.from_template(
        data, template_path=str(TEMPLATE), pretty_name=recipe.name,
        description=recipe.description or f"Synthetic {task.name} data for {recipe.language}.",
        task=task.name, language=recipe.language, route=recipe.route, package_version=__version__,
        k=sel.k, repo_id=repo_id, example_config=default,
        config_rows=[{"name": n, "rows": r, "what": "every item that passed validation" if mc else WHAT.get(n, "selection")}
                     for n, r in rows.items()],
        columns=", ".join(f"`{c}`" for c in columns), generator=stats["generator"], daftt=stats.get("daftt"),
        sampling=", ".join(f"{k}={gen[k]}" for k in ("temperature", "top_p", "no_repeat_ngram_size",
                                                     "max_new_tokens", "batch_size", "dtype")),
        prompt_style=gen["prompt_style"], n_shots=gen["n_shots"], domains="; ".join(recipe.domain_list),
        per_class=recipe.per_class, two_step=task.two_step, first_column=task.text_columns[0],
        generated_column=task.generated_column, multiple_choice=mc, labels=", ".join(task.labels),
        shots=stats["source"].get("fewshot") or stats["source"], premise_source=recipe.premise_source,
        templates=templates, teacher=stats["teacher"], source=stats["source"],
        teacher_config=", ".join(f"{k}={v}" for k, v in stats["recipe"]["teacher"].items()),
        teacher_own_source=(stats["recipe"]["teacher"].get("source") or {}).get("path"),
        strategies=", ".join(sel.strategies), selection_seed=sel.seed, n_clusters=sel.n_clusters,
        selection_reports=summaries, stage_counts=stage_counts, labelled=stats["counts"]["labelled"],
        timings=", ".join(f"{k} {v:.1f}" for k, v in stats["timings"].items()),
        generation_seed=gen["seed"], teacher_seed=stats["recipe"]["teacher"]["seed"], recipe_name=recipe.name,
        recipe_yaml=yaml.safe_dump(stats["recipe"], sort_keys=False, allow_unicode=True).strip(),
        citation=card_section(), quality=[{"name": n, **q} for n, q in (quality or {}).items()],
        requests=request_rows(stats), generated_tokens=stats.get("generated_tokens"), student=recipe.student,
        limitations=limitations(recipe, stats),
    )

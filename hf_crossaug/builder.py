"""The build stage: a ``datasets`` builder per recipe, exported as a Hub-layout folder with a card.

``CrossAugBuilder`` materialises one config (``raw`` or a selection strategy) with
``download_and_prepare()``; the expensive part (generation + teacher labelling) is shared through the
pipeline's cache. ``build_dataset`` prepares every config and writes ``README.md`` (YAML ``configs:``)
plus ``data/<config>/train-*.parquet``: the exact layout of a Hub dataset repo, so
``load_dataset(folder, "div-k")`` and ``load_dataset("crossaug/xnli-sw-synth", "div-k")`` behave alike
without remote code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from . import __version__
from .citations import card_section
from .embed import SentenceEmbedder
from .pipeline import PipelineResult, run_pipeline
from .recipe import Recipe
from .tasks import MultipleChoiceSpec
from .select import STRATEGIES, SelectionConfig, select_with_report

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"
RAW = "raw"
BUILD_FILE = "crossaug_build.json"  # the build's stats and provenance, next to the card
_BUILDER_HASH = hashlib.sha256(Path(__file__).read_bytes() + __version__.encode()).hexdigest()[:16]


@dataclass
class CrossAugConfig(datasets.BuilderConfig):
    """A builder config carries the whole recipe, so the recipe is part of the cache key."""

    recipe: dict = field(default_factory=dict)
    work_dir: str = ""


class CrossAugBuilder(datasets.ArrowBasedBuilder):
    """Materialises ``raw`` (every kept generation + teacher columns) or one selection config."""

    BUILDER_CONFIG_CLASS = CrossAugConfig
    BUILDER_CONFIGS = [CrossAugConfig(name=n) for n in (RAW, *STRATEGIES)]

    def __init__(self, recipe: Recipe, config_name: str, work_dir: str | Path, cache_dir: str | Path, **kwargs):
        self._recipe_obj = recipe
        self._result: PipelineResult | None = None
        self._selected: tuple | None = None
        self._embed_cache: dict = kwargs.pop("embed_cache", {})
        super().__init__(config_name=config_name, cache_dir=str(cache_dir), dataset_name=recipe.name,
                         hash=_BUILDER_HASH, recipe=recipe.to_dict(), work_dir=str(work_dir), **kwargs)

    # The pipeline and the selection run lazily and once; ``_info`` needs the resulting schema.
    def pipeline_result(self) -> PipelineResult:
        if self._result is None:
            self._result = run_pipeline(self._recipe_obj, self.config.work_dir)
        return self._result

    def selected(self):
        if self._selected is None:
            raw = self.pipeline_result().raw
            if self.config.name == RAW:
                self._selected = (raw, None)
            else:
                ds, report = select_with_report(raw, self.config.name, self._recipe_obj.selection,
                                                context=self._context(raw))
                self._selected = (ds.flatten_indices(), report)
        return self._selected

    def _context(self, raw):
        from .select import SelectionContext

        key = id(raw)
        if key not in self._embed_cache:
            recipe = self._recipe_obj
            embedder = SentenceEmbedder(recipe.teacher.model, recipe.teacher.revision)
            self._embed_cache[key] = SelectionContext(recipe.selection, None, embedder,
                                                      tuple(recipe.task_spec.text_columns))
        return self._embed_cache[key]

    def _info(self) -> datasets.DatasetInfo:
        recipe = self._recipe_obj
        return datasets.DatasetInfo(description=recipe.description, features=self.selected()[0].features,
                                    license=recipe.license)

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_tables(self):
        yield 0, self.selected()[0].data.table


def build_dataset(recipe: Recipe, output_dir: str | Path, work_dir: str | Path | None = None,
                  repo_id: str | None = None, log=print) -> dict:
    """Run every config of ``recipe`` and write a Hub-layout folder; returns the summary."""
    out = Path(output_dir)
    work = Path(work_dir) if work_dir else out.parent / f".{out.name}-work"
    cache = work / "datasets-cache"
    configs = [RAW, *recipe.selection.strategies]
    embed_cache: dict = {}
    built, reports, result = {}, {}, None
    for name in configs:
        builder = CrossAugBuilder(recipe, name, work, cache, embed_cache=embed_cache)
        builder.download_and_prepare()
        built[name] = builder.as_dataset(split="train")
        result = builder.pipeline_result()
        if builder._selected and builder._selected[1] is not None:
            reports[name] = builder._selected[1]
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for name, ds in built.items():
        (tmp / "data" / name).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(tmp / "data" / name / "train-00000-of-00001.parquet"))
    repo_id = repo_id or f"crossaug/{recipe.name}"
    card = dataset_card(recipe, result, {n: len(d) for n, d in built.items()}, reports, list(built[RAW].column_names),
                        repo_id)
    card.save(tmp / "README.md")
    # repo_id: where the card says the dataset lives (students name it in their cards; push updates it)
    (tmp / BUILD_FILE).write_text(json.dumps({**result.stats, "repo_id": repo_id}, indent=2, default=str))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # the finished folder appears at once, never half-written
    return {"output": str(out), "rows": {n: len(d) for n, d in built.items()}, "stats": result.stats,
            "reports": {n: r.selected for n, r in reports.items()}}


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


def dataset_card(recipe: Recipe, result: PipelineResult, rows: dict, reports: dict, columns: list[str],
                 repo_id: str) -> DatasetCard:
    """A card a reviewer can reproduce the dataset from (validated by ``huggingface_hub``)."""
    stats, task = result.stats, recipe.task_spec
    default = "div-k" if "div-k" in rows else next(iter(rows))
    configs = [{"config_name": n, "data_files": [{"split": "train", "path": f"data/{n}/train-*.parquet"}],
                **({"default": True} if n == default else {})} for n in rows]
    source = stats["source"]["name"]
    mc = isinstance(task, MultipleChoiceSpec)
    data = DatasetCardData(
        language=sorted({"en", recipe.language}), license=recipe.license,
        task_categories=["multiple-choice" if mc else "text-classification"],
        task_ids=["multiple-choice-qa" if mc else
                  "natural-language-inference" if task.name == "nli" else "sentiment-classification"],
        size_categories=[_size_category(rows[RAW])], annotations_creators=["machine-generated"],
        language_creators=["machine-generated"], multilinguality="multilingual" if recipe.language != "en" else "monolingual",
        source_datasets=[f"extended|{source}" if recipe.source.path not in (None, "", "seed") else "original"],
        pretty_name=recipe.name, configs=configs, tags=["synthetic", "hf_crossaug", f"route:{recipe.route}"],
    )
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
        per_class=recipe.per_class, two_step=task.two_step, multiple_choice=mc, labels=", ".join(task.labels),
        shots=stats["source"].get("fewshot") or stats["source"], premise_source=recipe.premise_source,
        templates=templates, teacher=stats["teacher"], source=stats["source"],
        teacher_config=", ".join(f"{k}={v}" for k, v in stats["recipe"]["teacher"].items()),
        strategies=", ".join(sel.strategies), selection_seed=sel.seed, n_clusters=sel.n_clusters,
        selection_reports=summaries, stage_counts=stage_counts, labelled=stats["counts"]["labelled"],
        timings=", ".join(f"{k} {v:.1f}" for k, v in stats["timings"].items()),
        generation_seed=gen["seed"], teacher_seed=stats["recipe"]["teacher"]["seed"], recipe_name=recipe.name,
        recipe_yaml=yaml.safe_dump(stats["recipe"], sort_keys=False, allow_unicode=True).strip(),
        citation=card_section(),
    )

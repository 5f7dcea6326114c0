"""A build's cached core: the stages a recipe plans (`hf_crossaug.build.plan`) run once, and their result
(``raw``: every kept generation with the teacher's labels) is cached by the recipe's fingerprint, so every
selection config of a build, a rerun and a resumed run reuse one generation and one labelling run.

The stage contract (what each stage reads and adds) is in `hf_crossaug.build.contract`; the data every stage
may read is loaded once here (`load_context`); preflight checks what a recipe names before any work.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..version import __version__
from ..stages.select import STRATEGIES
from ..stages.source import check_source, load_configured, load_source, seed_path
from ..backends.endpoint import redact_url
from ..utils.fingerprint import fingerprint
from ..utils.logging import log_or_logger
from ..models.resolve import ENCODER_DEFAULT, GENERATOR_DEFAULT, check_model, native_dtype
from ..models.training import training_dtype
from ..config.recipe import TRANSLATING, Recipe
from ..config.tasks import MultipleChoiceSpec
from ..stages.teacher import label, teacher_source, train_teacher
from .contract import Context, run_stages
from .plan import embeds, plan


@dataclass
class PipelineResult:
    raw: Dataset
    stats: dict = field(default_factory=dict)  # counts per stage, timings, provenance for the card


# Everything whose code shapes ``raw``: a change in any of these files invalidates cached builds.
SHAPING = ("config", "task_specs", "stages", "backends", "models", "utils", "seed_data", "build/pipeline.py",
           "build/plan.py", "build/contract.py", "version.py")


@cache
def code_fingerprint() -> str:
    """Hash of the source of every module that shapes the pipeline's output (not the card or the CLI)."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(f for part in SHAPING for f in ([root / part] if (root / part).is_file() else
                                                   (root / part).rglob("*")) if f.is_file() and f.suffix != ".pyc")
    return fingerprint(*[(str(f.relative_to(root)), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files])


def recipe_fingerprint(recipe: Recipe) -> str:
    """The cache key of ``raw``: the recipe minus what only acts on top of ``raw``, plus the code."""
    data = concrete_dtypes(recipe.to_dict())
    data.pop("selection")  # selection runs on top of raw; it does not change raw
    data.pop("stt")  # the LLM is fine-tuned on raw; it does not change raw
    data.pop("student")  # what students should train on: read after the build
    gen = data["generation"]
    for key in ("base_url", "api_key_env", "max_in_flight", "request_timeout", "request_deadline", "max_retries", "max_failed_fraction"):
        gen.pop(key)  # where and how answers are fetched, not what they are
    data["translate"].pop("base_url"), data["translate"].pop("api_key_env")
    if recipe.route not in TRANSLATING:
        data.pop("translate")  # unused
    if isinstance(recipe.task_spec, MultipleChoiceSpec) and not embeds(recipe):
        data.pop("teacher")  # multiple-choice builds have no teacher (nor its encoder, unless it embeds)
    return fingerprint(data, __version__, code_fingerprint())


def concrete_dtypes(data: dict) -> dict:
    """A recipe dict with ``dtype: auto`` replaced by the dtype this machine runs, so the cache key and the
    card name what was computed (and a bf16 machine keeps the keys of recipes that said ``bfloat16``)."""
    for section in ("generation", "translate"):
        if section in data and "dtype" in data[section]:
            data[section]["dtype"] = native_dtype(data[section]["dtype"])
    if "dtype" in data.get("teacher", {}):
        data["teacher"]["dtype"] = training_dtype(data["teacher"]["dtype"])
    return data


def public_recipe(recipe: Recipe) -> dict:
    """The recipe as the card and ``crossaug_build.json`` record it: server URLs without credentials or
    query strings (API keys are never in a recipe, only the name of the variable that holds one)."""
    data = concrete_dtypes(recipe.to_dict())
    for section in (data["generation"], data["translate"]):
        if section.get("base_url"):
            urls = section["base_url"]
            section["base_url"] = redact_url(urls) if isinstance(urls, str) else [redact_url(u) for u in urls]
    return data


def preflight(recipe: Recipe) -> None:
    """Check what a recipe names -- data files and models -- before any work starts (one line each)."""
    task = recipe.task_spec
    for name in recipe.selection.strategies:
        if name not in STRATEGIES:
            raise ValueError(f"recipe {recipe.name!r}: field 'selection.strategies' names unknown strategy {name!r} "
                             f"(known: {', '.join(STRATEGIES)})")
    sources = {"source": recipe.source, "dev": recipe.dev, "fewshot_source": recipe.fewshot_source,
               "teacher.source": recipe.teacher.source}
    for field_name, cfg in sources.items():
        if cfg is not None:
            check_source(task, cfg.path, f"recipe {recipe.name!r}: field '{field_name}.path'")
    models = [("teacher.model", recipe.teacher.model, ENCODER_DEFAULT, recipe.teacher.revision)]
    if recipe.generation.backend == "local" and recipe.items_from == "generate":
        models.append(("generation.model", recipe.generation.model, GENERATOR_DEFAULT, recipe.generation.revision))
    if recipe.route in TRANSLATING and recipe.translate.model and not recipe.translate.base_url:
        models.append(("translate.model", recipe.translate.model, GENERATOR_DEFAULT, recipe.translate.revision))
    if isinstance(task, MultipleChoiceSpec) and not embeds(recipe):
        models.pop(0)
    for field_name, ref, default, revision in models:
        check_model(ref, default, revision, f"recipe {recipe.name!r}: field {field_name!r}")


def run_pipeline(recipe: Recipe, work_dir: str | Path, log=None) -> PipelineResult:
    """Run (or reuse) the stages `hf_crossaug.build.plan.plan` picks for ``recipe`` -- generation, cleaning,
    translation, teacher labelling -- and cache their result (``raw``); messages go to ``log`` (default: the
    ``hf_crossaug.build`` logger)."""
    log = log_or_logger(log, "build")
    work = Path(work_dir)
    fp = recipe_fingerprint(recipe)
    raw_file, stats_file = work / f"raw-{fp}.parquet", work / f"raw-{fp}.json"
    if raw_file.exists() and stats_file.exists():
        stats = json.loads(stats_file.read_text())
        # the cache key leaves out ``selection``, so the cached copy of the recipe may hold another one
        stats["recipe"] = public_recipe(recipe)
        log(f"reusing the labelled generations cached in {raw_file}")
        return PipelineResult(Dataset.from_parquet(str(raw_file), keep_in_memory=True), stats)
    stats: dict = {"counts": {}, "timings": {}}
    ctx = load_context(recipe, work, stats, log)
    raw = run_stages(plan(recipe), ctx, stats)
    return _save(raw, stats, recipe, raw_file, stats_file)


def load_context(recipe: Recipe, work: Path, stats: dict, log) -> Context:
    """The labelled rows every stage may read -- source, dev, few-shot examples -- loaded once, with their card
    fields. Unlabelled target-language few-shot texts are labelled by the teacher first (cached: the teacher
    stage reuses it)."""
    task = recipe.task_spec
    t = time.perf_counter()
    source = load_configured(task, recipe.source, recipe.generation.seed)
    dev = load_configured(task, recipe.dev) if recipe.dev is not None else None
    source_name = (recipe.source.path if recipe.source.path not in (None, "", "seed")
                   else f"hf_crossaug seed set ({seed_path(task).name})")
    stats["source"] = {"name": source_name, "split": recipe.source.split, "rows": len(source),
                       "dropped": source.info.description or None,
                       "dev": recipe.dev.path if recipe.dev else None}
    shots = source  # where the few-shot examples come from: English source, the task's pool, or target-language
    if task.fewshot_pool:
        shots = load_source(task, task.fewshot_pool, seed=recipe.generation.seed)
        stats["source"]["fewshot"] = {"name": task.fewshot_pool, "rows": len(shots), "language": "en"}
    if recipe.route == "direct":
        fs = recipe.fewshot_source
        shots = load_configured(task, fs, recipe.generation.seed)
        stats["source"]["fewshot"] = {"name": fs.path, "split": fs.split, "rows": len(shots),
                                      "language": recipe.language, "labels": "given" if "label" in
                                      shots.column_names else "teacher"}
    stats["timings"]["load_source"] = time.perf_counter() - t
    teacher_rows = teacher_source(task, recipe.source, recipe.teacher, source, recipe.generation.seed)
    own = recipe.teacher.source
    teacher_name = source_name if own is None else own.path or f"hf_crossaug seed set ({seed_path(task).name})"
    if "label" not in shots.column_names:  # unlabelled target-language texts: the teacher labels them first
        log(f"[0/3] training the teacher to label {len(shots)} unlabelled {recipe.language!r} few-shot examples")
        t = time.perf_counter()
        pool_teacher = train_teacher(teacher_rows, task, recipe.teacher, work, dev, teacher_name)
        labelled = label(shots, task, pool_teacher, recipe.teacher.max_length)
        shots = labelled.select_columns(list(task.text_columns)).add_column("label", labelled["teacher_label"])
        shots = shots.cast_column("label", task.class_label())
        stats["timings"]["fewshot_labels"] = time.perf_counter() - t
    return Context(recipe, task, work, log, source=source, shots=shots, source_name=source_name, dev=dev,
                   teacher_rows=teacher_rows, teacher_source_name=teacher_name)


def _save(raw: Dataset, stats: dict, recipe: Recipe, raw_file: Path, stats_file: Path) -> PipelineResult:
    """Write ``raw`` and its stats atomically into the work folder (the cache of the next build)."""
    stats["counts"]["labelled"] = len(raw)
    stats["recipe"] = public_recipe(recipe)
    stats["package_version"] = __version__

    raw.to_parquet(str(raw_file) + ".tmp")
    raw_file.with_suffix(".parquet.tmp").replace(raw_file)
    stats_file.write_text(json.dumps(stats, indent=2, default=str))
    return PipelineResult(raw, stats)

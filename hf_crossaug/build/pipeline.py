"""Running a recipe's stages in order: source -> generate -> clean -> teacher label.

Each stage is a ``Dataset -> Dataset`` function in its own module; this file only wires them, records
counts and timings for the card, and caches the labelled result (``raw``) by the recipe's fingerprint
so that every selection config of a build reuses one generation and one labelling run.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, Value, concatenate_datasets

from ..version import __version__
from ..stages.clean import MC_REASONS, balance_answers, clean, clean_items, drop_counts
from ..stages.daftt import ANNOTATE_REASONS, annotation_prompts, parse_annotations, split_labelled, training_rows
from ..stages.select import STRATEGIES
from ..stages.source import check_source, load_configured, load_source, seed_path
from ..stages.finetune import finetune_lora
from ..backends.endpoint import redact_url
from ..config.generate import GenerationConfig
from ..stages.generate import generate, generator_provenance, make_generator
from ..utils.fingerprint import fingerprint
from ..utils.logging import log_or_logger
from ..models.resolve import ENCODER_DEFAULT, GENERATOR_DEFAULT, check_model, native_dtype
from ..models.training import training_dtype
from ..stages.prompts import item_prompts, multiple_choice_prompts, premise_prompts, source_premises
from ..config.recipe import TRANSLATING, Recipe
from ..config.tasks import MultipleChoiceSpec
from ..stages.teacher import Teacher, label, self_training_rows, split_dev, teacher_source, train_teacher
from ..stages.translate import code_switched_pairs, translate_generations

@dataclass
class PipelineResult:
    raw: Dataset
    stats: dict = field(default_factory=dict)  # counts per stage, timings, provenance for the card


def _count_line(counts: dict) -> str:
    """``{"prompts": 9, "kept": 0, "too_short": 9, ...}`` -> ``"9 prompts, 0 kept, too_short 9"`` (zeros left out)."""
    drops = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("prompts", "kept") and v)
    return f"{counts['prompts']} prompts, {counts['kept']} kept" + (f", {drops}" if drops else "")


# Everything whose code shapes ``raw``: a change in any of these files invalidates cached builds.
SHAPING = ("config", "task_specs", "stages", "backends", "models", "utils", "seed_data", "build/pipeline.py",
           "version.py")


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
    for key in ("base_url", "api_key_env", "max_in_flight", "request_timeout", "max_retries", "max_failed_fraction"):
        gen.pop(key)  # where and how answers are fetched, not what they are
    data["translate"].pop("base_url"), data["translate"].pop("api_key_env")
    if recipe.route not in TRANSLATING:
        data.pop("translate")  # unused
    if isinstance(recipe.task_spec, MultipleChoiceSpec):
        data.pop("teacher")  # multiple-choice builds have no teacher
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
    for field_name in ("source", "dev", "fewshot_source"):
        cfg = getattr(recipe, field_name)
        if cfg is not None:
            check_source(task, cfg.path, f"recipe {recipe.name!r}: field '{field_name}.path'")
    models = [("teacher.model", recipe.teacher.model, ENCODER_DEFAULT, recipe.teacher.revision)]
    if recipe.generation.backend == "local" and recipe.items_from == "generate":
        models.append(("generation.model", recipe.generation.model, GENERATOR_DEFAULT, recipe.generation.revision))
    if recipe.route in TRANSLATING and recipe.translate.model and not recipe.translate.base_url:
        models.append(("translate.model", recipe.translate.model, GENERATOR_DEFAULT, recipe.translate.revision))
    if isinstance(task, MultipleChoiceSpec):
        models.pop(0)
    for field_name, ref, default, revision in models:
        check_model(ref, default, revision, f"recipe {recipe.name!r}: field {field_name!r}")


def run_pipeline(recipe: Recipe, work_dir: str | Path, log=None) -> PipelineResult:
    """Run (or reuse) generation, cleaning and teacher labelling for ``recipe``; messages go to ``log``
    (default: the ``hf_crossaug.build`` logger)."""
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
    task = recipe.task_spec
    timings: dict[str, float] = {}
    stats: dict = {"counts": {}, "timings": timings}

    t = time.perf_counter()
    source = load_configured(task, recipe.source, recipe.generation.seed)
    dev = load_configured(task, recipe.dev) if recipe.dev is not None else None
    source_name = (recipe.source.path if recipe.source.path not in (None, "", "seed")
                   else f"hf_crossaug seed set ({seed_path(task).name})")
    stats["source"] = {"name": source_name, "split": recipe.source.split, "rows": len(source),
                       "invalid_dropped": source.info.description or None,
                       "dev": recipe.dev.path if recipe.dev else None}
    shots = source  # where the few-shot examples come from: English source, the task's pool, or target-language
    if task.fewshot_pool:
        shots = load_source(task, task.fewshot_pool, seed=recipe.generation.seed)
        stats["source"]["fewshot"] = {"name": task.fewshot_pool, "rows": len(shots), "language": "en"}
    if recipe.route == "direct":
        fs = recipe.fewshot_source
        shots = load_configured(task, fs, recipe.generation.seed)
        stats["source"]["fewshot"] = {"name": fs.path, "split": fs.split, "rows": len(shots),
                                      "language": recipe.language}
    timings["load_source"] = time.perf_counter() - t

    t = time.perf_counter()
    if isinstance(task, MultipleChoiceSpec):
        raw = generate_items(recipe, task, shots, None, work, stats, log)
        timings["generate"] = time.perf_counter() - t
        stats["teacher"] = None  # the paper trains on the generated items as they are
        return _save(raw, stats, recipe, raw_file, stats_file)
    if recipe.items_from == "source":  # the labelled rows themselves, e.g. for Self-Translate-Train
        items = source.map(lambda r: {"prompt_label": r["label"], "domain": "source data"}, remove_columns=["label"])
        stats["counts"]["source_rows"] = {"prompts": len(items), "kept": len(items)}
        stats["generator"] = None
    elif recipe.daftt is not None:
        items = _daftt_items(recipe, task, source, work, stats, log)
    else:
        items = _generated_items(recipe, task, shots, recipe.generation, recipe.generation.prompt_style, work,
                                 stats, log)
    timings["generate"] = time.perf_counter() - t

    kept = items.add_column("id", [f"{recipe.name}-{i:06d}" for i in range(len(items))])
    kept = kept.select_columns(["id", *task.text_columns, "prompt_label", "domain"]).flatten_indices()
    kept = kept.cast_column("prompt_label", task.class_label())
    if recipe.route in TRANSLATING:
        log(f"[2b/3] translating {len(kept)} generations into {recipe.language!r} ({recipe.translate.backend})")
        t = time.perf_counter()
        kept, stats["counts"]["translation"], stats["translator"] = translate_generations(
            kept, task.text_columns, recipe.translate, recipe.language, work)
        if recipe.code_switch:
            kept = code_switched_pairs(kept, task.text_columns, recipe.translate.src, recipe.language)
            stats["counts"]["translation"]["code_switched_rows"] = len(kept) - stats["counts"]["translation"]["kept"]
        timings["translate"] = time.perf_counter() - t

    source = teacher_source(task, recipe.source, recipe.teacher, source, recipe.generation.seed)
    log(f"[3/3] training the teacher on {len(source)} source rows and labelling {len(kept)} generations")
    t = time.perf_counter()
    teacher: Teacher = train_teacher(source, task, recipe.teacher, work, dev, source_name)
    timings["teacher_train"] = time.perf_counter() - t
    t = time.perf_counter()
    # the teacher learnt English: on translating routes it reads the English originals
    src = recipe.translate.src  # translate_generations keeps the originals as ``<column>_<src>``
    view = kept.select_columns([f"{c}_{src}" for c in task.text_columns]).rename_columns(
        {f"{c}_{src}": c for c in task.text_columns}) if recipe.route in TRANSLATING else kept
    raw = _labelled(kept, view, task, teacher, recipe)
    timings["teacher_label"] = time.perf_counter() - t
    stats["teacher"] = teacher.card_fields()
    if recipe.teacher.self_training_rounds:
        raw = _self_train(raw, view, kept, source, dev, task, recipe, work, source_name, stats, log)
    return _save(raw, stats, recipe, raw_file, stats_file)


def _labelled(kept: Dataset, view: Dataset, task, teacher: Teacher, recipe: Recipe) -> Dataset:
    """``kept`` with the teacher's columns, computed on ``view`` (the text the teacher reads)."""
    labelled = label(view.select_columns(list(task.text_columns)), task, teacher, recipe.teacher.max_length)
    return concatenate_datasets([kept, labelled.remove_columns(list(task.text_columns))], axis=1)


def _self_train(raw: Dataset, view: Dataset, kept: Dataset, source: Dataset, dev, task, recipe: Recipe, work: Path,
                source_name: str, stats: dict, log) -> Dataset:
    """``teacher.self_training_rounds`` rounds: retrain the teacher on the source plus the generations it and the
    prompt agree on (``selection.k`` per class), relabel every generation; the last round's labels are kept."""
    if dev is None:  # hold the dev set out once, so no generation lands in it and every round selects on it
        source, dev = split_dev(source, recipe.teacher)
    rounds, t = [], time.perf_counter()
    for r in range(1, recipe.teacher.self_training_rounds + 1):
        added = self_training_rows(raw, view, source, recipe.selection.k)
        log(f"[3/3] self-training round {r}: the teacher again, on {len(source)} source rows + {len(added)} "
            "generations it labels like the prompt")
        teacher = train_teacher(concatenate_datasets([source, added]), task, recipe.teacher, work, dev,
                                f"{source_name} + {len(added)} self-labelled generations")
        raw = _labelled(kept, view, task, teacher, recipe)
        rounds.append({"round": r, "added": len(added), "dev_accuracy": teacher.dev_accuracy})
    stats["timings"]["self_training"] = time.perf_counter() - t
    stats["teacher"] = {**teacher.card_fields(), "first_dev_accuracy": stats["teacher"]["dev_accuracy"],
                        "source_rows": stats["teacher"]["source_rows"], "self_training": rounds}
    return raw


def _save(raw: Dataset, stats: dict, recipe: Recipe, raw_file: Path, stats_file: Path) -> PipelineResult:
    """Write ``raw`` and its stats atomically into the work folder (the cache of the next build)."""
    stats["counts"]["labelled"] = len(raw)
    stats["recipe"] = public_recipe(recipe)
    stats["package_version"] = __version__

    raw.to_parquet(str(raw_file) + ".tmp")
    raw_file.with_suffix(".parquet.tmp").replace(raw_file)
    stats_file.write_text(json.dumps(stats, indent=2, default=str))
    return PipelineResult(raw, stats)


def generate_items(recipe: Recipe, task: MultipleChoiceSpec, shots: Dataset, generator,
                   work: Path, stats: dict, log=None) -> Dataset:
    """Multiple choice (arXiv 2305.14288): ``per_class`` few-shot prompts, each completed into one whole
    item (answer included), parsed and validated, answer positions balanced."""
    log = log_or_logger(log, "build")
    gen_cfg = recipe.generation
    generator = generator or make_generator(gen_cfg, work)
    stats["generator"] = generator_provenance(generator)
    prompts = multiple_choice_prompts(task, shots, recipe.per_class, gen_cfg.prompt_style, gen_cfg.n_shots,
                                      gen_cfg.seed)
    log(f"[1/1] generating {len(prompts)} {task.name} items from {gen_cfg.n_shots}-shot prompts")
    items = generate(prompts, gen_cfg, work, generator, desc="items", accounting=stats.setdefault("requests", {}))
    # few-shot prompts end with the format's opening ("Premise:"), which the continuation lacks
    prefix = task.templates["fewshot.item"].split("{examples}")[-1].strip() if gen_cfg.prompt_style == "fewshot" else ""
    items = clean_items(items, task, recipe.clean, prefix)
    stats["counts"]["generations"] = {"prompts": len(items), **drop_counts(items, MC_REASONS)}
    if stats["counts"]["generations"]["kept"] == 0:
        raise ValueError(f"no generated item survived validation: {_count_line(stats['counts']['generations'])}")
    stats["generated_tokens"] = int(sum(items["generated_tokens"]))
    kept = items.filter(lambda r: r is None, input_columns="drop_reason")
    kept = kept.add_column("id", [f"{recipe.name}-{i:06d}" for i in range(len(kept))])
    kept = kept.select_columns(["id", *task.text_columns, "label"])
    kept = kept.cast(Features({"id": Value("string"), **task.source_features()}))
    return balance_answers(kept, task, gen_cfg.seed)


def _generated_items(recipe: Recipe, task, shots: Dataset, gen_cfg: GenerationConfig, style: str, work: Path,
                     stats: dict, log) -> Dataset:
    """Class-conditioned generation (NLI: premises first, then a hypothesis per premise and label),
    cleaned; returns the kept rows. ``style`` picks the templates (fewshot, instruct, or lm for a
    fine-tuned generator)."""
    generator = make_generator(gen_cfg, work)
    stats["generator"] = generator_provenance(generator)
    domains = recipe.domain_list
    premises = None
    if task.two_step:
        if recipe.premise_source == "source":
            premises = source_premises(task, shots, recipe.per_class, gen_cfg.seed)
            stats["counts"]["premises"] = {"prompts": len(premises), "kept": len(premises)}
        else:
            log(f"[1/3] generating {recipe.per_class} premises over {len(domains)} domains")
            pp = premise_prompts(task, shots, recipe.per_class, domains, style, gen_cfg.n_shots, gen_cfg.seed)
            first = task.first_column
            pp = clean(generate(pp, gen_cfg, work, generator, desc="premises",
                                accounting=stats.setdefault("requests", {})), first, recipe.clean)
            stats["counts"]["premises"] = {"prompts": len(pp), **drop_counts(pp)}
            premises = [{"prompt_id": r["prompt_id"], first: r[first], "domain": r["domain"]}
                        for r in pp if r["drop_reason"] is None]
            if not premises:
                raise ValueError(f"no premise survived cleaning: {_count_line(stats['counts']['premises'])}")
    prompts = item_prompts(task, shots, recipe.per_class, domains, style, gen_cfg.n_shots, gen_cfg.seed, premises)
    log(f"[2/3] generating {len(prompts)} class-conditioned {task.generated_column!r} values "
        f"({task.num_labels} classes)")
    items = generate(prompts, gen_cfg, work, generator, desc=task.generated_column, accounting=stats.setdefault("requests", {}))
    keys = tuple(c for c in task.text_columns if c != task.generated_column)
    items = clean(items, task.generated_column, recipe.clean, key_columns=keys)
    stats["counts"]["generations"] = {"prompts": len(items), **drop_counts(items)}
    if stats["counts"]["generations"]["kept"] == 0:
        raise ValueError(f"no generation survived cleaning: {_count_line(stats['counts']['generations'])}")
    stats["generated_tokens"] = int(sum(items["generated_tokens"]))
    return items.filter(lambda r: r is None, input_columns="drop_reason")


def _daftt_items(recipe: Recipe, task, source: Dataset, work: Path, stats: dict, log) -> Dataset:
    """DAFTT: LoRA-tune the generator on a labelled subset, then annotate the other source inputs or
    generate new examples through the generate stage with the adapter merged in."""
    cfg, seed = recipe.daftt, recipe.generation.seed
    subset, rest = split_labelled(source, cfg, seed)
    rows = training_rows(task, subset, cfg.mode, task.two_step and recipe.premise_source == "generate",
                         recipe.domain_list)
    tune = cfg.finetune if cfg.finetune.model else replace(
        cfg.finetune, model=recipe.generation.model or GENERATOR_DEFAULT, revision=recipe.generation.revision)
    log(f"DAFTT: LoRA fine-tuning {tune.model} on {len(rows)} instruction rows from {len(subset)} labelled rows")
    adapter = finetune_lora(rows, tune, work, GENERATOR_DEFAULT, desc="daftt-lora")
    # the tuned model answers in the raw instruction format it learnt: no chat template, no examples
    gen_cfg = replace(recipe.generation, model=tune.model, revision=tune.revision, adapter=str(adapter.path),
                      temperature=cfg.sampling_temperature, prompt_style="fewshot", n_shots=0)
    stats["daftt"] = {"mode": cfg.mode, "temperature": gen_cfg.temperature, "labelled_rows": len(subset),
                      "training_rows": len(rows), "adapter": adapter.card_fields()}
    if cfg.mode == "generate":
        return _generated_items(recipe, task, source, gen_cfg, "lm", work, stats, log)
    generator = make_generator(gen_cfg, work)
    stats["generator"] = generator_provenance(generator)
    prompts = annotation_prompts(task, rest, cfg.inputs, seed)
    log(f"DAFTT: annotating {len(prompts)} unlabelled source inputs at temperature {gen_cfg.temperature}")
    out = parse_annotations(generate(prompts, gen_cfg, work, generator, desc="annotate", accounting=stats.setdefault("requests", {})), task)
    stats["counts"]["annotations"] = {"prompts": len(out), **drop_counts(out, ANNOTATE_REASONS)}
    kept = out.filter(lambda r: r is None, input_columns="drop_reason")
    if len(kept) == 0:
        raise ValueError(f"no annotation named a label: {_count_line(stats['counts']['annotations'])}")
    stats["daftt"]["agreement_with_withheld_labels"] = round(
        float(np.mean(np.asarray(list(kept["prompt_label"])) == np.asarray(list(kept["gold_label"])))), 4)
    stats["generated_tokens"] = int(sum(out["generated_tokens"]))
    return kept

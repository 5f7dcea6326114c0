"""The stages of a build, and `plan`: which of them a recipe runs, in order (`hf_crossaug.build.contract`).

Every stage wraps a ``Dataset -> Dataset`` function of the stage modules (`hf_crossaug.stages`) and declares
what it reads and adds. A recipe's choices -- a pair task's first step, multiple-choice items, DAFTT, rows taken
from the source, a translating route, self-training -- pick stages here; nothing downstream branches on them.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from datasets import Dataset, Features, Value, concatenate_datasets

from ..config.recipe import TRANSLATING, Recipe
from ..config.tasks import MultipleChoiceSpec, TaskSpec
from ..models.embed import SentenceEmbedder
from ..models.resolve import GENERATOR_DEFAULT
from ..stages.clean import MC_REASONS, balance_answers, clean, clean_items, drop_counts
from ..stages.daftt import ANNOTATE_REASONS, annotation_prompts, parse_annotations, split_labelled, training_rows
from ..stages.finetune import finetune_lora
from ..stages.generate import generate, generator_card_fields
from ..stages.prompts import item_prompts, multiple_choice_prompts, premise_prompts, source_premises
from ..stages.teacher import label, self_training_rows, split_dev, train_teacher
from ..stages.translate import code_switched_pairs, translate_generations
from .contract import Context, Stage, run_stages

GENERATED = ("generation", "generated_tokens")  # what the generate stage adds to each prompt row


def count_line(counts: dict) -> str:
    """``{"prompts": 9, "kept": 0, "too_short": 9, ...}`` -> ``"9 prompts, 0 kept, too_short 9"`` (zeros left out)."""
    drops = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("prompts", "kept") and v)
    return f"{counts['prompts']} prompts, {counts['kept']} kept" + (f", {drops}" if drops else "")


def embeds(recipe: Recipe) -> bool:
    return recipe.clean.near_duplicate.method == "embedding"


def near_duplicate_embedder(recipe: Recipe) -> SentenceEmbedder | None:
    """The teacher's encoder as a sentence embedder, when the clean stage judges near duplicates by cosine."""
    return SentenceEmbedder(recipe.teacher.model, recipe.teacher.revision) if embeds(recipe) else None


def _kept(rows: Dataset, counts: dict, what: str) -> Dataset:
    if counts["kept"] == 0:
        raise ValueError(f"no {what}: {count_line(counts)}")
    return rows.filter(lambda r: r is None, input_columns="drop_reason")


# ---------------------------------------------------------------- generation: prompts -> generate -> clean

def generate_stage(desc: str) -> Stage:
    """The generate stage (`hf_crossaug.stages.generate`): one continuation per prompt row, through the
    context's generator (local, endpoint or Ray); ``desc`` names the shard folder and the card's request row."""
    def run(rows: Dataset, ctx: Context):
        gen = ctx.generator()
        requests: dict = {}
        out = generate(rows, ctx.generation, ctx.work, gen, desc=desc, accounting=requests)
        return out, {"generator": generator_card_fields(gen), "requests": requests}
    return Stage(f"generate:{desc}", ("prompt",), GENERATED, run, "generate")


def _first_prompts(rows: Dataset, ctx: Context):
    r, task, gen = ctx.recipe, ctx.task, ctx.generation
    ctx.log(f"[1/3] generating {r.per_class} {task.first_column!r} values over {len(r.domain_list)} domains")
    return premise_prompts(task, ctx.shots, r.per_class, r.domain_list, ctx.style, gen.n_shots, gen.seed), {}


def _clean_first(rows: Dataset, ctx: Context):
    first = ctx.task.first_column
    out = clean(rows, first, ctx.recipe.clean, embedder=near_duplicate_embedder(ctx.recipe))
    counts = {"prompts": len(out), **drop_counts(out)}
    kept = _kept(out, counts, f"generated {first!r} survived cleaning")  # the task's first column, by name
    return kept.select_columns(["prompt_id", first, "domain"]), {"counts": {"premises": counts}}


def _source_first(rows: Dataset, ctx: Context):
    """A pair task's first column drawn from the labelled source instead of generated."""
    premises = source_premises(ctx.task, ctx.shots, ctx.recipe.per_class, ctx.generation.seed)
    n = len(premises)
    return Dataset.from_list(premises), {"counts": {"premises": {"prompts": n, "kept": n}}}


def _item_prompts(rows: Dataset, ctx: Context):
    r, task, gen = ctx.recipe, ctx.task, ctx.generation
    premises = rows.to_list() if task.two_step else None
    prompts = item_prompts(task, ctx.shots, r.per_class, r.domain_list, ctx.style, gen.n_shots, gen.seed, premises)
    ctx.log(f"[2/3] generating {len(prompts)} class-conditioned {task.generated_column!r} values "
            f"({task.num_labels} classes)")
    return prompts, {}


def _clean_items(rows: Dataset, ctx: Context):
    task = ctx.task
    keys = tuple(c for c in task.text_columns if c != task.generated_column)
    out = clean(rows, task.generated_column, ctx.recipe.clean, key_columns=keys,
                embedder=near_duplicate_embedder(ctx.recipe))
    counts = {"prompts": len(out), **drop_counts(out)}
    kept = _kept(out, counts, "generation survived cleaning")
    return kept, {"counts": {"generations": counts}, "generated_tokens": int(sum(out["generated_tokens"]))}


def item_stages(task: TaskSpec, premise_source: str) -> list[Stage]:
    """Class-conditioned generation: a pair task's first column (generated or drawn from the source), then one
    generated column per label (and first column), each cleaned."""
    stages = []
    if task.two_step:
        first = task.first_column
        stages += ([Stage("source-premises", (), ("prompt_id", first, "domain"), _source_first, "generate")]
                   if premise_source == "source" else
                   [Stage("premise-prompts", (), ("prompt_id", "prompt", "domain"), _first_prompts, "generate"),
                    generate_stage("premises"),
                    Stage("clean-premises", GENERATED, ("prompt_id", first, "domain"), _clean_first, "generate")])
    reads = (task.first_column, "domain") if task.two_step else ()
    return stages + [
        Stage("prompts", reads, ("prompt_id", "prompt", "prompt_label", "domain", "examples"), _item_prompts,
              "generate"),
        generate_stage(task.generated_column),
        Stage("clean", GENERATED, (task.generated_column, "drop_reason"), _clean_items, "generate"),
    ]


# ---------------------------------------------------------------- other ways to get items

def _source_rows(rows: Dataset, ctx: Context):
    """The labelled source rows themselves as items (e.g. for Self-Translate-Train)."""
    items = ctx.source.map(lambda r: {"prompt_label": r["label"], "domain": "source data"}, remove_columns=["label"])
    return items, {"counts": {"source_rows": {"prompts": len(items), "kept": len(items)}}, "generator": None}


def _daftt_tune(rows: Dataset, ctx: Context):
    """DAFTT: LoRA-tune the generator on a labelled subset; the later stages generate (or annotate) with it."""
    recipe, task, cfg = ctx.recipe, ctx.task, ctx.recipe.daftt
    subset, _ = split_labelled(ctx.source, cfg, recipe.generation.seed)
    rows_ = training_rows(task, subset, cfg.mode, task.two_step and recipe.premise_source == "generate",
                          recipe.domain_list)
    tune = cfg.finetune if cfg.finetune.model else replace(
        cfg.finetune, model=recipe.generation.model or GENERATOR_DEFAULT, revision=recipe.generation.revision)
    ctx.log(f"DAFTT: LoRA fine-tuning {tune.model} on {len(rows_)} instruction rows from {len(subset)} labelled rows")
    adapter = finetune_lora(rows_, tune, ctx.work, GENERATOR_DEFAULT, desc="daftt-lora")
    # the tuned model answers in the raw instruction format it learnt: no chat template, no examples
    ctx.generation = replace(recipe.generation, model=tune.model, revision=tune.revision, adapter=str(adapter.path),
                             temperature=cfg.sampling_temperature, prompt_style="fewshot", n_shots=0)
    ctx.style, ctx.shots = "lm", ctx.source
    return rows, {"daftt": {"mode": cfg.mode, "temperature": ctx.generation.temperature, "labelled_rows": len(subset),
                            "training_rows": len(rows_), "adapter": adapter.card_fields()}}


def _annotation_prompts(rows: Dataset, ctx: Context):
    cfg, seed = ctx.recipe.daftt, ctx.recipe.generation.seed
    _, rest = split_labelled(ctx.source, cfg, seed)
    prompts = annotation_prompts(ctx.task, rest, cfg.inputs, seed)
    ctx.log(f"DAFTT: annotating {len(prompts)} unlabelled source inputs at temperature {ctx.generation.temperature}")
    return prompts, {}


def _parse_annotations(rows: Dataset, ctx: Context):
    out = parse_annotations(rows, ctx.task)
    counts = {"prompts": len(out), **drop_counts(out, ANNOTATE_REASONS)}
    if counts["kept"] == 0:
        raise ValueError(f"no annotation named a label: {count_line(counts)}")
    kept = out.filter(lambda r: r is None, input_columns="drop_reason")
    agreement = round(float(np.mean(np.asarray(list(kept["prompt_label"])) == np.asarray(list(kept["gold_label"])))),
                      4)
    return kept, {"counts": {"annotations": counts}, "daftt": {"agreement_with_withheld_labels": agreement},
                  "generated_tokens": int(sum(out["generated_tokens"]))}


def daftt_stages(task: TaskSpec, recipe: Recipe) -> list[Stage]:
    tune = [Stage("daftt-tune", (), (), _daftt_tune, "generate")]
    if recipe.daftt.mode == "generate":
        return tune + item_stages(task, recipe.premise_source)
    return tune + [Stage("annotation-prompts", (), ("prompt", "gold_label"), _annotation_prompts, "generate"),
                   generate_stage("annotate"),
                   Stage("parse-annotations", GENERATED, ("prompt_label", "drop_reason"), _parse_annotations,
                         "generate")]


def _mc_prompts(rows: Dataset, ctx: Context):
    gen = ctx.generation
    prompts = multiple_choice_prompts(ctx.task, ctx.shots, ctx.recipe.per_class, gen.prompt_style, gen.n_shots,
                                      gen.seed)
    ctx.log(f"[1/1] generating {len(prompts)} {ctx.task.name} items from {gen.n_shots}-shot prompts")
    return prompts, {}


def _mc_items(rows: Dataset, ctx: Context):
    """Parse and validate whole items (answer included), then balance the answer positions."""
    task, gen, recipe = ctx.task, ctx.generation, ctx.recipe
    # few-shot prompts end with the format's opening ("Premise:"), which the continuation lacks
    prefix = task.templates["fewshot.item"].split("{examples}")[-1].strip() if gen.prompt_style == "fewshot" else ""
    items = clean_items(rows, task, recipe.clean, prefix, near_duplicate_embedder(recipe))
    counts = {"prompts": len(items), **drop_counts(items, MC_REASONS)}
    if counts["kept"] == 0:
        raise ValueError(f"no generated item survived validation: {count_line(counts)}")
    kept = items.filter(lambda r: r is None, input_columns="drop_reason")
    kept = kept.add_column("id", [f"{recipe.name}-{i:06d}" for i in range(len(kept))])
    kept = kept.select_columns(["id", *task.text_columns, "label"])
    kept = kept.cast(Features({"id": Value("string"), **task.source_features()}))
    return balance_answers(kept, task, gen.seed), {"counts": {"generations": counts}, "teacher": None,
                                                   "generated_tokens": int(sum(items["generated_tokens"]))}


def multiple_choice_stages(task: MultipleChoiceSpec) -> list[Stage]:
    """Multiple choice (arXiv 2305.14288): few-shot prompts completed into whole items; no teacher, no selection."""
    return [Stage("mc-prompts", (), ("prompt_id", "prompt"), _mc_prompts, "generate"), generate_stage("items"),
            Stage("mc-items", GENERATED, ("id", *task.text_columns, "label"), _mc_items, "generate")]


def generate_items(recipe: Recipe, task: MultipleChoiceSpec, shots: Dataset, generator, work, stats: dict,
                   log=None) -> Dataset:
    """The multiple-choice stages on their own (``generator``: an already made one, or None for the recipe's)."""
    ctx = Context(recipe, task, work, log or (lambda m: None), source=shots, shots=shots, source_name="")
    if generator is not None:
        ctx._generators[repr(ctx.generation)] = generator
    return run_stages(multiple_choice_stages(task), ctx, stats)


# ---------------------------------------------------------------- after the items: ids, translation, teacher

def _ids(rows: Dataset, ctx: Context):
    task = ctx.task
    kept = rows.add_column("id", [f"{ctx.recipe.name}-{i:06d}" for i in range(len(rows))])
    kept = kept.select_columns(["id", *task.text_columns, "prompt_label", "domain"]).flatten_indices()
    return kept.cast_column("prompt_label", task.class_label()), {}


def _translate(rows: Dataset, ctx: Context):
    r = ctx.recipe
    ctx.log(f"[2b/3] translating {len(rows)} generations into {r.language!r} ({r.translate.backend})")
    out, counts, translator = translate_generations(rows, ctx.task.text_columns, r.translate, r.language, ctx.work)
    return out, {"counts": {"translation": counts}, "translator": translator}


def _code_switch(rows: Dataset, ctx: Context):
    r = ctx.recipe
    out = code_switched_pairs(rows, ctx.task.text_columns, r.translate.src, r.language)
    return out, {"counts": {"translation": {"code_switched_rows": len(out) - len(rows)}}}


def teacher_view(rows: Dataset, ctx: Context) -> Dataset:
    """The text the teacher reads: on translating routes the originals (``<column>_<src>``), as it learnt them."""
    if ctx.recipe.route not in TRANSLATING:
        return rows
    src, cols = ctx.recipe.translate.src, ctx.task.text_columns
    return rows.select_columns([f"{c}_{src}" for c in cols]).rename_columns({f"{c}_{src}": c for c in cols})


def labelled(rows: Dataset, view: Dataset, ctx: Context, teacher) -> Dataset:
    """``rows`` with the teacher's columns, computed on ``view``."""
    cols = list(ctx.task.text_columns)
    new = label(view.select_columns(cols), ctx.task, teacher, ctx.recipe.teacher.max_length)
    return concatenate_datasets([rows, new.remove_columns(cols)], axis=1)


def _teacher(rows: Dataset, ctx: Context):
    ctx.log(f"[3/3] training the teacher on {len(ctx.teacher_rows)} source rows and labelling {len(rows)} "
            "generations")
    t = time.perf_counter()
    ctx.teacher = train_teacher(ctx.teacher_rows, ctx.task, ctx.recipe.teacher, ctx.work, ctx.dev,
                                ctx.teacher_source_name)
    t_train, t = time.perf_counter() - t, time.perf_counter()
    out = labelled(rows, teacher_view(rows, ctx), ctx, ctx.teacher)
    return out, {"teacher": ctx.teacher.card_fields(),
                 "timings": {"teacher_train": t_train, "teacher_label": time.perf_counter() - t}}


def _self_train(raw: Dataset, ctx: Context):
    """``teacher.self_training_rounds`` rounds: retrain the teacher on the source plus the generations it and the
    prompt agree on (``selection.k`` per class), relabel every generation; the last round's labels are kept."""
    recipe, task = ctx.recipe, ctx.task
    source, dev = ctx.teacher_rows, ctx.dev
    if dev is None:  # hold the dev set out once, so no generation lands in it and every round selects on it
        source, dev = split_dev(source, recipe.teacher)
    first = ctx.teacher.card_fields()
    rows = raw.remove_columns([c for c in raw.column_names if c.startswith(("teacher_", "epoch_probs"))])
    view, rounds = teacher_view(rows, ctx), []
    for r in range(1, recipe.teacher.self_training_rounds + 1):
        added = self_training_rows(raw, view, source, recipe.selection.k)
        ctx.log(f"[3/3] self-training round {r}: the teacher again, on {len(source)} source rows + {len(added)} "
                "generations it labels like the prompt")
        teacher = train_teacher(concatenate_datasets([source, added]), task, recipe.teacher, ctx.work, dev,
                                f"{ctx.teacher_source_name} + {len(added)} self-labelled generations")
        raw = labelled(rows, view, ctx, teacher)
        rounds.append({"round": r, "added": len(added), "dev_accuracy": teacher.dev_accuracy})
    return raw, {"teacher": {**teacher.card_fields(), "first_dev_accuracy": first["dev_accuracy"],
                             "source_rows": first["source_rows"], "self_training": rounds}}


def plan(recipe: Recipe) -> list[Stage]:
    """The stages ``recipe`` runs, in order: how items are made, then what every kind of item goes through."""
    task = recipe.task_spec
    if isinstance(task, MultipleChoiceSpec):
        return multiple_choice_stages(task)  # the paper trains on the generated items as they are
    if recipe.items_from == "source":
        items = [Stage("source-rows", (), (*task.text_columns, "prompt_label", "domain"), _source_rows, "generate")]
    elif recipe.daftt is not None:
        items = daftt_stages(task, recipe)
    else:
        items = item_stages(task, recipe.premise_source)
    cols = task.text_columns
    stages = items + [Stage("ids", (*cols, "prompt_label", "domain"), ("id", *cols, "prompt_label", "domain"), _ids)]
    if recipe.route in TRANSLATING:
        originals = tuple(f"{c}_{recipe.translate.src}" for c in cols)
        stages.append(Stage("translate", cols, originals, _translate, "translate"))
        if recipe.code_switch:
            stages.append(Stage("code-switch", (*cols, *originals), ("pair_languages",), _code_switch, "translate"))
    teacher_adds = ("teacher_probs", "teacher_label", "teacher_confidence", "epoch_probs")
    stages.append(Stage("teacher", cols, teacher_adds, _teacher))
    if recipe.teacher.self_training_rounds:
        stages.append(Stage("self-training", teacher_adds, teacher_adds, _self_train, "self_training"))
    return stages

"""What `benchmarks.reproduce` trains and scores besides its tables: the synthetic dataset of each build (with its
lever), one fine-tuned student on the targets, and the strong-teacher lever (issue #28: does distillation pay once
the teacher knows more than the student?). The plain build's teacher learns from the same few hundred English rows as
the students; the strong one from the task's whole English source file, while students, generations and selection
settings stay the plain build's. Its own accuracy on the targets is the ceiling the students distil from."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.reproduce_tasks import (
    DAFTT_ROWS,
    LEVERS,
    PIPELINE_SEED_BASE,
    ROOT,
    STRONG,
    k_name,
)
from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.recipe import Recipe, SourceConfig
from hf_crossaug.config.student import StudentConfig
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.stages.daftt import DafttConfig
from hf_crossaug.stages.finetune import FinetuneConfig
from hf_crossaug.stages.teacher import DONE_FILE


def strong_teacher(recipe: Recipe, epochs: int, source: str | None = None) -> Recipe:
    """``recipe`` with a teacher trained on every row of its source file (``teacher.source_limit``: the file's row
    count) or, given ``source`` (a file or glob), on every row of that (``teacher.source``), at the package's
    default learning rate, seeded 42 whatever the pipeline seed: the teacher's cache key is then the same for every
    seed's build, so it is trained once and shared (the table says so)."""
    rows = {}
    if source is None:
        with Path(recipe.source.path).open() as f:
            rows = {"source_limit": sum(1 for line in f if line.strip())}
    teacher = dataclasses.replace(recipe.teacher, epochs=epochs, seed=PIPELINE_SEED_BASE,
                                  learning_rate=TeacherConfig().learning_rate, **rows,
                                  source=SourceConfig(path=source) if source else None)
    return dataclasses.replace(recipe, teacher=teacher)


def teacher_folder(work: Path, fields: dict) -> Path:
    """The cached teacher a build's card fields describe (its ``teacher.json`` says the same sizes and accuracy)."""
    keys = ("train_size", "dev_size", "dev_accuracy", "source_rows", "dtype")
    for done in sorted(Path(work).rglob(f"teacher-*/{DONE_FILE}")):
        info = json.loads(done.read_text())
        if all(info.get(k) == fields.get(k) for k in keys):
            return done.parent
    raise FileNotFoundError(f"no cached teacher under {work} matches {({k: fields.get(k) for k in keys})}")


def teacher_correct(work: Path, fields: dict, task, targets: dict, max_length: int) -> dict[str, np.ndarray]:
    """The teacher's own predictions on every target set (no synthetic data, no student)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossaug.models.training import on_accelerator
    from hf_crossaug.students.evaluate import predict as predict_model

    best = teacher_folder(work, fields) / "best"
    model = on_accelerator(AutoModelForSequenceClassification.from_pretrained(best, use_safetensors=True).eval())
    tokenizer = AutoTokenizer.from_pretrained(best)
    return {lang: predict_model(model, tokenizer, ds, task, max_length) for lang, ds in targets.items()}


def build(spec: dict, args, data: Path, log, lever: str | None = None, seed: int | None = None,
          k: int | None = None) -> tuple[Path, dict]:
    """The synthetic dataset at the benchmark's scale (cached in ``args.work``), optionally with a lever;
    ``seed`` (pipeline seeds) reseeds every stage of the build; ``k`` replaces the selection's k (k curve)."""
    recipe = Recipe.from_yaml(ROOT / "dataset_scripts" / f"{spec['recipe']}.yaml")
    recipe = recipe.with_overrides(per_class=args.per_class, k=k or args.k)
    # the shared copies are normalised (label names of the task): no label_column / label_map from the recipe
    recipe.source = SourceConfig(path=str(data / spec["source"]), limit=args.source_limit)
    recipe.dev = SourceConfig(path=str(data / spec["dev"]), limit=args.dev_limit)
    recipe.teacher = dataclasses.replace(recipe.teacher, epochs=args.teacher_epochs,
                                         **({"learning_rate": args.teacher_lr} if args.teacher_lr else {}))
    recipe.selection = dataclasses.replace(recipe.selection, n_clusters=args.clusters)
    # the published tables were generated in bf16: pinned, so the recipe's ``auto`` cannot switch them to fp32
    recipe.generation = dataclasses.replace(recipe.generation, shard_size=128, dtype=args.generation_dtype,
                                            **(LEVERS.get(lever) or {}))
    recipe.translate = dataclasses.replace(recipe.translate, dtype=args.generation_dtype)
    if lever == "no-domain":
        style = recipe.generation.prompt_style
        task = recipe.task_spec
        recipe.templates = {k: v.replace(" from {domain}", "") for k, v in task.templates.items()
                            if k.startswith(style) and "{domain}" in v}
        if any("{domain}" in v for v in recipe.templates.values()):
            raise ValueError(f"no-domain lever: cannot strip the domain from {recipe.templates}")
    if lever == "self-train":
        recipe.teacher = dataclasses.replace(recipe.teacher, self_training_rounds=1)
    # the published tables' teachers were trained unweighted: pinned, so a recipe's class_balance default cannot
    # switch them (the balanced lever turns it on)
    recipe.teacher = dataclasses.replace(recipe.teacher, class_balance=lever == "balanced")
    if lever == "daftt":
        recipe.daftt = DafttConfig(mode="generate", train_rows=min(DAFTT_ROWS, args.source_limit),
                                   finetune=FinetuneConfig(epochs=1, learning_rate=1e-3, batch_size=8, max_length=96))
    if seed is not None:
        recipe = recipe.with_overrides(seed=seed)
    if args.dtype:  # teacher precision (the students': finetune_correct)
        recipe.teacher = dataclasses.replace(recipe.teacher, dtype=args.dtype)
    if lever == STRONG:  # after the seed: its teacher is pinned to one seed, shared by every build
        teacher_source = spec.get("teacher_source")
        recipe = strong_teacher(recipe, args.strong_teacher_epochs, teacher_source and str(data / teacher_source))
    name = (f"{recipe.name}-bench" + (f"-{lever}" if lever else "") + (f"-seed{seed}" if seed is not None else "")
            + (f"-k{k_name(k)}" if k else ""))
    summary = build_dataset(recipe.validate(), Path(args.work) / name, Path(args.work) / recipe.name, log=log)
    return Path(args.work) / name, summary


def finetune_correct(row: str, seed: int, args, task, gold, synthetic_: dict, dev, targets: dict,
                     config: str | None = None, overrides: dict | None = None) -> tuple[int, dict]:
    """One fine-tuned student (`train_student`, the whole flow of ``crossaug train``): training rows and
    per-language predictions on the targets. ``config`` / ``overrides``: the synthetic config the
    mode reads and `StudentConfig` fields (levers)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossaug.models.training import on_accelerator
    from hf_crossaug.students.classification import train_student
    from hf_crossaug.students.evaluate import predict as predict_model

    cfg = StudentConfig(model=args.student_model, mode=row, task=task.name, epochs=args.student_epochs, seed=seed,
                        config=config, **({"learning_rate": args.student_lr} if args.student_lr else {}),
                        **({"dtype": args.dtype} if args.dtype else {}),
                        **(overrides or {}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "student"
        res = train_student(cfg, synthetic_, gold, dev, out, log=lambda m: None)
        model = on_accelerator(AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True).eval())
        tokenizer = AutoTokenizer.from_pretrained(out)
        preds = {lang: predict_model(model, tokenizer, ds, task, cfg.max_length) for lang, ds in targets.items()}
    return res["counts"]["total"], preds

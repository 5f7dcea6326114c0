"""The strong-teacher lever of `benchmarks.reproduce` (issue #28): does distillation pay once the teacher knows more
than the student? The teacher of the plain build learns from the same few hundred English rows as the students;
this one learns from the task's whole English source file, while students, generations and selection settings stay
the plain build's. Also the teacher's own accuracy on the targets, the ceiling the students distil from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.stages.teacher import DONE_FILE

from benchmarks.reproduce_tasks import PIPELINE_SEED_BASE


def strong_teacher(recipe: Recipe, epochs: int) -> Recipe:
    """``recipe`` with a teacher trained on every row of its source file (``teacher.source_limit``: the file's row
    count), at the package's default learning rate, seeded 42 whatever the pipeline seed: the teacher's cache key is
    then the same for every seed's build, so it is trained once and shared (the table says so)."""
    path = Path(recipe.source.path)
    with path.open() as f:
        rows = sum(1 for line in f if line.strip())
    teacher = dataclasses.replace(recipe.teacher, source_limit=rows, epochs=epochs, seed=PIPELINE_SEED_BASE,
                                  learning_rate=TeacherConfig().learning_rate)
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

"""Train a student on English gold + selected synthetic data (one of the paper's modes), evaluate it per
language, and describe it in a model card.

`train_student` runs the standard ``Trainer`` workflow with `DistillationTrainer`: evaluation on a dev
set after every epoch, the best epoch (dev accuracy) loaded at the end. The dev set is English by
default (zero-shot model selection, as in the paper); ``select_by="target-dev"`` says the dev set passed
is in the target language, which is then recorded in the results and the card. The output folder is
what one uploads to the Hub: safetensors weights, tokenizer, ``crossaug_student.json`` (everything the
card is rendered from) and ``README.md``. `evaluate_model` adds per-language accuracy / macro-F1 and
re-renders the card, whose YAML then carries them in the Hub's ``model-index`` format.

``StudentConfig.backend`` picks what is trained: ``"finetune"`` (default) fine-tunes the whole encoder;
``"frozen-features"`` trains only a small head on frozen sentence embeddings (`hf_crossaug.students.frozen`,
the reproduction benchmark's student) through the same flow: gold/dev loading, modes, epoch selection,
results file, card and `evaluate_model`.
"""

from __future__ import annotations

import dataclasses

import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..config.base import check
from ..config.student import StudentConfig
from ..config.tasks import MultipleChoiceSpec, get_task
from ..models.resolve import ENCODER_DEFAULT, resolve_model
from ..models.training import one_line_load_errors, training_dtype
from ..utils.files import staged_output
from .card import save_results
from .frozen import BACKEND, HEAD_FILE, fit_frozen
from .card_data import dataset_hub_id
from .common import (build_info, distillation_config, fit_best_epoch, gold_and_dev, infer_task,
                     source_columns,
                     recommended_mode, results_dict, synthetic)
from .multiple_choice import train_mc_student
from .modes import DEFAULT_SIZE_CONFIG, build_training_set, parse_mode, row_counts, synthetic_config
from .trainer import DistillationTrainer, prepare_distillation_dataset


def train_student(config: StudentConfig, dataset_ref, gold_source, dev=None, output_dir: str | Path = "student",
                  log=print) -> dict:
    """Train ``config.mode`` on gold + synthetic data; save model, tokenizer, results and card to ``output_dir``.

    ``dataset_ref``: a built dataset (local folder or Hub id), or a mapping config -> Dataset.
    ``gold_source``: English labelled data (file, Hub id, ``"seed"`` or a `Dataset`). ``dev``: the
    model-selection set (file, Hub id or `Dataset`); None holds ``dev_fraction`` of the gold data out
    (only with ``select_by="english-dev"``). Returns the results dict written to ``crossaug_student.json``.
    ``output_dir`` is replaced only if absent, empty or written by hf_crossaug, and only once training is done.
    """
    t0 = time.perf_counter()
    check(config, "student")
    config = dataclasses.replace(config, dtype=training_dtype(config.dtype))  # the card names what ran
    if config.select_by == "target-dev" and dev is None:
        raise ValueError("select_by='target-dev' needs a target-language dev set (dev=...)")
    with staged_output(output_dir) as out:  # checked before the work; replaced only by a finished student
        return fit_student(config, dataset_ref, gold_source, dev, out, log, t0)


def fit_student(config: StudentConfig, dataset_ref, gold_source, dev, out: Path, log, t0: float) -> dict:
    """`train_student`'s work, written into the fresh folder ``out``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..metrics.functions import classification_scores

    info = build_info(dataset_ref)
    recipe = info.get("recipe", {})
    config, mode_from = recommended_mode(config, recipe)
    mode = parse_mode(config.mode)
    if config.task or recipe.get("task"):
        task = get_task(config.task or recipe["task"])
    elif mode.config is None:
        raise ValueError("mode SRC needs the task: pass task=... (no synthetic data to infer it from)")
    else:
        first = synthetic(dataset_ref, synthetic_config(mode, config.config))
        task = infer_task(first.column_names)
    if isinstance(task, MultipleChoiceSpec):
        if config.backend == BACKEND:
            raise ValueError(f"backend {BACKEND!r} trains classifiers only; multiple-choice task {task.name!r} "
                             "needs backend 'finetune'")
        return train_mc_student(config, task, dataset_ref, gold_source, dev, out, info, log, mode_from)

    if config.class_balance is None:  # a student follows the balance its dataset's teacher was trained with
        config = dataclasses.replace(config, class_balance=bool(recipe.get("teacher", {}).get("class_balance")))
    gold, gold_name, dev_ds, dev_name = gold_and_dev(task, gold_source, dev, config, source_columns(info))
    generated = None if mode.config is None else (
        dataset_ref if isinstance(dataset_ref, Mapping) else (lambda name: synthetic(dataset_ref, name)))
    train_rows = build_training_set(mode, gold, generated, task, seed=config.seed, config=config.config)
    counts = row_counts(train_rows)
    used_config = synthetic_config(mode, config.config)
    if mode.draw is not None:
        used_config = f"raw (random draw sized like {config.config or DEFAULT_SIZE_CONFIG})"
    log(f"mode {mode.name}: {counts['gold']} gold + {counts['generated']} generated rows "
        f"({counts['soft']} soft); dev {len(dev_ds)} rows")

    dataset = {"ref": str(dataset_ref) if isinstance(dataset_ref, (str, Path)) else None,
               "hub_id": dataset_hub_id(dataset_ref, info),
               "config": used_config if mode.config is not None else None, "license": recipe.get("license")}
    summary = dict(mode=mode.name, mode_from=mode_from, dataset=dataset, gold_name=gold_name, counts=counts,
                   dev_name=dev_name, dev_size=len(dev_ds), t0=t0)
    if config.backend == BACKEND:
        fit, ref, encode_s = fit_frozen(config, task, train_rows, dev_ds, out, log)
        results = results_dict(config, task, out, ref, info, fit, **summary)
        results["timings"]["encode_s"] = round(encode_s, 1)
        results["head"] = json.loads((out / HEAD_FILE).read_text())
        save_results(out, results)
        return results

    ref = resolve_model(config.model, ENCODER_DEFAULT, config.revision)
    torch.manual_seed(config.seed)
    with one_line_load_errors(ref.name):
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
        model = AutoModelForSequenceClassification.from_pretrained(
            ref.path, num_labels=task.num_labels, id2label=dict(enumerate(task.labels)), label2id=task.label2id(),
            use_safetensors=True)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    args = distillation_config(config, out, train_rows, task.num_labels)
    labels = list(range(task.num_labels))
    trainer = DistillationTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=prepare_distillation_dataset(train_rows, tokenizer, task.text_columns, config.max_length),
        eval_dataset=prepare_distillation_dataset(dev_ds, tokenizer, task.text_columns, config.max_length),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids, labels),
    )
    fit = fit_best_epoch(trainer, out)
    results = results_dict(config, task, out, ref, info, fit, **summary)
    save_results(out, results)
    return results


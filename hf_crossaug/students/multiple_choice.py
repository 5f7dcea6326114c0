"""Multiple-choice students (arXiv 2305.14288): ``AutoModelForMultipleChoice`` trained with the standard
``Trainer`` on English items plus generated ones, scored per language by accuracy.

Each item becomes one (context, choice) text pair per choice (`MultipleChoiceSpec.pairs`, e.g.
"The man lost his keys. What was the effect?" + a choice); the model scores every pair and the
highest wins. Everything around training is the classification student's (`hf_crossaug.students.common`):
`StudentConfig`, gold/dev loading, best-epoch selection, the results file, `evaluate_model` and the
Hub ``model-index`` of the card; `train_student` hands multiple-choice tasks over to this module.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets

from ..models.resolve import ENCODER_DEFAULT, resolve_model
from ..config.student import MC_MODES as MODES
from ..config.tasks import MultipleChoiceSpec
from ..models.training import one_line_load_errors
from .card_data import dataset_hub_id
from .common import (fit_best_epoch, gold_and_dev, results_dict, source_columns, student_args,
                     synthetic)
from ..config.select import RAW



def encode_choices(ds: Dataset, task: MultipleChoiceSpec, tokenizer, max_length: int = 128) -> Dataset:
    """One tokenised (context, choice) pair per choice: model inputs of shape (choices, tokens) + ``labels``."""

    def encode(batch: dict) -> dict:
        out: dict[str, list] = {}
        for i in range(len(batch["label"])):
            first, second = task.pairs({c: batch[c][i] for c in task.text_columns})
            for key, value in tokenizer(first, second, truncation=True, max_length=max_length).items():
                out.setdefault(key, []).append(value)
        out["labels"] = [int(x) for x in batch["label"]]
        return out

    return ds.map(encode, batched=True, remove_columns=ds.column_names)


def training_items(mode: str, gold: Dataset, generated: Dataset | None, task: MultipleChoiceSpec) -> Dataset:
    """The rows of ``mode`` (SRC, GEN or SRC+GEN) with the task's columns, ``label`` and ``origin``."""
    if mode not in MODES:
        raise ValueError(f"multiple-choice students train in mode {', '.join(MODES)}; got {mode!r}")
    feats = task.source_features()
    parts = []
    if mode != "GEN":
        parts.append(gold.select_columns(list(feats)).cast(feats).add_column("origin", ["gold"] * len(gold)))
    if mode != "SRC":
        missing = [c for c in feats if c not in generated.column_names]
        if missing:
            raise ValueError(f"generated data lacks column(s) {', '.join(missing)}; is it a {task.name} dataset?")
        parts.append(generated.select_columns(list(feats)).cast(feats)
                     .add_column("origin", ["generated"] * len(generated)))
    return concatenate_datasets(parts)


def train_mc_student(config, task: MultipleChoiceSpec, dataset_ref, gold_source, dev, out: Path, info: dict,
                     log=print, mode_from: str = "command") -> dict:
    """`hf_crossaug.students.classification.train_student` for a multiple-choice task (see there for the arguments)."""
    from transformers import (AutoModelForMultipleChoice, AutoTokenizer, DataCollatorForMultipleChoice, Trainer,
                              TrainingArguments)

    from ..metrics.functions import classification_scores
    from .card import save_results

    if config.class_balance:
        raise ValueError(f"class_balance weights the classes of a classification task; {task.name!r} is multiple "
                         "choice (its labels are answer positions)")
    t0 = time.perf_counter()
    if config.mode not in MODES:
        raise ValueError(f"multiple-choice students train in mode {', '.join(MODES)}; got {config.mode!r}")
    gold, gold_name, dev_ds, dev_name = gold_and_dev(task, gold_source, dev, config, source_columns(info))
    used_config = None if config.mode == "SRC" else (config.config or RAW)
    generated = None if used_config is None else synthetic(dataset_ref, used_config)
    rows = training_items(config.mode, gold, generated, task)
    origin = list(rows["origin"])
    counts = {"gold": origin.count("gold"), "generated": origin.count("generated"), "soft": 0, "total": len(rows)}
    log(f"mode {config.mode}: {counts['gold']} gold + {counts['generated']} generated items; dev {len(dev_ds)} items")

    ref = resolve_model(config.model, ENCODER_DEFAULT, config.revision)
    torch.manual_seed(config.seed)
    with one_line_load_errors(ref.name):
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
        model = AutoModelForMultipleChoice.from_pretrained(ref.path, use_safetensors=True)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainer = Trainer(
        model=model, args=TrainingArguments(**student_args(config, out)), processing_class=tokenizer,
        data_collator=DataCollatorForMultipleChoice(tokenizer),
        train_dataset=encode_choices(rows, task, tokenizer, config.max_length),
        eval_dataset=encode_choices(dev_ds, task, tokenizer, config.max_length),
        compute_metrics=lambda p: classification_scores(np.argmax(p.predictions, -1), p.label_ids,
                                                        list(range(task.num_labels))),
    )
    fit = fit_best_epoch(trainer, out)
    recipe = info.get("recipe", {})
    dataset = {"ref": str(dataset_ref) if used_config and isinstance(dataset_ref, (str, Path)) else None,
               "hub_id": dataset_hub_id(dataset_ref, info) if used_config else None,
               "config": used_config, "license": recipe.get("license")}
    results = results_dict(config, task, out, ref, info, fit, mode=config.mode, dataset=dataset, gold_name=gold_name,
                           counts=counts, dev_name=dev_name, dev_size=len(dev_ds), t0=t0, mode_from=mode_from)
    results["kind"] = "multiple-choice"
    save_results(out, results)
    return results


@torch.inference_mode()
def predict_choices(model, tokenizer, ds: Dataset, task: MultipleChoiceSpec, max_length: int = 128,
                    batch_size: int = 64) -> np.ndarray:
    """The index of the highest-scoring choice of every item of ``ds``."""
    from transformers import DataCollatorForMultipleChoice

    enc = encode_choices(ds, task, tokenizer, max_length)
    collate = DataCollatorForMultipleChoice(tokenizer)
    device = next(model.parameters()).device
    preds = []
    for b in range(0, len(enc), batch_size):
        chunk = enc[b: b + batch_size]
        batch = collate([dict(zip(chunk, values)) for values in zip(*chunk.values())])
        batch.pop("labels", None)
        preds.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.argmax(-1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

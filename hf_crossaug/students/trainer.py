"""Soft-label distillation inside the standard `transformers.Trainer` workflow.

The paper's student loss is cross-entropy on gold rows plus KL divergence to the teacher's soft labels on generated
rows. One batch may hold both kinds, so a per-row mask routes each row. Batch columns (besides the model inputs):

* ``labels``        int class id; used on hard rows, ignored on soft rows (put -100 or the teacher's argmax there).
* ``teacher_probs`` float list of length C (the teacher's class probabilities); read on soft rows only, so hard rows
  may carry zeros or anything.
* ``is_soft``       0/1 per row; 1 = KL to ``teacher_probs``, 0 = CE on ``labels`` (a 0 row whose label is -100 is
  not counted at all).

Loss of an optimizer step = (hard_weight * sum CE over hard rows + soft_weight * sum KL over soft rows) / number of
counted rows, i.e. a per-row mean; ``hard_weight = soft_weight = 1`` is the paper's "gold CE + generated KL".
``class_weights`` weight each gold row's CE by its class (balanced weights average to 1 over the gold rows, so the
scale stays); soft rows are not reweighted: their class mass is the teacher's.

``kd_formulation``:

* ``"standard"`` (Hinton et al.): teacher logits = log(teacher_probs), both sides divided by T,
  KL(softmax(t/T) || softmax(s/T)) * T^2, batchmean. The T^2 keeps gradient magnitudes comparable across T.
* ``"reference"`` (the data-selection paper's code): only the student's logits are divided by T, the teacher's
  probabilities are used as they are, no T^2, batchmean, i.e. KL(p || softmax(s/T)).

Gradient accumulation (checked against transformers 5.23 ``trainer.py``): the Trainer counts ``num_items_in_batch``
over *all* accumulated micro-batches as ``labels != -100``, which misses soft rows, and only when the model accepts
loss kwargs. So ``get_batch_samples`` is overridden to count the counted rows over the accumulated batches; the loss
is a sum divided by that count and ``loss_is_scaled_for_ga = True`` tells ``training_step`` not to divide again. That is
exact even when micro-batches hold different numbers of counted rows (a per-micro-batch mean with
``loss_is_scaled_for_ga = False`` is only exact when every micro-batch counts the same number of rows).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from ..config.student import KD_FORMULATIONS
from .card import student_card
from .card_data import StudentCardData

__all__ = [
    "DistillationConfig",
    "DistillationTrainer",
    "DistillationCollator",
    "prepare_distillation_dataset",
    "kd_loss",
    "DISTILL_COLUMNS",
]

DISTILL_COLUMNS = ("labels", "teacher_probs", "is_soft")


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.5,
            formulation: str = "standard") -> torch.Tensor:
    """Per-row KL(teacher || student), shape (B,); the mean of it is torch's ``batchmean``."""
    T = float(temperature)
    log_q = F.log_softmax(student_logits.float() / T, dim=-1)
    p = teacher_probs.float()
    if formulation == "standard":
        # Re-soften the teacher: softmax(log(p) / T) is proportional to p ** (1 / T). Clamp so log(0) stays finite.
        log_p = F.log_softmax(p.clamp_min(1e-12).log() / T, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1) * (T * T)
    if formulation == "reference":
        # xlogy gives 0 * log 0 = 0, as nn.KLDivLoss does for zero targets.
        return (torch.special.xlogy(p, p) - p * log_q).sum(-1)
    raise ValueError(f"kd_formulation must be one of {KD_FORMULATIONS}, got {formulation!r}")


@dataclass
class DistillationConfig(TrainingArguments):
    """`TrainingArguments` plus the distillation knobs (TRL's XConfig pattern).

    ``remove_unused_columns`` defaults to False so ``teacher_probs``/``is_soft`` reach ``compute_loss`` (use
    `prepare_distillation_dataset` to drop string columns), and ``label_names`` to ``["labels"]`` so evaluation returns
    only the gold labels, never the teacher columns.
    """

    distill_temperature: float = field(default=1.5, metadata={"help": "KD temperature T (> 0)."})
    soft_weight: float = field(default=1.0, metadata={"help": "Weight of the KL term (soft rows)."})
    hard_weight: float = field(default=1.0, metadata={"help": "Weight of the CE term (gold rows)."})
    kd_formulation: str = field(default="standard", metadata={"help": "'standard' (Hinton, T^2) or 'reference'."})
    class_weights: list[float] | None = field(default=None, metadata={
        "help": "Per-class weights of the CE on gold rows (e.g. models.training.balanced_class_weights)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep teacher_probs/is_soft columns."})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "Gold label keys."})

    def __post_init__(self):
        super().__post_init__()
        if self.kd_formulation not in KD_FORMULATIONS:
            raise ValueError(f"kd_formulation must be one of {KD_FORMULATIONS}, got {self.kd_formulation!r}")
        if self.distill_temperature <= 0:
            raise ValueError("distill_temperature must be > 0")


class DistillationCollator:
    """`DataCollatorWithPadding` for the model inputs; stacks ``teacher_probs`` (float) and ``is_soft`` (long).

    The teacher columns are pulled out before ``tokenizer.pad`` so padding never touches them. Rows lacking them get
    zeros / ``is_soft=0`` (gold rows).
    """

    def __init__(self, tokenizer, **pad_kwargs):
        self.pad = DataCollatorWithPadding(tokenizer, **pad_kwargs)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = [dict(f) for f in features]
        probs = [f.pop("teacher_probs", None) for f in features]
        soft = [f.pop("is_soft", 0) for f in features]
        batch = self.pad(features)
        width = next((len(p) for p in probs if p is not None), None)
        if width is not None:
            batch["teacher_probs"] = torch.tensor(
                [list(p) if p is not None else [0.0] * width for p in probs], dtype=torch.float32)
        batch["is_soft"] = torch.tensor([int(s or 0) for s in soft], dtype=torch.long)
        return batch


def prepare_distillation_dataset(ds, tokenizer, text_columns: str | Sequence[str], max_length: int = 128):
    """Tokenise ``text_columns`` (one column, or two for pairs) and keep only model inputs + `DISTILL_COLUMNS`.

    A ``label`` column is renamed ``labels``. Everything else (strings, ids, metadata) is dropped so the Trainer can
    run with ``remove_unused_columns=False``.
    """
    cols = [text_columns] if isinstance(text_columns, str) else list(text_columns)
    if not 1 <= len(cols) <= 2:
        raise ValueError("text_columns must name one or two columns")
    if "label" in ds.column_names and "labels" not in ds.column_names:
        ds = ds.rename_column("label", "labels")

    def tok(batch):
        return tokenizer(*[batch[c] for c in cols], truncation=True, max_length=max_length)

    before = set(ds.column_names)
    ds = ds.map(tok, batched=True)
    keep = set(tokenizer.model_input_names) | set(DISTILL_COLUMNS) | (set(ds.column_names) - before)
    return ds.remove_columns([c for c in ds.column_names if c not in keep])


def _counted_rows(batch: dict[str, Any]) -> torch.Tensor:
    """Mask of rows that enter the loss: soft rows, plus hard rows with a label != -100."""
    labels = batch.get("labels")
    n = labels.shape[0] if labels is not None else batch["is_soft"].shape[0]
    soft = batch["is_soft"].bool() if "is_soft" in batch else torch.zeros(n, dtype=torch.bool)
    hard = labels.ne(-100) if labels is not None else torch.zeros(n, dtype=torch.bool, device=soft.device)
    return soft | hard.to(soft.device)


class DistillationTrainer(Trainer):
    """`Trainer` whose loss is CE on gold rows + KL to teacher soft labels on synthetic rows (see module docstring).

    Train/evaluate/save/resume/PEFT are the stock Trainer's; only the loss, the row count for gradient
    accumulation and the model card change. Needs a `DistillationConfig`. ``card_data`` (a `StudentCardData`) is what
    `create_model_card` (and so ``push_to_hub``) renders; None: a minimal one built from the trainer itself.
    """

    # compute_loss divides by the counted rows of the whole accumulated batch (see get_batch_samples).
    loss_is_scaled_for_ga = True

    def __init__(self, model=None, args: DistillationConfig | None = None, data_collator=None, train_dataset=None,
                 eval_dataset=None, processing_class=None, card_data: StudentCardData | None = None, **kwargs):
        if args is None:
            args = DistillationConfig(output_dir="tmp_trainer")
        if not isinstance(args, DistillationConfig):
            raise TypeError("DistillationTrainer needs a DistillationConfig (it keeps the teacher columns)")
        if data_collator is None and processing_class is not None and hasattr(processing_class, "pad"):
            data_collator = DistillationCollator(processing_class)
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        self.card_data = card_data

    def create_model_card(self, language: str | None = None, license: str | None = None,
                          tags: str | list[str] | None = None, model_name: str | None = None,
                          finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                          dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                          dataset_args: str | list[str] | None = None) -> None:
        """Write ``README.md`` in ``args.output_dir``: the distillation card (loss, KD settings, citations) that
        ``crossaug train`` writes too, instead of the Trainer's generic draft (TRL's trainers do the same).

        The arguments are `transformers.Trainer.create_model_card`'s (``push_to_hub`` passes them on); each given
        one overrides ``card_data``'s field. ``tasks``, ``dataset_tags`` and ``dataset_args`` are accepted and
        ignored: the card's task and metrics come from the card data.
        """
        if not self.is_world_process_zero():
            return
        data = self.card_data or StudentCardData.from_trainer(self, model_name)
        listed = (lambda v: [v] if isinstance(v, str) else list(v or []))
        given = {"language": language, "license": license, "model_name": model_name, "datasets": listed(dataset),
                 "tags": [*data.tags, *(t for t in listed(tags) if t not in data.tags)],
                 "base_model": {**data.base_model, "hub_id": finetuned_from} if finetuned_from else None}
        data = replace(data, **{k: v for k, v in given.items() if v})
        os.makedirs(self.args.output_dir, exist_ok=True)
        student_card(data).save(os.path.join(self.args.output_dir, "README.md"))

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Replace the Trainer's ``labels != -100`` count by the counted rows (soft rows included) of all batches."""
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples:
            return batch_samples, None
        count = sum(_counted_rows(b).sum().to(device) for b in batch_samples)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()  # compute_loss multiplies back by num_processes
        return batch_samples, count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        teacher_probs = inputs.pop("teacher_probs", None)
        is_soft = inputs.pop("is_soft", None)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        n, device = logits.shape[0], logits.device

        soft = is_soft.to(device).bool() if is_soft is not None else torch.zeros(n, dtype=torch.bool, device=device)
        hard = ~soft & (labels.to(device).ne(-100) if labels is not None else torch.zeros_like(soft))
        zero = logits.new_zeros(n, dtype=torch.float32)

        ce = zero
        if hard.any():
            safe_labels = torch.where(hard, labels.to(device), torch.zeros_like(labels.to(device)))
            weight = None if self.args.class_weights is None else logits.new_tensor(self.args.class_weights).float()
            ce = torch.where(hard, F.cross_entropy(logits.float(), safe_labels, weight=weight, reduction="none"), zero)
        kl = zero
        if soft.any():
            if teacher_probs is None:
                raise ValueError("rows with is_soft=1 need a teacher_probs column")
            # Hard rows' teacher_probs may be anything (NaN included): swap in uniform so no NaN reaches the graph.
            uniform = torch.full_like(teacher_probs, 1.0 / teacher_probs.shape[-1]).to(device)
            probs = torch.where(soft[:, None], teacher_probs.to(device).float(), uniform)
            per_row = kd_loss(logits, probs, self.args.distill_temperature, self.args.kd_formulation)
            kl = torch.where(soft, per_row, zero)

        total = self.args.hard_weight * ce.sum() + self.args.soft_weight * kl.sum()
        if model.training and num_items_in_batch is not None:
            # Sum / rows counted across every accumulated micro-batch (and device): exact under GA.
            loss = total / torch.as_tensor(num_items_in_batch, device=device).clamp_min(1)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        else:
            # Evaluation (or a direct call): per-row mean of this batch.
            loss = total / (soft | hard).sum().clamp_min(1)
        return (loss, outputs) if return_outputs else loss

"""What the teacher and every student share: epoch-selected `Trainer` settings, the precision they run in, and
batched prediction."""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import torch

from .resolve import native_dtype


def training_dtype(name: str) -> str:
    """``"auto"`` -> ``"bfloat16"`` where the device training runs on (the GPU when there is one, like the Trainer)
    computes bf16 natively, else ``"float32"``; other names pass through (`native_dtype`)."""
    return native_dtype(name, "cuda" if torch.cuda.is_available() else "cpu")


def cpu_only(dtype: str) -> bool:
    """``TrainingArguments.use_cpu`` where there is no CUDA GPU and it matters: the Trainer refuses bf16 on a CPU
    without it, and processes started by ``accelerate launch --multi_gpu`` / ``torchrun`` only join one gloo
    DDP group with it (else each trains alone); left off otherwise, so a Mac keeps its MPS device."""
    if torch.cuda.is_available():
        return False
    return dtype == "bfloat16" or int(os.environ.get("WORLD_SIZE", "1")) > 1


def epoch_selection_args(output_dir: str, epochs: int, learning_rate: float, batch_size: int, seed: int,
                         class_balance: bool = False, dtype: str = "float32", **overrides) -> dict:
    """`TrainingArguments` fields for "evaluate and save each epoch, keep the best by dev accuracy" (by dev
    macro-F1 with ``class_balance``: accuracy on an English dev set rewards never predicting its rare class).
    ``dtype="bfloat16"`` trains under the Trainer's own bf16 autocast (weights and optimizer stay fp32), on a
    CPU too."""
    return dict(
        output_dir=output_dir, num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="epoch", save_only_model=True, save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="macro_f1" if class_balance else "accuracy",
        seed=seed, data_seed=seed, bf16=dtype == "bfloat16",
        use_cpu=cpu_only(dtype),
        report_to=[], logging_strategy="epoch", disable_tqdm=False, dataloader_pin_memory=torch.cuda.is_available(),
    ) | overrides


def balanced_class_weights(labels, num_labels: int) -> list[float]:
    """scikit-learn's ``class_weight="balanced"``: n / (classes present * count) per class over the labelled rows
    (-100 skipped), so the weights average to 1 over those rows and every class counts as much in the loss. Why:
    the English data's class mix is not the target's (SST-3 is 19% neutral, MahaSent mr 36%, IITP hi 49%), and a
    teacher or student trained on the English mix learns to never predict its rare class. Absent classes get 0."""
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y[y >= 0], minlength=num_labels).astype(np.float64)
    present = int((counts > 0).sum())
    return [float(counts.sum() / (present * c)) if c else 0.0 for c in counts]


class WeightedCrossEntropy:
    """``Trainer(compute_loss_func=...)``: class-weighted cross-entropy, summed and divided by the labelled rows
    (of the whole accumulated batch while training), i.e. a per-row mean like the model's own loss."""

    def __init__(self, weights: list[float]):
        self.weights = torch.tensor(weights, dtype=torch.float32)

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = (outputs["logits"] if isinstance(outputs, dict) else outputs[0]).float()
        loss = torch.nn.functional.cross_entropy(logits, labels, weight=self.weights.to(logits.device),
                                                 reduction="sum")
        count = labels.ne(-100).sum() if num_items_in_batch is None else num_items_in_batch
        return loss / torch.as_tensor(count, device=logits.device).clamp_min(1)


def writes_output(trainer) -> bool:
    """Whether this process writes the output folder, once every process is done with the checkpoints: the only
    process, or rank 0 under `accelerate launch` (the others may still be loading the best one)."""
    trainer.accelerator.wait_for_everyone()
    return trainer.is_world_process_zero()


def on_accelerator(model):
    """``model`` on the GPU when there is one (training and labelling follow the Trainer there), else as is."""
    return model.cuda() if torch.cuda.is_available() else model


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[list[str]], max_length: int = 128, batch_size: int = 64,
                   dtype: str = "float32") -> np.ndarray:
    """Logits of a sequence classifier over parallel text columns ``texts`` (one list per column),
    batched in length order so padding stays small, returned in the input order; ``dtype="bfloat16"``
    under autocast, as the model was trained."""
    model.eval()
    n = len(texts[0]) if texts else 0
    order = np.argsort([sum(len(t[i]) for t in texts) for i in range(n)], kind="stable")
    device = next(model.parameters()).device
    out = None
    for b in range(0, n, batch_size):
        idx = order[b: b + batch_size]
        enc = tokenizer(*[[t[i] for i in idx] for t in texts], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = model(**enc).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((n, logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, model.config.num_labels), dtype=np.float32)


@contextmanager
def one_line_load_errors(name: str):
    """``from_pretrained``'s OSError (missing folder, unknown Hub id, no network) as a one-line ValueError."""
    try:
        yield
    except OSError as exc:
        raise ValueError(f"cannot load model {name!r}: {str(exc).strip().splitlines()[0]}") from None

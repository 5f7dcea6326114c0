"""LoRA fine-tuning of a causal LM on prompt -> answer pairs, and scoring answers by their likelihood.

Two seed methods fine-tune the LLM instead of a classifier: DAFTT (arXiv 2310.01119) tunes the generator
on a small labelled subset in an instruction format before it annotates or generates, and
Self-Translate-Train (arXiv 2407.00454) tunes the LLM itself on source data plus its own translations.
Both go through :func:`finetune_lora`: the standard ``Trainer`` on a peft LoRA model with the loss on the
answer tokens only (prompt tokens are labelled -100). The adapter is saved as safetensors in the work
folder under a fingerprint of (base model, config, training rows), so a rerun reuses it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ..config.finetune import FinetuneConfig
from ..models.resolve import ModelRef, resolve_model
from ..utils.fingerprint import content_fingerprint, file_sha256, fingerprint
from ..utils.logging import trainer_progress

DONE_FILE = "crossaug_adapter.json"
ADAPTER_FILE = "adapter_model.safetensors"


@dataclass
class Adapter:
    """A trained LoRA adapter on disk and what a card says about it."""

    path: Path
    info: dict  # base model, sha256 of the safetensors file, LoRA r/alpha/targets, rows, epochs, loss

    def card_fields(self) -> dict:
        return {"path": str(self.path), **self.info}


def answer_text(value: str) -> str:
    """How an answer follows its prompt in training and scoring: one space, the value, a newline (the
    generate stage stops at the newline)."""
    return f" {value}\n"


def encode_pair(tokenizer, prompt: str, answer: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + answer and the answer's length. The prompt is encoded alone (as at generation
    time, special tokens included) and cut from the left when too long; the answer is never cut."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    keep = max(1, max_length - len(answer_ids))
    return prompt_ids[-keep:] + answer_ids, len(answer_ids)


def tokenize_pairs(rows: Dataset, tokenizer, max_length: int) -> Dataset:
    """``prompt``/``answer`` rows -> ``input_ids``, ``attention_mask`` and ``labels`` (-100 on the prompt)."""
    data = {"input_ids": [], "attention_mask": [], "labels": []}
    for prompt, answer in zip(rows["prompt"], rows["answer"]):
        ids, n = encode_pair(tokenizer, prompt, answer, max_length)
        data["input_ids"].append(ids)
        data["attention_mask"].append([1] * len(ids))
        data["labels"].append([-100] * (len(ids) - n) + ids[-n:])
    return Dataset.from_dict(data)


def load_causal_lm(ref: ModelRef, revision: str | None = None, dtype: torch.dtype = torch.float32):
    """Tokenizer (with a pad token) and model of a resolved causal LM, from safetensors only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rev = revision if ref.path == ref.name else None
    tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=rev)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(ref.path, revision=rev, dtype=dtype, use_safetensors=True)
    return tokenizer, model


def finetune_lora(rows: Dataset, config: FinetuneConfig, work_dir: str | Path, default_model: str,
                  desc: str = "lora") -> Adapter:
    """LoRA-tune (or reuse a cached adapter for) the causal LM on ``rows`` (``prompt``, ``answer``)."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    if len(rows) == 0:
        raise ValueError("no rows to fine-tune the LLM on")
    ref = resolve_model(config.model, default_model, config.revision)
    fp = fingerprint(ref.provenance(), asdict(config), content_fingerprint(rows, ["prompt", "answer"]))
    out = Path(work_dir) / f"{desc}-{fp}"
    if (out / DONE_FILE).exists():
        return Adapter(out, json.loads((out / DONE_FILE).read_text()))

    tokenizer, model = load_causal_lm(ref, config.revision)
    torch.manual_seed(config.seed)
    model = get_peft_model(model, LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                             target_modules=list(config.target_modules), task_type="CAUSAL_LM"))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = TrainingArguments(
        output_dir=str(tmp / "trainer"), num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, save_strategy="no", logging_strategy="epoch",
        report_to=[], seed=config.seed, data_seed=config.seed, disable_tqdm=False,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, processing_class=tokenizer,
                      train_dataset=tokenize_pairs(rows, tokenizer, config.max_length),
                      data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
    trainer_progress(trainer, desc)
    result = trainer.train()
    model.save_pretrained(str(tmp), safe_serialization=True)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    info = {"base_model": ref.provenance(), "sha256": file_sha256(tmp / ADAPTER_FILE), "r": config.r,
            "alpha": config.alpha, "dropout": config.dropout, "target_modules": list(config.target_modules),
            "training_rows": len(rows), "epochs": config.epochs, "learning_rate": config.learning_rate,
            "train_loss": round(float(result.training_loss), 4)}
    (tmp / DONE_FILE).write_text(json.dumps(info, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the adapter folder appears complete or not at all
    return Adapter(out, info)


@torch.inference_mode()
def answer_logprobs(model, tokenizer, prompts: list[str], answers: list[str], max_length: int = 256,
                    batch_size: int = 8) -> np.ndarray:
    """``[i, j]`` = log-likelihood of ``answers[j]`` after ``prompts[i]`` (sum over the answer's tokens).

    Sequences are left-padded with explicit position ids, so only the last (longest answer + 1) positions'
    logits are computed: a 262k-token vocabulary makes full logits the largest cost.
    """
    pairs = [encode_pair(tokenizer, p, a, max_length) for p in prompts for a in answers]
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    scores = np.zeros(len(pairs), dtype=np.float64)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for b in range(0, len(order), batch_size):
        idx = order[b: b + batch_size]
        width = max(len(pairs[i][0]) for i in idx)
        keep = max(pairs[i][1] for i in idx) + 1
        ids = torch.tensor([[pad] * (width - len(pairs[i][0])) + pairs[i][0] for i in idx], device=device)
        mask = torch.tensor([[0] * (width - len(pairs[i][0])) + [1] * len(pairs[i][0]) for i in idx], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # predicts the last keep-1 tokens
        targets = ids[:, width - keep + 1:]
        token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(idx):
            n = pairs[i][1]
            scores[i] = token_lp[row, token_lp.shape[1] - n:].sum().item()
    return scores.reshape(len(prompts), len(answers))

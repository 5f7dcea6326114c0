"""DistillationTrainer: kd arithmetic, row routing, exactness under gradient accumulation, and the Trainer workflow."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from hf_crossaug.students.trainer import (
    DistillationCollator,
    DistillationConfig,
    DistillationTrainer,
    kd_loss,
    prepare_distillation_dataset,
)

T = 1.5
TEXTS = [
    "the movie was great",
    "the film was bad and i hated it",
    "what a wonderful day",
    "this is terrible service never again",
    "great acting good story nice music",
    "i am not sure how i feel about this",
    "dit is een goede film",
    "das war ein schlechter tag",
]
UNIFORMISH = [0.2, 0.3, 0.5]


def row(i, kind, label=0, probs=None):
    """kind: 'H' gold row, 'S' soft row, 'X' neither (label -100, not soft: must not count)."""
    return {
        "text": TEXTS[i % len(TEXTS)],
        "lang": "xx",  # extra string column the helper must drop
        "labels": label if kind == "H" else -100,
        "teacher_probs": probs or ([0.0, 0.0, 0.0] if kind != "S" else UNIFORMISH),
        "is_soft": int(kind == "S"),
    }


def make_ds(tok, kinds, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, k in enumerate(kinds):
        p = rng.dirichlet([1.0, 1.0, 1.0]).tolist()
        rows.append(row(i, k, label=int(rng.integers(0, 3)), probs=p if k == "S" else None))
    return prepare_distillation_dataset(Dataset.from_list(rows), tok, "text", max_length=32)


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, optim="sgd", learning_rate=0.5,
        lr_scheduler_type="constant", max_grad_norm=0.0, logging_steps=1, save_strategy="no",
        train_sampling_strategy="sequential", disable_tqdm=True, seed=0, per_device_train_batch_size=2,
    )
    base.update(kw)
    return DistillationConfig(**base)


def model_inputs(tok, batch):
    return {k: batch[k] for k in tok.model_input_names}


def batch_of(tok, ds):
    return DistillationCollator(tok)([ds[i] for i in range(len(ds))])


# 1. kd arithmetic --------------------------------------------------------------------------------------------------
def test_kd_loss_matches_hand_computation():
    s = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    q = softmax(s / T)  # student softened by T in both formulations
    pt = softmax(np.log(p) / T)  # standard: teacher re-softened, pt ~ p ** (1/T)
    standard = (pt * (np.log(pt) - np.log(q))).sum(-1) * T**2
    reference = (p * (np.log(p) - np.log(q))).sum(-1)  # teacher as is, no T^2

    st, tp = torch.tensor(s, dtype=torch.float32), torch.tensor(p, dtype=torch.float32)
    got_std = kd_loss(st, tp, T, "standard")
    got_ref = kd_loss(st, tp, T, "reference")
    assert got_std.shape == (2,)
    np.testing.assert_allclose(got_std.numpy(), standard, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_ref.numpy(), reference, rtol=1e-5, atol=1e-6)
    assert not np.allclose(standard, reference)
    # reference == torch's KLDivLoss(batchmean) on log_softmax(s/T) vs p
    torch.testing.assert_close(got_ref.mean(), F.kl_div(F.log_softmax(st / T, -1), tp, reduction="batchmean"))
    with pytest.raises(ValueError):
        kd_loss(st, tp, T, "nope")


# 3. masks route rows -----------------------------------------------------------------------------------------------
def test_masks_route_rows(tiny_tokenizer, tiny_classifier_factory, tmp_path):
    tok, model = tiny_tokenizer, tiny_classifier_factory().eval()
    kinds = ["H", "S", "H", "S", "S", "X"]
    ds = make_ds(tok, kinds)
    assert set(ds.column_names) == {*tok.model_input_names, "labels", "teacher_probs", "is_soft"}
    batch = batch_of(tok, ds)
    assert batch["teacher_probs"].dtype == torch.float32 and batch["is_soft"].dtype == torch.long
    tr = DistillationTrainer(model=model, args=config(tmp_path, hard_weight=0.5, soft_weight=2.0),
                             processing_class=tok)
    model_in = model_inputs(tok, batch)
    with torch.no_grad():
        logits = model(**model_in).logits
        loss = lambda b: tr.compute_loss(model, b)  # noqa: E731
        soft = batch["is_soft"].bool()
        hard = batch["labels"].ne(-100) & ~soft
        kl = kd_loss(logits, batch["teacher_probs"], T, "standard")
        ce = F.cross_entropy(logits, batch["labels"].clamp_min(0), reduction="none")

        sub = lambda m: {k: v[m] for k, v in batch.items()}  # noqa: E731
        tr.args.hard_weight = tr.args.soft_weight = 1.0
        torch.testing.assert_close(loss(sub(soft)), kl[soft].mean())
        torch.testing.assert_close(loss(sub(hard)), F.cross_entropy(logits[hard], batch["labels"][hard]))

        tr.args.hard_weight, tr.args.soft_weight = 0.5, 2.0
        expected = (0.5 * ce[hard].sum() + 2.0 * kl[soft].sum()) / (hard | soft).sum()  # 'X' row not counted
        mixed = loss(batch)
        torch.testing.assert_close(mixed, expected)

        # teacher_probs of hard rows (even NaN) and labels of soft rows are ignored
        b2 = {k: v.clone() for k, v in batch.items()}
        b2["teacher_probs"][~soft] = float("nan")
        b2["labels"][soft] = 2
        torch.testing.assert_close(loss(b2), mixed)

        tr.args.kd_formulation = "reference"
        ref = (0.5 * ce[hard].sum() + 2.0 * kd_loss(logits, batch["teacher_probs"], T, "reference")[soft].sum())
        torch.testing.assert_close(loss(batch), ref / (hard | soft).sum())

    # gradients stay finite with garbage in the masked teacher_probs
    model.train()
    tr.compute_loss(model, b2).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# 2. gradient accumulation is exact ---------------------------------------------------------------------------------
def _one_step(tok, factory, ds, tmp_path, bs, ga):
    model = factory()
    tr = DistillationTrainer(model=model, processing_class=tok, train_dataset=ds,
                             args=config(tmp_path, per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                                         max_steps=1))
    out = tr.train()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return params, tr.state.log_history[0]["loss"], out.training_loss


# [H X | S S]: micro-batches count 1 and 2 rows (a per-micro-batch mean / GA would weight them wrongly);
# [S H | H S | H]: unequal hard/soft mixes and a short last micro-batch.
@pytest.mark.parametrize("kinds", [["H", "X", "S", "S"], ["S", "H", "H", "S", "H"]])
def test_gradient_accumulation_matches_full_batch(tiny_tokenizer, tiny_classifier_factory, tmp_path, kinds):
    tok = tiny_tokenizer
    ds = make_ds(tok, kinds)
    n = len(kinds)
    p_ga, log_ga, tl_ga = _one_step(tok, tiny_classifier_factory, ds, tmp_path / "ga", 2, math.ceil(n / 2))
    p_full, log_full, tl_full = _one_step(tok, tiny_classifier_factory, ds, tmp_path / "full", n, 1)
    for name in p_full:
        assert torch.allclose(p_ga[name], p_full[name], atol=1e-6), name
    init = tiny_classifier_factory()
    assert any(not torch.equal(p_full[n_], p) for n_, p in init.named_parameters())  # a step did happen

    # the logged loss is the per-row mean of the whole effective batch, computed by hand on the initial model
    batch = batch_of(tok, ds)
    with torch.no_grad():
        logits = init(**model_inputs(tok, batch)).logits
    soft = batch["is_soft"].bool()
    hard = batch["labels"].ne(-100) & ~soft
    expected = (F.cross_entropy(logits[hard], batch["labels"][hard], reduction="sum")
                + kd_loss(logits, batch["teacher_probs"], T)[soft].sum()) / (hard | soft).sum()
    assert log_ga == pytest.approx(log_full, abs=1e-5)
    assert tl_ga == pytest.approx(tl_full, abs=1e-6)
    assert tl_full == pytest.approx(expected.item(), abs=1e-5)


# 4. Trainer workflow -----------------------------------------------------------------------------------------------
def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def gold_eval_ds(tok):
    rows = [{"text": t, "label": i % 3, "id": str(i)} for i, t in enumerate(TEXTS[:6])]
    return prepare_distillation_dataset(Dataset.from_list(rows), tok, ["text"], max_length=32)


def test_train_evaluate_save_reload_resume(tiny_tokenizer, tiny_classifier_factory, tmp_path):
    import shutil

    from transformers import AutoModelForSequenceClassification

    tok = tiny_tokenizer
    train = make_ds(tok, ["H", "S", "S", "H", "S", "H", "S", "S"])
    ev = gold_eval_ds(tok)
    assert set(ev.column_names) == {"labels", *tok.model_input_names}  # 'text'/'id' dropped, no teacher columns

    def trainer(out):
        args = config(out, num_train_epochs=2, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                      eval_strategy="epoch", save_strategy="steps", save_steps=2, learning_rate=0.1)
        return DistillationTrainer(model=tiny_classifier_factory(), processing_class=tok, train_dataset=train,
                                   eval_dataset=ev, compute_metrics=accuracy, args=args)

    tr = trainer(tmp_path / "run")
    out = tr.train()
    assert tr.state.global_step == 4 and math.isfinite(out.training_loss)
    metrics = tr.evaluate()
    assert {"eval_loss", "eval_accuracy"} <= set(metrics) and 0.0 <= metrics["eval_accuracy"] <= 1.0

    # eval_loss is the plain CE mean over the gold rows
    batch = batch_of(tok, ev)
    inputs = model_inputs(tok, batch)
    with torch.no_grad():
        logits = tr.model.eval()(**inputs).logits
    assert metrics["eval_loss"] == pytest.approx(F.cross_entropy(logits, batch["labels"]).item(), abs=1e-5)

    tr.save_model(str(tmp_path / "final"))
    reloaded = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "final")).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, logits)

    # resume: a fresh trainer whose latest checkpoint is step 2 ends where the uninterrupted run ended
    shutil.copytree(tmp_path / "run" / "checkpoint-2", tmp_path / "resume" / "checkpoint-2")
    resumed = trainer(tmp_path / "resume")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    for (name, a), b in zip(tr.model.named_parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_lora_model_trains_only_adapters(tiny_tokenizer, tiny_classifier_factory, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    tok = tiny_tokenizer
    # larger init so the query/key path carries gradient after a few steps; saved and reloaded from a path because a
    # model built from a config records base_model_name_or_path=None in the adapter config
    tiny_classifier_factory(initializer_range=0.5).save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base"))
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query", "value"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)

    tr = DistillationTrainer(model=model, processing_class=tok, train_dataset=make_ds(tok, ["H", "S", "S", "H"] * 2),
                             args=config(tmp_path / "out", max_steps=3))
    tr.train()
    for n, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        assert changed == (n in trainable), n
    tr.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


def test_class_weights_weight_gold_rows_only(tiny_tokenizer, tiny_classifier_factory, tmp_path):
    """``class_weights`` (``class_balance``): each gold row's CE times its class weight; soft rows unchanged."""
    tok, model = tiny_tokenizer, tiny_classifier_factory().eval()
    batch = batch_of(tok, make_ds(tok, ["H", "S", "H", "S", "H"]))
    weights = [0.5, 2.0, 1.0]
    tr = DistillationTrainer(model=model, args=config(tmp_path, class_weights=weights), processing_class=tok)
    with torch.no_grad():
        logits = model(**model_inputs(tok, batch)).logits
        soft = batch["is_soft"].bool()
        hard = ~soft
        ce = F.cross_entropy(logits, batch["labels"].clamp_min(0), reduction="none")
        w = torch.tensor(weights)[batch["labels"].clamp_min(0)]
        kl = kd_loss(logits, batch["teacher_probs"], T, "standard")
        expected = ((w * ce)[hard].sum() + kl[soft].sum()) / len(soft)
        torch.testing.assert_close(tr.compute_loss(model, batch), expected)
        tr.args.class_weights = None
        torch.testing.assert_close(tr.compute_loss(model, batch), (ce[hard].sum() + kl[soft].sum()) / len(soft))

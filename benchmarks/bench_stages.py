"""Throughput and peak memory of the teacher-labelling and student-training stages, and of a default build.

Each measurement runs in its own child process, so its peak resident memory is its own (sampled with
psutil over the process tree every 50 ms) and no stage inherits another's caches. Baselines, side by side:
- labelling: ours (`hf_crossaug.stages.teacher.predict_probs`: batches of 64, length-sorted) vs
  ``pipeline("text-classification")`` called once per pair, same model object;
- student training: `DistillationTrainer` on gold + soft-labelled rows vs the stock `Trainer` with
  cross-entropy on the same rows with hard labels (the cost of the KD loss), same model and batch;
- ``crossaug build xnli-sw-synth-small`` (the README's command) end to end: peak RSS (target < 4 GiB)
  and wall time per stage from its own timings.

    python benchmarks/bench_stages.py --rows 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNLI = HERE.parent.parent / "shared" / "data" / "snli" / "dev.jsonl"


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; its wall time, peak RSS of its process tree, and the JSON on its last stdout line."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {})})
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read().strip().splitlines()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    result = json.loads(out[-1]) if out and out[-1].startswith("{") else {}
    return {**result, "wall_s": round(time.perf_counter() - t, 1), "peak_rss_mib": round(peak / 2**20)}


def _data(rows: int):
    from hf_crossaug.stages.source import load_source
    from hf_crossaug.config.tasks import get_task
    NLI = get_task("nli")

    src = str(SNLI) if SNLI.exists() else None  # the packaged seed set when the shared data is absent
    return NLI, load_source(NLI, src, limit=rows if src else None, seed=0)


def _classifier(task):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossaug.models.resolve import ENCODER_DEFAULT, resolve_model

    ref = resolve_model(None, ENCODER_DEFAULT)
    tok = AutoTokenizer.from_pretrained(ref.path)
    model = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=task.num_labels,
                                                               use_safetensors=True)
    model.get_input_embeddings().weight.requires_grad_(False)
    return model, tok


def child_label(kind: str, rows: int) -> dict:
    import torch

    from hf_crossaug.stages.teacher import predict_probs

    task, ds = _data(rows)
    model, tok = _classifier(task)
    model.eval()
    t = time.perf_counter()
    if kind == "ours":
        predict_probs(model, tok, ds, task)
    else:
        from transformers import pipeline

        pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
        with torch.inference_mode():
            for p, h in zip(ds["premise"], ds["hypothesis"]):
                pipe({"text": p, "text_pair": h}, top_k=None)
    return {"rows": len(ds), "examples_per_s": round(len(ds) / (time.perf_counter() - t), 1)}


def child_train(kind: str, rows: int) -> dict:
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from hf_crossaug.students.trainer import DistillationConfig, DistillationTrainer, prepare_distillation_dataset

    task, gold = _data(rows)
    model, tok = _classifier(task)
    rng = np.random.default_rng(0)
    half = len(gold) // 2  # the second half plays the soft-labelled generations
    probs = rng.dirichlet(np.ones(task.num_labels), len(gold)).astype(np.float32)
    common = dict(output_dir=tempfile.mkdtemp(), num_train_epochs=1, per_device_train_batch_size=16,
                  learning_rate=5e-5, report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                  use_cpu=True, seed=0)
    if kind == "ours":
        ds = Dataset.from_dict({**{c: gold[c] for c in task.text_columns},
                                "label": [lab if i < half else -100 for i, lab in enumerate(gold["label"])],
                                "teacher_probs": probs.tolist(), "is_soft": [int(i >= half) for i in range(len(gold))]})
        trainer = DistillationTrainer(model=model, args=DistillationConfig(**common), processing_class=tok,
                                      train_dataset=prepare_distillation_dataset(ds, tok, task.text_columns))
    else:
        labels = [lab if i < half else int(probs[i].argmax()) for i, lab in enumerate(gold["label"])]
        ds = Dataset.from_dict({**{c: gold[c] for c in task.text_columns}, "labels": labels})
        ds = ds.map(lambda b: tok(*[b[c] for c in task.text_columns], truncation=True, max_length=128),
                    batched=True, remove_columns=list(task.text_columns))
        trainer = Trainer(model=model, args=TrainingArguments(**common), processing_class=tok, train_dataset=ds,
                          data_collator=DataCollatorWithPadding(tok))
    t = time.perf_counter()
    trainer.train()
    return {"rows": len(ds), "examples_per_s": round(len(ds) / (time.perf_counter() - t), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "stages.json"))
    args = ap.parse_args()
    if args.child:
        stage, kind = args.child
        print(json.dumps((child_label if stage == "label" else child_train)(kind, args.rows)))
        return
    me = [sys.executable, __file__, "--rows", str(args.rows), "--child"]
    res = {"machine": f"{os.cpu_count()} cores", "rows": args.rows, "stages": {}}
    for stage in ("label", "train"):
        for kind in ("ours", "baseline"):
            res["stages"][f"{stage}-{kind}"] = r = run_child([*me, stage, kind])
            print(f"{stage:5s} {kind:8s} {r['examples_per_s']:8.1f} ex/s  peak {r['peak_rss_mib']} MiB", flush=True)
        res["stages"][f"{stage}-speedup"] = round(res["stages"][f"{stage}-ours"]["examples_per_s"]
                                                  / res["stages"][f"{stage}-baseline"]["examples_per_s"], 2)
    if not args.skip_build:
        with tempfile.TemporaryDirectory() as tmp:
            crossaug = str(Path(sys.executable).with_name("crossaug"))
            r = run_child([crossaug, "build", "xnli-sw-synth-small", "-o", f"{tmp}/out", "--work-dir", f"{tmp}/work"])
            r["timings"] = json.loads(Path(f"{tmp}/out/crossaug_build.json").read_text())["timings"]
            res["stages"]["build-xnli-sw-synth-small"] = r
            print(f"build peak {r['peak_rss_mib']} MiB in {r['wall_s']} s: {r['timings']}", flush=True)
    Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""Issue #28, item 2: do length-grouped batches (``teacher.group_by_length``) hold the strong SST-3 teacher's
accuracy, and what do they save? Same 8,544 rows, dev set (SST-3 dev, 150 rows), seed, rate, epochs and bf16 as
section 2b's strong teacher; only the batch order changes. The plain teacher comes from 2b's work folder (its
cache key must match: the script says so), the grouped one is trained; both are scored zero-shot on every target
row (MahaSent mr, IITP hi, GLUECoS hi-en).

    python -m benchmarks.teacher_grouping --plain-work /work/bench28/work/mahasent-mr-synth --work /tmp/grouped
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.reproduce_models import teacher_correct  # noqa: E402
from hf_crossaug.config.source import SourceConfig  # noqa: E402
from hf_crossaug.config.tasks import get_task  # noqa: E402
from hf_crossaug.config.teacher import TeacherConfig  # noqa: E402
from hf_crossaug.stages.source import load_configured, load_source  # noqa: E402
from hf_crossaug.stages.teacher import train_teacher  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--plain-work", required=True, help="work folder holding section 2b's strong SST-3 teacher")
    p.add_argument("--work", required=True, help="where the grouped teacher is trained")
    p.add_argument("--out", default=str(HERE / "results" / "sentiment-teacher-group-by-length.json"))
    args = p.parse_args()
    task, data = get_task("sentiment"), Path(args.data)
    source = load_configured(task, SourceConfig(path=str(data / "sst3/train.jsonl"), limit=8544), 42)
    dev = load_configured(task, SourceConfig(path=str(data / "sst3/dev.jsonl"), limit=150))
    targets = {"mr": load_source(task, str(data / "mahasent/dev-mr.jsonl"), on_invalid="drop"),
               "hi": load_source(task, str(data / "iitp_product/dev-hi.jsonl")),
               "hi-en": load_source(task, str(data / "gluecos_sentiment/train-romanized.jsonl@train[:2000]"))}
    cfg = TeacherConfig(epochs=2, learning_rate=5e-5, batch_size=32, max_length=128, seed=42, source_limit=8544,
                        dtype="bfloat16")
    result = {}
    for name, config, work in (("plain", cfg, args.plain_work),
                               ("grouped", dataclasses.replace(cfg, group_by_length=True), args.work)):
        teacher = train_teacher(source, task, config, work, dev, "sst3/train.jsonl")
        info = json.loads((teacher.path / "teacher.json").read_text())
        predictions = teacher_correct(Path(work), info, task, targets, 128)
        acc = {k: round(100 * float(np.mean(np.asarray(v) == np.asarray(targets[k]["label"]))), 2)
               for k, v in predictions.items()}
        result[name] = {"teacher": teacher.path.name, "train_s": info["train_s"], "dev_history": info["dev_history"],
                        "best_epoch": info.get("best_epoch"), "zero_shot": {**acc, "avg": round(
                            float(np.mean(list(acc.values()))), 2)}}
        print(name, json.dumps(result[name]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

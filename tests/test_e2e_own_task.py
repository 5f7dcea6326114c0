"""End to end on a task that is in no package (4 news topics, defined only in tests/data/topic-sw-synth.yaml, its
source file in columns of its own): build, train, evaluate through the real CLI on the embedded models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_dataset

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["world", "sports", "business", "science"]


def crossaug(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, "-m", "hf_crossaug.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_own_task_builds_trains_and_evaluates(tmp_path):
    out, student = tmp_path / "topic", tmp_path / "student"
    crossaug("build", "tests/data/topic-sw-synth.yaml", "-o", out, "--work-dir", tmp_path / "work")
    raw = load_dataset(str(out), "raw", split="train", cache_dir=str(tmp_path / "cache"))
    assert raw.features["prompt_label"].names == LABELS and raw.features["teacher_label"].names == LABELS
    assert {"text", "teacher_probs"} <= set(raw.column_names) and len(raw) > 0
    assert all(len(p) == 4 for p in raw["teacher_probs"])
    build = json.loads((out / "crossaug_build.json").read_text())
    assert build["recipe"]["task"]["name"] == "news-topic"  # the record carries the whole spec
    card = (out / "README.md").read_text()
    assert all(label in card for label in LABELS) and "news-topic" in card

    crossaug("train", out, "--source", "tests/data/topic_headlines.csv", "-o", student,
             "--backend", "frozen-features", "--mode", "T-div-k")
    results = json.loads((student / "crossaug_student.json").read_text())
    assert results["labels"] == LABELS and results["task_spec"]["labels"]["science"] == "science and technology"
    # the target file has the source's column names (headline, topic): the dataset's mapping reads it
    crossaug("evaluate", student, "-t", "sw=tests/data/topic_sw_dev.csv", "--json", tmp_path / "eval.json")
    scores = json.loads((tmp_path / "eval.json").read_text())["scores"]
    assert scores["sw"]["n"] == 12 and 0.0 <= scores["sw"]["accuracy"] <= 1.0
    model_card = (student / "README.md").read_text()
    assert "news topic classifier (world, sports, business, science)" in model_card
    assert "accuracy (sw)" in model_card

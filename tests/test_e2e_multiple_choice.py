"""End to end on the embedded offline models, at tiny scale: `crossaug build xcopa-sw-synth` from the packaged
COPA-style seed set, then `crossaug train` (a multiple-choice e5 student) and `crossaug evaluate`."""

import json
import subprocess
import sys

import pytest
import torch
from datasets import load_dataset
from huggingface_hub import DatasetCard, ModelCard
from transformers import AutoModelForMultipleChoice, AutoTokenizer

from hf_crossaug.stages.source import load_source, seed_path
from hf_crossaug.config.tasks import get_task
COPA = get_task("copa")

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU


def crossaug(*args):
    proc = subprocess.run([sys.executable, "-m", "hf_crossaug.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_xcopa_recipe_builds_trains_and_evaluates(tmp_path):
    out, work = tmp_path / "xcopa", tmp_path / "work"
    proc = crossaug("build", "xcopa-sw-synth", "--source", "seed", "--per-class", "6", "--output", out,
                    "--work-dir", work)
    assert "built" in proc.stdout and "generations" in proc.stdout

    raw = load_dataset(str(out), "raw", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert 0 < len(raw) <= 6
    assert raw.features["label"].names == ["choice1", "choice2"]
    for row in raw:  # structural validation held for every kept item
        assert row["question"] in ("cause", "effect") and row["premise"] and row["choice1"] and row["choice2"]
        assert row["choice1"].lower() != row["choice2"].lower()
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["raw"]
    assert card.data.task_categories == ["multiple-choice"]
    for needle in ("embedded:smollm2-135m-instruct", "2305.14288", "fewshot.item", "example_format",
                   "What was the {question}?", "bad_question", "same_choices", "choices_swapped",
                   "hf_crossaug seed set (copa.jsonl)", "generation 42", "temperature=0.8"):
        assert needle in card.text, needle
    assert "Teacher" not in card.text  # no teacher in this method, and the card does not pretend otherwise

    student = tmp_path / "student"
    proc = crossaug("train", out, "--mode", "SRC+GEN", "--source", "seed", "--epochs", "1", "--batch-size", "8",
                    "--max-length", "64", "--output", student)
    assert "trained" in proc.stdout
    target = f"{seed_path(COPA)}@train[:12]"
    crossaug("evaluate", student, "--target", f"en={target}", "--json", tmp_path / "eval.json")
    saved = json.loads((student / "crossaug_student.json").read_text())
    assert saved["kind"] == "multiple-choice" and saved["task"] == "copa" and saved["language"] == "sw"
    assert saved["counts"]["generated"] == len(raw) and saved["base_model"]["name"] == "embedded:multilingual-e5-small"
    scores = json.loads((tmp_path / "eval.json").read_text())["scores"]
    # the reported accuracy is what the saved model actually scores: recomputed here, item by item, with
    # transformers directly on the (context, choice) pairs of the task (the student trained at max_length 64)
    rows = load_source(COPA, target)
    tokenizer = AutoTokenizer.from_pretrained(student)
    model = AutoModelForMultipleChoice.from_pretrained(student).eval()
    correct = 0
    for row in rows:
        first, second = COPA.pairs(row)
        enc = tokenizer(first, second, truncation=True, max_length=64, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0]
        correct += int(logits.argmax()) == row["label"]
    assert scores["en"]["n"] == len(rows) == 12
    assert scores["en"]["accuracy"] == pytest.approx(correct / 12, abs=1e-9), (scores["en"], correct)
    assert saved["evaluation"]["scores"]["en"]["accuracy"] == scores["en"]["accuracy"]
    card = ModelCard.load(student / "README.md")
    assert card.data.base_model == "intfloat/multilingual-e5-small"
    assert card.data.eval_results[0].metric_value == round(scores["en"]["accuracy"], 4)

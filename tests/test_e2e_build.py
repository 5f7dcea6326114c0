"""End to end: the real `crossaug build` command on the embedded offline models, at tiny scale."""

import json
import subprocess
import sys

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU


def test_crossaug_build_embedded(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, "-m", "hf_crossaug.cli", "build", "xnli-sw-synth-small", "--per-class", "3",
           "--k", "2", "--output", str(out), "--work-dir", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "built" in proc.stdout and "teacher" in proc.stdout  # the closing summary table

    # datasets 5.2 caches a local folder by its name + README configs only: a private cache dir keeps an
    # earlier run's "out" folder from being served instead of this one.
    cache = str(tmp_path / "hf-datasets-cache")
    raw = load_dataset(str(out), "raw", split="train", cache_dir=cache)
    assert 0 < len(raw) <= 9  # 3 premises x 3 labels, minus what cleaning dropped
    for config in ("top-k", "div-k"):
        ds = load_dataset(str(out), config, split="train", cache_dir=cache)
        assert ds.features["prompt_label"].names == ["entailment", "neutral", "contradiction"]
        counts = [sum(1 for v in ds["prompt_label"] if v == c) for c in range(3)]
        assert all(c <= 2 for c in counts) and sum(counts) == len(ds) > 0
        assert set(ds["selected_by"]) == {config}

    card = DatasetCard.load(out / "README.md")
    assert {c["config_name"] for c in card.data.configs} == {"raw", "rand-k", "top-k", "div-k", "amb-k", "easy-k"}
    text = card.text
    for needle in ("embedded:smollm2-135m-instruct", "embedded:multilingual-e5-small", "fewshot.item",
                   "temperature=0.8", "dev accuracy", "k = 2", "0.1.0", "generations", "wrong_format"):
        assert needle in text, needle
    stats = json.loads((out / "crossaug_build.json").read_text())
    assert len(stats["generator"]["revision"]) == 64  # sha256 of the packaged GGUF file

"""Metrics: plain functions against hand-computed numbers, and the `evaluate` wrappers against the functions."""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hf_crossaug.metrics import (
    METRIC_DIR,
    METRIC_NAMES,
    classification_scores,
    diversity_score,
    label_agreement,
    load_metric,
    per_language_scores,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# predictions / references / languages used by the hand computations below.
PREDS = [0, 1, 1, 0, 2, 2]
REFS = [0, 1, 0, 0, 2, 1]
LANGS = ["hi", "hi", "hi", "sw", "sw", "sw"]


# ---------------------------------------------------------------- classification


def test_classification_scores_by_hand():
    # Correct at rows 0, 1, 3, 4 -> 4/6.
    # class 0: TP=2 FP=0 FN=1 -> P=1, R=2/3, F1=0.8
    # class 1: TP=1 FP=1 FN=1 -> F1=0.5
    # class 2: TP=1 FP=1 FN=0 -> P=0.5, R=1, F1=2/3
    s = classification_scores(PREDS, REFS)
    assert s["n"] == 6
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_classification_scores_full_label_set_counts_absent_class_as_zero():
    s = classification_scores(PREDS, REFS, labels=[0, 1, 2, 3])
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3 + 0.0) / 4)
    assert s["accuracy"] == pytest.approx(4 / 6)


def test_classification_scores_rejects_bad_input():
    with pytest.raises(ValueError, match="has 2 items"):
        classification_scores([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        classification_scores([], [])


def test_per_language_scores_by_hand():
    # hi: preds [0,1,1] refs [0,1,0]: acc 2/3; F1 class0 = 2/3 (P=1,R=.5), class1 = 2/3 (P=.5,R=1) -> 2/3
    # sw: preds [0,2,2] refs [0,2,1]: acc 2/3; F1 class0 = 1, class1 = 0, class2 = 2/3 -> 5/9
    s = per_language_scores(PREDS, REFS, LANGS)
    assert list(s) == ["hi", "sw", "avg"]
    assert s["hi"] == pytest.approx({"accuracy": 2 / 3, "macro_f1": 2 / 3, "n": 3})
    assert s["sw"] == pytest.approx({"accuracy": 2 / 3, "macro_f1": 5 / 9, "n": 3})
    assert s["avg"] == pytest.approx({"accuracy": 2 / 3, "macro_f1": (2 / 3 + 5 / 9) / 2, "n": 6})


def test_per_language_avg_is_unweighted_over_languages():
    # 'a' has 3 rows all right, 'b' one row wrong: the average is 0.5, not 3/4.
    s = per_language_scores([1, 1, 1, 0], [1, 1, 1, 1], ["a", "a", "a", "b"])
    assert s["avg"]["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="languages"):
        per_language_scores([1, 0], [1, 1], ["a"])


# ---------------------------------------------------------------- diversity


def _brute_force_diversity(x: np.ndarray) -> float:
    dists = []
    for i, j in itertools.combinations(range(len(x)), 2):
        cos = float(x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
        dists.append(1.0 - cos)
    return float(np.mean(dists))


def test_diversity_exact_matches_double_loop():
    x = np.random.default_rng(1).normal(size=(50, 8)) + 0.5  # offset so the value is not trivially ~1
    r = diversity_score(x)
    assert r["method"] == "exact" and r["sample_size"] is None and r["n"] == 50
    assert r["diversity"] == pytest.approx(_brute_force_diversity(x), abs=1e-12)
    # Scaling rows must not matter: normalisation happens inside.
    scaled = x * np.random.default_rng(2).uniform(0.1, 10, size=(50, 1))
    assert diversity_score(scaled)["diversity"] == pytest.approx(r["diversity"], abs=1e-12)


def test_diversity_sample_approximates_exact_on_large_set():
    x = np.random.default_rng(3).normal(size=(5000, 16)).astype(np.float32) + 0.7
    auto = diversity_score(x)  # n > max_exact -> sampled
    assert auto["method"] == "sample" and auto["sample_size"] == 200_000 and auto["n"] == 5000
    exact = diversity_score(x, method="exact")
    assert exact["method"] == "exact" and exact["sample_size"] is None
    assert 0.1 < exact["diversity"] < 0.9  # a non-trivial value
    assert abs(auto["diversity"] - exact["diversity"]) < 0.01
    # Seeded: the same seed gives the same estimate, another seed a (slightly) different one.
    assert diversity_score(x)["diversity"] == auto["diversity"]
    assert diversity_score(x, seed=1)["diversity"] != auto["diversity"]


def test_diversity_identical_and_orthogonal_vectors():
    same = np.tile([[0.3, -1.2, 2.0]], (40, 1))
    assert diversity_score(same)["diversity"] == 0.0
    assert diversity_score(same, method="sample", sample_pairs=1000)["diversity"] == pytest.approx(0.0, abs=1e-12)
    assert diversity_score(np.eye(4))["diversity"] == pytest.approx(1.0)
    assert diversity_score(np.array([[1.0, 0.0], [-1.0, 0.0]]))["diversity"] == pytest.approx(2.0)


def test_diversity_edge_cases():
    assert math.isnan(diversity_score(np.ones((1, 3)))["diversity"])
    with pytest.raises(ValueError, match="2-D"):
        diversity_score(np.ones(3))
    with pytest.raises(ValueError, match="method"):
        diversity_score(np.ones((3, 3)), method="fast")


# ---------------------------------------------------------------- label agreement


def test_label_agreement_by_hand():
    prompt = [0, 0, 1, 1, 2, 2, 2, 2]
    teacher = [0, 1, 1, 1, 2, 2, 0, 2]
    r = label_agreement(prompt, teacher)
    assert r["n"] == 8
    assert r["agreement"] == pytest.approx(6 / 8)
    assert r["per_class"] == pytest.approx({0: 0.5, 1: 1.0, 2: 0.75})
    # Cohen's kappa: p_o = 6/8; marginals prompt (2,2,4)/8, teacher (2,3,3)/8
    # p_e = (2*2 + 2*3 + 4*3) / 64 = 22/64; kappa = (48/64 - 22/64) / (1 - 22/64) = 26/42
    assert r["cohen_kappa"] == pytest.approx(26 / 42)


def test_label_agreement_num_labels_lists_every_class():
    r = label_agreement([0, 1, 1], [0, 1, 0], num_labels=3)
    assert list(r["per_class"]) == [0, 1, 2]
    assert r["per_class"][0] == 1.0 and r["per_class"][1] == 0.5 and math.isnan(r["per_class"][2])
    # p_o = 2/3; p_e = (1*2 + 2*1) / 9 = 4/9; kappa = (2/3 - 4/9) / (5/9) = 2/5
    assert r["cohen_kappa"] == pytest.approx(0.4)
    single = label_agreement([1, 1], [1, 1])
    assert single["agreement"] == 1.0 and math.isnan(single["cohen_kappa"])  # kappa undefined, no warning


# ---------------------------------------------------------------- evaluate modules


@pytest.fixture(scope="session")
def offline_evaluate(tmp_path_factory):
    """evaluate switched to offline mode, with its module cache in a temporary folder (one per session:
    evaluate imports cached modules through a single top-level package)."""
    import evaluate

    mp = pytest.MonkeyPatch()
    mp.setenv("HF_EVALUATE_OFFLINE", "1")
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    # evaluate reads the variables at import time, so set its config too.
    mp.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    mp.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path_factory.mktemp("hf_modules"))
    yield tmp_path_factory.mktemp("metric_cache")
    mp.undo()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open an internet socket fails the test."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def load(offline_evaluate, no_network):
    def _load(name):
        module = load_metric(name, cache_dir=str(offline_evaluate))
        assert type(module).__module__.startswith("evaluate_modules.metrics.")  # the copied module file
        return module

    return _load


def test_metric_dir_layout():
    assert METRIC_DIR == Path(__file__).resolve().parents[1] / "hf_crossaug" / "metrics"
    for name in METRIC_NAMES:
        assert (METRIC_DIR / name / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="unknown metric"):
        load_metric("accuracy")


def test_crossaug_accuracy_module_matches_functions(load):
    metric = load("crossaug_accuracy")
    assert "macro-F1" in metric.description
    assert metric.citation.strip().startswith("@")
    assert metric.compute(predictions=PREDS, references=REFS) == pytest.approx(classification_scores(PREDS, REFS))

    result = metric.compute(predictions=PREDS, references=REFS, languages=LANGS, labels=[0, 1, 2, 3])
    overall = classification_scores(PREDS, REFS, labels=[0, 1, 2, 3])
    per_lang = per_language_scores(PREDS, REFS, LANGS, labels=[0, 1, 2, 3])
    expected = dict(overall)
    for lang in ("hi", "sw", "avg"):
        expected[f"accuracy_{lang}"] = per_lang[lang]["accuracy"]
        expected[f"macro_f1_{lang}"] = per_lang[lang]["macro_f1"]
    assert result == pytest.approx(expected)

    # Incremental use, as in an evaluation loop.
    for p, r in zip(PREDS, REFS):
        metric.add(predictions=p, references=r)
    assert metric.compute()["accuracy"] == pytest.approx(4 / 6)


def test_diversity_module_matches_function(load):
    metric = load("diversity")
    assert "2407.10582" in metric.citation
    x = np.random.default_rng(4).normal(size=(60, 12)).astype(np.float32) + 0.3
    plain = diversity_score(x)
    assert metric.compute(embeddings=x.tolist()) == pytest.approx(
        {"diversity": plain["diversity"], "n": 60, "exact": 1, "sample_size": 0}
    )
    sampled = metric.compute(embeddings=list(x), method="sample", sample_pairs=5000, seed=7)
    plain_sampled = diversity_score(x, method="sample", sample_pairs=5000, seed=7)
    assert sampled == pytest.approx(
        {"diversity": plain_sampled["diversity"], "n": 60, "exact": 0, "sample_size": 5000}
    )


def test_label_agreement_module_matches_function(load):
    metric = load("label_agreement")
    assert "2407.10582" in metric.citation
    prompt = [0, 0, 1, 1, 2, 2, 2, 2]
    teacher = [0, 1, 1, 1, 2, 2, 0, 2]
    plain = label_agreement(prompt, teacher, num_labels=4)
    result = metric.compute(predictions=teacher, references=prompt, num_labels=4)
    assert math.isnan(result.pop("agreement_3"))
    assert result == pytest.approx(
        {
            "agreement": plain["agreement"],
            "cohen_kappa": plain["cohen_kappa"],
            "n": 8,
            "agreement_0": 0.5,
            "agreement_1": 1.0,
            "agreement_2": 0.75,
        }
    )


def test_modules_load_in_a_fresh_offline_process(tmp_path):
    """evaluate reads HF_EVALUATE_OFFLINE at import: prove loading by path works with it set from the start."""
    code = (
        "import json\n"
        "from hf_crossaug.metrics import load_metric\n"
        "out = {\n"
        "  'acc': load_metric('crossaug_accuracy').compute(predictions=[0, 1], references=[0, 0])['accuracy'],\n"
        "  'div': load_metric('diversity').compute(embeddings=[[1.0, 0.0], [0.0, 1.0]])['diversity'],\n"
        "  'agr': load_metric('label_agreement').compute(predictions=[1, 1], references=[1, 0])['agreement'],\n"
        "}\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ)
    env.update(
        HF_EVALUATE_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"acc": 0.5, "div": 1.0, "agr": 0.5}

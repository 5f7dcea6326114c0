"""The reproduction benchmark's pieces: its CLI entry, the feature-head student, the significance test."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from datasets import Dataset
from typer.testing import CliRunner

from hf_crossaug.cli import app
from hf_crossaug.config.tasks import SENTIMENT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import feature_student  # noqa: E402
import reproduce  # noqa: E402


def test_cli_bench_reproduce_forwards_arguments_to_the_script():
    res = CliRunner().invoke(app, ["bench", "reproduce", "--help"])
    assert res.exit_code == 0
    assert "--per-class" in res.output and "--seeds" in res.output


def test_feature_head_learns_with_the_distillation_trainer():
    """Gold rows (CE) and soft rows (KL) both move a plain nn.Module head through DistillationTrainer."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 3
    y = rng.integers(0, 3, 240)
    x = (centers[y] + rng.normal(size=(240, 16))).astype(np.float32)
    soft = np.arange(240) >= 120
    probs = np.eye(3, dtype=np.float32)[y] * 0.9 + 0.1 / 3
    rows = Dataset.from_dict({"label": np.where(soft, -100, y), "teacher_probs": probs, "is_soft": soft.astype(int)})
    dev = Dataset.from_dict({"label": y[:60]})
    head = feature_student.train_head(x, rows, x[:60], dev, SENTIMENT, seed=0, epochs=5, batch_size=32)
    assert (feature_student.predict(head, x) == y).mean() > 0.9


def test_permutation_test_separates_real_and_null_differences():
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.6).astype(float)
    b = (rng.random(2000) < 0.5).astype(float)
    assert reproduce.permutation_p(a, b, 2000) < 0.01
    assert reproduce.permutation_p(a, a, 2000) == 1.0
    assert reproduce.permutation_p(a, rng.permutation(a), 2000) > 0.05


class CountingEmbedder:
    """Stands in for SentenceEmbedder: deterministic vectors, counts what it was asked to encode."""

    def __init__(self):
        self.encoded = []

    def __call__(self, texts):
        self.encoded += texts
        return np.stack([np.full(4, len(t), dtype=np.float32) for t in texts])


def test_feature_cache_persists_so_a_rerun_encodes_only_new_texts(tmp_path):
    first = CountingEmbedder()
    cache = feature_student.FeatureCache(first, tmp_path / "features")
    want = cache.encode(["a", "bb", "a"])
    assert first.encoded == ["a", "bb"]  # each distinct text once
    cache.save()

    second = CountingEmbedder()
    again = feature_student.FeatureCache(second, tmp_path / "features")
    np.testing.assert_array_equal(again.encode(["a", "bb", "a"]), want)
    assert second.encoded == []
    again.encode(["ccc", "a"])
    assert second.encoded == ["ccc"]


def test_each_task_has_its_own_default_scale_and_flags_override_it():
    args = reproduce.parse_args(["--k", "7"])
    nli = reproduce.task_args(args, reproduce.TASKS["nli"])
    sentiment = reproduce.task_args(args, reproduce.TASKS["sentiment"])
    assert (nli.k, sentiment.k) == (7, 7)  # given on the command line: both tasks
    assert (nli.per_class, sentiment.per_class) == (400, 120)  # not given: each task's own
    assert nli.target_limit is None and sentiment.target_limit == 1500
    assert reproduce.task_args(reproduce.parse_args(["--target-limit", "0"]), reproduce.TASKS["sentiment"]).target_limit is None


def test_permutation_p_agrees_with_scipy():
    from scipy.stats import permutation_test

    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.55).astype(float)
    b = (rng.random(300) < 0.5).astype(float)
    ref = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                           vectorized=True, n_resamples=20_000, rng=np.random.default_rng(0)).pvalue
    assert abs(reproduce.permutation_p(a, b, 20_000) - ref) < 0.02

"""Self-training of the teacher (`TeacherConfig.self_training_rounds`): which generations a round adds, and a
tiny build that retrains and relabels while reusing the plain build's generations and first teacher."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from huggingface_hub import DatasetCard
from test_build_tiny import tiny_recipe

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.stages.teacher import self_training_rows

LABELS = ClassLabel(names=["negative", "neutral", "positive"])


def raw_rows(folder: Path) -> Dataset:
    return Dataset.from_parquet([str(f) for f in sorted((folder / "data" / "raw").glob("train-*.parquet"))])


def test_a_round_adds_the_generations_teacher_and_prompt_agree_on_k_per_class_with_that_label():
    probs = [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.8, 0.1, 0.1]]
    raw = Dataset.from_dict({
        "id": [f"g{i}" for i in range(6)], "text": ["sw0", "sw1", "sw2", "sw3", "sw4", "sw5"],
        "prompt_label": [0, 0, 2, 2, 2, 1],  # g2 and g5 disagree with the teacher: never added
        "teacher_label": [int(np.argmax(p)) for p in probs], "teacher_probs": probs,
    }, features=Features({"id": Value("string"), "text": Value("string"), "prompt_label": LABELS,
                          "teacher_label": Value("int64"), "teacher_probs": [Value("float32")]}))
    view = Dataset.from_dict({"text": [f"en{i}" for i in range(6)]})  # what the teacher reads (translating routes)
    source = Dataset.from_dict({"text": ["gold"], "label": [1]}, features=Features({"text": Value("string"),
                                                                                    "label": LABELS}))
    rows = self_training_rows(raw, view, source, k=1)
    assert rows.features == source.features
    assert list(zip(rows["text"], rows["label"])) == [("en0", 0), ("en3", 2)]  # surest agreeing row of each class
    assert sorted(self_training_rows(raw, view, source, k=5)["text"]) == ["en0", "en1", "en3", "en4"]


def test_negative_rounds_are_a_config_error():
    with pytest.raises(ConfigError, match="TeacherConfig: field 'self_training_rounds' must be >= 0, got -1"):
        TeacherConfig(self_training_rounds=-1)  # refused where it is built


def test_a_self_training_build_relabels_with_a_retrained_teacher(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    plain_summary = build_dataset(plain, tmp_path / "plain", tmp_path / "work", log=lambda m: None)
    teachers = sorted(p.name for p in (tmp_path / "work").glob("teacher-*"))
    assert len(teachers) == 1

    recipe = dataclasses.replace(plain, teacher=dataclasses.replace(plain.teacher, self_training_rounds=1))
    log = []
    summary = build_dataset(recipe, tmp_path / "self", tmp_path / "work", log=log.append)
    rounds = summary["stats"]["teacher"]["self_training"]
    plain_raw = raw_rows(tmp_path / "plain")
    agree = np.asarray(plain_raw["teacher_label"]) == np.asarray(plain_raw["prompt_label"])
    per_class = [min(int(np.sum(agree & (np.asarray(plain_raw["prompt_label"]) == c))), plain.selection.k)
                 for c in range(3)]
    assert rounds[0]["round"] == 1 and rounds[0]["added"] == sum(per_class) > 0
    assert summary["stats"]["teacher"]["first_dev_accuracy"] == plain_summary["stats"]["teacher"]["dev_accuracy"]
    # the first teacher is the plain build's (its cache key leaves out the rounds); one more for round 1
    after = sorted(p.name for p in (tmp_path / "work").glob("teacher-*"))
    assert set(teachers) < set(after) and len(after) == 2
    assert any("self-training round 1" in m for m in log)
    raw = raw_rows(tmp_path / "self")
    assert raw["text"] == plain_raw["text"]  # the same generations, relabelled
    assert not np.allclose(raw["teacher_probs"], plain_raw["teacher_probs"])
    card = DatasetCard.load(Path(tmp_path / "self" / "README.md")).text
    assert f"round 1: +{rounds[0]['added']} generations" in card and "self_training_rounds=1" in card

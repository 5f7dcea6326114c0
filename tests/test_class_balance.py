"""``class_balance``: the teacher and the students weight the classes equally, for targets whose class mix is not the
English data's (an SST-3 teacher never predicts neutral: 19% of SST-3, 36-49% of MahaSent / IITP hi)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from huggingface_hub import DatasetCard, ModelCard
from test_build_tiny import tiny_recipe
from test_student import write_synth_dataset

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.student import StudentConfig
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.models.training import balanced_class_weights
from hf_crossaug.stages.teacher import training_fields


def test_balanced_weights_are_sklearns_and_average_to_one_over_the_gold_rows():
    labels = [0, 0, 0, 1, 2, 2, -100]  # -100: a soft row, not counted
    weights = balanced_class_weights(labels, 3)
    np.testing.assert_allclose(weights, [6 / 9, 2.0, 1.0])
    assert np.mean([weights[y] for y in labels if y >= 0]) == pytest.approx(1.0)
    assert balanced_class_weights([1, 1, 2], 3) == [0.0, 0.75, 1.5]  # an absent class gets 0, not a division by 0


def test_the_plain_teachers_cache_key_is_unchanged_and_the_balanced_one_differs():
    assert "class_balance" not in training_fields(TeacherConfig())
    assert training_fields(TeacherConfig(class_balance=True))["class_balance"] is True


def test_a_balanced_build_trains_its_own_teacher_and_its_card_says_so(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    build_dataset(plain, tmp_path / "plain", tmp_path / "work", log=lambda m: None)
    recipe = dataclasses.replace(plain, teacher=dataclasses.replace(plain.teacher, class_balance=True))
    summary = build_dataset(recipe, tmp_path / "balanced", tmp_path / "work", log=lambda m: None)
    assert len(list((tmp_path / "work").glob("teacher-*"))) == 2  # the same generations, a second teacher
    assert summary["stats"]["recipe"]["teacher"]["class_balance"] is True
    assert "class_balance=True" in DatasetCard.load(tmp_path / "balanced" / "README.md").text


def test_a_student_follows_its_datasets_teacher_and_picks_its_epoch_by_macro_f1(tmp_path, tiny_encoder_dir):
    from hf_crossaug.students.classification import train_student

    synth = write_synth_dataset(tmp_path / "synth")
    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="T-div-k", epochs=3, batch_size=8, max_length=48,
                        limit=24, seed=0)  # class_balance None: as the dataset's teacher
    res = train_student(cfg, str(synth), "seed", None, tmp_path / "plain", log=lambda m: None)
    assert res["config"]["class_balance"] is False
    build = json.loads((synth / "crossaug_build.json").read_text())
    build["recipe"]["teacher"] = {"class_balance": True}  # a balanced recipe (mahasent-mr-synth)
    (synth / "crossaug_build.json").write_text(json.dumps(build))
    res = train_student(cfg, str(synth), "seed", None, tmp_path / "student", log=lambda m: None)
    assert res["config"]["class_balance"] is True
    sel = res["selection"]
    assert sel["dev_macro_f1"] == max(h["macro_f1"] for h in sel["history"])
    card = ModelCard.load(tmp_path / "student" / "README.md").text
    assert "the best macro-F1 on" in card and "classes weighted equally" in card


def test_class_balance_is_a_train_option_and_a_one_line_error_for_multiple_choice(tmp_path, tiny_encoder_dir):
    from typer.testing import CliRunner

    from hf_crossaug.cli import app
    from hf_crossaug.students.classification import train_student

    assert "--class-balance" in CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="SRC", task="copa", epochs=1, class_balance=True)
    with pytest.raises(ValueError, match="class_balance weights the classes of a classification task; 'copa'"):
        train_student(cfg, {}, "seed", None, tmp_path / "mc", log=lambda m: None)


def test_the_sentiment_recipes_balance_their_teachers():
    from pathlib import Path

    from hf_crossaug.config.recipe import Recipe

    scripts = Path(__file__).resolve().parents[1] / "dataset_scripts"
    for name in ("mahasent-mr-synth", "iitp-hi-synth-direct"):
        assert Recipe.from_yaml(scripts / f"{name}.yaml").teacher.class_balance is True
    assert Recipe.from_yaml(scripts / "xnli-sw-synth.yaml").teacher.class_balance is False  # SNLI is balanced

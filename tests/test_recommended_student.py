"""A recipe's ``student:`` section: the mode its data was measured to serve best, which `crossaug train` uses when
the command names no ``--mode``, and which the dataset and model cards state."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, ModelCard
from test_build_tiny import tiny_recipe
from test_student import write_synth_dataset

from hf_crossaug.build.export import build_dataset
from hf_crossaug.build.pipeline import recipe_fingerprint
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.recipe import Recipe, load_recipe
from hf_crossaug.config.student import RecommendedStudent, StudentConfig
from hf_crossaug.students.common import recommended_mode


@pytest.mark.parametrize("section, needle", [
    ({"mode": "T-big-k"}, "field 'student.mode' must be one of SRC, GEN, SRC+GEN, T-rand-k"),
    ({"mode": "SRC+GEN", "config": "top-k"}, "'student.config' must be one of raw, rand-k, div-k (the configs this"),
    ({"mode": "SRC+GEN", "typo": 1}, "unknown field 'student.typo' (known: mode, config, why)"),
])
def test_a_recommendation_the_dataset_cannot_serve_is_a_one_line_error(section, needle):
    with pytest.raises(ConfigError) as err:
        Recipe.from_dict({"name": "t", "task": "sentiment", "selection": {"strategies": ["rand-k", "div-k"]},
                          "student": section})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_multiple_choice_recipes_recommend_multiple_choice_modes():
    with pytest.raises(ConfigError, match="student.mode' must be one of SRC, GEN, SRC\\+GEN, got 'T-div-k'"):
        Recipe.from_dict({"name": "t", "task": "copa", "selection": {"strategies": []},
                          "generation": {"stop_at_newline": False}, "student": {"mode": "T-div-k"}})


def test_the_recommendation_does_not_change_the_cache_key_of_the_generations(tiny_llm_dir, tiny_encoder_dir):
    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    advised = dataclasses.replace(plain, student=RecommendedStudent(mode="SRC+GEN", config="raw")).validate()
    assert recipe_fingerprint(advised) == recipe_fingerprint(plain)


def test_the_mode_comes_from_the_command_then_the_recipe_then_the_default():
    recipe = {"task": "sentiment", "student": {"mode": "SRC+GEN", "config": "raw", "why": "measured"}}
    cfg, source = recommended_mode(StudentConfig(mode="T-rand-k"), recipe)
    assert (cfg.mode, cfg.config, source) == ("T-rand-k", None, "command")
    cfg, source = recommended_mode(StudentConfig(), recipe)
    assert (cfg.mode, cfg.config, source) == ("SRC+GEN", "raw", "recipe")
    cfg, _ = recommended_mode(StudentConfig(config="div-k"), recipe)  # a config the command gave is kept
    assert cfg.config == "div-k"
    assert recommended_mode(StudentConfig(), {"task": "sentiment"})[0].mode == "T-div-k"
    assert recommended_mode(StudentConfig(), {"task": "copa"})[0].mode == "SRC+GEN"
    assert recommended_mode(StudentConfig(), {})[1] == "default"


def test_the_shipped_sentiment_recipe_recommends_every_generation_with_its_prompt_label():
    student = load_recipe("mahasent-mr-synth").student
    assert (student.mode, student.config) == ("SRC+GEN", "raw") and "benchmarks/README.md" in student.why


def test_a_student_without_mode_trains_as_the_recipe_says_and_both_cards_say_so(tmp_path, tiny_encoder_dir,
                                                                                tiny_llm_dir):
    from hf_crossaug.students.classification import train_student

    synth = write_synth_dataset(tmp_path / "synth")
    build = json.loads((synth / "crossaug_build.json").read_text())
    build["recipe"]["student"] = {"mode": "SRC+GEN", "config": "raw", "why": "measured in a test"}
    (synth / "crossaug_build.json").write_text(json.dumps(build))
    raw_rows = pq.ParquetFile(synth / "data" / "raw" / "train-00000-of-00001.parquet").metadata.num_rows
    cfg = StudentConfig(model=str(tiny_encoder_dir), epochs=1, batch_size=8, max_length=48, limit=24, seed=0)
    res = train_student(cfg, str(synth), "seed", None, tmp_path / "student", log=lambda m: None)
    assert (res["mode"], res["mode_from"]) == ("SRC+GEN", "recipe")
    assert res["counts"]["generated"] == raw_rows and res["counts"]["soft"] == 0  # every generation, prompt labels
    assert "the dataset's recipe recommends" in ModelCard.load(tmp_path / "student" / "README.md").text

    recipe = dataclasses.replace(tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir),
                                 student=RecommendedStudent(mode="SRC+GEN", config="raw", why="measured")).validate()
    build_dataset(recipe, tmp_path / "built", tmp_path / "work", log=lambda m: None)
    card = DatasetCard.load(tmp_path / "built" / "README.md").text
    assert "recipe recommends:\n**`SRC+GEN`** on config `raw` (measured)." in card

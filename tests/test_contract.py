"""The stage contract: each stage declares what it reads and adds, and `plan` composes the stages a recipe needs
(no branching in `run_pipeline`)."""

import pytest
from datasets import Dataset

from hf_crossaug.build.contract import Stage, merge_stats, run_stages
from hf_crossaug.build.plan import plan
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.select import SelectionConfig
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.config.translate import TranslateConfig


def names(recipe: Recipe) -> list[str]:
    return [s.name for s in plan(recipe)]


def test_the_plan_follows_the_recipe():
    assert names(Recipe(name="r", task="sentiment")) == [
        "prompts", "generate:text", "clean", "ids", "teacher"]
    assert names(Recipe(name="r", task="nli")) == [
        "premise-prompts", "generate:premises", "clean-premises", "prompts", "generate:hypothesis", "clean", "ids",
        "teacher"]
    assert names(Recipe(name="r", task="nli", premise_source="source"))[:2] == ["source-premises", "prompts"]
    mt = Recipe(name="r", task="nli", language="sw", route="translate-train", code_switch=True,
                translate=TranslateConfig(model="m"))
    assert names(mt)[-4:] == ["ids", "translate", "code-switch", "teacher"]
    assert names(Recipe(name="r", task="sentiment", teacher=TeacherConfig(self_training_rounds=1)))[-1] == \
        "self-training"
    assert names(Recipe(name="r", task="sentiment", items_from="source")) == ["source-rows", "ids", "teacher"]
    assert names(Recipe(name="r", task="copa", selection=SelectionConfig(strategies=[]),
                        generation=GenerationConfig(stop_at_newline=False))) == ["mc-prompts", "generate:items",
                                                                                 "mc-items"]
    for recipe in (Recipe(name="r", task="nli"), mt):  # every column a stage reads, a stage before it made
        made: set[str] = set()
        for stage in plan(recipe):
            assert set(stage.reads) <= made, stage.name
            made |= set(stage.adds)


def test_a_stage_without_its_columns_is_one_line_naming_stage_and_column():
    stage = Stage("label-it", ("hypothesis",), ("teacher_probs",), lambda rows, ctx: (rows, {}))
    with pytest.raises(ValueError) as info:
        run_stages([stage], ctx=None, stats={}, rows=Dataset.from_dict({"text": ["a"]}))
    assert str(info.value) == ("stage 'label-it' reads column 'hypothesis', which its rows do not have "
                               "(columns: text)")
    broken = Stage("forgets", (), ("teacher_probs",), lambda rows, ctx: (rows, {}))
    with pytest.raises(ValueError, match="stage 'forgets' promised column 'teacher_probs'"):
        run_stages([broken], ctx=None, stats={})


def test_stages_add_their_stats_and_timings():
    def a(rows, ctx):
        return rows.add_column("x", [1]), {"counts": {"a": {"kept": 1}}}

    def b(rows, ctx):
        return rows, {"counts": {"b": {"kept": 1}}, "generator": "g"}

    stats = {"counts": {}}
    out = run_stages([Stage("a", (), ("x",), a, "generate"), Stage("b", ("x",), (), b, "generate")], None, stats,
                     Dataset.from_dict({"t": ["r"]}))
    assert out.column_names == ["t", "x"] and stats["counts"] == {"a": {"kept": 1}, "b": {"kept": 1}}
    assert stats["generator"] == "g" and stats["timings"]["generate"] >= 0
    assert merge_stats({"t": {"x": 1}}, {"t": {"y": 2}}) == {"t": {"x": 1, "y": 2}}

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


def test_every_generator_backend_has_one_interface():
    """Local, endpoint and Ray generators take prompts and seeds, give texts and token counts, and say what they
    are; the server backends and the benchmarks' bare loop send one request body (no stand-in objects)."""
    import inspect

    from hf_crossaug.backends import Generator
    from hf_crossaug.backends.body import request_body
    from hf_crossaug.backends.endpoint import EndpointGenerator
    from hf_crossaug.backends.local import LocalGenerator
    from hf_crossaug.backends.ray_batch import RayGenerator
    from hf_crossaug.config.generate import GenerationConfig

    want = list(inspect.signature(Generator.__call__).parameters)
    for cls in (LocalGenerator, EndpointGenerator, RayGenerator):
        assert list(inspect.signature(cls.__call__).parameters) == want, cls
        assert callable(getattr(cls, "provenance"))
    cfg = GenerationConfig(backend="endpoint", base_url="http://127.0.0.1:1/v1", model="m", prompt_style="instruct")
    body = request_body(cfg, "m", "Write.", 7)
    assert body["messages"] == [{"role": "user", "content": "Write."}] and body["seed"] == 7
    assert "json_schema" in str(request_body(cfg, "m", "Write.", 7, field="text"))
    ray_source = inspect.getsource(__import__("hf_crossaug.backends.ray_batch", fromlist=["x"]))
    assert "_body" not in ray_source.replace("request_body", "")  # no private method borrowed through a stand-in


def test_the_local_generator_takes_seeds_and_advances_a_bar(tiny_llm_dir):
    from hf_crossaug.backends.local import LocalGenerator
    from hf_crossaug.config.generate import GenerationConfig

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    gen = LocalGenerator(GenerationConfig(model=str(tiny_llm_dir), max_new_tokens=4, temperature=1.0))
    bar = Bar()
    a = gen(["Once", "Twice"], [5, 6], progress=bar)
    assert bar.n == 2 and gen(["Once", "Twice"], [5, 6]) == a  # the same seeds, the same sample
    assert len(a[0]) == 2 and all(isinstance(c, int) for c in a[1])
    with pytest.raises(ValueError, match="no structured output"):
        gen(["Once"], field="text")

"""Issue #26: a card a reader can trust -- a resumed build reports what its cached work cost when it was made,
unlabelled source rows are counted, and a computed "Limitations" block says what to know before using the data."""

import dataclasses
import json
from pathlib import Path

import pytest
from test_build_tiny import tiny_recipe

from hf_crossaug.build.card import THRESHOLDS, FROM_CACHE, limitations
from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.source import SourceConfig
from hf_crossaug.stages.source import seed_path


@pytest.fixture(scope="module")
def builds(tiny_llm_dir, tiny_encoder_dir, tmp_path_factory):
    """A tiny sentiment build on a source with two unlabelled rows, then two resumed builds: the labelled
    cache removed (generation shards reused), the second time also without the shards' recorded times."""
    tmp = tmp_path_factory.mktemp("card-trust")
    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    source = tmp / "source.jsonl"
    unlabelled = [json.dumps({"text": t, "label": -1}) for t in ("no label here", "nor here")]
    source.write_text(seed_path(recipe.task_spec).read_text() + "\n".join(unlabelled) + "\n")
    recipe = dataclasses.replace(recipe, source=SourceConfig(path=str(source)))
    work, cards, summaries = tmp / "work", [], []
    for forget in ([], ["raw-*"], ["raw-*", "*/shard-*.cost.json"]):
        for pattern in forget:
            for p in work.glob(pattern):
                p.unlink()
        summaries.append(build_dataset(recipe, tmp / "out", work, log=lambda m: None))
        cards.append((tmp / "out" / "README.md").read_text())
    return recipe, summaries, cards


def test_a_resumed_build_reports_what_the_cached_shards_cost(builds):
    _, summaries, cards = builds
    first, resumed, unknown = (s["stats"]["requests"]["text"] for s in summaries)
    assert first["wall_s"] > 0 and first["tokens_per_s"] > 0 and first["completion_tokens"] > 0
    assert resumed == first  # not "0.0 s, 6248.7 tok/s": the shards' own times, recorded as they were made
    assert unknown["wall_s"] is None and unknown["tokens_per_s"] is None
    assert unknown["completion_tokens"] == first["completion_tokens"]
    assert FROM_CACHE in cards[2] and FROM_CACHE not in cards[1]
    assert "the table below gives what they cost when made" in cards[1]  # the wall-time line says whose it is


def test_unlabelled_source_rows_are_in_the_card(builds):
    _, summaries, cards = builds
    assert summaries[0]["stats"]["source"]["dropped"] == "dropped 2 unlabelled rows (label -1, '-' or none)"
    assert "labelled rows; dropped 2 unlabelled rows (label -1, '-' or none);" in cards[0]


def test_the_card_says_what_to_know_before_using_the_data(builds):
    recipe, summaries, cards = builds
    section = cards[0].split("## Limitations\n", 1)[1].split("\n## ", 1)[0]
    expected = limitations(recipe, summaries[0]["stats"])
    assert [line[2:] for line in section.strip().splitlines()] == expected
    assert any(line.startswith("The rows are in English, not sw") for line in expected)  # zero-shot route
    tiny = [line for line in expected if line.startswith("The generator is small (")]  # the tiny LLM: ~30k
    assert len(tiny) == 1 and "M param" not in tiny[0]


QUICK_START = {"teacher": {"dev_accuracy": 0.4444, "dev_size": 18}, "generator": {"parameters": 134_515_008}}


@pytest.mark.parametrize("change, needles, absent", [
    ({}, ["dev accuracy is 0.444 on 18 rows, near chance (0.333 for 3 classes)", "only 18 rows (95% interval "
          "about 0.21-0.67)", "The rows are in English, not sw", "small (135M parameters)"], []),
    ({"teacher": {"dev_accuracy": 0.9, "dev_size": 500}, "generator": {"parameters": 7_000_000_000}},
     ["The rows are in English, not sw"], ["teacher", "generator"]),
    ({"teacher": {"dev_accuracy": 1 / 3 + THRESHOLDS.near_chance + 0.01, "dev_size": 100}}, ["small"],
     ["near chance", "only 100 rows"]),
    ({"route": "translate-train", "teacher": None, "generator": None}, [], ["English", "teacher", "generator"]),
])
def test_limitations_follow_the_thresholds(change, needles, absent):
    recipe = Recipe(name="r", task="sentiment", language="sw", route=change.pop("route", "zero-shot"))
    if recipe.route != "zero-shot":
        recipe = dataclasses.replace(recipe, translate=dataclasses.replace(recipe.translate, model="m"))
    text = "\n".join(limitations(recipe, {**QUICK_START, **change}))
    assert all(n in text for n in needles), text
    assert not any(a in text for a in absent), text

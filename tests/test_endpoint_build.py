"""A whole build whose generator is a real server (``generation.backend: endpoint``): the same folder layout,
the same downstream stages, per-stage request accounting in the card, and faults absorbed on the way."""

import json

import pytest
from datasets import load_dataset

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.clean import CleanConfig
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.select import SelectionConfig
from hf_crossaug.config.teacher import TeacherConfig

pytestmark = pytest.mark.slow  # a real transformers serve


def endpoint_recipe(base_url, encoder, **generation) -> Recipe:
    return Recipe(
        name="tiny-endpoint", task="sentiment", language="sw", per_class=3,
        generation=GenerationConfig(backend="endpoint", base_url=base_url, n_shots=2,
                                    temperature=0.0, max_new_tokens=8, shard_size=4, max_in_flight=4, seed=3,
                                    **generation),
        clean=CleanConfig(min_words=1, max_words=200),
        teacher=TeacherConfig(model=str(encoder), epochs=1, batch_size=16, seed=5),
        selection=SelectionConfig(strategies=["rand-k", "top-k"], k=1, seed=11),
    )


def test_build_through_a_server_with_faults(served_model, make_proxy, tiny_encoder_dir, tmp_path):
    proxy = make_proxy()
    proxy.push("429:1", "500", "drop")  # the first three generation requests fail once each
    url = proxy.url.replace("http://", "http://user:secret@")  # credentials in a URL never reach a file
    recipe = endpoint_recipe(url, tiny_encoder_dir, model=served_model.model_id).validate()
    summary = build_dataset(recipe, tmp_path / "out", tmp_path / "work")

    raw = load_dataset(str(tmp_path / "out"), "raw", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(raw) == summary["rows"]["raw"] > 0
    assert {"text", "prompt_label", "teacher_probs", "teacher_label"} <= set(raw.column_names)

    cost = summary["stats"]["requests"]["text"]
    assert 0 < cost["answered"] <= 9  # 3 classes x 3 prompts (identical prompts are sent once)
    assert cost["requests"] == cost["answered"] + 3  # one retry for each injected fault
    assert cost["retries"] == {"429": 1, "5xx": 1, "connection": 1}
    assert cost["completion_tokens"] > 0 and not cost.get("failures")
    assert cost["concurrency"]["cap"] == 4 and 1 <= cost["concurrency"]["level"] <= 4  # the adaptive level
    build = (tmp_path / "out" / "crossaug_build.json").read_text()
    card = (tmp_path / "out" / "README.md").read_text()
    for text in (build, card):
        assert "secret" not in text and "user:" not in text
    assert json.loads(build)["generator"]["backend"] == "endpoint"
    assert "completion tokens" in card.lower() or "completion_tokens" in card
    assert "| in flight (range of cap) |" in card and " of 4) |" in card

    # a second build into a new folder from the same work folder sends nothing to the server
    sent = sum(proxy.forwarded.values())
    build_dataset(recipe, tmp_path / "out2", tmp_path / "work")
    assert sum(proxy.forwarded.values()) == sent

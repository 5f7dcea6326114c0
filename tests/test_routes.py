"""Routes added on top of translation: code-switched pairs (Self-Translate-Train) and direct
target-language generation from target-language few-shot examples."""

import json

import pandas as pd
import pytest
from datasets import Dataset

from hf_crossaug.stages.clean import CleanConfig
from hf_crossaug.stages.generate import GenerationConfig
from hf_crossaug.build.configs import raw_features
from hf_crossaug.build.pipeline import run_pipeline
from hf_crossaug.config.recipe import Recipe, SourceConfig
from hf_crossaug.stages.teacher import TeacherConfig
from hf_crossaug.stages.translate import TranslateConfig, code_switched_pairs

SW = [("Bidhaa hii ni nzuri sana, naipenda kabisa.", "positive"),
      ("Huduma ilikuwa mbaya na chakula kilichelewa.", "negative"),
      ("Duka linafunguliwa saa mbili asubuhi kila siku.", "neutral"),
      ("Filamu hii ilinifurahisha mno, waigizaji hodari.", "positive"),
      ("Simu ilivunjika baada ya wiki moja tu.", "negative"),
      ("Mkutano utafanyika Jumanne ijayo mjini.", "neutral")]


def tiny(**kw) -> dict:
    return dict(per_class=2, clean=CleanConfig(min_words=1, max_words=200),
                generation=GenerationConfig(model=str(kw.pop("llm")), n_shots=2, max_new_tokens=8, batch_size=6,
                                            shard_size=6, seed=3),
                teacher=TeacherConfig(model=str(kw.pop("encoder")), epochs=1, batch_size=16, seed=5), **kw)


def test_code_switched_pairs_adds_both_mixed_rows():
    ds = Dataset.from_dict({"id": ["a", "b"], "premise": ["P1-sw", "P2-sw"], "hypothesis": ["H1-sw", "H2-sw"],
                            "premise_en": ["P1", "P2"], "hypothesis_en": ["H1", "H2"], "prompt_label": [0, 2]})
    out = code_switched_pairs(ds, ("premise", "hypothesis"), "en", "sw")
    rows = {r["id"]: r for r in out}
    assert len(out) == 6 and set(rows) == {"a", "b", "a-cs1", "b-cs1", "a-cs2", "b-cs2"}
    assert (rows["a"]["premise"], rows["a"]["hypothesis"], rows["a"]["pair_languages"]) == ("P1-sw", "H1-sw", "sw-sw")
    assert (rows["a-cs1"]["premise"], rows["a-cs1"]["hypothesis"], rows["a-cs1"]["pair_languages"]) == ("P1", "H1-sw", "en-sw")
    assert (rows["b-cs2"]["premise"], rows["b-cs2"]["hypothesis"], rows["b-cs2"]["pair_languages"]) == ("P2-sw", "H2", "sw-en")
    assert rows["b-cs2"]["prompt_label"] == 2 and rows["a-cs1"]["premise_en"] == "P1"  # labels and originals kept
    assert len(ds) == 2 and "pair_languages" not in ds.column_names  # input untouched


@pytest.mark.parametrize("fields, name", [
    ({"task": "sentiment", "route": "self-translate", "code_switch": True, "translate": {"backend": "llm"}},
     "code_switch"),
    ({"task": "nli", "code_switch": True}, "code_switch"),
    ({"task": "sentiment", "route": "direct"}, "fewshot_source"),
    ({"task": "sentiment", "route": "direct", "language": "en", "fewshot_source": {"path": "x.jsonl"}},
     "fewshot_source"),
])
def test_route_validation_names_the_field(fields, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        Recipe.from_dict({"name": "r", "language": "sw", **fields})


def test_direct_route_prompts_with_target_language_examples(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    shots = tmp_path / "sw.jsonl"
    shots.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in SW))
    recipe = Recipe(name="tiny-direct", task="sentiment", language="sw", route="direct",
                    fewshot_source=SourceConfig(path=str(shots)),
                    **tiny(llm=tiny_llm_dir, encoder=tiny_encoder_dir)).validate()
    result = run_pipeline(recipe, tmp_path / "work", log=lambda m: None)
    assert result.stats["source"]["fewshot"] == {"name": str(shots), "split": "train", "rows": 6, "language": "sw",
                                                 "labels": "given"}
    assert result.stats["source"]["rows"] == 120  # the teacher still learns from the English seed set
    prompts = pd.concat(pd.read_parquet(p) for p in (tmp_path / "work").glob("text-*/shard-*.parquet"))
    for prompt, label in zip(prompts["prompt"], prompts["prompt_label"]):
        shown = [t for t, lab in SW if t in prompt]
        assert len(shown) == 2 and all(dict(SW)[t] == ["negative", "neutral", "positive"][label] for t in shown)
    assert len(result.raw) > 0 and "teacher_probs" in result.raw.column_names


def test_direct_route_with_unlabelled_examples_prompts_them_under_the_teachers_labels(
        tiny_llm_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    """A target-language pool without labels (``label_column: null``): the teacher labels it, then the prompts
    show each text as an example of the class the teacher gave it."""
    import hf_crossaug.build.pipeline as pipeline
    import hf_crossaug.build.plan as plan

    shots = tmp_path / "sw.jsonl"
    shots.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in SW))  # no label column at all
    given = {}

    def label(ds, task, teacher, max_length=128):
        out = real_label(ds, task, teacher, max_length)
        if set(ds["text"]) == {t for t, _ in SW}:  # the pool: a random tiny teacher may give one class only
            out = out.remove_columns("teacher_label").add_column("teacher_label", [i % 3 for i in range(len(ds))])
            given.update(zip(ds["text"], out["teacher_label"]))
        return out

    real_label = pipeline.label
    monkeypatch.setattr(pipeline, "label", label)  # the few-shot pool
    monkeypatch.setattr(plan, "label", label)  # the generations
    recipe = Recipe(name="tiny-direct-unlabelled", task="sentiment", language="sw", route="direct",
                    fewshot_source=SourceConfig(path=str(shots), label_column=None),
                    **tiny(llm=tiny_llm_dir, encoder=tiny_encoder_dir)).validate()
    result = run_pipeline(recipe, tmp_path / "work", log=lambda m: None)
    assert result.stats["source"]["fewshot"]["labels"] == "teacher" and len(given) == 6
    prompts = pd.concat(pd.read_parquet(p) for p in (tmp_path / "work").glob("text-*/shard-*.parquet"))
    for prompt, label_id in zip(prompts["prompt"], prompts["prompt_label"]):
        shown = [t for t in given if t in prompt]
        assert shown and all(given[t] == label_id for t in shown)
    with pytest.raises(ValueError, match="'source.label_column'"):
        Recipe(name="r", task="sentiment", source=SourceConfig(label_column=None)).validate()


def test_pipeline_code_switch_rows_labelled_from_english(tiny_llm_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    import hf_crossaug.stages.translate as tr

    class Upper(tr.TranslationBackend if hasattr(tr, "TranslationBackend") else object):
        ref = tr.backend_ref(TranslateConfig(model="fake/mt"))

        def translate(self, texts, src, tgt):
            return [t[::-1] for t in texts]

    monkeypatch.setattr(tr, "make_backend", lambda config, *a: Upper())
    recipe = Recipe(name="tiny-cs", task="nli", language="sw", route="translate-train", premise_source="source",
                    code_switch=True, translate=TranslateConfig(model="fake/mt"),
                    **tiny(llm=tiny_llm_dir, encoder=tiny_encoder_dir)).validate()
    result = run_pipeline(recipe, tmp_path, log=lambda m: None)
    raw, counts = result.raw, result.stats["counts"]["translation"]
    assert len(raw) == 3 * counts["kept"] and counts["code_switched_rows"] == 2 * counts["kept"]
    declared = raw_features(recipe)  # what a dataset builder declares before running (build/configs.py)
    assert raw.features == declared and raw.column_names == list(declared) and "pair_languages" in declared
    by_id = {r["id"]: r for r in raw}
    for rid, row in by_id.items():
        if rid.endswith("-cs1"):
            base = by_id[rid[:-4]]
            assert row["premise"] == base["premise_en"] and row["hypothesis"] == base["hypothesis"]
            assert row["teacher_probs"] == base["teacher_probs"]  # same English pair, same teacher label

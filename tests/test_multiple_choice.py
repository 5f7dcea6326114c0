"""Commonsense multiple choice (arXiv 2305.14288): item parsing and structural validation, prompts, the
generate -> validate stage on a scripted generator, recipe checks, and the multiple-choice student on a
tiny encoder (train, evaluate, card, CLI)."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from hf_crossaug.stages.clean import MC_REASONS, balance_answers, clean_items, drop_counts, parse_item
from hf_crossaug.stages.source import load_source
from hf_crossaug.models.resolve import ModelRef
from hf_crossaug.stages.prompts import multiple_choice_prompts
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.tasks import get_task
COPA, STORYCLOZE, WINOGRAD = (get_task("copa"), get_task("storycloze"), get_task("winograd"))

COPA_ITEM = ("Premise: The man lost his keys.\nWhat was the effect?\nOption 1: He could not open the door.\n"
             "Option 2: He sang a song.\nAnswer: 1")
STORY_ITEM = ("Story: Ann woke up early. She was hungry. She went to the kitchen. The fridge was empty.\n"
              "Ending 1: She went out to buy food.\nEnding 2: She flew to the moon.\nAnswer: 1")
WINO_ITEM = ('Sentence: The cup fell off the table because it was wobbly.\nWho or what is "it"?\n'
             "Option 1: the cup\nOption 2: the table\nAnswer: 2")


def test_parse_valid_items_of_every_task():
    item, why = parse_item(COPA_ITEM + "\n\nPremise: the model went on", COPA)
    assert why is None and item == {"premise": "The man lost his keys.", "question": "effect",
                                    "choice1": "He could not open the door.", "choice2": "He sang a song.", "label": 0}
    item, why = parse_item(STORY_ITEM, STORYCLOZE)
    assert why is None and len(item["context"]) == 4 and item["context"][3] == "The fridge was empty."
    item, why = parse_item(WINO_ITEM, WINOGRAD)
    assert why is None and item["pronoun"] == "it" and item["label"] == 1


@pytest.mark.parametrize("text,task,reason", [
    ("   ", COPA, "empty"),
    ("The man lost his keys. He was sad.", COPA, "wrong_format"),
    (COPA_ITEM.replace("Option 2: He sang a song.\n", ""), COPA, "wrong_format"),  # one choice
    (COPA_ITEM.replace("He sang a song.", ""), COPA, "wrong_format"),  # an empty choice
    (COPA_ITEM.replace("effect", "reason"), COPA, "bad_question"),
    (COPA_ITEM.replace("Answer: 1", "Answer: 3"), COPA, "bad_answer"),
    (COPA_ITEM.replace("Answer: 1", "Answer: the first"), COPA, "bad_answer"),
    (COPA_ITEM.replace("He sang a song.", "he could NOT open the door"), COPA, "same_choices"),
    (COPA_ITEM.replace("He could not open the door.", "I'm sorry, I cannot help."), COPA, "refusal"),
    (STORY_ITEM.replace(" She went to the kitchen. The fridge was empty.", ""), STORYCLOZE, "context_length"),
    (WINO_ITEM.replace('"it"', '"she"'), WINOGRAD, "bad_question"),  # pronoun not in the sentence
])
def test_structural_validation_drops(text, task, reason):
    assert parse_item(text, task) == (None, reason)


def test_clean_items_counts_every_reason_and_keeps_columns():
    prefix = "Premise:"
    body = COPA_ITEM[len(prefix):]
    rows = [
        {"generation": body, "examples": []},                                            # kept
        {"generation": body, "examples": []},                                            # duplicate
        {"generation": body.replace("The man lost his keys.", "It rained hard."), "examples": []},  # 3 words: kept
        {"generation": body.replace("The man lost his keys.", "Rain."), "examples": []},       # too_short
        {"generation": body.replace("The man lost his keys.", "A cat slept all day."),
         "examples": ["a cat slept all day"]},                                           # echo of an example
        {"generation": " no item here", "examples": []},                                 # wrong_format
    ]
    out = clean_items(Dataset.from_list(rows), COPA, prefix=prefix)
    assert out["drop_reason"] == [None, "duplicate", None, "too_short", "echo", "wrong_format"]
    assert out["premise"][0] == "The man lost his keys." and out["label"][0] == 0 and out["label"][5] == -1
    counts = drop_counts(out, MC_REASONS)
    assert counts["kept"] == 2 and counts["duplicate"] == counts["echo"] == counts["too_short"] == 1
    assert set(counts) == {"kept", *MC_REASONS}


def test_balance_answers_keeps_the_right_answer():
    ds = Dataset.from_list([{"premise": f"p{i}", "question": "cause", "choice1": f"right{i}", "choice2": f"wrong{i}",
                             "label": 0} for i in range(40)])
    out = balance_answers(ds, COPA, seed=1)
    assert 10 < sum(out["choices_swapped"]) < 30  # about half
    for row in out:
        assert row["choice1" if row["label"] == 0 else "choice2"].startswith("right")
        assert row["choices_swapped"] == (row["label"] == 1)
    assert balance_answers(ds, COPA, seed=1)["choices_swapped"] == out["choices_swapped"]  # seeded


def test_prompts_show_answered_examples_and_open_the_next_item():
    seed = load_source(COPA, "seed")
    prompts = multiple_choice_prompts(COPA, seed, n=3, style="fewshot", n_shots=2, seed=0)
    assert len(prompts) == 3 and len(set(prompts["prompt"])) == 3
    p = prompts[0]["prompt"]
    assert p.endswith("\nPremise:") and p.count("Answer: ") == 2 and p.count("What was the ") == 2
    assert prompts[0]["examples"][0] in p  # premises of the shots, for the echo check
    assert multiple_choice_prompts(COPA, seed, 3, "fewshot", 2, 0)["prompt"] == prompts["prompt"]


def test_sources_keep_list_columns_and_row_slices(tmp_path):
    rows = [{"context": [f"s{i}a.", f"s{i}b.", f"s{i}c.", f"s{i}d."], "ending1": "e1", "ending2": "e2",
             "label": i % 2, "extra": 1} for i in range(6)]
    f = tmp_path / "train-en.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_source(STORYCLOZE, str(f))
    assert ds.column_names == ["context", "ending1", "ending2", "label"] and ds[0]["context"][3] == "s0d."
    assert ds.features["label"].names == ["ending1", "ending2"]
    assert load_source(STORYCLOZE, f"{f}@train[4:]")["context"] == [r["context"] for r in rows[4:]]
    assert len(load_source(STORYCLOZE, str(f), split="train[:2]")) == 2
    with pytest.raises(FileNotFoundError, match="no packaged seed set for task 'storycloze'"):
        load_source(STORYCLOZE, "seed")
    assert len(load_source(COPA, "seed")) == 40  # the packaged COPA-style seed set


def mc_recipe(**kw) -> dict:
    base = {"name": "t", "task": "copa", "language": "sw", "generation": {"stop_at_newline": False},
            "selection": {"strategies": []}}
    return {**base, **kw}


def test_recipe_checks_for_multiple_choice():
    Recipe.from_dict(mc_recipe())
    with pytest.raises(ValueError, match="'selection.strategies' must be \\[\\] for multiple-choice"):
        Recipe.from_dict(mc_recipe(selection={"strategies": ["top-k"]}))
    with pytest.raises(ValueError, match="'generation.stop_at_newline' must be false"):
        Recipe.from_dict(mc_recipe(generation={}))
    with pytest.raises(ValueError, match="'route' must be zero-shot or direct"):
        Recipe.from_dict(mc_recipe(route="translate-train", translate={"model": "x"}))


class ScriptedGenerator:
    """Stands in for the LLM: item i of a call is well formed unless i % 3 == 2 (then it has one option)."""

    ref = ModelRef("scripted", "scripted", None)

    def __init__(self):
        self.calls = 0

    def provenance(self) -> dict:
        return self.ref.provenance()

    def __call__(self, prompts, seeds=None, progress=None, field=None):
        texts = []
        for p in prompts:
            self.calls += 1
            n = self.calls
            item = COPA_ITEM[len("Premise:"):].replace("The man lost his keys.", f"The man lost key number {n}.")
            texts.append(item.replace("Option 2: He sang a song.\n", "") if n % 3 == 2 else item)
        return texts, [10] * len(texts)


def test_generate_items_runs_the_generate_stage_and_validates(tmp_path):
    from hf_crossaug.build.configs import raw_features
    from hf_crossaug.build.plan import generate_items

    recipe = Recipe.from_dict(mc_recipe(per_class=9, generation={"stop_at_newline": False, "batch_size": 3,
                                                                 "shard_size": 4, "n_shots": 2}))
    stats = {"counts": {}}
    gen = ScriptedGenerator()
    items = generate_items(recipe, COPA, load_source(COPA, "seed"), gen, tmp_path, stats, log=lambda m: None)
    assert stats["counts"]["generations"]["prompts"] == 9 and stats["counts"]["generations"]["wrong_format"] == 3
    assert len(items) == 6 and items.column_names == ["id", "premise", "question", "choice1", "choice2", "label",
                                                      "choices_swapped"]
    assert items.features == raw_features(recipe)  # what a dataset builder declares before running
    assert len(list(tmp_path.glob("items-*/shard-*.parquet"))) == 3  # sharded like every generation
    for row in items:  # the right answer survives the balancing swap
        assert row["choice1" if row["label"] == 0 else "choice2"] == "He could not open the door."
    again = generate_items(recipe, COPA, load_source(COPA, "seed"), gen, tmp_path, {"counts": {}}, log=lambda m: None)
    assert gen.calls == 9 and again["premise"] == items["premise"]  # finished shards are reused


def test_build_reports_when_no_item_survives(tmp_path, tiny_llm_dir):
    from hf_crossaug.build.export import build_dataset

    recipe = Recipe.from_dict(mc_recipe(per_class=2, generation={
        "model": str(tiny_llm_dir), "stop_at_newline": False, "max_new_tokens": 8, "n_shots": 1}))
    with pytest.raises(ValueError, match="no generated item survived validation: 2 prompts, 0 kept, wrong_format 2"):
        build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)


# ---------------------------------------------------------------- the multiple-choice student

@pytest.fixture(scope="module")
def copa_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("copa")
    rows = list(load_source(COPA, "seed"))
    (d / "val-xx.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    generated = Dataset.from_list([{**r, "id": f"g{i}", "choices_swapped": False} for i, r in enumerate(rows[10:16])],
                                  features=None)
    return d, generated


def test_train_and_evaluate_mc_student(tmp_path, copa_files, tiny_encoder_dir):
    from huggingface_hub import ModelCard

    from hf_crossaug.config.student import StudentConfig
    from hf_crossaug.students.classification import train_student
    from hf_crossaug.students.evaluate import evaluate_model

    d, generated = copa_files
    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="SRC+GEN", task="copa", epochs=2, batch_size=8,
                        max_length=48, seed=0)
    out = tmp_path / "mc"
    res = train_student(cfg, {"raw": generated}, "seed", None, out, log=lambda m: None)
    assert res["kind"] == "multiple-choice" and res["labels"] == ["choice1", "choice2"]
    assert res["counts"] == {"gold": 34, "generated": 6, "soft": 0, "total": 40}  # 15% of 40 held out for dev
    assert len(res["selection"]["history"]) == 2 and res["selection"]["dev_size"] == 6
    assert (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(out).architectures == ["BertForMultipleChoice"]

    ev = evaluate_model(out, {"xx": str(d / "val-xx.jsonl"), "yy": f"{d / 'val-xx.jsonl'}@train[:4]"})
    assert ev["task"] == "copa" and ev["scores"]["xx"]["n"] == 10 and ev["scores"]["yy"]["n"] == 4
    assert 0.0 <= ev["scores"]["xx"]["accuracy"] <= 1.0
    card = ModelCard.load(out / "README.md")
    metrics = {(r.dataset_args["language"], r.metric_type) for r in card.data.eval_results}
    assert metrics == {("xx", "accuracy"), ("yy", "accuracy")}
    assert card.data.eval_results[0].task_type == "multiple-choice"
    assert "SRC+GEN" in card.text and "AutoModelForMultipleChoice" in card.text and "Chance is 0.5" in card.text

    src = train_student(StudentConfig(model=str(tiny_encoder_dir), mode="SRC", task="copa", epochs=1, batch_size=8,
                                      max_length=48), None, "seed", str(d / "val-xx.jsonl"), tmp_path / "src",
                        log=lambda m: None)
    assert src["counts"]["generated"] == 0 and src["counts"]["gold"] == 40 and src["dataset"]["ref"] is None


def test_mc_student_rejects_classification_modes(tmp_path, copa_files):
    from typer.testing import CliRunner

    from hf_crossaug.cli import app

    r = CliRunner().invoke(app, ["train", "seed-free", "--task", "copa", "--mode", "T-div-k", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "multiple-choice students train in mode SRC, GEN, SRC+GEN" in r.output

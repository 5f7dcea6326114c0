"""Recipes (strict YAML validation), source-data loading, and the CLI's one-line errors."""

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel
from typer.testing import CliRunner

from hf_crossaug.stages.source import load_source
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.tasks import NLI, SENTIMENT, MultipleChoiceSpec

SCRIPTS = Path(__file__).resolve().parent.parent / "dataset_scripts"


# ---------------------------------------------------------------- recipes


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_dataset_script_parses_and_validates(path):
    recipe = Recipe.from_yaml(path)
    assert recipe.name == path.stem
    assert recipe.validate() is recipe
    assert recipe.task_spec.name == recipe.task
    assert recipe.domain_list or isinstance(recipe.task_spec, MultipleChoiceSpec)  # MC prompts use no domains
    # every value came through typed: a YAML float stays a float, nested configs are dataclasses
    assert isinstance(recipe.generation.temperature, float) and isinstance(recipe.teacher.learning_rate, float)
    assert Recipe.from_dict(recipe.to_dict()) == recipe  # round trip


def test_dataset_scripts_exist():
    assert len(list(SCRIPTS.glob("*.yaml"))) >= 3


MINIMAL = "name: t\ntask: nli\n"


@pytest.mark.parametrize("body, needles", [
    (MINIMAL + "colour: red\n", ["unknown field", "'colour'"]),
    (MINIMAL + "generation:\n  tempreture: 0.5\n", ["unknown field", "'generation.tempreture'"]),
    (MINIMAL + "source:\n  pth: x.jsonl\n", ["'source.pth'"]),
    (MINIMAL + 'per_class: "many"\n', ["'per_class'", "must be int", "'many'"]),
    (MINIMAL + "per_class: true\n", ["'per_class'", "must be int"]),
    (MINIMAL + "generation:\n  temperature: hot\n", ["'generation.temperature'", "must be float"]),
    (MINIMAL + "generation: 5\n", ["'generation'", "mapping"]),
    (MINIMAL + "domains: a novel\n", ["'domains'", "must be list"]),
    (MINIMAL + "route: translate-test\n", ["'route'", "zero-shot"]),
    (MINIMAL + "premise_source: web\n", ["'premise_source'"]),
    (MINIMAL + "per_class: 0\n", ["'per_class'", ">= 1"]),
    (MINIMAL + "generation:\n  prompt_style: chatty\n", ["'generation.prompt_style'"]),
    (MINIMAL + "selection:\n  strategies: [div_k]\n", ["'selection.strategies'", "div_k"]),
    ("name: t\ntask: ner\n", ["unknown task", "'ner'"]),
    ("name: t\n", ["missing required field", "'task'"]),
    (MINIMAL + "templates:\n  fewshot.itme: '{examples}'\n", ["unknown template key", "fewshot.itme"]),
    (MINIMAL + "generation: {temperature: 0.5\n", ["not valid YAML"]),
    ("- just\n- a list\n", ["must be a YAML mapping"]),
    # the LoRA methods' sections (DAFTT, Self-Translate-Train)
    (MINIMAL + "daftt:\n  mode: label\n", ["'daftt.mode'", "annotate, generate"]),
    (MINIMAL + "daftt:\n  modus: annotate\n", ["unknown field", "'daftt.modus'"]),
    (MINIMAL + "daftt:\n  train_rows: 10\n  train_fraction: 0.1\n", ["'daftt.train_rows'", "set one"]),
    (MINIMAL + "daftt:\n  train_fraction: 1.5\n", ["'daftt.train_fraction'"]),
    (MINIMAL + "daftt:\n  inputs: 10\n", ["'daftt.inputs'", "annotate"]),
    (MINIMAL + "daftt:\n  finetune:\n    r: 0\n", ["'daftt.finetune.r'", ">= 1"]),
    (MINIMAL + "daftt:\n  finetune:\n    target_modules: q_proj\n", ["'daftt.finetune.target_modules'", "list"]),
    (MINIMAL + "daftt: {}\nitems_from: source\n", ["'daftt'", "items_from"]),
    (MINIMAL + "items_from: web\n", ["'items_from'"]),
    (MINIMAL + "stt: {}\n", ["'stt'", "self-translate"]),
    (MINIMAL + "language: sw\nroute: self-translate\ntranslate: {backend: llm}\nstt:\n  eval_limit: 0\n",
     ["'stt.eval_limit'"]),
])
def test_malformed_recipe_gives_one_line_error_naming_the_field(tmp_path, body, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError) as info:
        Recipe.from_yaml(path)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_yaml_ints_become_floats_and_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my-recipe.yaml"
    path.write_text("task: sentiment\ngeneration:\n  temperature: 1\n")
    recipe = Recipe.from_yaml(path)
    assert recipe.name == "my-recipe"
    assert recipe.generation.temperature == 1.0 and isinstance(recipe.generation.temperature, float)


def test_with_overrides_seeds_every_stage():
    base = Recipe.from_yaml(SCRIPTS / "xnli-sw-synth-small.yaml")
    r = base.with_overrides(per_class=5, k=3, seed=123, source="x.jsonl", limit=50)
    assert (r.per_class, r.selection.k) == (5, 3)
    assert r.generation.seed == r.teacher.seed == r.selection.seed == 123
    assert (r.source.path, r.source.limit) == ("x.jsonl", 50)
    # the original is untouched and unrelated fields are kept
    assert base.generation.seed == 42 and base.per_class == 24 and base.selection.k == 8
    assert r.generation.temperature == base.generation.temperature
    assert r.selection.strategies == base.selection.strategies
    # no overrides: an equal recipe
    assert base.with_overrides() == base
    with pytest.raises(ValueError, match="per_class"):
        base.with_overrides(per_class=0)


# ---------------------------------------------------------------- source data


@pytest.mark.parametrize("task", [NLI, SENTIMENT], ids=lambda t: t.name)
def test_packaged_seed_sets(task):
    ds = load_source(task)
    assert len(ds) == 120
    assert isinstance(ds.features["label"], ClassLabel) and ds.features["label"].names == list(task.labels)
    assert ds.column_names == [*task.text_columns, "label"]
    labels = list(ds["label"])
    assert [labels.count(i) for i in range(3)] == [40, 40, 40]
    assert load_source(task, "seed").to_list() == ds.to_list()


NLI_ROWS = [
    {"premise": "A man, a plan, a canal.", "hypothesis": "Panama is mentioned.", "label": "neutral"},
    {"premise": "Two dogs run in a park.", "hypothesis": "Animals are outside.", "label": "entailment"},
    {"premise": "She reads a \"big\" book.", "hypothesis": "She is asleep.", "label": "contradiction"},
    {"premise": "A cat sleeps.", "hypothesis": "Something is unknown.", "label": "-"},  # SNLI: no gold label
    {"premise": "Kids play football.", "hypothesis": "Children play a game.", "label": "entailment"},
]


def write(path: Path, rows: list[dict]) -> Path:
    df = pd.DataFrame(rows)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def test_jsonl_csv_parquet_load_identically_and_drop_unlabelled(tmp_path):
    loaded = [load_source(NLI, str(write(tmp_path / f"src{ext}", NLI_ROWS))) for ext in (".jsonl", ".csv", ".parquet")]
    first = loaded[0]
    assert len(first) == 4  # the "-" row is dropped
    assert list(first["label"]) == [1, 0, 2, 0]
    assert first["premise"][2] == 'She reads a "big" book.'
    for other in loaded[1:]:
        assert other.features == first.features
        assert other.to_list() == first.to_list()


def test_integer_labels_and_label_column(tmp_path):
    rows = [{"text": "good", "y": 2}, {"text": "bad", "y": 0}, {"text": "meh", "y": -1}]
    ds = load_source(SENTIMENT, str(write(tmp_path / "s.jsonl", rows)), label_column="y")
    assert ds.to_list() == [{"text": "good", "label": 2}, {"text": "bad", "label": 0}]
    with pytest.raises(ValueError, match="out of range"):
        load_source(SENTIMENT, str(write(tmp_path / "bad.jsonl", [{"text": "x", "label": 3}])))


def test_source_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nope" / "train.jsonl"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_source(NLI, str(missing))

    no_col = write(tmp_path / "nocol.jsonl", [{"premise": "a", "label": "neutral"}])
    with pytest.raises(ValueError) as info:
        load_source(NLI, str(no_col))
    assert "'hypothesis'" in str(info.value) and str(no_col) in str(info.value)

    bad = write(tmp_path / "badlabel.jsonl", NLI_ROWS + [{"premise": "p", "hypothesis": "h", "label": "maybe"}])
    with pytest.raises(ValueError) as info:
        load_source(NLI, str(bad))
    assert "'maybe'" in str(info.value) and "label" in str(info.value)

    only_unlabelled = write(tmp_path / "none.jsonl", [NLI_ROWS[3]])
    with pytest.raises(ValueError, match="no labelled rows"):
        load_source(NLI, str(only_unlabelled))

    other = tmp_path / "data.xlsx"
    other.write_text("x")
    with pytest.raises(ValueError, match="unsupported extension"):
        load_source(NLI, str(other))


def test_limit_gives_a_seeded_subset():
    full = load_source(SENTIMENT)
    a = load_source(SENTIMENT, limit=30, seed=1)
    b = load_source(SENTIMENT, limit=30, seed=1)
    c = load_source(SENTIMENT, limit=30, seed=2)
    assert len(a) == 30 and a.to_list() == b.to_list()
    assert a.to_list() != c.to_list()
    assert all(r in full.to_list() for r in a.to_list())
    assert len(load_source(SENTIMENT, limit=500)) == 120  # a limit above the size keeps everything


# ---------------------------------------------------------------- CLI


def invoke(*args):
    from hf_crossaug.cli import app

    return CliRunner().invoke(app, list(map(str, args)))


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_cli_malformed_recipe_is_a_one_line_error(tmp_path):
    recipe = tmp_path / "a-recipe-with-a-long-name-so-the-message-is-longer-than-a-terminal.yaml"
    recipe.write_text(MINIMAL + "generation:\n  tempreture: 0.5\n")
    result = invoke("build", recipe, "--output", tmp_path / "out", "--work-dir", tmp_path / "work")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # no other exception
    lines = error_lines(result)
    assert len(lines) == 1 and "generation.tempreture" in lines[0] and "stop_at_newline, adapter)" in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_missing_recipe_and_missing_source_name_the_file(tmp_path):
    result = invoke("build", tmp_path / "absent.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert error_lines(result) == [f"error: recipe file not found: {tmp_path / 'absent.yaml'}"]

    result = invoke("build", "no-such-recipe")
    assert result.exit_code == 2 and "no recipe named 'no-such-recipe'" in error_lines(result)[0]

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntask: sentiment\n")
    missing = tmp_path / "data" / "[odd] train.jsonl"  # brackets must not be eaten as console markup
    result = invoke("build", recipe, "--source", missing, "--output", tmp_path / "out",
                    "--work-dir", tmp_path / "work")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert error_lines(result) == [f"error: source file not found: {missing}"]


def test_label_map_folds_source_labels_and_leaves_cache_keys_alone(tmp_path):
    """SST-5's five classes fold into the sentiment task's three (the mahasent-mr-synth recipe does this)."""
    from hf_crossaug.build.pipeline import recipe_fingerprint
    from hf_crossaug.config.recipe import SourceConfig
    from hf_crossaug.config.tasks import SENTIMENT

    path = tmp_path / "sst5.jsonl"
    rows = [("awful", "very negative"), ("meh", "neutral"), ("great", "very positive"), ("fine", "positive")]
    path.write_text("".join(json.dumps({"text": t, "label_text": lab}) + "\n" for t, lab in rows))
    cfg = SourceConfig(path=str(path), label_column="label_text",
                       label_map={"very negative": "negative", "very positive": "positive"})
    assert list(cfg.load(SENTIMENT)["label"]) == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="unknown label 'very negative'"):
        SourceConfig(path=str(path), label_column="label_text").load(SENTIMENT)
    recipe = Recipe.from_dict({"name": "x", "task": "sentiment"})
    mapped = Recipe.from_dict({"name": "x", "task": "sentiment", "source": {"label_map": {"a": "negative"}}})
    assert recipe_fingerprint(recipe) != recipe_fingerprint(mapped)

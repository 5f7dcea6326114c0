"""Recipes (strict YAML validation), source-data loading, and the CLI's one-line errors."""

import json
import time
from pathlib import Path

import pandas as pd

import pytest
from datasets import ClassLabel
from typer.testing import CliRunner

from hf_crossaug.stages.source import load_source
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.tasks import MultipleChoiceSpec, get_task
NLI, SENTIMENT = (get_task("nli"), get_task("sentiment"))

SCRIPTS = Path(__file__).resolve().parent.parent / "dataset_scripts"
RECIPES = [
    "gluecos-hi-en-synth",
    "iitp-hi-synth-direct",
    "mahasent-mr-synth",
    "xcopa-sw-synth",
    "xnli-sw-stt",
    "xnli-sw-synth",
    "xnli-sw-synth-daftt",
    "xnli-sw-synth-self-translate",
    "xnli-sw-synth-small",
    "xnli-sw-synth-translate-train",
    "xstorycloze-sw-synth",
    "xstorycloze-sw-synth-direct",
    "xwinograd-synth",
]


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


def test_dataset_scripts_exist_and_are_found_by_name():
    from hf_crossaug.config.recipe import find_recipe

    names = sorted(p.stem for p in SCRIPTS.glob("*.yaml"))
    assert names == RECIPES  # a recipe added or lost is a decision, not an accident
    for name in names:
        assert find_recipe(name).resolve() == (SCRIPTS / f"{name}.yaml").resolve()


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
    (MINIMAL + "selection:\n  strategies: [div-k, div-k]\n", ["'selection.strategies'", "repeat"]),
    # unknown strategy names are checked by the build's preflight (the registry lives in the stages layer):
    # test_bad_inputs.py::test_unknown_selection_strategy_is_refused_before_generation
    (MINIMAL + "generation:\n  shard_size: 0\n", ["'generation.shard_size'", ">= 1"]),
    (MINIMAL + "generation:\n  n_shots: -2\n", ["'generation.n_shots'", ">= 0"]),
    (MINIMAL + "templates:\n  fewshot.item: '{examples} {colour}'\n", ["'templates.fewshot.item'", "{colour}"]),
    # a step is filled with its own fields: the hypothesis is what fewshot.item asks for, it cannot be given
    (MINIMAL + "templates:\n  fewshot.item: '{hypothesis} {label_description}'\n",
     ["'templates.fewshot.item'", "{hypothesis}"]),
    (MINIMAL + "templates:\n  fewshot.premise: '{premise}'\n", ["'templates.fewshot.premise'", "{premise}"]),
    (MINIMAL + "templates:\n  fewshot.item: '{examples}'\n", ["'templates.fewshot.item'", "{label_description}"]),
    (MINIMAL + "source:\n  on_invalid: ignore\n", ["'source.on_invalid'", "error, drop"]),
    ("name: ../../victim\ntask: nli\n", ["'name'", "not a path"]),
    ("name: t\ntask: ner\n", ["unknown task", "'ner'"]),
    ("name: t\n", ["missing required field", "'task'"]),
    (MINIMAL + "templates:\n  fewshot.itme: '{examples}'\n", ["'templates.fewshot.itme'", "not a template"]),
    ("name: t\ntask: nli\ntask: sentiment\n", ["'task'", "given twice"]),
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
    with pytest.raises(ValueError, match=r"1 rows with a label that is not one of negative, neutral, positive "
                                         r"\(first: 3 in row 0\)"):
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


def test_empty_and_non_utf8_files_are_one_line_naming_the_file(tmp_path):
    for name, content in (("empty.jsonl", b""), ("blank.jsonl", b"\n  \n"), ("empty.csv", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:  # was an IndexError traceback
            load_source(SENTIMENT, str(tmp_path / name))
        assert str(info.value) == f"source file {tmp_path / name} is empty"
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"text": "good", "label": "positive"}\n{"text": "caf\xe9", "label": "positive"}\n')
    with pytest.raises(ValueError) as info:  # was a UnicodeDecodeError from arrow that named no file
        load_source(SENTIMENT, str(latin1))
    assert str(info.value).startswith(f"source file {latin1} is not UTF-8 text: byte 0xe9 on line 2")


def test_whitespace_text_is_rejected_with_a_count_or_dropped_and_counted(tmp_path):
    rows = [{"text": "good", "label": "positive"}, {"text": "   ", "label": "negative"},
            {"text": "\t\n", "label": "neutral"}, {"text": "bad", "label": "negative"}]
    path = write(tmp_path / "ws.jsonl", rows)
    with pytest.raises(ValueError) as info:
        load_source(SENTIMENT, str(path))
    assert "2 rows with empty text (first: row 1)" in str(info.value) and "on_invalid: drop" in str(info.value)
    kept = load_source(SENTIMENT, str(path), on_invalid="drop")
    assert kept["text"] == ["good", "bad"] and kept.info.description == "dropped 2 empty texts"


@pytest.mark.parametrize("value", [1.7, True, 1.0001, "Neutral", [1]], ids=repr)
def test_a_label_that_is_no_class_never_becomes_one(value, tmp_path):
    """1.7 and true used to become 1 = neutral; now they are an error naming the value, or dropped and counted."""
    path = write(tmp_path / "l.jsonl", [{"text": "good", "label": "positive"}, {"text": "odd", "label": value}])
    with pytest.raises(ValueError) as info:
        load_source(SENTIMENT, str(path))
    assert "1 rows with a label that is not one of negative, neutral, positive" in str(info.value)
    assert f"(first: {value!r} in row 1)" in str(info.value)
    kept = load_source(SENTIMENT, str(path), on_invalid="drop")
    assert kept.to_list() == [{"text": "good", "label": 2}]
    assert kept.info.description == "dropped 1 unknown labels"


def test_missing_relative_path_fails_at_once_without_the_hub(tmp_path, monkeypatch):
    import hf_crossaug.stages.source as source

    def no_hub(*args, **kwargs):
        raise AssertionError(f"load_dataset called with {args}")

    monkeypatch.setattr(source, "load_dataset", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for ref in ("data/missing", "./missing", "data/missing.jsonl", "~/no-such-file.csv", "data/missing@train[:5]"):
        with pytest.raises(FileNotFoundError) as info:
            load_source(SENTIMENT, ref)
        assert "\n" not in str(info.value) and Path(ref.partition("@")[0]).name in str(info.value), ref
    recipe = Recipe.from_dict({"name": "r", "task": "sentiment", "source": {"path": "data/missing"}})
    from hf_crossaug.build.pipeline import preflight

    with pytest.raises(FileNotFoundError, match="field 'source.path': data/missing is not an existing file"):
        preflight(recipe)


def test_hub_shaped_source_fails_in_seconds_when_the_hub_cannot_say_yes(tmp_path, monkeypatch):
    """``nothere/x`` is a valid Hub id, so it is asked of the Hub -- once: an unreachable Hub and a missing
    dataset are one line each before ``load_dataset`` (whose retries took ~23 s offline) is ever called."""
    import socket

    import hf_crossaug.stages.source as source
    from huggingface_hub import constants

    from hub_standin import HubStandIn

    def no_download(*args, **kwargs):
        raise LookupError(f"load_dataset called with {args}")

    monkeypatch.setattr(source, "load_dataset", no_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed}")
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        load_source(SENTIMENT, "nothere/x")
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert msg.startswith("source: nothere/x is not an existing file, and the Hub cannot be reached") and "\n" not in msg

    hub = HubStandIn().start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        with pytest.raises(FileNotFoundError) as info:
            load_source(SENTIMENT, "nothere/x")
        assert str(info.value) == ("source: nothere/x is not an existing file, and no Hub dataset of that name "
                                   "exists (or it is private: run `hf auth login`)")
        assert [c["path"] for c in hub.calls] == ["/api/datasets/nothere/x"]  # one call, no retries
    finally:
        hub.shutdown()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline on purpose: the datasets cache decides
    with pytest.raises(ValueError, match="load_dataset called with"):  # wrapped in load_source's one line
        load_source(SENTIMENT, "nothere/x")


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


def test_train_options_are_the_student_config_fields(tmp_path):
    """``crossaug train`` declares no student field itself: each `StudentConfig` field is an option with the
    field's help, and a bad value goes through the config's one validation (one line naming the field)."""
    import dataclasses

    import typer

    from hf_crossaug.cli import app
    from hf_crossaug.config.student import StudentConfig

    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    for f in dataclasses.fields(StudentConfig):
        assert params[f.name].help.startswith(f.metadata["help"]), f.name
    assert "--lr" in params["learning_rate"].opts and params["freeze_embeddings"].secondary_opts == [
        "--no-freeze-embeddings"]
    for args, needle in ((["--backend", "bogus"], "field 'backend' must be one of finetune, frozen-features, "
                                                  "got 'bogus'"),
                         (["--temperature", "0"], "field 'temperature' must be > 0, got 0.0")):
        result = invoke("train", tmp_path / "data", "-o", tmp_path / "model", *args)
        assert result.exit_code == 2 and error_lines(result) == [f"error: crossaug train: {needle}"]
    assert not (tmp_path / "model").exists()


def test_cli_malformed_recipe_is_a_one_line_error(tmp_path):
    recipe = tmp_path / "a-recipe-with-a-long-name-so-the-message-is-longer-than-a-terminal.yaml"
    recipe.write_text(MINIMAL + "generation:\n  tempreture: 0.5\n")
    result = invoke("build", recipe, "--output", tmp_path / "out", "--work-dir", tmp_path / "work")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # no other exception
    lines = error_lines(result)
    # the whole line, up to the last known field, although it is longer than a terminal
    assert len(lines) == 1 and "generation.tempreture" in lines[0] and "max_failed_fraction)" in lines[0]
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
    # checked by the preflight, before any model is loaded
    assert error_lines(result) == [f"error: recipe 'r': field 'source.path': {missing} is not an existing file and "
                                   "not a Hub dataset id"]
    assert not (tmp_path / "out").exists()


def test_label_map_folds_source_labels_and_leaves_cache_keys_alone(tmp_path):
    """SST-5's five classes fold into the sentiment task's three (the mahasent-mr-synth recipe does this)."""
    from hf_crossaug.build.pipeline import recipe_fingerprint
    from hf_crossaug.config.recipe import SourceConfig
    from hf_crossaug.config.tasks import get_task
    SENTIMENT = get_task("sentiment")
    from hf_crossaug.stages.source import load_configured

    path = tmp_path / "sst5.jsonl"
    rows = [("awful", "very negative"), ("meh", "neutral"), ("great", "very positive"), ("fine", "positive")]
    path.write_text("".join(json.dumps({"text": t, "label_text": lab}) + "\n" for t, lab in rows))
    cfg = SourceConfig(path=str(path), label_column="label_text",
                       label_map={"very negative": "negative", "very positive": "positive"})
    assert list(load_configured(SENTIMENT, cfg)["label"]) == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="2 rows with a label that is not one of .* \\(first: 'very negative' in row 0\\)"):
        load_configured(SENTIMENT, SourceConfig(path=str(path), label_column="label_text"))
    recipe = Recipe.from_dict({"name": "x", "task": "sentiment"})
    mapped = Recipe.from_dict({"name": "x", "task": "sentiment", "source": {"label_map": {"a": "negative"}}})
    assert recipe_fingerprint(recipe) != recipe_fingerprint(mapped)


def test_a_hub_source_may_name_its_config_and_split(monkeypatch):
    """``HUB_ID[:config][@split]``, as evaluation targets are written (``facebook/xnli:sw@validation``)."""
    from datasets import Dataset
    from huggingface_hub import constants

    import hf_crossaug.stages.source as source

    calls = []

    def fake_load(repo, config=None, split=None):
        calls.append((repo, config, split))
        return Dataset.from_dict({"text": ["good", "bad"], "label": ["positive", "negative"]})

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(source, "load_dataset", fake_load)
    assert len(load_source(SENTIMENT, "me/reviews:sw@validation")) == 2
    load_source(SENTIMENT, "me/reviews", split="test")
    assert calls == [("me/reviews", "sw", "validation"), ("me/reviews", None, "test")]

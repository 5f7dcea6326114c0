"""Issue #26: bad input ends in one line naming what is wrong, before the work, and never loses finished work."""

import json
from pathlib import Path

import pytest
from test_bad_inputs import cli, no_generation, one_error, tree  # noqa: F401 (a fixture)

from hf_crossaug.utils.files import MARKER_FILE, staged_output


def refuse(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} started")

    return fail


@pytest.fixture
def users_folder(tmp_path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    return folder


# ---------------------------------------------------------------- 1. every command that writes a folder

def test_train_refuses_a_folder_it_did_not_write(users_folder, monkeypatch):
    monkeypatch.setattr("hf_crossaug.students.classification.fit_student", refuse("training"))
    before = tree(users_folder)
    line = one_error(cli("train", "any-dataset", "-o", users_folder))
    assert line == (f"error: output folder {users_folder} exists and was not written by hf_crossaug; choose another "
                    "-o or remove it yourself")
    assert tree(users_folder) == before


def test_finetune_refuses_an_adapter_folder_it_did_not_write(users_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("hf_crossaug.build.export.build_dataset", refuse("the build"))
    before = tree(users_folder)
    line = one_error(cli("finetune", "xnli-sw-stt", "-t", "sw=x.jsonl", "-o", tmp_path / "data",
                         "--adapter-output", users_folder))
    assert f"output folder {users_folder} exists and was not written" in line and "--adapter-output" in line
    assert tree(users_folder) == before and not (tmp_path / "data").exists()


def test_bench_refuses_an_out_folder_it_did_not_write(users_folder):
    before = tree(users_folder)
    for spelling in ([f"--out={users_folder}"], ["--out", users_folder]):
        line = one_error(cli("bench", "reproduce", "--task", "nli", *spelling))
        assert f"output folder {users_folder} exists and was not written" in line and "--out" in line
    assert tree(users_folder) == before


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_evaluate_json_path_is_checked_before_scoring(kind, tmp_path, monkeypatch):
    monkeypatch.setattr("hf_crossaug.students.evaluate.evaluate_model", refuse("scoring"))
    (tmp_path / "a-file").write_text("x")
    path = tmp_path if kind == "folder" else tmp_path / "a-file" / "res.json"
    line = one_error(cli("evaluate", "model", "-t", "sw=x.jsonl", "--json", path))
    assert line.startswith(f"error: --json {path}") and ("is a folder" if kind == "folder" else "is a file") in line


def test_staged_output_replaces_only_when_the_work_finished(tmp_path):
    out = tmp_path / "student"
    with staged_output(out) as tmp:
        assert tmp.name == out.name and (tmp / MARKER_FILE).is_file()  # what records the name records "student"
        (tmp / "model.safetensors").write_text("first")
    assert tree(out) == {MARKER_FILE: b"", "model.safetensors": b"first"}
    with pytest.raises(RuntimeError, match="crashed"):
        with staged_output(out) as tmp:
            (tmp / "model.safetensors").write_text("half")
            raise RuntimeError("crashed")
    assert tree(out) == {MARKER_FILE: b"", "model.safetensors": b"first"}  # the finished student survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]  # no staging folder left


# ---------------------------------------------------------------- 2. values that were silently taken

def test_unlabelled_source_rows_are_dropped_and_counted_under_their_own_reason(tmp_path):
    from hf_crossaug.config.tasks import get_task
    SENTIMENT = get_task("sentiment")
    from hf_crossaug.stages.source import load_source

    for labels in ([2, -1, -1, 0], ["positive", "-", "-", "negative"]):  # SNLI marks them -1 or "-"
        path = tmp_path / "src.jsonl"
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                                for t, lab in zip(["good", "meh", "odd", "bad"], labels)))
        kept = load_source(SENTIMENT, str(path))
        assert kept["text"] == ["good", "bad"]
        assert kept.info.description == "dropped 2 unlabelled rows (label -1, '-' or none)"
    assert load_source(SENTIMENT, "seed").info.description == ""  # nothing dropped: nothing said
    path.write_text('{"text": "good", "label": "positive"}\n{"text": "meh", "label": -1}\n'
                    '{"text": "odd", "label": "-"}\n{"text": "bad", "label": 0}\n')  # mixed: "-" was read as 0
    kept = load_source(SENTIMENT, str(path))
    assert kept.to_list() == [{"text": "good", "label": 2}, {"text": "bad", "label": 0}]
    assert kept.info.description == "dropped 2 unlabelled rows (label -1, '-' or none)"


def test_a_recipe_key_given_twice_is_an_error_naming_it(tmp_path):
    from hf_crossaug.config.base import ConfigError
    from hf_crossaug.config.recipe import Recipe

    path = tmp_path / "r.yaml"
    path.write_text("name: r\ntask: sentiment\ngeneration:\n  seed: 1\n  temperature: 0.5\n  seed: 2\n")
    with pytest.raises(ConfigError) as info:
        Recipe.from_yaml(path)
    assert str(info.value) == f"recipe {path} is not valid YAML: key 'seed' is given twice (line 6)"
    path.write_text("name: r\ntask: sentiment\nper_class: 4\nselection: {k: 2}\nper_class: 8\n")
    assert "key 'per_class' is given twice (line 5)" in one_error(cli("build", path, "-o", tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, needle", [
    (["--batch-size", "0"], "batch_size (--batch-size) must be >= 1, got 0"),
    (["--limit", "0"], "limit (--limit) must be >= 1, got 0"),
    (["--limit", "-5"], "limit (--limit) must be >= 1, got -5"),
])
def test_evaluate_counts_below_one_name_the_option_before_any_work(args, needle, tmp_path, monkeypatch):
    monkeypatch.setattr("hf_crossaug.students.evaluate.load_target", refuse("loading the targets"))
    target = tmp_path / "sw.jsonl"
    target.write_text('{"text": "good", "label": "positive"}\n')
    assert one_error(cli("evaluate", tmp_path / "model", "-t", f"sw={target}", "--task", "sentiment",
                         *args)) == f"error: {needle}"


@pytest.mark.parametrize("command", [["build", "xnli-sw-synth-small"], ["finetune", "xnli-sw-stt", "-t", "sw=x.jsonl"]])
def test_a_negative_seed_names_the_option(command, tmp_path):
    line = one_error(cli(*command, "--seed", "-1", "-o", tmp_path / "out"))
    assert line == "error: seed (--seed) must be >= 0, got -1"
    assert not (tmp_path / "out").exists()
    assert one_error(cli("train", "data", "--seed", "-1", "-o", tmp_path / "m")) == (
        "error: crossaug train: field 'seed' must be >= 0, got -1")
    assert one_error(cli("finetune", "xnli-sw-stt", "-t", "sw=x.jsonl", "--eval-limit", "0", "-o", tmp_path / "o")) == (
        "error: eval_limit (--eval-limit) must be >= 1, got 0")


# ---------------------------------------------------------------- 3. lines that blamed the wrong thing

def test_a_prompt_longer_than_the_context_is_cut_and_logged(tiny_llm_dir, caplog):
    """A 1 MB source row in a few-shot prompt asked the attention for tens of GB; now the prompt is cut to the
    context (keeping its end, where the class to write is named) and the log says so."""
    import logging

    from hf_crossaug.backends.local import LocalGenerator
    from hf_crossaug.config.generate import GenerationConfig

    gen = LocalGenerator(GenerationConfig(model=str(tiny_llm_dir), max_new_tokens=4, temperature=0))
    seen = []
    generate = gen.model.generate
    gen.model.generate = lambda **kw: seen.append(kw["input_ids"].shape) or generate(**kw)
    huge = "Sentence: " + "the old man walked home " * 2000 + "\nSentence:"
    with caplog.at_level(logging.WARNING, logger="hf_crossaug"):
        texts, counts = gen([huge, "Sentence: short\nSentence:"])
    assert gen.max_prompt_tokens == 1024 - 4 and seen == [(2, 1020)] and len(texts) == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.name.startswith("hf_crossaug")]
    assert warning.startswith("1 of 2 prompts were longer than the generator's context allows (1020 prompt tokens")
    caplog.clear()
    gen(["Sentence: short\nSentence:"])
    assert not [r for r in caplog.records if r.name.startswith("hf_crossaug")]


@pytest.mark.parametrize("suffix, text, where", [
    (".jsonl", "".join(f'{{"text": "row {i}", "label": "positive"}}\n' for i in range(40)).replace(
        '"row 30",', '"row 30"', 1), "line 31 is not valid JSON (Expecting ',' delimiter, column 19)"),
    (".json", '[\n {"text": "a", "label": "positive"},\n {"text": "b" "label": "positive"}\n]\n',
     "line 3 is not valid JSON (Expecting ',' delimiter, column 15)"),
])
def test_a_broken_json_line_is_named(suffix, text, where, tmp_path):
    from hf_crossaug.config.tasks import get_task
    SENTIMENT = get_task("sentiment")
    from hf_crossaug.stages.source import load_source

    path = tmp_path / f"src{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_source(SENTIMENT, str(path))
    assert str(info.value) == f"source file {path} could not be read as json: {where}"


@pytest.mark.parametrize("offline", [False, True])
def test_a_missing_dataset_folder_says_so_within_seconds(offline, tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", offline)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", offline)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    line = one_error(cli("train", "out/nope", "-o", tmp_path / "m"))
    assert "out/nope" in line and ("is not an existing folder, and the Hub cannot be reached" in line or
                                   "no such folder, and no Hub dataset of that name could be loaded" in line), line
    assert time.monotonic() - start < 20  # not the Hub client's ~25 s of retries
    (tmp_path / "out").mkdir()  # its first folder exists here: a path, never tried on the Hub
    assert one_error(cli("train", "out/nope", "-o", tmp_path / "m")) == (
        "error: dataset out/nope: no such folder (it reads as a local path, so it is not tried as a Hub id)")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("where", ["work", "work/below"])
def test_a_work_dir_that_is_a_file_is_one_line(where, tmp_path, no_generation):
    (tmp_path / "work").write_text("my file")
    line = one_error(cli("build", "xnli-sw-synth-small", "-o", tmp_path / "out", "--work-dir", tmp_path / where))
    assert line == (f"error: work folder {tmp_path / where} cannot be created: it, or a folder above it, is a file; "
                    "pass another --work-dir")
    assert (tmp_path / "work").read_text() == "my file" and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 4. the Space opens only its data root and the Hub

def test_space_never_loads_a_local_path_outside_its_data_root(tmp_path, monkeypatch):
    from test_space import load_app

    root = tmp_path / "root"
    (root / "built").mkdir(parents=True)
    app_dir = tmp_path / "app"  # the app's working directory: its outputs and its package
    for folder in ("outputs/xnli-sw-synth", "hf_crossaug/seed_data"):
        (app_dir / folder).mkdir(parents=True)
    monkeypatch.chdir(app_dir)
    resolve = load_app().resolve_dataset
    assert resolve("built", root) == str(root / "built")
    assert resolve("crossaug/xnli-sw-synth", root) == "crossaug/xnli-sw-synth"  # a Hub id: nothing here by that name
    for ref in ("outputs/xnli-sw-synth", "hf_crossaug/seed_data"):
        with pytest.raises(ValueError, match=f"'{ref}' is not a folder under .*, and a local path is never read"):
            resolve(ref, root)

"""Issue #26: bad input ends in one line naming what is wrong, before the work, and never loses finished work."""

import json
from pathlib import Path

import pytest
from test_bad_inputs import cli, one_error, tree

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
    line = one_error(cli("bench", "reproduce", "--task", "nli", f"--out={users_folder}"))
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
    from hf_crossaug.config.tasks import SENTIMENT
    from hf_crossaug.stages.source import load_source

    for labels in ([2, -1, -1, 0], ["positive", "-", "-", "negative"]):  # SNLI marks them -1 or "-"
        path = tmp_path / "src.jsonl"
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                                for t, lab in zip(["good", "meh", "odd", "bad"], labels)))
        kept = load_source(SENTIMENT, str(path))
        assert kept["text"] == ["good", "bad"]
        assert kept.info.description == "dropped 2 unlabelled rows (label -1, '-' or none)"
    assert load_source(SENTIMENT, "seed").info.description == ""  # nothing dropped: nothing said


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

"""Issue #26: bad input ends in one line naming what is wrong, before the work, and never loses finished work."""

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

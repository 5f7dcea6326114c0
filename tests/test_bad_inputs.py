"""Issue #12: bad inputs that used to delete, overwrite, hang or crash late. Each is now refused before any work,
with one line naming the field or file, and nothing on disk is touched."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_build_tiny import tiny_recipe
from typer.testing import CliRunner

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.utils.files import MARKER_FILE, WorkLock, check_replaceable, replace_output_folder

ROOT = Path(__file__).resolve().parent.parent


def tree(folder: Path) -> dict:
    """Every file and folder under ``folder`` with its bytes (None for a folder)."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def cli(*args):
    from hf_crossaug.cli import app

    return CliRunner().invoke(app, list(map(str, args)))


def one_error(result) -> str:
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def no_generation(monkeypatch):
    """Fails the test if the pipeline ever makes a generator (the work must be refused before it)."""
    def refuse(*args, **kwargs):
        raise AssertionError("generation started")

    monkeypatch.setattr("hf_crossaug.stages.generate.make_generator", refuse)


def write_recipe(path: Path, recipe: Recipe, **changes) -> Path:
    data = recipe.to_dict()
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (data[section] if section else data)[name] = value
    path.write_text(yaml.safe_dump(data))
    return path


# ---------------------------------------------------------------- 1. -o replaces only what a build wrote

def test_output_folder_not_written_by_a_build_is_refused_and_untouched(tiny_llm_dir, tiny_encoder_dir, tmp_path,
                                                                       no_generation):
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "chapters" / "one.tex").write_text("months of work")
    (out / "notes.txt").write_text("do not lose")
    before = tree(out)
    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    with pytest.raises(FileExistsError) as info:
        build_dataset(recipe, out, tmp_path / "work", log=lambda m: None)
    assert "\n" not in str(info.value) and str(out) in str(info.value) and "not written by hf_crossaug" in str(info.value)
    assert tree(out) == before and not (tmp_path / "work").exists()  # refused before the work folder exists

    line = one_error(cli("build", write_recipe(tmp_path / "r.yaml", recipe), "-o", out, "--work-dir",
                         tmp_path / "work"))
    assert line == (f"error: output folder {out} exists and was not written by hf_crossaug; choose another -o or "
                    "remove it yourself")
    assert tree(out) == before

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        check_replaceable(a_file)
    assert a_file.read_text() == "x"


def test_replace_output_folder_replaces_only_a_marked_folder(tmp_path):
    def finished(name: str, text: str) -> Path:
        tmp = tmp_path / name
        tmp.mkdir()
        (tmp / MARKER_FILE).touch()
        (tmp / "README.md").write_text(text)
        return tmp

    out = tmp_path / "out"
    replace_output_folder(finished("tmp1", "first"), out)  # absent: created
    (out / "stale.parquet").write_text("from the first build")
    replace_output_folder(finished("tmp2", "second"), out)  # ours: replaced as a whole
    assert tree(out) == {MARKER_FILE: b"", "README.md": b"second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no tmp or .old folder left

    (out / MARKER_FILE).unlink()  # now it looks like someone else's folder
    tmp3 = finished("tmp3", "third")
    with pytest.raises(FileExistsError):
        replace_output_folder(tmp3, out)
    assert tree(out) == {"README.md": b"second"} and tmp3.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    replace_output_folder(tmp3, empty)  # an empty folder holds nothing to lose
    assert (empty / "README.md").read_text() == "third"


# ---------------------------------------------------------------- 2. one build per work folder

HOLD = """
import sys, time
from hf_crossaug.utils.files import WorkLock
with WorkLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_build_on_a_locked_work_folder_names_the_holder(tiny_llm_dir, tiny_encoder_dir, tmp_path,
                                                               no_generation):
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(work)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError) as info:
            with WorkLock(work):
                pass
        msg = str(info.value)
        assert "\n" not in msg and f"pid {holder.pid} " in msg and str(work) in msg and "--work-dir" in msg

        recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
        line = one_error(cli("build", write_recipe(tmp_path / "r.yaml", recipe), "-o", tmp_path / "out",
                             "--work-dir", work))
        assert f"is in use by another build (pid {holder.pid} " in line
        assert not (tmp_path / "out").exists() and sorted(p.name for p in work.iterdir()) == [".crossaug.lock"]
    finally:
        holder.kill()
        holder.wait()
    with WorkLock(work):  # the OS dropped the dead holder's lock: no stale lock
        pass


# ---------------------------------------------------------------- 3. a recipe name is a name, not a path

@pytest.mark.parametrize("name", ["../../victim", "/tmp/victim", "a/b", "..", "-rf"])
def test_recipe_name_that_is_a_path_is_refused_and_nothing_is_created(name, tmp_path, monkeypatch):
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    recipe = here / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": name, "task": "sentiment"}))
    before = tree(tmp_path)
    line = one_error(cli("build", recipe))  # default output: outputs/<name>
    assert "field 'name'" in line and "not a path" in line and repr(name) in line
    assert tree(tmp_path) == before and not Path("/tmp/victim").exists()
    with pytest.raises(ConfigError, match="field 'name'"):
        Recipe.from_dict({"name": name, "task": "sentiment"})


# ---------------------------------------------------------------- 4. values that passed and crashed later

@pytest.mark.parametrize("field, value, needles", [
    ("generation.shard_size", 0, ["'generation.shard_size'", ">= 1"]),
    ("generation.n_shots", -2, ["'generation.n_shots'", ">= 0"]),
    ("templates", {"fewshot.item": "{examples} in {colour}"}, ["'templates.fewshot.item'", "placeholder {colour}"]),
])
def test_values_that_crashed_later_are_refused_by_validation(field, value, needles, tmp_path):
    path = write_recipe(tmp_path / "r.yaml", Recipe(name="r", task="sentiment"), **{field: value})
    with pytest.raises(ConfigError) as info:
        Recipe.from_yaml(path)
    assert "\n" not in str(info.value) and all(n in str(info.value) for n in needles), str(info.value)
    line = one_error(cli("build", path, "-o", tmp_path / "out", "--work-dir", tmp_path / "work"))
    assert all(n in line for n in needles)
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("field", ["generation.model", "teacher.model"])
def test_missing_model_folder_is_refused_before_generation(field, tiny_llm_dir, tiny_encoder_dir, tmp_path,
                                                           no_generation, monkeypatch):
    missing = tmp_path / "models" / "not-downloaded"
    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    section, _, name = field.partition(".")
    recipe = dataclasses.replace(recipe, **{section: dataclasses.replace(getattr(recipe, section),
                                                                          **{name: str(missing)})})
    with pytest.raises(ValueError) as info:
        build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    assert str(info.value) == f"recipe 'tiny-sentiment': field {field!r}: model folder {missing} does not exist"
    assert not (tmp_path / "out").exists() and not list((tmp_path / "work").rglob("shard-*"))

    cwd = tmp_path / "cwd"  # a relative path whose first folder exists here is a path, not a Hub id
    (cwd / "models").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    rel = dataclasses.replace(recipe, **{section: dataclasses.replace(getattr(recipe, section),
                                                                       **{name: "models/mine"})})
    start = time.monotonic()
    line = one_error(cli("build", write_recipe(tmp_path / "r.yaml", rel), "-o", tmp_path / "out",
                         "--work-dir", tmp_path / "work"))
    assert line == f"error: recipe 'tiny-sentiment': field {field!r}: model folder models/mine does not exist"
    assert time.monotonic() - start < 60  # no Hub retries (they take ~25 s offline); generous for a busy CI


def test_unknown_selection_strategy_is_refused_before_generation(tiny_llm_dir, tiny_encoder_dir, tmp_path,
                                                                 no_generation):
    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    recipe = dataclasses.replace(recipe, selection=dataclasses.replace(recipe.selection, strategies=["div_k"]))
    with pytest.raises(ValueError) as info:
        build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    msg = str(info.value)
    assert "field 'selection.strategies'" in msg and "'div_k'" in msg and "div-k" in msg and "\n" not in msg


# ---------------------------------------------------------------- 7. the cache key covers the shaping code

def test_code_fingerprint_changes_with_any_shaping_module(tmp_path, monkeypatch):
    """A copy of the package: editing a module that shapes ``raw`` changes the cache key; editing the card,
    the CLI or the students does not (they act on top of a cached ``raw``)."""
    import shutil

    from hf_crossaug.build import pipeline

    copy = tmp_path / "hf_crossaug"
    shutil.copytree(ROOT / "hf_crossaug", copy, ignore=shutil.ignore_patterns("__pycache__"))
    recipe = Recipe(name="r", task="sentiment")

    def key() -> str:
        pipeline.code_fingerprint.cache_clear()
        return pipeline.recipe_fingerprint(recipe)

    monkeypatch.setattr(pipeline, "__file__", str(copy / "build" / "pipeline.py"))
    try:
        base = key()
        assert base == key()
        for part in ("stages/prompts.py", "stages/clean.py", "stages/teacher.py", "config/tasks.py",
                     "backends/local.py", "models/resolve.py", "utils/sharding.py", "build/pipeline.py",
                     "build/plan.py", "build/contract.py", "task_specs/nli.yaml", "seed_data/sentiment.jsonl"):
            original = (copy / part).read_bytes()
            (copy / part).write_bytes(original + b"\n")
            assert key() != base, part
            (copy / part).write_bytes(original)
            assert key() == base, part
        for part in ("build/card.py", "build/export.py", "cli.py", "hub.py", "students/card.py"):
            (copy / part).write_bytes((copy / part).read_bytes() + b"\n# not shaping\n")
            assert key() == base, part
    finally:
        pipeline.code_fingerprint.cache_clear()

"""The console of ``crossaug build``: one progress line per slow stage, the summary table, and none of the
libraries' own bars and load reports unless ``-v`` asks for them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_crossaug.utils.logging import QUIET_ENV

from test_build_tiny import tiny_recipe

ROOT = Path(__file__).resolve().parent.parent
# what datasets, transformers and huggingface_hub print on their own while a build runs
LIBRARY_NOISE = ("Flattening the indices", "Generating train split", "Creating parquet", "Writing model shards",
                 "Loading weights", "LOAD REPORT", "Map:", "Filter:", "Casting", "Saving the dataset")


def run_build(args, recipe_file, out, work):
    # without the quiet settings an earlier in-process setup_logging() may have put into os.environ
    env = {**{k: v for k, v in os.environ.items() if k not in QUIET_ENV}, "PYTHONPATH": str(ROOT), "COLUMNS": "120",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "hf_crossaug.cli", *args, "build", str(recipe_file), "-o", str(out),
                           "--work-dir", str(work)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def recipe_file(tiny_llm_dir, tiny_encoder_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("console") / "tiny-sentiment.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir).to_dict()))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("console-work")


def test_build_console_default_is_quiet(recipe_file, work, tmp_path):
    res = run_build([], recipe_file, tmp_path / "out", work)
    assert res.returncode == 0, res.stderr
    err = res.stderr
    assert not [n for n in LIBRARY_NOISE if n in err], err
    assert "{'loss'" not in err + res.stdout  # the Trainer's printed log dicts
    # one progress line per slow stage (generation, teacher training), each with counts, rate and ETA
    for desc, unit in (("text", "prompt"), ("teacher", "step")):
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(f"{desc}:")]
        assert lines and re.search(rf"\d+/\d+ \[[\d:]+<[\d:]+, +[\d.]+(s/)?{unit}", lines[-1]), err
    assert "generating 9 class-conditioned" in err and "training the teacher" in err and "writing 6 configs" in err
    assert "stage / config" in res.stdout and "config div-k" in res.stdout  # the closing summary table


def test_build_verbose_shows_library_output(recipe_file, tmp_path):
    res = run_build(["-v"], recipe_file, tmp_path / "out", tmp_path / "work")  # a fresh work folder: every stage runs
    assert res.returncode == 0, res.stderr
    assert any(n in res.stderr for n in LIBRARY_NOISE), res.stderr

"""Cards a reviewer can read without the builder's machine: no absolute paths, no link to a repository
that does not exist, per-config diversity and label agreement, request accounting, a model-index."""

import shutil
import os
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from hf_crossaug.build.card import request_rows
from hf_crossaug.utils.fingerprint import file_sha256
from hf_crossaug.utils.paths import absolute_paths, portable, portable_path


def test_portable_path(tmp_path, monkeypatch):
    inside = tmp_path / "work"
    (inside / "data").mkdir(parents=True)
    (inside / "data" / "dev.jsonl").write_text("{}\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "source.jsonl").write_text('{"a": 1}\n')
    monkeypatch.chdir(inside)
    assert portable_path(str(inside / "data" / "dev.jsonl")) == "data/dev.jsonl"
    assert portable_path("./data/dev.jsonl") == "data/dev.jsonl"
    sha = file_sha256(outside / "source.jsonl")
    assert portable_path(str(outside / "source.jsonl")) == f"source.jsonl (sha256 {sha})"
    assert portable_path(str(outside)) == "elsewhere"
    assert portable_path(str(tmp_path / "gone" / "model")) == "model"  # missing: the name only
    for hub_id in ("crossaug/xnli-sw-synth", "intfloat/multilingual-e5-small", "seed", "embedded:e5-small"):
        assert portable_path(hub_id) == hub_id
    nested = portable({"a": [str(outside), {"b": str(inside / "data")}], "n": 3, "t": (str(outside),)})
    assert nested == {"a": ["elsewhere", {"b": "data"}], "n": 3, "t": ("elsewhere",)}


def test_request_rows_render_endpoint_accounting():
    stats = {"requests": {"generate": {"requests": 12, "cache_hits": 3, "retries": 1, "failures": 0,
                                       "prompt_tokens": 1200, "completion_tokens": 340, "wall_s": 4.25,
                                       "tokens_per_s": 80.0,
                                       "concurrency": {"level": 12, "cap": 16, "lowest": 1, "highest": 16}}}}
    (row,) = request_rows(stats)
    assert row == {"stage": "generate", "requests": "12", "cache_hits": "3", "retries": "1", "failures": "0",
                   "prompt_tokens": "1200", "completion_tokens": "340", "wall_s": "4.2", "tokens_per_s": "80.0",
                   "in_flight": "12 (1-16 of 16)"}
    del stats["requests"]["generate"]["concurrency"]  # a Ray job has no adaptive level
    assert request_rows(stats)[0]["in_flight"] == "-"
    assert request_rows({}) == []


def test_dataset_card_has_no_absolute_path_and_reports_quality(tiny_built_dataset):
    text = (tiny_built_dataset / "README.md").read_text()
    # the tiny models and the output live under a temporary folder, outside the working folder
    assert os.path.isabs(str(tiny_built_dataset)) and not str(tiny_built_dataset).startswith(os.getcwd())
    assert absolute_paths(text) == [], absolute_paths(text)
    assert "github.com" not in text
    build = (tiny_built_dataset / "crossaug_build.json").read_text()  # uploaded with the dataset, too
    assert absolute_paths(build) == [] and '"tiny-encoder' in build, absolute_paths(build)
    section = text.split("### Diversity and label agreement per config\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == {"raw", "rand-k", "top-k", "div-k", "amb-k", "easy-k"}
    for name, (n, diversity, agreement, kappa) in rows.items():
        assert int(n) > 1 and 0 <= float(diversity) <= 2 and 0 <= float(agreement) <= 1, (name, rows[name])
    assert "Generated tokens:" in text
    card = DatasetCard.load(tiny_built_dataset / "README.md")  # still a valid card
    assert {c["config_name"] for c in card.data.configs} == set(rows)


def test_student_card_has_no_absolute_path_and_a_model_index_per_language(tiny_student, tmp_path):
    from hf_crossaug.students.evaluate import evaluate_model
    from hf_crossaug.stages.source import seed_path
    from hf_crossaug.config.tasks import get_task
    NLI = get_task("nli")

    rows = seed_path(NLI).read_text().splitlines()
    files = {}
    for lang in ("sw", "hi"):
        files[lang] = tmp_path / f"eval-{lang}.jsonl"
        files[lang].write_text("\n".join(rows[:10]) + "\n")
    student = tmp_path / "student"  # a copy: the session's student is shared with other tests
    shutil.copytree(tiny_student, student)
    evaluate_model(student, {k: str(v) for k, v in files.items()}, limit=6)
    text = (student / "README.md").read_text()
    assert absolute_paths(text) == [], absolute_paths(text)
    assert "github.com" not in text
    assert f"eval-sw.jsonl (sha256 {file_sha256(files['sw'])})" in text
    card = ModelCard.load(student / "README.md")
    by_lang = {}
    for r in card.data.eval_results:
        by_lang.setdefault(r.dataset_args["language"], []).append(r)
    assert set(by_lang) == {"sw", "hi"}
    for lang, results in by_lang.items():
        assert {r.metric_type for r in results} == {"accuracy", "f1"}
        assert all(r.dataset_config == lang and r.dataset_type == f"eval-{lang}" for r in results)

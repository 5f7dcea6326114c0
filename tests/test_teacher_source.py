"""``teacher.source``: the teacher learns from English gold of its own (SNLI dev + test, say, while the prompts and
students get 300 rows), given as a glob of files; and ``teacher.group_by_length`` (length-grouped batches)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from huggingface_hub import DatasetCard
from test_build_tiny import tiny_recipe

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.source import SourceConfig
from hf_crossaug.config.tasks import get_task
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.stages.source import load_source
from hf_crossaug.stages.teacher import training_fields

WORDS = {"positive": "a good warm film", "negative": "a bad dull film", "neutral": "a film that runs two hours"}


def write_rows(path, n: int, tag: str) -> None:
    labels = list(WORDS)
    path.write_text("".join(json.dumps({"text": f"{WORDS[labels[i % 3]]} {tag}{i}", "label": labels[i % 3]}) + "\n"
                            for i in range(n)))


def test_a_glob_reads_every_matching_file_in_name_order_and_a_glob_that_matches_nothing_is_one_line(tmp_path):
    write_rows(tmp_path / "b.jsonl", 4, "b")
    write_rows(tmp_path / "a.jsonl", 5, "a")
    (tmp_path / "notes.txt").write_text("not data")
    task = get_task("sentiment")
    ds = load_source(task, str(tmp_path / "*.jsonl"))
    assert len(ds) == 9 and ds["text"][0].endswith("a0") and ds["text"][5].endswith("b0")  # a.jsonl, then b.jsonl
    with pytest.raises(FileNotFoundError, match=r"^source file pattern .*/\*\.csv matches no file$"):
        load_source(task, str(tmp_path / "*.csv"))


def test_teacher_source_and_source_limit_together_are_refused_where_built():
    with pytest.raises(ConfigError, match="field 'source_limit' limits the recipe's source; with teacher.source set"):
        TeacherConfig(source=SourceConfig(path="gold.jsonl"), source_limit=100)


def test_the_rows_and_the_grouping_are_in_the_cache_key_only_as_they_change_the_teacher():
    plain = training_fields(TeacherConfig())
    own = training_fields(TeacherConfig(source=SourceConfig(path="gold/*.jsonl")))
    assert own == plain and "source" not in own  # the rows it reads are in the key by content
    assert "group_by_length" not in plain and training_fields(TeacherConfig(group_by_length=True))["group_by_length"]


def test_the_teacher_learns_from_its_own_source_and_the_card_names_it(tiny_llm_dir, tiny_encoder_dir, tmp_path,
                                                                       monkeypatch):
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    gold = tmp_path / "gold"
    gold.mkdir()
    write_rows(gold / "dev.jsonl", 40, "d")
    write_rows(gold / "test.jsonl", 35, "t")
    samplers = []
    original = Trainer._get_train_sampler
    monkeypatch.setattr(Trainer, "_get_train_sampler", lambda self, *a, **k: samplers.append(
        original(self, *a, **k)) or samplers[-1])
    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    teacher = dataclasses.replace(plain.teacher, source=SourceConfig(path=str(gold / "*.jsonl")),
                                  group_by_length=True)
    recipe = dataclasses.replace(plain, source=SourceConfig(limit=30), teacher=teacher)
    summary = build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    stats = summary["stats"]
    assert stats["source"]["rows"] == 30  # the prompts keep the recipe's source
    assert stats["teacher"]["source_rows"] == 75 == stats["teacher"]["train_size"] + stats["teacher"]["dev_size"]
    assert stats["teacher"]["source"] == str(gold / "*.jsonl")
    assert samplers and all(isinstance(s, LengthGroupedSampler) for s in samplers)
    card = DatasetCard.load(tmp_path / "out" / "README.md").text
    # the card names the file, not the folder it was in on the maker's machine
    assert "(30 labelled rows for the prompts; the teacher learnt from *.jsonl, 75 rows (`teacher.source`)" in card
    assert str(tmp_path) not in card



def test_a_missing_teacher_source_is_one_line_before_any_work(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    from hf_crossaug.build.pipeline import preflight

    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    recipe = dataclasses.replace(plain, teacher=dataclasses.replace(
        plain.teacher, source=SourceConfig(path=str(tmp_path / "gold" / "*.jsonl"))))
    with pytest.raises(FileNotFoundError, match=r"field 'teacher.source.path': .*\*\.jsonl is not an existing file"):
        preflight(recipe)

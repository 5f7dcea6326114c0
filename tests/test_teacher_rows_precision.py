"""``teacher.source_limit`` (the teacher learns from more English gold than the prompts and students get) and the
training precision (``dtype``: bf16 autocast where the device computes it natively) of the teacher and students."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from datasets import Dataset
from huggingface_hub import DatasetCard, ModelCard
from test_build_tiny import tiny_recipe
from transformers import Trainer, TrainingArguments

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.source import SourceConfig
from hf_crossaug.config.student import StudentConfig
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.models.resolve import native_dtype
from hf_crossaug.models.training import epoch_selection_args, predict_logits, training_dtype
from hf_crossaug.stages.teacher import training_fields


def autocast_seen(model) -> list:
    """Records, at every forward pass of ``model``'s head, whether CPU bf16 autocast was on (inside the forward:
    accelerate wraps ``model.forward`` itself in autocast)."""
    seen = []
    model.classifier.register_forward_pre_hook(lambda m, a: seen.append(
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16))
    return seen


@pytest.mark.parametrize("field, value, why", [("source_limit", 0, "must be >= 1, got 0"),
                                               ("dtype", "float16", "must be one of auto, float32, bfloat16")])
def test_bad_values_are_config_errors(field, value, why):
    with pytest.raises(ConfigError, match=f"TeacherConfig: field '{field}' {why}"):
        TeacherConfig(**{field: value})  # refused where it is built
    if field == "dtype":
        with pytest.raises(ConfigError, match=f"StudentConfig: field 'dtype' {why}"):
            StudentConfig(dtype=value)


def test_the_fp32_teachers_cache_key_is_unchanged_and_a_bf16_one_differs():
    plain = training_fields(TeacherConfig(source_limit=500))
    assert "dtype" not in plain and "source_limit" not in plain  # the rows it reads are in the key by content
    assert training_fields(TeacherConfig(dtype="bfloat16"))["dtype"] == "bfloat16"


def test_auto_is_bf16_exactly_where_the_cpu_computes_it_natively():
    native = any(getattr(torch.cpu, p, lambda: False)() for p in ("_is_avx512_bf16_supported",
                                                                     "_is_amx_tile_supported"))
    assert training_dtype("auto") == native_dtype("auto") == ("bfloat16" if native else "float32")
    assert training_dtype("float32") == "float32" and training_dtype("bfloat16") == "bfloat16"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_trainer_and_the_labelling_pass_run_in_the_dtype_asked_for(dtype, tiny_classifier_factory,
                                                                       tiny_tokenizer, tmp_path):
    model = tiny_classifier_factory(num_labels=2)
    seen = autocast_seen(model)
    enc = tiny_tokenizer(["a good film", "a bad film"] * 4, truncation=True, max_length=16)
    train = Dataset.from_dict({**enc, "labels": [1, 0] * 4})
    args = epoch_selection_args(str(tmp_path), 1, 1e-3, 4, 0, dtype=dtype) | {"eval_strategy": "no",
                                                                              "save_strategy": "no",
                                                                              "load_best_model_at_end": False}
    from transformers import DataCollatorWithPadding

    Trainer(model=model, args=TrainingArguments(**args), train_dataset=train,
            data_collator=DataCollatorWithPadding(tiny_tokenizer)).train()
    assert len(seen) == 2 and set(seen) == {dtype == "bfloat16"}  # two steps of 4 rows
    seen.clear()
    logits = predict_logits(model, tiny_tokenizer, [["a good film", "a bad film"]], 16, 8, dtype=dtype)
    assert seen == [dtype == "bfloat16"] and logits.dtype.name == "float32" and logits.shape == (2, 2)


def test_the_teacher_reads_source_limit_rows_and_both_cards_say_so(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    from hf_crossaug.students.classification import train_student

    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    recipe = dataclasses.replace(plain, source=SourceConfig(limit=30),
                                 teacher=dataclasses.replace(plain.teacher, source_limit=90, dtype="auto"))
    summary = build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    stats, dtype = summary["stats"], training_dtype("auto")
    assert stats["source"]["rows"] == 30  # the prompts' few-shot examples keep the recipe's source rows
    teacher = stats["teacher"]
    assert teacher["source_rows"] == 90 == teacher["train_size"] + teacher["dev_size"]
    assert teacher["dtype"] == stats["recipe"]["teacher"]["dtype"] == dtype  # what ran, not "auto"
    card = DatasetCard.load(tmp_path / "out" / "README.md").text
    assert "(30 labelled rows for the prompts; the teacher read 90 rows of it (`teacher.source_limit`)" in card
    assert f"- precision: {dtype}{' autocast' if dtype == 'bfloat16' else ''} (training and labelling)" in card
    history = teacher["dev_history"]  # dev accuracy after every epoch, the best one kept
    assert len(history) == teacher["epochs"] == recipe.teacher.epochs and round(teacher["dev_accuracy"], 4) == max(history)
    assert f"(after each epoch: {', '.join(map(str, history))}; the best epoch kept)" in card

    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="T-top-k", epochs=1, batch_size=8, max_length=48,
                        limit=24, dtype="auto")
    res = train_student(cfg, str(tmp_path / "out"), "seed", None, tmp_path / "student", log=lambda m: None)
    assert res["config"]["dtype"] == dtype and res["config"]["limit"] == 24  # the student keeps its own rows
    student_card = ModelCard.load(tmp_path / "student" / "README.md").text
    assert f"({teacher['train_size']} rows of the 90 it read, the rest its dev set)" in student_card
    assert f"| precision | {'bfloat16 autocast' if dtype == 'bfloat16' else 'float32'} |" in student_card
    assert f"precision {dtype}" in student_card  # the teacher's


def test_labelling_is_one_pass_per_epoch_and_the_labels_are_the_best_epochs(tiny_llm_dir, tiny_encoder_dir,
                                                                           tmp_path, monkeypatch):
    """``best`` holds one epoch's weights: its labels come from that epoch's pass, not from a pass of their own
    (which labelled every generation twice), and they are what the best model predicts."""
    import numpy as np

    from hf_crossaug.stages import teacher as teacher_stage

    passes = []
    real = teacher_stage.predict_probs
    monkeypatch.setattr(teacher_stage, "predict_probs", lambda *a, **k: passes.append(1) or real(*a, **k))
    plain = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    recipe = dataclasses.replace(plain, teacher=dataclasses.replace(plain.teacher, epochs=3))
    summary = build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    raw = Dataset.from_parquet(str(tmp_path / "out" / "data" / "raw" / "train-00000-of-00001.parquet"))
    done = next((tmp_path / "work").rglob(f"teacher-*/{teacher_stage.DONE_FILE}"))
    teacher = teacher_stage.Teacher(path=done.parent, **__import__("json").loads(done.read_text()))
    assert 1 <= teacher.best_epoch <= 3 and summary["stats"]["teacher"]["dev_history"][teacher.best_epoch - 1] == max(
        summary["stats"]["teacher"]["dev_history"])
    assert summary["stats"]["teacher"]["train_s"] == teacher.train_s > 0  # its own wall time, kept with it
    assert len(passes) == 3  # one per epoch, none for ``best``
    probs, epochs = np.array(raw["teacher_probs"]), np.array(raw["epoch_probs"])
    assert epochs.shape[1] == 3 and np.array_equal(probs, epochs[:, teacher.best_epoch - 1])
    own = teacher_stage.label(raw.select_columns(["text"]), recipe.task_spec,
                              teacher_stage.Teacher(**{**teacher.__dict__, "best_epoch": None}))
    assert np.allclose(np.array(own["teacher_probs"]), probs, atol=1e-5)  # the best model's own pass agrees

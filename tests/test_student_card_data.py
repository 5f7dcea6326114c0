"""One student card for every producer: typed `StudentCardData`, rendered by `hf_crossaug.students.card` for the
CLI (``crossaug_student.json``) and by `DistillationTrainer.create_model_card` for a library user."""

import json
from pathlib import Path

import pytest
from datasets import Dataset
from huggingface_hub import ModelCard

from hf_crossaug.students.card import save_results, student_card
from hf_crossaug.students.card_data import StudentCardData
from hf_crossaug.students.trainer import (
    DistillationConfig,
    DistillationTrainer,
    prepare_distillation_dataset,
)
from hf_crossaug.utils.paths import absolute_paths

CARDS = Path(__file__).parent / "data" / "cards"
FIXTURES = ("classification", "frozen", "multiple_choice")
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def results(name: str) -> dict:
    return json.loads((CARDS / f"{name}.json").read_text())


def library_trainer(tmp_path, tokenizer, model, **kw) -> DistillationTrainer:
    """What a library user writes: a DistillationTrainer on gold + soft rows, one optimizer step."""
    rows = [{"text": "the movie was great", "label": 2, "teacher_probs": [0.0, 0.0, 0.0], "is_soft": 0},
            {"text": "what a wonderful day", "label": -100, "teacher_probs": [0.1, 0.2, 0.7], "is_soft": 1},
            {"text": "das war ein schlechter tag", "label": -100, "teacher_probs": [0.8, 0.1, 0.1], "is_soft": 1}]
    args = DistillationConfig(output_dir=str(tmp_path / "my-student"), report_to=[], use_cpu=True, max_steps=1,
                              per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True,
                              distill_temperature=2.0, kd_formulation="reference")
    train = prepare_distillation_dataset(Dataset.from_list(rows), tokenizer, "text", max_length=16)
    return DistillationTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer, **kw)


@pytest.mark.parametrize("name", FIXTURES)
def test_card_data_round_trips_a_results_dict(name):
    r = {**results(name), "something_new": {"kept": True}}
    data = StudentCardData.from_results(r)
    assert data.to_results() == r
    assert data.labels == r["labels"] and data.mode == r["mode"] and data.config == r["config"]
    assert data.multiple_choice == (name == "multiple_choice")


@pytest.mark.parametrize("name", FIXTURES)
def test_cli_card_is_unchanged_for_the_results_fixtures(name, tmp_path):
    """The cards in tests/data/cards were written by the renderer before it read typed card data."""
    golden = (CARDS / f"{name}.md").read_text()
    assert str(student_card(StudentCardData.from_results(results(name)))) == golden
    save_results(tmp_path, results(name))  # the CLI's path: crossaug_student.json + README.md
    assert (tmp_path / "README.md").read_text() == golden


def test_library_user_gets_the_distillation_card(tmp_path, tiny_tokenizer, tiny_classifier_factory):
    model = tiny_classifier_factory(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    trainer = library_trainer(tmp_path, tiny_tokenizer, model)
    trainer.train()
    trainer.create_model_card(language="de", tags=["my-tag"])
    path = tmp_path / "my-student" / "README.md"
    text = path.read_text()
    assert "hf_crossaug.students.trainer.DistillationTrainer" in text
    assert "KL divergence to a teacher's soft labels" in text and "(negative, neutral, positive)" in text
    assert "| kd_formulation | reference |" in text and "| temperature | 2.0 |" in text
    assert "training rows: 3 (2 with soft teacher labels, 1 hard-labelled)" in text
    assert "arXiv:2407.10582" in text  # the soft-label students' paper, via hf_crossaug.citations
    assert "mode **" not in text and "synthetic data was written" not in text  # nothing it does not know
    assert absolute_paths(text) == []
    card = ModelCard.load(path)
    assert card.data.model_name == "my-student" and card.data.language == ["de"]
    assert {"knowledge-distillation", "my-tag"} <= set(card.data.tags) and "cross-lingual" not in card.data.tags
    assert card.data.base_model is None  # built in code: no Hub id to name


def test_push_to_hub_uploads_the_distillation_card(tmp_path, tiny_tokenizer, tiny_classifier_factory, monkeypatch):
    """`Trainer.push_to_hub` writes its card with `create_model_card`: ours, not the generic draft."""
    import transformers.trainer

    uploaded = {}

    class Api:
        def upload_folder(self, folder_path, **kw):
            uploaded["card"] = (Path(folder_path) / "README.md").read_text()

    monkeypatch.setattr(transformers.trainer, "hf_api", Api)
    model = tiny_classifier_factory(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    trainer = library_trainer(tmp_path, tiny_tokenizer, model)
    trainer.hub_model_id = "someone/my-student"
    trainer.push_to_hub()
    assert "DistillationTrainer" in uploaded["card"] and "(negative, neutral, positive)" in uploaded["card"]


def test_given_card_data_renders_the_cli_card(tmp_path, tiny_tokenizer, tiny_classifier_factory):
    """A trainer handed the CLI's card data writes the CLI's card: one renderer, no second template."""
    data = StudentCardData.from_results(results("classification"))
    trainer = library_trainer(tmp_path, tiny_tokenizer, tiny_classifier_factory(), card_data=data)
    trainer.create_model_card()
    assert (tmp_path / "my-student" / "README.md").read_text() == (CARDS / "classification.md").read_text()

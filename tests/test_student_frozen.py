"""The frozen-feature student backend: ``crossaug train --backend frozen-features`` writes a head + encoder
reference that `evaluate_model` (and ``crossaug evaluate``) scores, with a card that says what it is."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hf_crossaug.cli import app
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")
from hf_crossaug.students.evaluate import evaluate_model
from hf_crossaug.students.frozen import HEAD_FILE, FrozenFeatureClassifier, frozen_config
from test_student import eval_files, synth_dir  # noqa: F401  (fixtures)


def test_cli_train_frozen_features_then_evaluate(tmp_path, synth_dir, eval_files, tiny_encoder_dir):  # noqa: F811
    from huggingface_hub import ModelCard

    out = tmp_path / "frozen"
    r = CliRunner().invoke(app, ["train", str(synth_dir), "--backend", "frozen-features", "--mode", "T-div-k",
                                 "--model", str(tiny_encoder_dir), "--dev", eval_files["sw"], "--output", str(out),
                                 "--epochs", "2", "--limit", "24", "--seed", "0"])
    assert r.exit_code == 0, r.output
    assert "frozen embeddings" in r.output
    saved = json.loads((out / "crossaug_student.json").read_text())
    cfg = saved["config"]
    assert cfg["backend"] == "frozen-features" and cfg["epochs"] == 2  # given
    assert (cfg["learning_rate"], cfg["batch_size"]) == (2e-3, 64)  # the backend's defaults, not finetune's
    assert saved["counts"] == {"gold": 24, "generated": 6, "soft": 6, "total": 30}
    sel = saved["selection"]
    assert len(sel["history"]) == 2 and sel["dev_accuracy"] == max(h["accuracy"] for h in sel["history"])
    head = json.loads((out / HEAD_FILE).read_text())
    assert head["input_dim"] == 4 * 16 and head["features"] == "[u, v, |u-v|, u*v]"  # hidden 16, pair features
    assert head["encoder"]["name"] == str(tiny_encoder_dir) and saved["head"] == head
    assert (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
    assert not (out / "training_args.bin").exists() and not (out / "config.json").exists()
    card = (out / "README.md").read_text()
    assert "small head on frozen sentence embeddings" in card and "pipeline(" not in card
    assert "frozen-features" in ModelCard.load(out / "README.md").data.tags

    ev = evaluate_model(out, eval_files, limit=8)
    assert ev["scores"]["sw"]["n"] == 8 and ev["scores"]["hi"]["n"] == 8 and set(ev["scores"]) == {"sw", "hi", "avg"}
    assert json.loads((out / "crossaug_student.json").read_text())["evaluation"]["scores"] == ev["scores"]
    assert "model-index" in (out / "README.md").read_text()
    # the same predictions straight from the saved folder
    from hf_crossaug.students.evaluate import load_target

    ds = load_target(NLI, eval_files["sw"], limit=8)
    preds = FrozenFeatureClassifier.load(out).predict(ds)
    assert np.isclose((preds == np.asarray(ds["label"])).mean(), ev["scores"]["sw"]["accuracy"])

    r = CliRunner().invoke(app, ["evaluate", str(out), "--target", f"sw={eval_files['sw']}", "--limit", "6"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["evaluate", str(out), "--task", "sentiment", "--target", f"sw={eval_files['sw']}"])
    assert r.exit_code == 2 and "trained for task 'nli'" in r.output


def test_frozen_config_and_multiple_choice_refusal(tmp_path):
    from hf_crossaug.config.student import StudentConfig
    from hf_crossaug.students.classification import train_student

    cfg = frozen_config(seed=3)
    assert (cfg.backend, cfg.epochs, cfg.learning_rate, cfg.batch_size, cfg.seed) == ("frozen-features", 8, 2e-3, 64, 3)
    with pytest.raises(ValueError, match="'backend' must be one of finetune, frozen-features"):
        train_student(StudentConfig(backend="lora"), {}, "seed", None, tmp_path / "x")
    with pytest.raises(ValueError, match="trains classifiers only"):
        train_student(frozen_config(task="copa", mode="SRC"), {}, "seed", None, tmp_path / "mc")

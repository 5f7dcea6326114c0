"""Training modes, student training + per-language evaluation, the model card and the train/evaluate CLI.

The synthetic dataset is written by hand in the Hub layout (``data/<config>/train-*.parquet`` + README with
``configs:``) with the columns the builder produces, so these tests do not run the generator or a teacher.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, Features, List, Value

from hf_crossaug.stages.source import load_source
from hf_crossaug.students.modes import build_training_set, load_synthetic, mode_names, parse_mode, row_counts
from hf_crossaug.stages.select import STRATEGIES, SelectionConfig, select_all
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")

PER_CLASS, K = 10, 2  # raw: 30 rows; each selection config: 6 rows


def synth_rows(task=NLI, per_class=PER_CLASS, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    n, c = per_class * task.num_labels, task.num_labels
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    epochs = rng.dirichlet(np.ones(c), size=(n, 3)).astype(np.float32)
    label = task.class_label()
    feats = Features({"id": Value("string"), "premise": Value("string"), "hypothesis": Value("string"),
                      "prompt_label": label, "domain": Value("string"), "teacher_probs": List(Value("float32")),
                      "teacher_label": label, "teacher_confidence": Value("float32"),
                      "epoch_probs": List(List(Value("float32")))})
    return Dataset.from_dict({
        "id": [f"g{i:03d}" for i in range(n)],
        "premise": [f"the man walked home number {i}" for i in range(n)],
        "hypothesis": [f"a person went somewhere {i % 5}" for i in range(n)],
        "prompt_label": [i % c for i in range(n)], "domain": ["a novel"] * n,
        "teacher_probs": probs.tolist(), "teacher_label": probs.argmax(1).tolist(),
        "teacher_confidence": probs.max(1).tolist(), "epoch_probs": epochs.tolist(),
    }, features=feats)


def write_synth_dataset(folder: Path, language: str = "sw") -> Path:
    """A built dataset as ``crossaug build`` lays it out: raw + every strategy, card YAML, build stats."""
    raw = synth_rows()
    cfg = SelectionConfig(k=K, n_clusters=2, kmeans_backend="sklearn")
    emb = np.random.default_rng(1).normal(size=(len(raw), 8))
    configs = {"raw": raw, **{n: ds for n, (ds, _) in select_all(raw, cfg, embeddings=emb).items()}}
    for name, ds in configs.items():
        (folder / "data" / name).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(folder / "data" / name / "train-00000-of-00001.parquet"))
    meta = {"configs": [{"config_name": n, "data_files": [{"split": "train", "path": f"data/{n}/train-*.parquet"}]}
                        for n in configs]}
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(meta)}---\n# tiny synthetic NLI\n")
    stats = {"teacher": {"base_model": {"name": "tiny-teacher", "revision": "abc123"}, "source": "seed",
                         "dev_accuracy": 0.5, "dev_size": 10, "train_size": 50, "epochs": 3},
             "recipe": {"name": "tiny-sw", "task": "nli", "language": language, "route": "zero-shot",
                        "license": "apache-2.0"}}
    (folder / "crossaug_build.json").write_text(json.dumps(stats))
    return folder


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return write_synth_dataset(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def synthetic(synth_dir):
    return {n: load_synthetic(synth_dir, n) for n in ("raw", *STRATEGIES)}


@pytest.fixture(scope="module")
def gold():
    return load_source(NLI, "seed", limit=15, seed=0)


@pytest.mark.parametrize("mode", mode_names())
def test_every_mode_builds_its_rows(mode, gold, synthetic):
    out = build_training_set(mode, gold, synthetic, NLI, seed=3)
    counts, m = row_counts(out), parse_mode(mode)
    assert set(out.column_names) == {"premise", "hypothesis", "label", "teacher_probs", "is_soft", "origin"}
    n_sel = K * NLI.num_labels
    expected_gen = {"SRC": 0, "GEN": len(gold) + n_sel, "SRC+GEN": n_sel}.get(mode, n_sel)
    assert counts == {"gold": len(gold) if m.gold else 0, "generated": expected_gen,
                      "soft": expected_gen if mode.startswith("T-") else 0, "total": len(out)}
    rows = out.to_pandas()
    gen = rows[rows.origin == "generated"]
    gold_rows = rows[rows.origin == "gold"]
    assert list(gold_rows.label) == list(gold["label"])[: len(gold_rows)]
    assert all(list(p) == [0.0] * 3 for p in gold_rows.teacher_probs)
    if mode.startswith("T-"):
        assert (gen.label == -100).all() and (gen.is_soft == 1).all()
    else:
        assert gen.label.between(0, 2).all() and (gen.is_soft == 0).all()
    if m.strategy:  # teacher_probs and the selected rows kept exactly, in config order
        src = synthetic[m.strategy]
        assert list(gen.hypothesis) == list(src["hypothesis"])
        np.testing.assert_allclose(np.stack(gen.teacher_probs.to_numpy()), np.array(src["teacher_probs"]))
        if mode.startswith("T_pl-"):
            assert list(gen.label) == list(src["prompt_label"])


def test_gen_matches_src_gen_size_and_draws_are_nested(gold, synthetic):
    gen = build_training_set("GEN", gold, synthetic, NLI, seed=7)
    src_gen = build_training_set("SRC+GEN", gold, synthetic, NLI, seed=7)
    assert len(gen) == len(src_gen) == len(gold) + K * NLI.num_labels
    gen_ids = set(gen.filter(lambda r: r["origin"] == "generated")["premise"])
    assert set(src_gen.filter(lambda r: r["origin"] == "generated")["premise"]) <= gen_ids
    # more than raw holds: all of raw, once
    big = build_training_set("GEN", load_source(NLI, "seed", limit=40), synthetic, NLI)
    assert row_counts(big)["generated"] == len(synthetic["raw"])


def test_unknown_mode_and_bad_synthetic(gold, synthetic):
    with pytest.raises(ValueError, match=r"unknown training mode 'T-best-k'; valid modes: SRC, GEN, SRC\+GEN, T-"):
        parse_mode("T-best-k")
    bad = {"div-k": synthetic["div-k"].remove_columns("teacher_probs")}
    with pytest.raises(ValueError, match="lacks column"):
        build_training_set("T-div-k", gold, bad, NLI)
    with pytest.raises(ValueError, match="no config 'top-k'"):
        build_training_set("T-top-k", gold, {"div-k": synthetic["div-k"]}, NLI)


@pytest.fixture(scope="module")
def eval_files(tmp_path_factory):
    """Tiny labelled 'target' sets: a jsonl file and a Hub-layout folder (loaded like a Hub id)."""
    d = tmp_path_factory.mktemp("targets")
    rows = [{"premise": r["premise"], "hypothesis": r["hypothesis"], "label": NLI.labels[r["label"]]}
            for r in load_source(NLI, "seed", limit=12, seed=5)]
    sw = write_jsonl(d / "dev-sw.jsonl", rows)
    folder = d / "hi-set"
    (folder / "data").mkdir(parents=True)
    Dataset.from_list(rows[:9]).to_parquet(str(folder / "data" / "validation-00000-of-00001.parquet"))
    return {"sw": str(sw), "hi": str(folder)}


def test_train_student_then_evaluate_writes_model_and_card(tmp_path, synth_dir, eval_files, tiny_encoder_dir):
    from huggingface_hub import ModelCard

    from hf_crossaug.config.student import StudentConfig
    from hf_crossaug.students.classification import train_student
    from hf_crossaug.students.evaluate import evaluate_model

    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="T-div-k", epochs=2, batch_size=8, max_length=48,
                        limit=24, seed=0)
    out = tmp_path / "student"
    res = train_student(cfg, str(synth_dir), "seed", eval_files["sw"], out, log=lambda m: None)
    assert res["counts"] == {"gold": 24, "generated": 6, "soft": 6, "total": 30}
    assert res["dataset"]["config"] == "div-k" and res["task"] == "nli" and res["language"] == "sw"
    sel = res["selection"]
    assert sel["select_by"] == "english-dev" and len(sel["history"]) == 2
    assert sel["dev_accuracy"] == max(h["accuracy"] for h in sel["history"]) and sel["best_checkpoint"]
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "checkpoints").exists()
    card = ModelCard.load(out / "README.md")
    assert card.data.eval_results is None and "T-div-k" in card.text and "tiny-teacher" in card.text

    ev = evaluate_model(out, eval_files, limit=8)
    assert ev["scores"]["sw"]["n"] == 8 and ev["scores"]["hi"]["n"] == 8 and set(ev["scores"]) == {"sw", "hi", "avg"}
    card = ModelCard.load(out / "README.md")
    acc = {r.dataset_args["language"]: r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy"}
    assert acc == {"sw": round(ev["scores"]["sw"]["accuracy"], 4), "hi": round(ev["scores"]["hi"]["accuracy"], 4)}
    assert card.data.base_model is None and "sw" in card.data.language
    assert "model-index" in (out / "README.md").read_text()
    assert json.loads((out / "crossaug_student.json").read_text())["evaluation"]["scores"] == ev["scores"]


def test_target_dev_selection_is_explicit(tmp_path, synth_dir):
    from hf_crossaug.config.student import StudentConfig
    from hf_crossaug.students.classification import train_student

    with pytest.raises(ValueError, match="target-dev"):
        train_student(StudentConfig(select_by="target-dev"), str(synth_dir), "seed", None, tmp_path)
    with pytest.raises(ValueError, match="'select_by' must be one of"):  # train_student checks the config
        train_student(StudentConfig(select_by="test"), str(synth_dir), "seed", None, tmp_path)


def test_cli_train_and_evaluate(tmp_path, synth_dir, eval_files, tiny_encoder_dir):
    from typer.testing import CliRunner

    from hf_crossaug.cli import app

    runner = CliRunner()
    out = tmp_path / "m"
    r = runner.invoke(app, ["train", str(synth_dir), "--mode", "SRC+GEN", "--model", str(tiny_encoder_dir),
                            "--dev", eval_files["sw"], "--select-by", "target-dev", "--output", str(out),
                            "--epochs", "1", "--batch-size", "8", "--max-length", "48", "--limit", "12",
                            "--soft-weight", "0.5"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "crossaug_student.json").read_text())
    assert saved["selection"]["select_by"] == "target-dev" and saved["counts"]["generated"] == 6
    assert saved["config"]["soft_weight"] == 0.5
    card_text = (out / "README.md").read_text()
    assert "not zero-shot" in card_text and "weight 0.5 against the gold rows" in card_text
    r = runner.invoke(app, ["train", str(synth_dir), "--soft-weight", "-1", "--output", str(tmp_path / "w")])
    assert r.exit_code == 2 and "field 'soft_weight' must be >= 0, got -1.0" in r.output
    assert not (tmp_path / "w").exists()

    js = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(out), "--target", f"sw={eval_files['sw']}", "--target",
                            f"hi={eval_files['hi']}@validation", "--limit", "6", "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "hi" in r.output and "avg" in r.output
    scores = json.loads(js.read_text())["scores"]
    assert scores["sw"]["n"] == 6 and 0.0 <= scores["avg"]["accuracy"] <= 1.0

    r = runner.invoke(app, ["train", str(synth_dir), "--mode", "T-best-k", "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown training mode 'T-best-k'" in r.output
    r = runner.invoke(app, ["evaluate", str(out), "--target", "sw"])
    assert r.exit_code == 2 and "LANG=PATH_OR_HUB_ID" in r.output
    r = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), "--task", "nli", "--target", f"sw={eval_files['sw']}"])
    assert r.exit_code == 2 and "cannot load model" in r.output and "Traceback" not in r.output

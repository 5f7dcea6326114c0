"""The reproduction benchmark's pieces: its CLI entry, the feature-head student, the significance test, and a
tiny end-to-end run of both students (frozen-features, finetune) and of pipeline seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from typer.testing import CliRunner

from hf_crossaug.cli import app
from hf_crossaug.config.tasks import get_task
SENTIMENT = get_task("sentiment")
from hf_crossaug.students import frozen as feature_student

from benchmarks import extras, reproduce, reproduce_report


def test_cli_bench_reproduce_forwards_arguments_to_the_script():
    res = CliRunner().invoke(app, ["bench", "reproduce", "--help"])
    assert res.exit_code == 0
    assert "--per-class" in res.output and "--seeds" in res.output


def test_a_missing_optional_module_is_a_one_line_error_before_any_work(monkeypatch):
    """Without the [bench] extra the run used to die on ``import matplotlib`` at its first checkpoint, half an
    hour in: now the check comes first, before the data check, any build or any student."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    monkeypatch.setattr(reproduce, "run_task", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--task", "nli", "--data", "/nonexistent", "--out", "/nonexistent/out"])
    message = str(exc.value)
    assert message == 'error: benchmarks.reproduce needs matplotlib, which is not installed: pip install -e ".[bench]"'
    monkeypatch.setitem(sys.modules, "nltk", None)  # an import that would fail is missing too
    assert extras.missing(["nltk", "numpy"]) == ["nltk"]
    assert not Path("/nonexistent/out").exists()


def test_benchmarks_run_as_modules_and_as_files():
    root = Path(__file__).resolve().parents[1]
    for cmd in (["-m", "benchmarks.reproduce", "--help"], [str(root / "benchmarks" / "reproduce.py"), "--help"]):
        res = subprocess.run([sys.executable, *cmd], cwd=root if cmd[0] == "-m" else Path(__file__).parent,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "--per-class" in res.stdout


def test_feature_head_learns_with_the_distillation_trainer():
    """Gold rows (CE) and soft rows (KL) both move a plain nn.Module head through DistillationTrainer."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 3
    y = rng.integers(0, 3, 240)
    x = (centers[y] + rng.normal(size=(240, 16))).astype(np.float32)
    soft = np.arange(240) >= 120
    probs = np.eye(3, dtype=np.float32)[y] * 0.9 + 0.1 / 3
    rows = Dataset.from_dict({"label": np.where(soft, -100, y), "teacher_probs": probs, "is_soft": soft.astype(int)})
    dev = Dataset.from_dict({"label": y[:60]})
    head = feature_student.train_head(x, rows, x[:60], dev, SENTIMENT, seed=0, epochs=5, batch_size=32)
    assert (feature_student.predict(head, x) == y).mean() > 0.9


def test_permutation_test_separates_real_and_null_differences():
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.6).astype(float)
    b = (rng.random(2000) < 0.5).astype(float)
    assert reproduce.permutation_p(a, b, 2000) < 0.01
    assert reproduce.permutation_p(a, a, 2000) == 1.0
    assert reproduce.permutation_p(a, rng.permutation(a), 2000) > 0.05


class CountingEmbedder:
    """Stands in for SentenceEmbedder: deterministic vectors, counts what it was asked to encode."""

    def __init__(self):
        self.encoded = []

    def __call__(self, texts):
        self.encoded += texts
        return np.stack([np.full(4, len(t), dtype=np.float32) for t in texts])


def test_feature_cache_persists_so_a_rerun_encodes_only_new_texts(tmp_path):
    first = CountingEmbedder()
    cache = feature_student.FeatureCache(first, tmp_path / "features")
    want = cache.encode(["a", "bb", "a"])
    assert first.encoded == ["a", "bb"]  # each distinct text once
    cache.save()

    second = CountingEmbedder()
    again = feature_student.FeatureCache(second, tmp_path / "features")
    np.testing.assert_array_equal(again.encode(["a", "bb", "a"]), want)
    assert second.encoded == []
    again.encode(["ccc", "a"])
    assert second.encoded == ["ccc"]


def test_each_task_has_its_own_default_scale_and_flags_override_it():
    args = reproduce.parse_args(["--k", "7"])
    nli = reproduce.task_args(args, reproduce.TASKS["nli"])
    sentiment = reproduce.task_args(args, reproduce.TASKS["sentiment"])
    assert (nli.k, sentiment.k) == (7, 7)  # given on the command line: both tasks
    assert (nli.per_class, sentiment.per_class) == (400, 120)  # not given: each task's own
    assert nli.target_limit is None and sentiment.target_limit == 1500
    assert reproduce.task_args(reproduce.parse_args(["--target-limit", "0"]), reproduce.TASKS["sentiment"]).target_limit is None
    assert (args.rows, args.pipeline_seeds, nli.generation_dtype, nli.student_epochs) == (reproduce.ROWS, False,
                                                                                          "bfloat16", 8)
    assert nli.teacher_lr is None and nli.student_lr is None  # the recipe's and the head's own


def test_the_finetune_student_has_its_own_scale_rows_and_pipeline_seeds():
    args = reproduce.parse_args(["--student", "finetune"])
    nli = reproduce.task_args(args, reproduce.TASKS["nli"])
    assert (nli.source_limit, nli.per_class, nli.generation_dtype, nli.student_epochs) == (300, 60, "auto", 5)
    assert reproduce.task_args(args, reproduce.TASKS["sentiment"]).student_epochs == 3
    assert (nli.teacher_lr, nli.student_lr) == (1.5e-4, 1.5e-4)
    assert args.rows == reproduce.FINETUNE_ROWS and len(args.rows) == 7 and args.pipeline_seeds is True
    args = reproduce.parse_args(["--student", "finetune", "--no-pipeline-seeds", "--source-limit", "900"])
    assert args.pipeline_seeds is False and reproduce.task_args(args, reproduce.TASKS["nli"]).source_limit == 900


def test_one_class_students_are_counted_in_the_table():
    assert reproduce.top_class_share([np.array([2, 2, 2]), np.array([2, 2, 0])]) == round(5 / 6, 3)
    seeds = [{"seed": i, "train_rows": 9, "hi": 40.0, "top_class_share": share} for i, share in enumerate((1.0, 0.5))]
    res = {"task": "sentiment", "scale": {"seeds": 2}, "seeds_vary": "x",
           "rows": {"SRC": {"mean": {"hi": 40.0, "avg": 40.0}, "std": {"hi": 0.0, "avg": 0.0}, "p_vs": {},
                            "seeds": seeds}}}
    table = reproduce.markdown(res)
    assert "one-class students" in table and table.rstrip().endswith("| 1 of 2 |")
    for s in seeds:  # tables of runs made before the count have no column
        del s["top_class_share"]
    assert "one-class" not in reproduce.markdown(res)


def test_permutation_p_agrees_with_scipy():
    from scipy.stats import permutation_test

    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.55).astype(float)
    b = (rng.random(300) < 0.5).astype(float)
    ref = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                           vectorized=True, n_resamples=20_000, rng=np.random.default_rng(0)).pvalue
    assert abs(reproduce.permutation_p(a, b, 20_000) - ref) < 0.02


# ---------------------------------------------------------------- a tiny end-to-end run (tiny models, no shared data)

def write_shared_data(folder: Path, spec: dict) -> Path:
    """The shared data layout for one task, filled from the packaged seed set (English stands in for targets)."""
    from hf_crossaug.stages.source import load_source

    rows = [{"text": r["text"], "label": SENTIMENT.labels[r["label"]]} for r in load_source(SENTIMENT, "seed")]
    for rel in (spec["source"], spec["dev"], *spec["targets"].values()):
        path = folder / rel.partition("@")[0]  # FILE@train[:2000]: a row slice of the file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory, tiny_llm_dir, tiny_encoder_dir):
    """`reproduce.build` swapped for a tiny-model build (the recipe's embedded generator is minutes on CPU);
    everything after it (gold/dev/targets, students, tests, table) is the script's own code."""
    from test_build_tiny import tiny_recipe

    from hf_crossaug.build.export import build_dataset
    from hf_crossaug.config.recipe import SourceConfig

    tmp = tmp_path_factory.mktemp("bench")
    spec = reproduce.TASKS["sentiment"]
    data = write_shared_data(tmp / "data", spec)
    calls = []

    def tiny_build(spec_, args, data_, log, lever=None, seed=None, k=None):
        calls.append(seed)
        recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
        recipe.source = SourceConfig(path=str(data_ / spec_["source"]), limit=args.source_limit)
        if seed is not None:
            recipe = recipe.with_overrides(seed=seed)
        if k is not None:
            recipe = recipe.with_overrides(k=k)
        if lever == reproduce.STRONG:  # the lever's own recipe change (the rest of its build is the plain one's)
            recipe = reproduce.strong_teacher(recipe, args.strong_teacher_epochs)
        name = ("tiny-bench" + (f"-{lever}" if lever else "") + (f"-seed{seed}" if seed is not None else "")
                + (f"-k{k}" if k else ""))
        summary = build_dataset(recipe, Path(args.work) / name, Path(args.work) / "work", log=lambda m: None)
        return Path(args.work) / name, summary

    mp = pytest.MonkeyPatch()
    mp.setattr(reproduce, "build", tiny_build)
    common = ["--task", "sentiment", "--data", str(data), "--student-model", str(tiny_encoder_dir), "--rows", "SRC",
              "T-div-k", "--source-limit", "30", "--dev-limit", "15", "--target-limit", "12", "--permutations", "50",
              "--student-epochs", "1", "--work", str(tmp / "work"), "--out", str(tmp / "results")]
    yield common, calls, tmp
    mp.undo()


@pytest.mark.parametrize("student", ["frozen-features", "finetune"])
def test_tiny_run_of_each_student_writes_a_labelled_table(tiny_bench, student):
    common, calls, tmp = tiny_bench
    reproduce.main([*common, "--student", student, "--seeds", "1"])
    stem = tmp / "results" / ("reproduce-sentiment" + ("-finetune" if student == "finetune" else ""))
    res = json.loads(stem.with_suffix(".json").read_text())
    assert res["student"]["backend"] == student and res["scale"]["student"] == student
    assert list(res["rows"]) == ["SRC", "SRC+GEN", "T-div-k"]
    for row in res["rows"].values():
        assert set(row["mean"]) == {"mr", "hi", "hi-en", "avg"} and 0 <= row["mean"]["avg"] <= 100
        assert row["seeds"][0]["train_rows"] >= 25  # 30 gold rows minus nothing; + generated for SRC+GEN / T-
        share = row["seeds"][0]["top_class_share"]
        assert 1 / 3 <= share <= 1  # the most predicted of 3 classes over the target rows
    table = stem.with_suffix(".md").read_text()
    assert "one-class students" in table.splitlines()[4]
    users_train = student == "finetune"  # the fine-tuned table varies the whole pipeline by default
    assert table.startswith(f"Student: {student} (the {'student users train' if users_train else 'fast sweep'}")
    assert f"1 seed; seeds vary {'the whole pipeline' if users_train else 'the student only'}" in table
    assert res["student"]["settings"]["epochs"] == 1


def test_a_rerun_reads_finished_finetuned_students_from_the_work_folder(tiny_bench):
    """Fine-tuned students are minutes each on a CPU: a rerun (or a lever run repeating the baselines) reads them
    back, and a changed student setting trains afresh."""
    common, _, tmp = tiny_bench
    stem = tmp / "results" / "reproduce-sentiment-finetune-cache"
    runs = []
    for extra in ([], [], ["--student-epochs", "2"]):
        reproduce.main([*common, "--student", "finetune", "--seeds", "1", "--tag=-cache", *extra])
        runs.append(json.loads(stem.with_suffix(".json").read_text()))
    assert runs[1]["timings"]["students_from_cache"] == 3  # SRC, SRC+GEN, T-div-k
    assert runs[1]["rows"] == runs[0]["rows"]
    assert runs[2]["timings"]["students_from_cache"] == 0 and runs[2]["student"]["settings"]["epochs"] == 2
    assert sorted(p.suffix for p in (tmp / "work" / "students").iterdir()) == [".json"] * 6


def test_tiny_run_with_pipeline_seeds_rebuilds_per_seed(tiny_bench):
    common, calls, tmp = tiny_bench
    calls.clear()
    reproduce.main([*common, "--seeds", "2", "--pipeline-seeds", "--tag=-x", "--rows", "SRC+GEN"])
    assert calls == [42, 43]  # seed 0 -> the recipes' own seed 42, seed 1 -> 43
    res = json.loads((tmp / "results" / "reproduce-sentiment-pipeline-seeds-x.json").read_text())
    assert set(res["pipeline_builds"]) == {"seed 42", "seed 43"}
    assert res["scale"]["pipeline_seeds"] is True and "the whole pipeline" in res["seeds_vary"]
    assert list(res["rows"]) == ["SRC", "SRC+GEN"] and [s["seed"] for s in res["rows"]["SRC+GEN"]["seeds"]] == [0, 1]
    assert "the whole pipeline" in (tmp / "results" / "reproduce-sentiment-pipeline-seeds-x.md").read_text()


def test_tiny_run_with_k_volume_and_student_lever_rows(tiny_bench):
    common, calls, tmp = tiny_bench
    reproduce.main([*common, "--seeds", "1", "--tag=-curves", "--k-values", "1", "all", "--volumes", "0.5",
                    "--student-levers", "soft_weight=0"])
    stem = tmp / "results" / "reproduce-sentiment-curves"
    res = json.loads(stem.with_suffix(".json").read_text())
    rows = res["rows"]
    gold, raw = rows["SRC"]["seeds"][0]["train_rows"], res["synthetic"]["rows"]["raw"]
    assert {"SRC+GEN [k=1]", "T-rand-k [k=1]", "T-div-k [k=all]", "SRC+GEN [volume=0.5]", "T-all [volume=0.5]",
            "T-rand-k [soft_weight=0]", "T-div-k [soft_weight=0]"} <= set(rows)
    assert rows["T-rand-k [k=all]"]["seeds"][0]["train_rows"] == gold + raw  # k = all keeps every generation
    assert rows["T-rand-k [k=1]"]["seeds"][0]["train_rows"] == gold + res["curves"]["k_rows"]["1"]["rand-k"] <= gold + 3
    assert rows["T-all [volume=0.5]"]["seeds"][0]["train_rows"] == gold + round(raw / 2)
    assert rows["SRC+GEN [volume=0.5]"]["seeds"][0]["train_rows"] == gold + round(raw / 2)
    assert [p["k"] for p in res["curves"]["k"]] == ["1"] * 3 + ["all"] * 3
    assert stem.with_name(stem.name + "-curves.png").stat().st_size > 0
    assert "| T-all [volume=0.5] |" in stem.with_suffix(".md").read_text()


def test_k_rows_runs_only_the_named_rows_of_the_k_curve(tiny_bench):
    common, _, tmp = tiny_bench
    reproduce.main([*common, "--seeds", "1", "--tag=-krows", "--k-values", "1", "--k-rows", "T-div-k"])
    res = json.loads((tmp / "results" / "reproduce-sentiment-krows.json").read_text())
    assert [r for r in res["rows"] if "[k=" in r] == ["T-div-k [k=1]"]
    assert [(p["k"], p["row"]) for p in res["curves"]["k"]] == [("1", "T-div-k")]


def test_the_balanced_lever_retrains_src_and_compares_each_row_with_its_own_src(tiny_bench):
    common, _, tmp = tiny_bench
    reproduce.main([*common, "--seeds", "1", "--tag=-balanced", "--levers", "balanced", "--curves-on", "balanced",
                    "--volumes", "0.5"])
    stem = tmp / "results" / "reproduce-sentiment-balanced"
    rows = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert [r for r in rows if "[balanced]" in r] == [f"{r} [balanced]" for r in reproduce.BALANCED_ROWS]
    assert reproduce.LEVER_SRC in rows["T-div-k [balanced]"]["p_vs"]
    assert reproduce.LEVER_SRC not in rows["T-div-k"]["p_vs"]
    assert reproduce.LEVER_SRC in rows["T-all [balanced volume=0.5]"]["p_vs"]  # the curve on the lever's build
    table = stem.with_suffix(".md").read_text()
    assert "p vs its lever's SRC" in table and "| SRC [balanced] |" in table


def test_lever_rows_runs_only_the_named_rows_of_a_lever(tiny_bench):
    common, _, tmp = tiny_bench
    reproduce.main([*common, "--seeds", "1", "--tag=-lever-rows", "--levers", "balanced", "--lever-rows", "SRC"])
    rows = json.loads((tmp / "results" / "reproduce-sentiment-lever-rows.json").read_text())["rows"]
    assert [r for r in rows if "[balanced]" in r] == ["SRC [balanced]"]


def test_the_strong_teacher_is_trained_once_on_the_whole_source_and_scored_on_the_targets(tiny_bench):
    """Issue #28: the lever's teacher reads every source row (the students keep 30), one teacher serves every
    pipeline seed, its T rows are compared with the same rows under the plain teacher, and the teacher itself is a
    row on the targets."""
    common, _, tmp = tiny_bench
    reproduce.main([*common, "--seeds", "2", "--pipeline-seeds", "--tag=-strong", "--rows", "SRC", "T-div-k", "T-all",
                    "--levers", "strong-teacher", "--lever-rows", "T-div-k", "T-all", "--permutations", "20"])
    res = json.loads((tmp / "results" / "reproduce-sentiment-pipeline-seeds-strong.json").read_text())
    rows, teacher = res["rows"], res["levers"]["strong-teacher"]["teacher"]
    source_rows = len((tmp / "data" / reproduce.TASKS["sentiment"]["source"]).read_text().splitlines())
    assert teacher["source_rows"] == source_rows > 30 and teacher["train_size"] > 30
    assert res["models"]["teacher"]["train_size"] < 30  # the plain build's teacher: the students' 30 rows
    builds = res["pipeline_builds"]  # one teacher for both seeds' strong builds (pinned seed, same rows)
    assert builds["seed 42 [strong-teacher]"]["teacher_dev_accuracy"] == builds["seed 43 [strong-teacher]"][
        "teacher_dev_accuracy"]
    strong = [json.loads(p.read_text()) for p in (tmp / "work").rglob("teacher-*/teacher.json")]
    assert sum(t["train_size"] == teacher["train_size"] for t in strong) == 1
    assert [r for r in rows if "strong" in r] == ["teacher zero-shot [strong-teacher]", "T-div-k [strong-teacher]",
                                                  "T-all [strong-teacher]"]
    gold, raw = rows["SRC"]["seeds"][0]["train_rows"], res["pipeline_builds"]["seed 42"]["rows"]["raw"]
    assert rows["T-all"]["seeds"][0]["train_rows"] == gold + raw  # every generation, soft labels
    assert reproduce.PLAIN_TEACHER in rows["T-div-k [strong-teacher]"]["p_vs"]
    zero_shot = rows["teacher zero-shot [strong-teacher]"]
    assert len(zero_shot["seeds"]) == 1 and 0 <= zero_shot["mean"]["avg"] <= 100
    assert "p vs the same row, plain teacher" in (tmp / "results" / "reproduce-sentiment-pipeline-seeds-strong.md"
                                                  ).read_text()


def test_curves_of_several_runs_join_in_one_figure(tmp_path):
    """A run with 3x the prompts extends a smaller run's volume curve: one line per row, points in order of the
    generations used, whichever run they came from; the lever's SRC comes from the run that has it. The k panel
    puts the main table's row at its k and every generation with soft labels (T-all, volume 1) at k = all."""
    def run(volume_points, extra_rows=(), k_points=()):
        rows = {key: {"mean": {"avg": acc}, "std": {"avg": 1.0}} for _, key, acc in [*volume_points, *k_points]}
        rows.update({r: {"mean": {"avg": 50.0}, "std": {"avg": 0.0}} for r in extra_rows})
        return {"task": "sentiment", "scale": {"seeds": 3, "k": 30}, "rows": rows,
                "curves": {"volume": [{"volume": 1, "generations": n, "row": key.split(" [")[0], "key": key}
                                      for n, key, _ in volume_points],
                           "k": [{"k": k, "row": key.split(" [")[0], "key": key} for k, key, _ in k_points]}}

    small = run([(88, "SRC+GEN [balanced volume=0.5]", 58.0), (175, "SRC+GEN [balanced volume=1]", 62.0)],
                extra_rows=["SRC", "SRC [balanced]"])
    large = run([(525, "SRC+GEN [balanced volume=1]", 64.0), (525, "T-all [balanced volume=1]", 60.0)],
                extra_rows=["T-div-k"], k_points=[("150", "T-div-k [balanced k=150]", 57.0),
                                                  ("15", "T-div-k [balanced k=15]", 55.0)])
    drawn = reproduce_report.plot_runs([large, small], tmp_path / "curves.png")
    assert drawn["volume"]["SRC+GEN"] == [(88, 58.0, 1.0), (175, 62.0, 1.0), (525, 64.0, 1.0)]
    assert drawn["k"] == {"T-div-k": [("15", 55.0, 1.0), ("30", 50.0, 0.0), ("150", 57.0, 1.0)],
                          "T-all": [("all", 60.0, 1.0)]}
    assert (tmp_path / "curves.png").stat().st_size > 0
    curve_only = run([], k_points=[("15", "T-div-k [k=15]", 55.0)])
    main_table = run([], extra_rows=["T-div-k", "T-top-k"])  # the main table of a run on the same builds
    assert reproduce_report.plot_runs([curve_only, main_table], tmp_path / "k.png")["k"] == {
        "T-div-k": [("15", 55.0, 1.0)]}
    assert reproduce_report.plot_runs([curve_only, main_table], tmp_path / "k.png", same_builds=True)["k"] == {
        "T-div-k": [("15", 55.0, 1.0), ("30", 50.0, 0.0)]}
    with pytest.raises(ValueError, match="none of these runs has a k or volume curve"):
        reproduce_report.plot_runs([{"rows": {}}], tmp_path / "none.png")


def test_seed_level_p_is_a_paired_t_test_over_the_seeds_average_accuracy():
    from scipy.stats import ttest_rel

    def row(accs):
        return {"mean": {"mr": float(np.mean(accs)), "avg": float(np.mean(accs))}, "std": {"mr": 0.0, "avg": 0.0},
                "p_vs": {}, "seeds": [{"seed": i, "mr": a} for i, a in enumerate(accs)]}

    res = {"task": "sentiment", "scale": {"seeds": 3}, "rows": {
        "SRC": row([50, 51, 49]), "A": row([55, 58, 52]), "B": row([50, 51, 49]), "C [x]": row([52, 53, 51]),
        "SRC [x]": row([51, 52, 50])}}
    assert reproduce_report.seed_p(res, "A") == pytest.approx(ttest_rel([55, 58, 52], [50, 51, 49]).pvalue)
    assert reproduce_report.seed_p(res, "B") == 1.0 and reproduce_report.seed_p(res, "C [x]") == 0.0  # same shift
    assert reproduce_report.seed_p(res, "SRC") is None and reproduce_report.lever_src("C [x]", res["rows"]) == "SRC [x]"
    res["rows"]["C [x]"]["p_vs"] = {reproduce_report.LEVER_SRC: 0.5}  # what result_dict writes for a lever's row
    table = reproduce_report.markdown(res)
    assert "| p vs SRC (seeds) | p vs its lever's SRC (seeds) |" in table
    p_a = reproduce_report.seed_p(res, "A")
    assert f"| A | 55.00 ± 0.00 | 55.00 ± 0.00 | — | — | — | {p_a:.3f} | — |" in table
    assert "| C [x] | 52.00 ± 0.00 | 52.00 ± 0.00 | — | — | 0.500 | 0.000 | 0.000 |" in table
    res["rows"] = {r: {**v, "seeds": v["seeds"][:2]} for r, v in res["rows"].items()}
    res["scale"]["seeds"] = 2
    assert reproduce_report.seed_p(res, "A") is None and "(seeds)" not in reproduce_report.markdown(res)


def test_bad_curve_and_lever_values_are_one_line_errors(capsys):
    for argv, message in ((["--k-values", "0"], "k must be a positive integer or 'all', got '0'"),
                          (["--student-levers", "epochs=3"], "student lever must be one of temperature, soft_weight"),
                          (["--student-levers", "temperature=hot"], "'hot' is not a number")):
        with pytest.raises(SystemExit):
            reproduce.parse_args(argv)
        assert message in capsys.readouterr().err

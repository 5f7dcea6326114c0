"""Reproduce the data-selection paper's table (arXiv 2407.10582) offline, at reduced scale.

    python -m benchmarks.reproduce --student finetune   # the students users train: 7 rows x 3 pipeline seeds (hours on 2 cores)
    python -m benchmarks.reproduce                 # the fast sweep: frozen-feature heads, all 13 rows, NLI then sentiment
    python -m benchmarks.reproduce --task nli --seeds 5
    python -m benchmarks.reproduce --task nli --pipeline-seeds   # each seed rebuilds generations, teacher, selections
    python -m benchmarks.reproduce --task nli --k-values 50 all --volumes 0.25 0.5 --student-levers soft_weight=2
    python benchmarks/reproduce.py --task nli      # the same, run as a file
    crossaug bench reproduce --task sentiment      # the same script through the CLI

What runs, per task (everything with the embedded offline models, nothing from the Hub):
1. `hf_crossaug.build.export.build_dataset` on the task's recipe (xnli-sw-synth / mahasent-mr-synth) with the
   shared English source (SNLI dev / SST-3 train) as gold data: generation, cleaning, teacher training and
   labelling (per-epoch probabilities for amb-k / easy-k), every selection strategy. Cached in the work
   folder, so a rerun after a crash resumes.
2. Every row of the paper's table (GEN, SRC, SRC+GEN, T-<s>, T_pl-<s>) x seed: the training set from
   `hf_crossaug.students.modes.build_training_set` and a student, accuracy on every target language's dev set.
   ``--student frozen-features`` (default, the fast sweep): `hf_crossaug.students.frozen`, a head on cached
   frozen e5 embeddings trained with the package's `DistillationTrainer` (``crossaug train --backend
   frozen-features``). ``--student finetune``: `hf_crossaug.students.classification.train_student`, the e5
   encoder fine-tuned (``crossaug train``), much slower. Either way the epoch is chosen on the English dev set,
   and every table says which student made it.
3. Mean +- std over seeds, and a paired permutation test (sign flips) of each row against SRC+GEN and SRC on
   per-example correctness (averaged over seeds, pooled over target languages).

Scale is reduced from the paper (15K source rows, 130K generations, XLM-R large fine-tuned) to each task's
``scale`` in TASKS for the frozen sweep (NLI: 2,000 source rows, 400 premises per class, each with all three labels,
k = 150 per class; sentiment: 1,200 source rows, 120 prompts per class, k = 60) and to its ``finetune_scale`` for
the fine-tuned students (300 source rows, 60 prompts per class, k = 30, NLI students 5 epochs so they leave the
one-class start; on 2 CPU cores sentiment took 69 min, NLI more: benchmarks/README.md).
``--levers`` adds rows for generator changes (in-context examples, domain description, temperature, DAFTT
LoRA tuning), each a rebuild of the generations that reuses the cached teacher. By default seeds vary the
student's initialisation and order and the SRC+GEN / GEN draws; the generations, teacher and selections are
built once. ``--pipeline-seeds`` (the default with ``--student finetune``) makes seed i rebuild everything with
seed 42+i (generation, which also draws the English source subset, teacher, selection) as well as seeding the
student with i. Only dev splits are read; never a test split.
Writes ``benchmarks/results/reproduce-<task>[-finetune][-pipeline-seeds|-student-seeds]<tag>.{json,md,png}``
(benchmarks/README.md names the published runs by what they answer). Needs the ``[bench]`` extra (matplotlib),
checked before any work. The command line, tasks, scales and levers: `reproduce_tasks`; the statistics:
`reproduce_stats`; the table, plots and JSON: `reproduce_report`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file (python benchmarks/reproduce.py): import the package from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extras import require
from benchmarks.reproduce_models import (  # noqa: F401
    build,
    finetune_correct,
    strong_teacher,
    teacher_correct,
)
from benchmarks.reproduce_report import (
    LEVER_SRC,
    PLAIN_TEACHER,
    lever_src,
    markdown,
    write,
)
from benchmarks.reproduce_stats import permutation_p, summarise, top_class_share
from benchmarks.reproduce_tasks import (
    BALANCED_ROWS,
    FINETUNE_ROWS,
    LEVER_ROWS,
    LEVER_STUDENT,
    PIPELINE_SEED_BASE,
    ROWS,
    STRONG,
    STRONG_ROWS,
    STUDENT_LEVER_ROWS,
    TASKS,
    TEACHER_LEVER_ROWS,
    TEACHER_ROW,
    VOLUME_CONFIG,
    VOLUME_ROWS,
    k_name,
    parse_args,
    seeds_vary,
    student_info,
    task_args,
)
from benchmarks.student_cache import StudentCache, data_digest
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.select import RAW
from hf_crossaug.models.embed import SentenceEmbedder
from hf_crossaug.models.resolve import file_sha256
from hf_crossaug.stages.source import load_source
from hf_crossaug.students.frozen import FeatureCache, predict, train_head
from hf_crossaug.students.modes import build_training_set, load_synthetic

OPTIONAL = ("matplotlib", "scipy")  # the plots at every checkpoint; the seed-level t-test


def file_info(path: Path) -> dict:
    return {"path": str(path), "sha256": file_sha256(path)}


def row_suffix(lever: str | None = None, k: int | None = None, volume: float | None = None,
               overrides: dict | None = None) -> str:
    """What a row's table key adds to its mode: `` [balanced k=50]``, `` [volume=0.5]``, `` [soft_weight=2]``."""
    suffix = " ".join([*([lever] if lever else []), *([f"k={k_name(k)}"] if k else []),
                       *([f"volume={volume:g}"] if volume is not None else []),
                       *(f"{f}={v:g}" for f, v in (overrides or {}).items() if not isinstance(v, bool))])
    return f" [{suffix}]" if suffix else ""


def volume_share(synthetic_: dict, volume: float, seed: int) -> tuple[dict, str]:
    """A seeded share of every kept generation, as the synthetic config a T- mode reads whole (T-all)."""
    raw = synthetic_[RAW]
    n = max(1, round(volume * len(raw)))
    share = raw.select(np.sort(np.random.default_rng(seed).permutation(len(raw))[:n]))
    return {**synthetic_, VOLUME_CONFIG: share}, VOLUME_CONFIG


class TaskRun:
    """One task's table: its builds (per pipeline seed, lever and k), data, students and the rows run so far.
    ``checkpoint(result)`` (if given) gets the table so far after the main rows and after each lever and curve
    point, so a long run that is stopped keeps what it finished."""

    def __init__(self, task_name: str, args, log=print, checkpoint=None):
        self.name, self.spec, self.data = task_name, TASKS[task_name], Path(args.data)
        self.args, self.log, self.checkpoint = task_args(args, self.spec), log, checkpoint
        self.timings: dict[str, float] = {"build_s": 0.0}
        self.t0 = time.perf_counter()
        self.builds: dict = {}  # (pipeline seed or None, lever, k) -> (folder, summary, synthetic configs, gold rows)
        self.results, self.correct = {}, {}
        self.levers, self.curves = {}, {"k": [], "k_rows": {}, "volume": []}
        self.load_data()
        self.prepare_students()

    def built(self, seed: int, lever: str | None = None, k: int | None = None) -> tuple:
        """The build a seed's students read (one per pipeline seed with --pipeline-seeds), built once."""
        pseed = PIPELINE_SEED_BASE + seed if self.args.pipeline_seeds else None
        if (pseed, lever, k) not in self.builds:
            t = time.perf_counter()
            folder, summary = build(self.spec, self.args, self.data, self.log, lever, pseed, **({"k": k} if k else {}))
            recipe = Recipe.from_dict(summary["stats"]["recipe"])
            gold = load_source(recipe.task_spec, str(self.data / self.spec["source"]), limit=self.args.source_limit,
                               seed=recipe.generation.seed)
            self.builds[pseed, lever, k] = (folder, summary, {n: load_synthetic(folder, n) for n in summary["rows"]},
                                            gold)
            self.timings["build_s"] += time.perf_counter() - t
        return self.builds[pseed, lever, k]

    def load_data(self) -> None:
        """The first build (seed 0, no lever), its recipe and gold rows, the English dev set and the targets."""
        self.folder, self.summary, self.synthetic, self.gold = self.built(0)
        self.recipe = Recipe.from_dict(self.summary["stats"]["recipe"])
        self.task = self.recipe.task_spec
        self.dev = load_source(self.task, str(self.data / self.spec["dev"]), limit=self.args.dev_limit)
        # MahaSent's dev-mr.jsonl has one row with empty text: dropped, as load_source did before on_invalid existed
        self.targets = {lang: load_source(self.task, str(self.data / f), limit=self.args.target_limit,
                                          on_invalid="drop") for lang, f in self.spec["targets"].items()}

    def prepare_students(self) -> None:
        """The student encoder; frozen features of dev and targets (frozen head) or the finished-student cache."""
        t = time.perf_counter()
        self.embedder = SentenceEmbedder(self.args.student_model)
        self.cache = self.students = None
        if self.args.student == "frozen-features":
            ref = self.embedder.ref
            self.cache = FeatureCache(self.embedder,
                                      Path(self.args.work) / f"features-{ref.name.replace('/', '--')}-{ref.revision}")
            self.dev_x = self.cache.features(self.dev, self.task)
            self.target_x = {lang: self.cache.features(ds, self.task) for lang, ds in self.targets.items()}
            self.cache.save()
        self.timings["target_features_s"] = time.perf_counter() - t
        if self.args.student == "finetune":
            self.students = StudentCache(Path(self.args.work) / "students")

    def save_features(self) -> None:
        if self.cache:
            self.cache.save()

    def student_correct(self, row: str, seed: int, synthetic_: dict, gold_, config: str | None = None,
                        overrides: dict | None = None, volume: float | None = None) -> tuple[int, dict]:
        """Train one student of ``row`` and predict the targets: (training rows, predictions per language)."""
        args, spec = self.args, self.spec
        if args.student == "finetune":  # minutes each: a rerun reads a finished student from the work folder
            parts = {"task": self.name, "row": row, "seed": seed, "config": config, "overrides": overrides,
                     "volume": volume, "data_digest": data_digest(synthetic_, gold_), "model": args.student_model,
                     "epochs": args.student_epochs, "lr": args.student_lr, "data": str(self.data),
                     **{k: spec[k] for k in ("source", "dev", "targets")},
                     **{k: getattr(args, k) for k in ("source_limit", "dev_limit", "target_limit")},
                     **({"dtype": args.dtype} if args.dtype else {})}
            return self.students.get(parts, lambda: finetune_correct(row, seed, args, self.task, gold_, synthetic_,
                                                                     self.dev, self.targets, config, overrides))
        rows = build_training_set(row, gold_, synthetic_, self.task, seed=seed, config=config)
        head = train_head(self.cache.features(rows, self.task), rows, self.dev_x, self.dev, self.task, seed,
                          epochs=args.student_epochs, **({"lr": args.student_lr} if args.student_lr else {}),
                          **(overrides or {}))
        return len(rows), {lang: predict(head, self.target_x[lang]) for lang in self.targets}

    def run_row(self, row: str, key: str, lever=None, k=None, volume=None, overrides=None) -> None:
        """``row`` x seeds under the table key ``key``: per-seed accuracies, summary and per-example correctness."""
        per_seed = []
        for seed in range(self.args.seeds):
            _, _, synthetic_, gold_ = self.built(seed, lever, k)
            config = RAW if row == "T-all" else None  # every kept generation, with its soft labels
            if volume is not None:  # a seeded share of every kept generation; T-all reads it as its config
                synthetic_, config = volume_share(synthetic_, volume, seed)
            mode = "T-rand-k" if row == "T-all" else row  # a T- mode reads its config whole: the share
            n_rows, preds = self.student_correct(mode, seed, synthetic_, gold_, config, overrides, volume)
            ok = {lang: preds[lang] == np.asarray(ds["label"]) for lang, ds in self.targets.items()}
            accs = {"top_class_share": top_class_share(preds.values())}
            for lang in self.targets:
                self.correct.setdefault(key, {}).setdefault(lang, []).append(ok[lang])
                accs[lang] = float(ok[lang].mean() * 100)
            per_seed.append({"seed": seed, "train_rows": n_rows, **accs})
        self.results[key] = summarise(per_seed, list(self.targets))
        self.log(f"{self.name} {key:22s} " + "  ".join(f"{k} {v:.2f}" for k, v in self.results[key]["mean"].items()))

    def run_rows(self, rows: list[str], lever: str | None = None, k: int | None = None, volume: float | None = None,
                 overrides: dict | None = None) -> list[str]:
        """Train and score ``rows`` x seeds; returns the table keys (``row [lever]``)."""
        suffix = row_suffix(lever, k, volume, overrides)
        keys = []
        for row in rows:
            self.run_row(row, row + suffix, lever, k, volume, overrides)
            keys.append(row + suffix)
            if self.checkpoint and self.args.student == "finetune":  # minutes per row: keep the finished rows
                self.checkpoint(self.assemble())
        return keys

    def save_checkpoint(self) -> None:
        if self.checkpoint:
            self.checkpoint(self.assemble())

    def assemble(self) -> dict:
        """The result so far (the JSON record with its significance tests)."""
        cached = {"students_from_cache": self.students.hits} if self.students else {}
        return result_dict(self.name, self.args, self.spec, self.data, self.summary, self.recipe, self.gold, self.dev,
                           self.targets, self.embedder, self.folder,
                           {**self.timings, "total_s": time.perf_counter() - self.t0, **cached}, self.results,
                           self.correct, self.levers, self.builds, self.curves)

    def main_rows(self) -> None:
        """The paper's rows (SRC and SRC+GEN always: the significance tests compare with them)."""
        t, build_before = time.perf_counter(), self.timings["build_s"]
        order = dict.fromkeys((FINETUNE_ROWS if self.args.student == "finetune" else []) + ROWS + ["T-all"])
        self.run_rows([r for r in order if r in {"SRC", "SRC+GEN", *self.args.rows}])
        self.save_features()
        self.timings["students_s"] = time.perf_counter() - t - (self.timings["build_s"] - build_before)
        if self.args.levers:
            self.save_checkpoint()

    def lever_rows(self) -> None:
        """Each lever's rows on its own build (--levers, --lever-rows)."""
        for lever in self.args.levers:
            t = time.perf_counter()
            _, lsummary, _, _ = self.built(0, lever)
            rows = {"balanced": BALANCED_ROWS, "self-train": TEACHER_LEVER_ROWS, STRONG: STRONG_ROWS}.get(lever,
                                                                                                       LEVER_ROWS)
            if lever == STRONG:  # one evaluation: first, so a run stopped early has the ceiling
                self.teacher_row(lever, lsummary["stats"]["teacher"])
            self.run_rows([r for r in rows if self.args.lever_rows is None or r in self.args.lever_rows], lever,
                          overrides=LEVER_STUDENT.get(lever))
            self.save_features()
            stats = lsummary["stats"]
            self.levers[lever] = {"rows": lsummary["rows"], "counts": stats["counts"],
                                  "recipe_generation": stats["recipe"]["generation"],
                                  "templates": stats["recipe"]["templates"], "daftt": stats.get("daftt"),
                                  "teacher": stats["teacher"], "timings": stats["timings"],
                                  "seconds": round(time.perf_counter() - t, 1)}
            self.save_checkpoint()

    def teacher_row(self, lever: str, fields: dict) -> None:
        """The lever's teacher on the targets, as a row (one teacher shared by the seeds: one entry)."""
        preds = teacher_correct(Path(self.args.work), fields, self.task, self.targets, self.recipe.teacher.max_length)
        key, accs = f"{TEACHER_ROW} [{lever}]", {"seed": 0, "train_rows": fields["train_size"],
                                                 "top_class_share": top_class_share(preds.values())}
        for lang, ds in self.targets.items():
            ok = preds[lang] == np.asarray(ds["label"])
            self.correct.setdefault(key, {})[lang] = [ok]
            accs[lang] = float(ok.mean() * 100)
        self.results[key] = summarise([accs], list(self.targets))
        self.log(f"{self.name} {key:22s} " + "  ".join(f"{k} {v:.2f}" for k, v in self.results[key]["mean"].items()))

    def curve_rows(self) -> None:
        """The k curve, the volume curve and the student-lever rows, on the --curves-on lever's build."""
        on, extra = self.args.curves_on, LEVER_STUDENT.get(self.args.curves_on, {})
        for k in self.args.k_values:
            keys = self.run_rows(self.args.k_rows, on, k=k, overrides=extra or None)
            self.curves["k"].extend({"k": k_name(k), "row": row, "key": key} for row, key in zip(self.args.k_rows, keys))
            self.curves["k_rows"][k_name(k)] = self.built(0, on, k)[1]["rows"]
            self.save_checkpoint()
        for volume in self.args.volumes:
            n = max(1, round(volume * len(self.synthetic[RAW])))
            keys = self.run_rows(list(VOLUME_ROWS), on, volume=volume, overrides=extra or None)
            self.curves["volume"].extend({"volume": volume, "generations": n, "row": row, "key": key}
                                         for row, key in zip(VOLUME_ROWS, keys))
            self.save_checkpoint()
        for name, value in self.args.student_levers:
            self.run_rows(list(STUDENT_LEVER_ROWS), on, overrides={**extra, name: value})
            self.save_checkpoint()


def run_task(task_name: str, args, log=print, checkpoint=None) -> dict:
    """The task's table: the main rows, then the levers, then the curves (see `TaskRun`)."""
    run = TaskRun(task_name, args, log, checkpoint)
    run.main_rows()
    run.lever_rows()
    run.curve_rows()
    return run.assemble()


def result_dict(task_name, args, spec, data, summary, recipe, gold, dev, targets, embedder, folder, timings,
                results, correct, levers, builds=None, curves=None) -> dict:
    """The JSON record of a run: the table with its significance tests, data, models, scale, timings."""
    pooled = {row: np.concatenate([np.mean(correct[row][lang], axis=0) for lang in targets]) for row in results}
    for row in results:
        results[row]["p_vs"] = {base: permutation_p(pooled[row], pooled[base], args.permutations)
                                for base in ("SRC+GEN", "SRC") if base != row and base in pooled}
        plain = row.replace(f" [{STRONG}]", "")  # the same row with the plain build's teacher, if it ran
        if plain != row and plain in pooled:
            results[row]["p_vs"][PLAIN_TEACHER] = permutation_p(pooled[row], pooled[plain], args.permutations)
        own = lever_src(row, pooled)  # a lever that retrains SRC (balanced)
        if own:
            results[row]["p_vs"][LEVER_SRC] = permutation_p(pooled[row], pooled[own], args.permutations)
    stats = summary["stats"]
    out = {
        "task": task_name,
        "student": student_info(args, embedder.ref.provenance()),
        "seeds_vary": seeds_vary(args),
        "recipe": recipe.to_dict(),
        "data": {"source": {**file_info(data / spec["source"]), "rows": len(gold)},
                 "dev": {**file_info(data / spec["dev"]), "rows": len(dev)},
                 "targets": {lang: {**file_info(data / spec["targets"][lang].partition("@")[0]), "rows": len(ds),
                                    "slice": spec["targets"][lang].partition("@")[2] or None}
                             for lang, ds in targets.items()}},
        "models": {"generator": stats["generator"], "teacher": stats["teacher"],
                   "student_encoder": embedder.ref.provenance()},
        "synthetic": {"folder": str(folder), "rows": summary["rows"], "counts": stats["counts"]},
        "scale": {k: getattr(args, k) for k in ("seeds", "source_limit", "dev_limit", "target_limit", "per_class",
                                                "k", "clusters", "generation_dtype", "teacher_epochs", "teacher_lr",
                                                "student", "student_epochs", "student_lr", "pipeline_seeds")},
        "timings": {**{f"{k}_s": round(v, 1) for k, v in stats["timings"].items()},
                    **{k: round(v, 1) for k, v in timings.items()}},
        "rows": results,
        "levers": levers,
        "curves": curves or {},
    }
    if args.pipeline_seeds and builds:
        out["pipeline_builds"] = {
            f"seed {pseed}" + (f" [{lever}]" if lever else "") + (f" [k={k_name(k)}]" if k else ""): {
                "folder": str(b[0]), "rows": b[1]["rows"],
                "teacher_dev_accuracy": (b[1]["stats"].get("teacher") or {}).get("dev_accuracy")}
            for (pseed, lever, k), b in builds.items()}
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    require("benchmarks.reproduce", OPTIONAL)  # before any work: the plots are written at the first checkpoint
    tasks = list(TASKS) if args.task == "all" else [args.task]
    missing = [rel for t in tasks for rel in (TASKS[t]["source"], TASKS[t]["dev"], *TASKS[t]["targets"].values())
               if not (Path(args.data) / rel.partition("@")[0]).is_file()]  # FILE@train[:2000]: a row slice
    if missing:
        raise SystemExit(f"error: shared data not found: {Path(args.data) / missing[0]} (pass --data)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for task_name in tasks:
        finetune = args.student == "finetune"  # the name says where the seeds differ from the student's default
        kind = ("-finetune" if finetune else "") + {(False, True): "-pipeline-seeds",
                                                    (True, False): "-student-seeds"}.get((finetune, args.pipeline_seeds), "")
        stem = out / f"reproduce-{task_name}{kind}{args.tag}"
        res = run_task(task_name, args, checkpoint=lambda partial: write(partial, stem))
        write(res, stem)
        print(markdown(res))
        print(f"wrote {stem}.json/.md/.png in {res['timings']['total_s']:.0f} s")


if __name__ == "__main__":
    main()

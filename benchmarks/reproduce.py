"""Reproduce the data-selection paper's table (arXiv 2407.10582) offline, at reduced scale.

    python benchmarks/reproduce.py --student finetune   # the students users train: 7 rows x 3 pipeline seeds (hours on 2 cores)
    python benchmarks/reproduce.py                 # the fast sweep: frozen-feature heads, all 13 rows, NLI then sentiment
    python benchmarks/reproduce.py --task nli --seeds 5
    python benchmarks/reproduce.py --task nli --pipeline-seeds   # each seed rebuilds generations, teacher, selections
    python benchmarks/reproduce.py --task nli --k-values 50 all --volumes 0.25 0.5 --student-levers soft_weight=2
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
Writes ``benchmarks/results/reproduce-<task>[-finetune][-pipeline-seeds|-student-seeds]<tag>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from reproduce_report import (  # noqa: F401 (re-exported)
    LEVER_SRC,
    PAPER,
    STUDENT_ONLY_SEEDS,
    lever_src,
    markdown,
    plot,
    plot_curves,
    write,
)
from student_cache import StudentCache, data_digest

from hf_crossaug.build.export import build_dataset
from hf_crossaug.config.recipe import Recipe, SourceConfig
from hf_crossaug.config.select import RAW
from hf_crossaug.config.student import StudentConfig
from hf_crossaug.models.embed import SentenceEmbedder
from hf_crossaug.models.resolve import file_sha256
from hf_crossaug.stages.daftt import DafttConfig
from hf_crossaug.stages.finetune import FinetuneConfig
from hf_crossaug.stages.source import load_source
from hf_crossaug.students.frozen import (
    FROZEN_DEFAULTS,
    FeatureCache,
    predict,
    train_head,
)
from hf_crossaug.students.modes import build_training_set, load_synthetic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STUDENTS = ("frozen-features", "finetune")
FINETUNE_DEFAULTS = {f: getattr(StudentConfig(), f) for f in ("epochs", "learning_rate", "batch_size", "max_length")}
STRATEGIES_MAIN = ("rand-k", "top-k", "div-k")
STRATEGIES_CARTO = ("amb-k", "easy-k")
ROWS = ["GEN", "SRC", "SRC+GEN", *(f"T-{s}" for s in STRATEGIES_MAIN), *(f"T_pl-{s}" for s in STRATEGIES_MAIN),
        *(f"T-{s}" for s in STRATEGIES_CARTO), *(f"T_pl-{s}" for s in STRATEGIES_CARTO)]
# the fine-tuned table: the baselines, the T rows of the main strategies and the best T_pl row of the frozen sweeps
# (T_pl-div-k on both published tables and on the AVX2 rerun), in the order they run: minutes per row, so a run
# stopped early (it writes its table after every row) keeps the baselines and the default mode (T-div-k) first
FINETUNE_ROWS = ["SRC", "SRC+GEN", "T-div-k", "T-rand-k", "T_pl-div-k", "T-top-k", "GEN"]

# Two scales per task. ``scale``: the frozen-head sweep over all 13 rows (the published tables; bf16 generations
# as they were made). ``finetune_scale``: the students users train (the whole encoder, `crossaug train`) on the
# 7 rows of FINETUNE_ROWS x 3 pipeline seeds, sized for a 2-core CPU (measured: sentiment 69 min, NLI 83 min of students on cached builds, ~106 from empty):
# fine-tuning e5-small runs at ~8.6 NLI pairs/s there, so the gold set is small (300 rows: the few-labels regime), and generation runs in the
# recipes' dtype (fp32 on CPUs without native bf16, ~4.6x faster there than emulated bf16).
# 300 gold rows are ~20 optimizer steps an epoch: at the recipes' 5e-5 an NLI teacher was at 0.28 on dev after 3
# epochs; at 1.5e-4 it reached 0.46 by epoch 3 (0.494 is what 2,000 rows at 5e-5 give), so teacher and students
# take the higher rate at this scale (``crossaug train --lr``; the recipe's ``teacher.learning_rate``).
# NLI students train 5 epochs, not 3: a student trained exactly like a teacher (same rows, seed, rate) has the
# teacher's dev curve (0.28 / 0.345 / 0.46 / ...): it leaves the one-class start only in its 3rd epoch, and a
# 3-epoch schedule decays the rate before that (6 of 9 NLI students of the 3-epoch table predicted one class).
FROZEN_RUN = {"generation_dtype": "bfloat16", "teacher_epochs": 2, "teacher_lr": None,
              "student_epochs": FROZEN_DEFAULTS["epochs"], "student_lr": None}
FINETUNE_RUN = {"generation_dtype": "auto", "teacher_epochs": 5, "teacher_lr": 1.5e-4, "student_epochs": 3,
                "student_lr": 1.5e-4}
TASKS = {
    "nli": {"recipe": "xnli-sw-synth", "source": "snli/dev.jsonl", "dev": "xnli/dev-en.jsonl",
            "targets": {"hi": "xnli/dev-hi.jsonl", "ur": "xnli/dev-ur.jsonl", "sw": "xnli/dev-sw.jsonl"},
            "scale": {"source_limit": 2000, "dev_limit": 500, "target_limit": None, "per_class": 400, "k": 150,
                      "clusters": 25, **FROZEN_RUN},
            "finetune_scale": {"source_limit": 300, "dev_limit": 150, "target_limit": 200, "per_class": 60, "k": 30,
                               "clusters": 5, **FINETUNE_RUN, "student_epochs": 5}},
    # smaller: 6,000 MahaSent rows and SST's 8.5K train would double the run for the same question
    "sentiment": {"recipe": "mahasent-mr-synth", "source": "sst3/train.jsonl", "dev": "sst3/dev.jsonl",
                  "targets": {"mr": "mahasent/dev-mr.jsonl", "hi": "iitp_product/dev-hi.jsonl"},
                  "scale": {"source_limit": 1200, "dev_limit": 400, "target_limit": 1500, "per_class": 120, "k": 60,
                            "clusters": 10, **FROZEN_RUN},
                  "finetune_scale": {"source_limit": 300, "dev_limit": 150, "target_limit": 300, "per_class": 60,
                                     "k": 30, "clusters": 5, **FINETUNE_RUN}},
}
SCALE_HELP = "(default: the task's scale in TASKS, finetune_scale with --student finetune)"
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=[*TASKS, "all"], default="all")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--source-limit", type=int, help=f"English gold rows (teacher and students) {SCALE_HELP}")
    p.add_argument("--dev-limit", type=int, help=f"English dev rows (teacher and student selection) {SCALE_HELP}")
    p.add_argument("--target-limit", type=int, help=f"rows per target language, 0 = all {SCALE_HELP}")
    p.add_argument("--per-class", type=int, help=f"generation prompts per class (NLI: premises) {SCALE_HELP}")
    p.add_argument("--k", type=int, help=f"rows per class kept by each selection strategy {SCALE_HELP}")
    p.add_argument("--clusters", type=int, help=f"div-k clusters per class {SCALE_HELP}")
    p.add_argument("--generation-dtype", choices=("bfloat16", "float32", "auto"),
                   help="the generator's dtype (frozen scale: bfloat16, as the published tables; finetune scale: "
                   "'auto', the recipes' choice: fp32 on CPUs without native bf16, ~4.6x faster there)")
    p.add_argument("--teacher-epochs", type=int, help=f"teacher training epochs {SCALE_HELP}")
    p.add_argument("--teacher-lr", type=float, help=f"teacher learning rate (frozen scale: the recipe's) {SCALE_HELP}")
    p.add_argument("--student", choices=STUDENTS, default="frozen-features",
                   help="frozen-features: a head on frozen e5 embeddings (fast, the published tables); finetune: "
                        "the e5 encoder fine-tuned with train_student (slow)")
    p.add_argument("--student-model", default=None, help="the student's encoder (default: embedded e5-small)")
    p.add_argument("--student-epochs", type=int, help=f"student training epochs {SCALE_HELP}")
    p.add_argument("--student-lr", type=float, help=f"student learning rate (frozen scale: the head's) {SCALE_HELP}")
    p.add_argument("--pipeline-seeds", action=argparse.BooleanOptionalAction,
                   help="seed i also rebuilds the generations, teacher and selections with seed 42+i (default with "
                        "--student finetune; otherwise they are built once and seeds vary only the student and the "
                        "SRC+GEN / GEN draws)")
    p.add_argument("--permutations", type=int, default=10_000)
    p.add_argument("--levers", nargs="*", default=[], choices=list(LEVERS),
                   help=f"generator levers to add as rows {LEVER_ROWS} (each rebuilds the generations); self-train "
                        f"(the teacher's lever): rows {TEACHER_LEVER_ROWS}; balanced (teacher and students weight "
                        f"the classes equally): rows {BALANCED_ROWS}, compared with their own SRC")
    p.add_argument("--k-values", nargs="*", default=[], type=k_value,
                   help=f"k curve: rows {K_ROWS} again at each k per class ('all': every kept generation); only the "
                        "selection is rebuilt (generations and teacher come from the cache)")
    p.add_argument("--k-rows", nargs="*", choices=K_ROWS, default=list(K_ROWS),
                   help="run only these rows of the k curve, e.g. T-rand-k T-div-k when the volume curve already "
                        "covers SRC+GEN")
    p.add_argument("--volumes", nargs="*", default=[], type=float,
                   help="volume curve: SRC+GEN and T-all (every generation, soft labels) on a seeded share of the kept "
                        "generations, e.g. 0.25 0.5 1")
    p.add_argument("--student-levers", nargs="*", default=[], type=student_lever,
                   help=f"student levers FIELD=VALUE ({', '.join(STUDENT_LEVER_FIELDS)}): rows {STUDENT_LEVER_ROWS} "
                        "with that student setting")
    p.add_argument("--curves-on", choices=list(LEVERS),
                   help="build the k / volume curves and the student-lever rows on this lever's build, with its "
                        "student settings (balanced: class_balance), e.g. --levers balanced --curves-on balanced")
    p.add_argument("--rows", nargs="*", choices=ROWS,
                   help="rows of the main table to run (default: all 13 with the frozen-features student, "
                        f"{' '.join(FINETUNE_ROWS)} with finetune; SRC and SRC+GEN always run: the significance "
                        "tests compare with them)")
    p.add_argument("--lever-rows", nargs="*", choices=ROWS,
                   help="run only these of each lever's rows (default: all of them), e.g. --levers balanced "
                        "--lever-rows SRC to have a lever's own SRC for a curve on its build")
    p.add_argument("--work", default="outputs/.reproduce-work", help="cache of builds (resumable)")
    p.add_argument("--out", default=str(HERE / "results"), help="where the JSON, table and plot go")
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args(argv)
    finetune = args.student == "finetune"
    if args.rows is None:
        args.rows = FINETUNE_ROWS if finetune else ROWS
    if args.pipeline_seeds is None:
        args.pipeline_seeds = finetune
    return args


K_ALL = 1_000_000  # "k = all": more than any class has, so every strategy keeps every row (select: fewer than k -> all)
K_ROWS = ("SRC+GEN", "T-rand-k", "T-div-k")
STUDENT_LEVER_FIELDS = ("temperature", "soft_weight")  # what the frozen head and the fine-tuned student both take
STUDENT_LEVER_ROWS = ("T-rand-k", "T-div-k")
VOLUME_ROWS = ("SRC+GEN", "T-all")  # T-all: every generation of the share with soft labels
VOLUME_CONFIG = "volume-share"


def k_value(text: str) -> int:
    if text == "all":
        return K_ALL
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"k must be a positive integer or 'all', got {text!r}")
    return int(text)


def k_name(k: int) -> str:
    return "all" if k >= K_ALL else str(k)


def student_lever(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in STUDENT_LEVER_FIELDS:
        raise argparse.ArgumentTypeError(f"student lever must be one of {', '.join(STUDENT_LEVER_FIELDS)}=VALUE, "
                                         f"got {text!r}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"student lever {text!r}: {value!r} is not a number") from None


def file_info(path: Path) -> dict:
    return {"path": str(path), "sha256": file_sha256(path)}


# Generator levers (issue: what caps the gain?): each rebuilds the generations with one change and reruns
# LEVER_ROWS; the teacher is reused from the cache (its key does not depend on the generations).
LEVERS = {
    "shots-2": {"n_shots": 2}, "shots-8": {"n_shots": 8},
    "temp-0.5": {"temperature": 0.5}, "temp-1.1": {"temperature": 1.1},
    "no-domain": None,  # the prompt templates without the target-domain description
    "daftt": None,  # DAFTT: the generator LoRA-tuned on DAFTT_ROWS labelled source rows first (generate mode)
    "self-train": None,  # one self-training round of the teacher (TeacherConfig.self_training_rounds); same generations
    "balanced": None,  # teacher and students weight the classes equally (class_balance); same generations
}
DAFTT_ROWS = 200  # "a few hundred labelled source examples" (10% of the 2,000 source rows)
LEVER_ROWS = ("SRC+GEN", "T-top-k", "T-div-k")
# class balance changes the teacher and every student, SRC included: its rows are compared with their own SRC
BALANCED_ROWS = ("SRC", "SRC+GEN", "T-div-k", "T-rand-k", "GEN")
LEVER_STUDENT = {"balanced": {"class_balance": True}}  # the student settings a lever brings to its rows
TEACHER_LEVER_ROWS = ("T-rand-k", "T-div-k", "T_pl-div-k")  # a teacher lever leaves SRC+GEN (prompt labels) alone


def build(spec: dict, args, data: Path, log, lever: str | None = None, seed: int | None = None,
          k: int | None = None) -> tuple[Path, dict]:
    """The synthetic dataset at the benchmark's scale (cached in ``args.work``), optionally with a lever;
    ``seed`` (pipeline seeds) reseeds every stage of the build; ``k`` replaces the selection's k (k curve)."""
    recipe = Recipe.from_yaml(ROOT / "dataset_scripts" / f"{spec['recipe']}.yaml")
    recipe = recipe.with_overrides(per_class=args.per_class, k=k or args.k)
    # the shared copies are normalised (label names of the task): no label_column / label_map from the recipe
    recipe.source = SourceConfig(path=str(data / spec["source"]), limit=args.source_limit)
    recipe.dev = SourceConfig(path=str(data / spec["dev"]), limit=args.dev_limit)
    recipe.teacher = dataclasses.replace(recipe.teacher, epochs=args.teacher_epochs,
                                         **({"learning_rate": args.teacher_lr} if args.teacher_lr else {}))
    recipe.selection = dataclasses.replace(recipe.selection, n_clusters=args.clusters)
    # the published tables were generated in bf16: pinned, so the recipe's ``auto`` cannot switch them to fp32
    recipe.generation = dataclasses.replace(recipe.generation, shard_size=128, dtype=args.generation_dtype,
                                            **(LEVERS.get(lever) or {}))
    recipe.translate = dataclasses.replace(recipe.translate, dtype=args.generation_dtype)
    if lever == "no-domain":
        style = recipe.generation.prompt_style
        task = recipe.task_spec
        recipe.templates = {k: v.replace(" from {domain}", "") for k, v in task.templates.items()
                            if k.startswith(style) and "{domain}" in v}
        if any("{domain}" in v for v in recipe.templates.values()):
            raise ValueError(f"no-domain lever: cannot strip the domain from {recipe.templates}")
    if lever == "self-train":
        recipe.teacher = dataclasses.replace(recipe.teacher, self_training_rounds=1)
    # the published tables' teachers were trained unweighted: pinned, so a recipe's class_balance default cannot
    # switch them (the balanced lever turns it on)
    recipe.teacher = dataclasses.replace(recipe.teacher, class_balance=lever == "balanced")
    if lever == "daftt":
        recipe.daftt = DafttConfig(mode="generate", train_rows=min(DAFTT_ROWS, args.source_limit),
                                   finetune=FinetuneConfig(epochs=1, learning_rate=1e-3, batch_size=8, max_length=96))
    if seed is not None:
        recipe = recipe.with_overrides(seed=seed)
    name = (f"{recipe.name}-bench" + (f"-{lever}" if lever else "") + (f"-seed{seed}" if seed is not None else "")
            + (f"-k{k_name(k)}" if k else ""))
    summary = build_dataset(recipe.validate(), Path(args.work) / name, Path(args.work) / recipe.name, log=log)
    return Path(args.work) / name, summary


def permutation_p(a: np.ndarray, b: np.ndarray, n: int, seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(a) == mean(b): under the null each pair's two values are
    exchangeable, so the paired differences flip sign at random. The same test as scipy.stats.permutation_test
    (permutation_type="samples"), which took ~20 s per call on 7,470 pairs x 10,000 resamples here; signs x
    differences as a matrix product, in chunks, takes well under a second."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if np.allclose(d, 0):
        return 1.0
    rng = np.random.default_rng(seed)
    observed, extreme = abs(d.mean()), 0
    for size in [1000] * (n // 1000) + [n % 1000]:
        signs = rng.integers(0, 2, size=(size, len(d)), dtype=np.int8) * 2 - 1
        extreme += int(np.sum(np.abs(signs @ d) / len(d) >= observed * (1 - 1e-9)))
    return (extreme + 1) / (n + 1)  # the observed labelling counts as one of the resamples


def top_class_share(predictions) -> float:
    """Share of the most predicted class over all target predictions: near 1, a student that predicts one class
    (at 300 gold rows some fine-tuned NLI students never leave that start; the table counts them)."""
    pooled = np.concatenate([np.asarray(p, dtype=np.int64) for p in predictions])
    return round(float(np.bincount(pooled).max() / len(pooled)), 3) if len(pooled) else 0.0


def summarise(per_seed: list[dict], langs: list[str]) -> dict:
    """Mean and sample std over seeds per language, and of the per-seed average over languages."""
    def std(values):
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    mean = {lang: float(np.mean([s[lang] for s in per_seed])) for lang in langs}
    sd = {lang: std([s[lang] for s in per_seed]) for lang in langs}
    avgs = [np.mean([s[lang] for lang in langs]) for s in per_seed]
    return {"mean": {**mean, "avg": float(np.mean(avgs))}, "std": {**sd, "avg": std(avgs)}, "seeds": per_seed}


def task_args(args: argparse.Namespace, spec: dict) -> argparse.Namespace:
    """The command line with the task's default scale (per student) filled in where a flag was not given."""
    scale = spec["finetune_scale" if args.student == "finetune" else "scale"]
    filled = {k: (scale[k] if getattr(args, k) is None else getattr(args, k)) for k in scale}
    if filled["target_limit"] == 0:
        filled["target_limit"] = None
    return argparse.Namespace(**{**vars(args), **filled})


PIPELINE_SEED_BASE = 42  # --pipeline-seeds: seed i builds with seed 42 + i (42: the recipes' own seed)


def student_info(args, encoder: dict) -> dict:
    """Which student made the table, in words and settings (every table and JSON carries it)."""
    if args.student == "frozen-features":
        settings = {**FROZEN_DEFAULTS, "epochs": args.student_epochs,
                    **({"learning_rate": args.student_lr} if args.student_lr else {})}
        what = (f"frozen-features (the fast sweep, not the student users train): a 2-layer head on frozen "
                f"`{encoder['name']}` sentence embeddings (hf_crossaug.students.frozen; `crossaug train --backend "
                "frozen-features`)")
    else:
        settings = {**FINETUNE_DEFAULTS, "epochs": args.student_epochs,
                    **({"learning_rate": args.student_lr} if args.student_lr else {})}
        what = (f"finetune (the student users train): `{encoder['name']}` fine-tuned, input embeddings frozen "
                "(StudentConfig default) (hf_crossaug.students.classification.train_student; `crossaug train`)")
    settings_text = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())
    return {"backend": args.student, "encoder": encoder, "settings": settings,
            "description": f"{what}; {settings_text}; epoch chosen on the English dev set"}


def seeds_vary(args) -> str:
    if args.pipeline_seeds:
        return (f"the whole pipeline: seed i rebuilds with seed {PIPELINE_SEED_BASE}+i the generations (whose seed "
                "also draws the English source subset), the teacher and the selections, and seeds the student "
                "(initialisation, order, SRC+GEN / GEN draws) with i")
    return STUDENT_ONLY_SEEDS


def finetune_correct(row: str, seed: int, args, task, gold, synthetic_: dict, dev, targets: dict,
                     config: str | None = None, overrides: dict | None = None) -> tuple[int, dict]:
    """One fine-tuned student (`train_student`, the whole flow of ``crossaug train``): training rows and
    per-language predictions on the targets. ``config`` / ``overrides``: the synthetic config the
    mode reads and `StudentConfig` fields (levers)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossaug.models.training import on_accelerator
    from hf_crossaug.students.classification import train_student
    from hf_crossaug.students.evaluate import predict as predict_model

    cfg = StudentConfig(model=args.student_model, mode=row, task=task.name, epochs=args.student_epochs, seed=seed,
                        config=config, **({"learning_rate": args.student_lr} if args.student_lr else {}),
                        **(overrides or {}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "student"
        res = train_student(cfg, synthetic_, gold, dev, out, log=lambda m: None)
        model = on_accelerator(AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True).eval())
        tokenizer = AutoTokenizer.from_pretrained(out)
        preds = {lang: predict_model(model, tokenizer, ds, task, cfg.max_length) for lang, ds in targets.items()}
    return res["counts"]["total"], preds


def run_task(task_name: str, args, log=print, checkpoint=None) -> dict:
    """The task's table; ``checkpoint(result)`` (if given) gets the table so far after the main rows and
    after each lever, so a long lever run that is stopped keeps what it finished."""
    spec, data = TASKS[task_name], Path(args.data)
    args = task_args(args, spec)
    timings: dict[str, float] = {"build_s": 0.0}
    t0 = time.perf_counter()
    builds: dict = {}  # (pipeline seed or None, lever) -> (folder, summary, synthetic configs, gold rows)

    def built(seed: int, lever: str | None = None, k: int | None = None) -> tuple:
        pseed = PIPELINE_SEED_BASE + seed if args.pipeline_seeds else None
        if (pseed, lever, k) not in builds:
            t = time.perf_counter()
            folder_, summary_ = build(spec, args, data, log, lever, pseed, **({"k": k} if k else {}))
            gen_seed = Recipe.from_dict(summary_["stats"]["recipe"]).generation.seed
            gold_ = load_source(task, str(data / spec["source"]), limit=args.source_limit, seed=gen_seed)
            builds[pseed, lever, k] = (folder_, summary_, {n: load_synthetic(folder_, n) for n in summary_["rows"]},
                                       gold_)
            timings["build_s"] += time.perf_counter() - t
        return builds[pseed, lever, k]

    pseed0 = PIPELINE_SEED_BASE if args.pipeline_seeds else None
    t = time.perf_counter()
    folder, summary = build(spec, args, data, log, seed=pseed0)
    timings["build_s"] += time.perf_counter() - t
    recipe = Recipe.from_dict(summary["stats"]["recipe"])
    task = recipe.task_spec
    synthetic = {name: load_synthetic(folder, name) for name in summary["rows"]}
    gold = load_source(task, str(data / spec["source"]), limit=args.source_limit, seed=recipe.generation.seed)
    builds[pseed0, None, None] = (folder, summary, synthetic, gold)
    dev = load_source(task, str(data / spec["dev"]), limit=args.dev_limit)
    # MahaSent's dev-mr.jsonl has one row with empty text: dropped, as load_source did before on_invalid existed
    targets = {lang: load_source(task, str(data / f), limit=args.target_limit, on_invalid="drop")
               for lang, f in spec["targets"].items()}

    t = time.perf_counter()
    embedder = SentenceEmbedder(args.student_model)
    ref = embedder.ref
    cache = None
    if args.student == "frozen-features":
        cache = FeatureCache(embedder, Path(args.work) / f"features-{ref.name.replace('/', '--')}-{ref.revision}")
        dev_x = cache.features(dev, task)
        target_x = {lang: cache.features(ds, task) for lang, ds in targets.items()}
        cache.save()
    timings["target_features_s"] = time.perf_counter() - t

    students = StudentCache(Path(args.work) / "students") if args.student == "finetune" else None

    def student_correct(row: str, seed: int, synthetic_: dict, gold_, config: str | None = None,
                        overrides: dict | None = None, volume: float | None = None) -> tuple[int, dict]:
        if args.student == "finetune":  # minutes each: a rerun reads a finished student from the work folder
            parts = {"task": task_name, "row": row, "seed": seed, "config": config, "overrides": overrides,
                     "volume": volume, "data_digest": data_digest(synthetic_, gold_), "model": args.student_model,
                     "epochs": args.student_epochs, "lr": args.student_lr, "data": str(data),
                     **{k: spec[k] for k in ("source", "dev", "targets")},
                     **{k: getattr(args, k) for k in ("source_limit", "dev_limit", "target_limit")}}
            return students.get(parts, lambda: finetune_correct(row, seed, args, task, gold_, synthetic_, dev,
                                                                targets, config, overrides))
        rows = build_training_set(row, gold_, synthetic_, task, seed=seed, config=config)
        head = train_head(cache.features(rows, task), rows, dev_x, dev, task, seed, epochs=args.student_epochs,
                          **({"lr": args.student_lr} if args.student_lr else {}), **(overrides or {}))
        return len(rows), {lang: predict(head, target_x[lang]) for lang in targets}

    def run_rows(rows_: list[str], lever: str | None = None, k: int | None = None, volume: float | None = None,
                 overrides: dict | None = None) -> list[str]:
        """Train and score ``rows_`` x seeds; returns the table keys (``row [lever]``)."""
        suffix = " ".join([*([lever] if lever else []), *([f"k={k_name(k)}"] if k else []),
                           *([f"volume={volume:g}"] if volume is not None else []),
                           *(f"{f}={v:g}" for f, v in (overrides or {}).items() if not isinstance(v, bool))])
        suffix = f" [{suffix}]" if suffix else ""
        keys = []
        for row in rows_:
            per_seed = []
            for seed in range(args.seeds):
                _, _, synthetic_, gold_ = built(seed, lever, k)
                config = None
                if volume is not None:  # a seeded share of every kept generation; T-all reads it as its config
                    raw = synthetic_[RAW]
                    n = max(1, round(volume * len(raw)))
                    share = raw.select(np.sort(np.random.default_rng(seed).permutation(len(raw))[:n]))
                    synthetic_, config = {**synthetic_, VOLUME_CONFIG: share}, VOLUME_CONFIG
                mode = "T-rand-k" if row == "T-all" else row  # a T- mode reads its config whole: the share
                n_rows, preds = student_correct(mode, seed, synthetic_, gold_, config, overrides, volume)
                ok = {lang: preds[lang] == np.asarray(ds["label"]) for lang, ds in targets.items()}
                accs = {"top_class_share": top_class_share(preds.values())}
                for lang in targets:
                    correct.setdefault(row + suffix, {}).setdefault(lang, []).append(ok[lang])
                    accs[lang] = float(ok[lang].mean() * 100)
                per_seed.append({"seed": seed, "train_rows": n_rows, **accs})
            results[row + suffix] = summarise(per_seed, list(targets))
            keys.append(row + suffix)
            log(f"{task_name} {row + suffix:22s} " + "  ".join(f"{k} {v:.2f}" for k, v in results[row + suffix]["mean"].items()))
            if checkpoint and args.student == "finetune":  # minutes per row: a stopped run keeps its finished rows
                checkpoint(assemble())
        return keys

    results, correct = {}, {}
    levers, curves = {}, {"k": [], "k_rows": {}, "volume": []}

    def assemble() -> dict:
        cached = {"students_from_cache": students.hits} if students else {}
        return result_dict(task_name, args, spec, data, summary, recipe, gold, dev, targets, embedder, folder,
                           {**timings, "total_s": time.perf_counter() - t0, **cached}, results, correct, levers,
                           builds, curves)

    t, build_before = time.perf_counter(), timings["build_s"]
    order = dict.fromkeys(FINETUNE_ROWS + ROWS if args.student == "finetune" else ROWS)
    run_rows([r for r in order if r in {"SRC", "SRC+GEN", *args.rows}])
    if cache:
        cache.save()
    timings["students_s"] = time.perf_counter() - t - (timings["build_s"] - build_before)
    if checkpoint and args.levers:
        checkpoint(assemble())
    for lever in args.levers:
        t = time.perf_counter()
        _, lsummary, _, _ = built(0, lever)
        lever_rows = {"balanced": BALANCED_ROWS, "self-train": TEACHER_LEVER_ROWS}.get(lever, LEVER_ROWS)
        run_rows([r for r in lever_rows if args.lever_rows is None or r in args.lever_rows], lever,
                 overrides=LEVER_STUDENT.get(lever))
        if cache:
            cache.save()
        levers[lever] = {"rows": lsummary["rows"], "counts": lsummary["stats"]["counts"],
                         "recipe_generation": lsummary["stats"]["recipe"]["generation"],
                         "templates": lsummary["stats"]["recipe"]["templates"], "daftt": lsummary["stats"].get("daftt"),
                         "teacher": lsummary["stats"]["teacher"], "timings": lsummary["stats"]["timings"], "seconds": round(time.perf_counter() - t, 1)}
        if checkpoint:
            checkpoint(assemble())
    on, extra = args.curves_on, LEVER_STUDENT.get(args.curves_on, {})  # the curves on a lever's build
    for k in args.k_values:
        curves["k"].extend({"k": k_name(k), "row": row, "key": key}
                           for row, key in zip(args.k_rows, run_rows(args.k_rows, on, k=k, overrides=extra or None)))
        curves["k_rows"][k_name(k)] = built(0, on, k)[1]["rows"]
        if checkpoint:
            checkpoint(assemble())
    for volume in args.volumes:
        n = max(1, round(volume * len(synthetic[RAW])))
        curves["volume"].extend({"volume": volume, "generations": n, "row": row, "key": key}
                                for row, key in zip(VOLUME_ROWS, run_rows(list(VOLUME_ROWS), on, volume=volume,
                                                                          overrides=extra or None)))
        if checkpoint:
            checkpoint(assemble())
    for name, value in args.student_levers:
        run_rows(list(STUDENT_LEVER_ROWS), on, overrides={**extra, name: value})
        if checkpoint:
            checkpoint(assemble())
    return assemble()


def result_dict(task_name, args, spec, data, summary, recipe, gold, dev, targets, embedder, folder, timings,
                results, correct, levers, builds=None, curves=None) -> dict:
    """The JSON record of a run: the table with its significance tests, data, models, scale, timings."""
    pooled = {row: np.concatenate([np.mean(correct[row][lang], axis=0) for lang in targets]) for row in results}
    for row in results:
        results[row]["p_vs"] = {base: permutation_p(pooled[row], pooled[base], args.permutations)
                                for base in ("SRC+GEN", "SRC") if base != row and base in pooled}
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
                 "targets": {lang: {**file_info(data / spec["targets"][lang]), "rows": len(ds)}
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
    tasks = list(TASKS) if args.task == "all" else [args.task]
    missing = [rel for t in tasks for rel in (TASKS[t]["source"], TASKS[t]["dev"], *TASKS[t]["targets"].values())
               if not (Path(args.data) / rel).is_file()]
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

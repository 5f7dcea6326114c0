"""What a reproduction run is: the tasks and their two scales, the rows of the paper's table, the generator /
teacher / student levers and the k / volume curves, and the command line of `benchmarks.reproduce` that picks them.
Kept apart from `reproduce.py`, which builds the data and trains the rows."""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_crossaug.config.student import StudentConfig
from hf_crossaug.students.frozen import FROZEN_DEFAULTS

from benchmarks.reproduce_report import STUDENT_ONLY_SEEDS

DESCRIPTION = "Reproduce the data-selection paper's table (arXiv 2407.10582) offline, at reduced scale."

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
    # teacher_source: the strong-teacher lever's English gold when it is not the source file (SNLI dev + test)
    "nli": {"recipe": "xnli-sw-synth", "source": "snli/dev.jsonl", "dev": "xnli/dev-en.jsonl",
            "teacher_source": "snli/*.jsonl",
            "targets": {"hi": "xnli/dev-hi.jsonl", "ur": "xnli/dev-ur.jsonl", "sw": "xnli/dev-sw.jsonl"},
            "scale": {"source_limit": 2000, "dev_limit": 500, "target_limit": None, "per_class": 400, "k": 150,
                      "clusters": 25, **FROZEN_RUN},
            "finetune_scale": {"source_limit": 300, "dev_limit": 150, "target_limit": 200, "per_class": 60, "k": 30,
                               "clusters": 5, **FINETUNE_RUN, "student_epochs": 5}},
    # smaller: 6,000 MahaSent rows and SST's 8.5K train would double the run for the same question
    "sentiment": {"recipe": "mahasent-mr-synth", "source": "sst3/train.jsonl", "dev": "sst3/dev.jsonl",
                  # hi-en: GLUECoS code-mixed tweets; only a train split exists here, so its first 2,000 rows are
                  # the target (recipe gluecos-hi-en-synth draws its few-shot examples from the rest)
                  "targets": {"mr": "mahasent/dev-mr.jsonl", "hi": "iitp_product/dev-hi.jsonl",
                              "hi-en": "gluecos_sentiment/train-romanized.jsonl@train[:2000]"},
                  "scale": {"source_limit": 1200, "dev_limit": 400, "target_limit": 1500, "per_class": 120, "k": 60,
                            "clusters": 10, **FROZEN_RUN},
                  "finetune_scale": {"source_limit": 300, "dev_limit": 150, "target_limit": 300, "per_class": 60,
                                     "k": 30, "clusters": 5, **FINETUNE_RUN}},
}
SCALE_HELP = "(default: the task's scale in TASKS, finetune_scale with --student finetune)"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=DESCRIPTION)
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
    p.add_argument("--strong-teacher-epochs", type=int, default=2,
                   help="epochs of the strong-teacher lever's teacher (default 2: thousands of rows an epoch)")
    p.add_argument("--dtype", choices=("bfloat16", "float32", "auto"),
                   help="teacher and fine-tuned student precision (default: the package's, float32); bfloat16 "
                        "autocast is 1.5-1.7x faster per step where the CPU computes it natively")
    p.add_argument("--rows", nargs="*", choices=[*ROWS, "T-all"],
                   help="rows of the main table to run (T-all: every generation with its soft labels; default: "
                        "all 13 with the frozen-features student, "
                        f"{' '.join(FINETUNE_ROWS)} with finetune; SRC and SRC+GEN always run: the significance "
                        "tests compare with them)")
    p.add_argument("--lever-rows", nargs="*", choices=[*ROWS, "T-all"],
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

# Generator levers (issue: what caps the gain?): each rebuilds the generations with one change and reruns
# LEVER_ROWS; the teacher is reused from the cache (its key does not depend on the generations).
LEVERS = {
    "shots-2": {"n_shots": 2}, "shots-8": {"n_shots": 8},
    "temp-0.5": {"temperature": 0.5}, "temp-1.1": {"temperature": 1.1},
    "no-domain": None,  # the prompt templates without the target-domain description
    "daftt": None,  # DAFTT: the generator LoRA-tuned on DAFTT_ROWS labelled source rows first (generate mode)
    "self-train": None,  # one self-training round of the teacher (TeacherConfig.self_training_rounds); same generations
    "balanced": None,  # teacher and students weight the classes equally (class_balance); same generations
    "strong-teacher": None,  # the teacher learns from all the task's English gold; same generations
}
STRONG = "strong-teacher"
# A teacher that knows more than the students (issue #28): trained once on all the task's English gold (SNLI dev +
# test, 19,666 rows, through teacher.source; SST-3 train, 8,544, through teacher.source_limit; the dev sets that pick
# its epoch, XNLI en / SST-3 dev, are not in them), pinned to seed 42 so every pipeline seed's build reuses it from
# the cache, at the recipe's learning rate (the finetune scale's 1.5e-4 is for 300 rows); the students keep the
# scale's gold rows and the generations are the plain build's (its source and generation settings are unchanged).
# Its rows: the T rows, T-all (every generation with its soft labels) and the teacher
# itself on the targets ("teacher zero-shot": the ceiling the students distil from).
STRONG_ROWS = ("T-div-k", "T-all", "T-top-k", "T-rand-k")  # the recommended mode and every generation first
TEACHER_ROW = "teacher zero-shot"
DAFTT_ROWS = 200  # "a few hundred labelled source examples" (10% of the 2,000 source rows)
LEVER_ROWS = ("SRC+GEN", "T-top-k", "T-div-k")
# class balance changes the teacher and every student, SRC included: its rows are compared with their own SRC
BALANCED_ROWS = ("SRC", "SRC+GEN", "T-div-k", "T-rand-k", "GEN")
LEVER_STUDENT = {"balanced": {"class_balance": True}}  # the student settings a lever brings to its rows
TEACHER_LEVER_ROWS = ("T-rand-k", "T-div-k", "T_pl-div-k")  # a teacher lever leaves SRC+GEN (prompt labels) alone


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

"""The reproduction benchmark's outputs: the markdown table, the bar plot, the k / volume curves and the JSON
record (with the machine's state), kept apart from `reproduce.py`, which runs the rows."""

from __future__ import annotations

import json
import os
import platform
import resource
from pathlib import Path

import numpy as np

# what seeds vary in the runs made before ``seeds_vary`` was recorded (and without --pipeline-seeds since)
STUDENT_ONLY_SEEDS = ("the student only (initialisation, data order) and the SRC+GEN / GEN draws; the generations, "
                      "teacher and selections are built once (seed 42)")

# a student whose target predictions are this much one class counts as "one-class" in the table
ONE_CLASS = 0.95
LEVER_SRC = "SRC, same lever"  # p_vs key: a lever row against the SRC row of the same lever
PLAIN_TEACHER = "same row, plain teacher"  # p_vs key: a strong-teacher row against the row with the plain teacher

# XNLI dev accuracy from the paper (XLM-R large, SNLI 15K source), as quoted in ../shared/data/README.md.
PAPER = {
    "zero-shot": {"SRC": (65.54, 57.15, 57.63), "SRC+GEN": (70.10, 63.92, 63.34), "T-top-k": (70.82, 62.98, 63.74)},
    "translate-train": {"SRC": (67.67, 61.65, 59.16), "SRC+GEN": (69.74, 65.28, 63.52),
                        "T-top-k": (71.55, 64.40, 63.82), "T-div-k": (71.26, 65.82, 64.44)},
}


def lever_src(row: str, rows) -> str | None:
    """The SRC row of the lever ``row`` belongs to (``T-div-k [balanced k=50]`` -> ``SRC [balanced]``), if run."""
    inner = row[row.index(" [") + 2:-1] if " [" in row else ""
    own = next((f"SRC [{x}]" for x in (inner, inner.split(" ")[0]) if x and f"SRC [{x}]" in rows), None)
    return None if own == row else own


def seed_p(res: dict, row: str, base: str = "SRC") -> float | None:
    """Paired t-test of ``row`` against ``base`` over seeds, on each seed's average target accuracy. Unlike the
    permutation test over examples (which holds each seed's student fixed), the spread between seeds -- with
    pipeline seeds, of the whole pipeline -- is in it; None with fewer than 3 seeds or no ``base`` row."""
    if base not in res["rows"] or row == base:
        return None
    langs = [k for k in res["rows"][row]["mean"] if k != "avg"]
    a, b = ([np.mean([s[lang] for lang in langs]) for s in res["rows"][r]["seeds"]] for r in (row, base))
    if len(a) != len(b) or len(a) < 3:
        return None
    d = np.subtract(a, b)
    if np.std(d) == 0:  # the same accuracy shift at every seed: no spread to test against
        return 1.0 if d[0] == 0 else 0.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b).pvalue)


def markdown(res: dict) -> str:
    langs = [k for k in next(iter(res["rows"].values()))["mean"] if k != "avg"]
    # runs before the student option were all made by the frozen-feature head with student-only seeds
    student = (res.get("student") or {}).get("description", "frozen-features: a 2-layer head on frozen e5 sentence "
                                                              "embeddings; epoch chosen on the English dev set")
    seeds = res.get("seeds_vary", STUDENT_ONLY_SEEDS)
    n = res["scale"]["seeds"]
    caption = [f"Student: {student}.", "", f"{n} seed{'s' * (n != 1)}; seeds vary {seeds}.", ""]
    by_seed = n >= 3 and "SRC" in res["rows"]  # the seed-level test needs 3 seeds and the SRC row
    if by_seed:
        caption += ["p: paired permutation test over the target examples (each seed's student held fixed); the "
                    "(seeds) columns: paired t-test over the seeds' average accuracies, the spread between seeds "
                    "included.", ""]
    head = ["row", *langs, "avg", "p vs SRC+GEN", "p vs SRC"]
    shares = any("top_class_share" in s for r in res["rows"].values() for s in r["seeds"])  # older runs lack it
    own = any(LEVER_SRC in r["p_vs"] for r in res["rows"].values())  # a lever that retrains SRC (balanced)
    if own:
        head.append("p vs its lever's SRC")
    plain = any(PLAIN_TEACHER in r["p_vs"] for r in res["rows"].values())  # strong-teacher rows
    if plain:
        head.append("p vs the same row, plain teacher")
    if by_seed:
        head += ["p vs SRC (seeds)", *["p vs its lever's SRC (seeds)"] * own]
    if shares:
        head.append(f"one-class students (>= {ONE_CLASS:.0%} one class)")
    if res["task"] == "nli":
        head += [f"paper zero-shot ({'/'.join(langs)})", "paper translate-train"]
    lines = [*caption, "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, r in res["rows"].items():
        cells = [row, *(f"{r['mean'][k]:.2f} ± {r['std'][k]:.2f}" for k in [*langs, "avg"])]
        cells += [f"{r['p_vs'][b]:.3f}" if b in r["p_vs"] else "—"
                  for b in ("SRC+GEN", "SRC", *[LEVER_SRC] * own, *[PLAIN_TEACHER] * plain)]
        if by_seed:
            bases = ["SRC", *[lever_src(row, res["rows"])] * own]
            cells += [f"{p:.3f}" if (p := seed_p(res, row, b) if b else None) is not None else "—" for b in bases]
        if shares:
            cells.append(f"{sum(s.get('top_class_share', 0) >= ONE_CLASS for s in r['seeds'])} of {len(r['seeds'])}")
        if res["task"] == "nli":
            cells += [" / ".join(f"{v:.2f}" for v in PAPER[s][row]) if row in PAPER[s] else "" for s in PAPER]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(res["rows"])
    langs = [k for k in res["rows"][rows[0]]["mean"] if k != "avg"]
    width = 0.8 / len(langs)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for i, lang in enumerate(langs):
        means = [res["rows"][r]["mean"][lang] for r in rows]
        stds = [res["rows"][r]["std"][lang] for r in rows]
        ax.bar(np.arange(len(rows)) + i * width, means, width, yerr=stds, capsize=2, label=lang)
    lo = min(res["rows"][r]["mean"][lang] for r in rows for lang in langs)
    ax.set_ylim(max(0, lo - 5), None)
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, rows, rotation=35, ha="right")
    ax.set_ylabel("accuracy (%)")
    student = (res.get("student") or {}).get("backend", "frozen-features")
    pipeline = " (pipeline seeds)" if res["scale"].get("pipeline_seeds") else ""
    ax.set_title(f"{res['task']}: {student} student accuracy per target language "
                 f"(mean ± std over {res['scale']['seeds']} seeds{pipeline})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(res: dict, path: Path) -> bool:
    """Average target accuracy vs k per class and vs the number of generations used (the k and volume curves),
    SRC as a line; False when the run had neither curve."""
    curves = res.get("curves") or {}
    panels = [name for name in ("k", "volume") if curves.get(name)]
    if not panels:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        (_draw_k if name == "k" else _draw_volume)(ax, [res])
    _finish(fig, res, path)
    return True


def plot_runs(runs: list[dict], path: Path, same_builds: bool = False) -> dict[str, dict[str, list[tuple]]]:
    """The k and volume curves of several runs of a task in one figure (say --per-class 60 and 180 on the same
    pipeline seeds): the volume axis is the generations a row used, so a run with more prompts extends a smaller
    run's curve. ``same_builds``: the runs read the same builds (one work folder, one scale), so a run's main-table
    rows are the k curve's point at its k even when that run drew no curve. Returns the plotted (x, mean, std)
    per row of each panel."""
    panels = [name for name in ("k", "volume") if any((r.get("curves") or {}).get(name) for r in runs)]
    if not panels:
        raise ValueError("none of these runs has a k or volume curve (reproduce.py --k-values / --volumes)")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    drawn = {name: _draw_k(ax, runs, same_builds) if name == "k" else _draw_volume(ax, runs)
             for ax, name in zip(axes[0], panels)}
    _finish(fig, runs[0], path)
    return drawn


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_k(ax, runs: list[dict], same_builds: bool = False) -> dict[str, list[tuple]]:
    points, all_rows = [], dict.fromkeys(p["row"] for r in runs for p in (r.get("curves") or {}).get("k") or [])
    for i, res in enumerate(runs):
        curve = (res.get("curves") or {}).get("k") or []
        rows = all_rows if same_builds else dict.fromkeys(p["row"] for p in curve)
        points += [{**p, "run": i} for p in curve]  # the main table's rows are the curve's point at the main k
        points += [{"k": str(res["scale"]["k"]), "row": r, "key": r, "run": i} for r in rows if r in res["rows"]]
        if curve:  # every generation with soft labels is what any strategy keeps at k = all
            points += [{"k": "all", "row": "T-all", "key": p["key"], "run": i}
                       for p in res["curves"].get("volume", []) if p["row"] == "T-all" and p["volume"] == 1]
    order = {k: i for i, k in enumerate(sorted({p["k"] for p in points},
                                               key=lambda k: float("inf") if k == "all" else int(k)))}
    drawn = _draw_points(ax, runs, points, lambda p: order[p["k"]], "k per class")
    ax.set_xticks(list(order.values()), list(order))
    return {row: [(list(order)[x], m, sd) for x, m, sd in pts] for row, pts in drawn.items()}


def _draw_volume(ax, runs: list[dict]) -> dict[str, list[tuple]]:
    points = [{**p, "run": i} for i, r in enumerate(runs) for p in (r.get("curves") or {}).get("volume", [])]
    return _draw_points(ax, runs, points, lambda p: p["generations"], "generations used (share of the kept ones)")


def _draw_points(ax, runs: list[dict], points: list[dict], x_of, label: str) -> dict[str, list[tuple]]:
    """One line per row over ``points`` (each names its run and its key there), the runs' SRC rows as lines."""
    # a curve on a lever's build (--curves-on balanced) is read against that lever's SRC too
    lever = next((p["key"][p["key"].index(" [") + 2:-1].split(" ")[0] for p in points if " [" in p["key"]), "")
    lever = "" if "=" in lever else lever  # "k=50" / "volume=1": the curve's own variable, not a lever
    drawn = {}
    for row in dict.fromkeys(p["row"] for p in points):
        pts = drawn[row] = sorted((x_of(p), runs[p["run"]]["rows"][p["key"]]["mean"]["avg"],
                                   runs[p["run"]]["rows"][p["key"]]["std"]["avg"]) for p in points if p["row"] == row)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                    label=f"{row} [{lever}]" if lever else row)
    for base, style in (("SRC", "--"), (f"SRC [{lever}]", ":")):
        rows = next((r["rows"] for r in runs if base in r["rows"]), None)
        if rows:
            ax.axhline(rows[base]["mean"]["avg"], color="grey", linestyle=style, label=base)
    ax.set_xlabel(label)
    ax.set_ylabel("average target accuracy (%)")
    ax.legend()
    return drawn


def _finish(fig, res: dict, path: Path) -> None:
    student = (res.get("student") or {}).get("backend", "frozen-features")
    fig.suptitle(f"{res['task']}: {student} student, mean ± std over {res['scale']['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def write(res: dict, stem: Path) -> None:
    """The run's JSON (with the machine's state), markdown table and plot."""
    import torch

    usage = resource.getrusage(resource.RUSAGE_SELF)  # cumulative over the tasks run so far
    res["machine"] = {"platform": platform.platform(), "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                      "cpu": torch.backends.cpu.get_cpu_capability(),  # bf16 numerics (so generations) differ by ISA
                      "cpu_s_so_far": round(usage.ru_utime + usage.ru_stime), "peak_rss_mib": round(usage.ru_maxrss / 1024)}
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2))
    stem.with_suffix(".md").write_text(markdown(res))
    plot(res, stem.with_suffix(".png"))
    plot_curves(res, stem.with_name(stem.name + "-curves.png"))


if __name__ == "__main__":  # python -m benchmarks.reproduce_report OUT.png RUN.json [RUN.json ...]
    import sys

    if __package__ in (None, ""):  # run as a file: import the package from the checkout
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.extras import require

    require("benchmarks.reproduce_report", ["matplotlib"])

    args = [a for a in sys.argv[1:] if a != "--same-builds"]
    if len(args) < 2:
        raise SystemExit("usage: reproduce_report.py OUT.png RUN.json [RUN.json ...] [--same-builds] (the k and "
                         "volume curves of the runs in one figure; --same-builds: the runs read the same builds, so "
                         "each run's main-table rows are points of the k curve)")
    plot_runs([json.loads(Path(f).read_text()) for f in args[1:]], Path(args[0]), "--same-builds" in sys.argv)

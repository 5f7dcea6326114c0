"""Cost per 1,000 rows of every stage after generation (clean, teacher labelling, selection, export) at several
sizes, so a step that grows faster than the rows shows (issue #27: where do labelling's ~16 rows/s go?).

No LLM runs (generation is measured by bench_scale / bench_generation). The rows are what the generate stage
hands an NLI build's clean stage: N/3 premises drawn with replacement from the shared SNLI dev file, each made
unique by its group number (" #17": a redrawn premise would otherwise turn two groups into exact duplicates
that the clean stage drops, which a real build's fresh premises do not), the package's own `item_prompts` for
them (one per class, the default recipe's few-shot prompts), and as each row's generation an SNLI hypothesis of
that class for that premise (any of the class when it has none) plus the line a few-shot continuation runs on
into. Every stage runs through the package's code: the plan's ``clean`` stage (default config; then with
near-duplicate removal by MinHash and by embedding, judged within a premise's rows, so linear for NLI -- for
single-text tasks the group is every row and the embedding method is quadratic) and ``ids`` stage; the teacher's
`predict_probs` in float32 and bfloat16, tokenisation and forward passes timed inside it; `labelled`, what the
teacher stage runs after training (one pass per epoch snapshot; the best epoch's gives the labels); `select_configs`
per strategy (default selection config; div-k's sentence embedding and k-means timed apart) and the card's
quality scores; `write_configs`, the Hub-layout parquet files. The teacher is the embedded multilingual-e5-small
(or ``--model``) with a fresh head, its epoch snapshots copies: labelling costs the same whatever the weights.
The first embedding row of each kind includes loading its encoder. Run on an idle machine:

    python -m benchmarks.bench_stage_cost --rows 10000 100000 --out benchmarks/results/stage-cost

Writes ``<out>-n<N>-<N>.json`` and ``.md``: seconds, per 1,000 rows and peak memory per stage and size, and the
per-1,000-row cost at the largest size over the smallest (> 1.3: superlinear).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import the package from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extras import require  # noqa: E402

REQUIRED = ("datasets", "torch", "transformers", "safetensors", "faiss", "sklearn", "threadpoolctl")
require("benchmarks.bench_stage_cost", REQUIRED, 'pip install -e ".[test]"')

import json  # noqa: E402 - after the import check
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from unittest import mock  # noqa: E402

from benchmarks.bench_stages import SNLI  # noqa: E402
from benchmarks.memory import PeakRSS, rss_mib  # noqa: E402

SUPERLINEAR = 1.3  # per-1,000-row cost ratio (largest / smallest size) flagged as growing faster than the rows


def say(message: str) -> None:
    print(message, flush=True)


def cpu() -> dict:
    """The CPU model and whether it computes bf16 natively (avx512_bf16, AMX), from lscpu."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    return {"model": info.get("Model name", "unknown").strip(), "cores": os.cpu_count(),
            "avx512_bf16": "avx512_bf16" in flags, "amx": sorted(f for f in flags if f.startswith("amx"))}


def recipe_for(model: str | None):
    from hf_crossaug.config.recipe import Recipe
    from hf_crossaug.config.teacher import TeacherConfig
    return Recipe(name="stage-cost", task="nli", language="sw", teacher=TeacherConfig(model=model)).validate()


def raw_generations(recipe, n: int, seed: int = 0):
    """``n`` rows with the columns the generate stage gives the NLI clean stage (see the module docstring)."""
    from hf_crossaug.stages.prompts import item_prompts
    from hf_crossaug.stages.source import load_source

    task, gen = recipe.task_spec, recipe.generation
    source = load_source(task, str(SNLI) if SNLI.exists() else None, seed=seed)
    hyps: dict = defaultdict(lambda: defaultdict(list))
    by_label = defaultdict(list)
    for p, h, lab in zip(source["premise"], source["hypothesis"], source["label"]):
        hyps[p][lab].append(h)
        by_label[lab].append(h)
    rng, premises = random.Random(seed), sorted(hyps)
    groups = -(-n // task.num_labels)
    drawn = [rng.choice(premises) for _ in range(groups)]
    domains = recipe.domain_list
    units = [{"prompt_id": f"p{g:06d}", "premise": f"{p} #{g}", "domain": domains[g % len(domains)]}
             for g, p in enumerate(drawn)]
    rows = item_prompts(task, source, recipe.per_class, recipe.domain_list, gen.prompt_style, gen.n_shots, gen.seed,
                        units).select(range(n))
    texts = []
    for i in range(n):
        p, lab = drawn[i // task.num_labels], i % task.num_labels
        h = rng.choice(hyps[p][lab] or by_label[lab])
        texts.append(f" {h}\n\nPremise: {rng.choice(premises)}")
    return rows.add_column("generation", texts).add_column("generated_tokens", [len(t.split()) for t in texts])


class Clock:
    """Seconds spent inside wrapped calls (the tokenizer, a model's forward, a module function)."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t
        return timed

    def hook(self, model):
        """Time ``model``'s forward with hooks; returns the handles to remove."""
        start = []
        return [model.register_forward_pre_hook(lambda *a: start.append(time.perf_counter())),
                model.register_forward_hook(lambda *a: setattr(self, "seconds", self.seconds + time.perf_counter()
                                                               - start.pop()))]


def fresh_teacher(recipe, folder: Path):
    """The teacher's encoder with a fresh head saved as a trained teacher would be: ``best`` plus one snapshot of
    the trainable weights per epoch (copies: the labelling cost does not depend on the weights)."""
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossaug.models.resolve import ENCODER_DEFAULT, resolve_model
    from hf_crossaug.stages.teacher import Teacher

    task, cfg = recipe.task_spec, recipe.teacher
    ref = resolve_model(cfg.model, ENCODER_DEFAULT, cfg.revision)
    tok = AutoTokenizer.from_pretrained(ref.path)
    model = AutoModelForSequenceClassification.from_pretrained(
        ref.path, num_labels=task.num_labels, id2label=dict(enumerate(task.labels)), label2id=task.label2id(),
        use_safetensors=True)
    if cfg.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    model.save_pretrained(folder / "best", safe_serialization=True)
    tok.save_pretrained(folder / "best")
    (folder / "epochs").mkdir()
    snaps = []
    for e in range(1, cfg.epochs + 1):
        snaps.append(f"epochs/epoch-{e:03d}.safetensors")
        save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                  str(folder / snaps[-1]))
    teacher = Teacher(path=folder, base=ref.provenance(), dev_accuracy=0.0, dev_size=0, train_size=0,
                      epoch_checkpoints=snaps, source="none (fresh head)", best_epoch=cfg.epochs)
    return teacher, model.eval(), tok


def measure(n: int, model: str | None = None, log=say, model_rows: int | None = None) -> list[dict]:
    """Every stage after generation over ``n`` synthetic raw generations; one row per stage. ``model_rows``: the
    model passes (labelling, embedding) run on that many rows when ``n`` is larger, and the rest of their output is
    theirs repeated (embeddings with a little noise, so k-means sees no exact copies); every other stage runs on
    all ``n`` rows. Why: a forward pass costs the same per row at any size (fixed batches), and at 100K rows the
    passes alone are ~2 hours on 2 cores."""
    from hf_crossaug.build.card import config_quality
    from hf_crossaug.build.configs import config_names, dataset_infos, select_configs, selection_context
    from hf_crossaug.build.contract import Context
    from hf_crossaug.build.export import write_configs
    from hf_crossaug.build.plan import labelled, plan, teacher_view
    from hf_crossaug.config.clean import NearDuplicateConfig
    from hf_crossaug.stages import select as select_module
    from hf_crossaug.stages.teacher import predict_probs

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    recipe = recipe_for(model)
    task, rows = recipe.task_spec, []

    on = model_rows if model_rows and n > model_rows else n  # the rows a model pass runs on

    def stage(name: str, fn, notes=lambda out, secs: {}, rows_run: int = n):
        """Run ``fn`` once; its seconds, per 1,000 of the ``rows_run`` it ran on, peak RSS and ``notes(out,
        seconds)`` as a row."""
        before = rss_mib()
        with PeakRSS() as mem:
            t = time.perf_counter()
            out = fn()
            secs = time.perf_counter() - t
        extra = notes(out, secs)
        extra |= {"model_rows": rows_run} if rows_run != n else {}
        rows.append({"n": n, "stage": name, "seconds": round(secs, 6), "s_per_1k": round(1000 * secs / rows_run, 6),
                     "peak_rss_mib": round(mem.peak), "rise_mib": round(mem.peak - before), **extra})
        log(f"n={n:>7} {name:<46} {secs:9.2f} s {1000 * secs / rows_run:8.3f} s/1k rows  peak {mem.peak:6.0f} MiB "
            f"{extra or ''}")
        return out

    raw = raw_generations(recipe, n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def ctx_for(r):
            return Context(r, task, tmp, lambda m: None, source=raw, shots=raw, source_name="synthetic")
        stages = {s.name: s for s in plan(recipe)}
        ctx = ctx_for(recipe)
        kept, _ = stage("clean (default config)", lambda: stages["clean"](raw, ctx),
                        lambda out, s: {"kept": len(out[0])})
        for method, threshold in (("minhash", 0.9), ("embedding", 0.95)):
            nd = replace(recipe, clean=replace(recipe.clean, near_duplicate=NearDuplicateConfig(method, threshold)))
            part = raw if method == "minhash" else raw.select(range(on))  # embedding: a model pass
            stage(f"clean + near_duplicate {method} {threshold}", lambda: stages["clean"](part, ctx_for(nd)),
                  lambda out, s: {"near_duplicates": out[1]["counts"]["generations"]["near_duplicate"]}, len(part))
        items, _ = stage("ids", lambda: stages["ids"](kept, ctx))
        part = items.select(range(min(on, len(items))))

        teacher, clf, tok = fresh_teacher(recipe, tmp / "teacher")
        for dtype in ("float32", "bfloat16"):
            tok_clock, fwd_clock = Clock(), Clock()
            handles = fwd_clock.hook(clf)
            stage(f"teacher: one labelling pass, {dtype}", lambda: predict_probs(
                clf, tok_clock.wrap(tok), part, task, recipe.teacher.max_length, dtype=dtype),
                lambda out, s: {"tokenise_s": round(tok_clock.seconds, 3), "forward_s": round(fwd_clock.seconds, 3),
                                "other_s": round(s - tok_clock.seconds - fwd_clock.seconds, 3)}, len(part))
            for h in handles:
                h.remove()
        passes = len(teacher.epoch_checkpoints)  # one per epoch; the best epoch's pass gives the labels
        raw_labelled = stage(f"teacher: labelled() as built, {passes} passes fp32",
                             lambda: labelled(part, teacher_view(part, ctx), ctx, teacher),
                             lambda out, s: {"passes": passes}, len(part))
        raw_labelled = repeat_columns(items, raw_labelled)
        del clf

        sel = selection_context(recipe)
        sel.embed_fn = repeat_rows(sel.embed_fn, on)
        emb = stage("select: sentence embedding (div-k, quality)", lambda: sel.get_embeddings(raw_labelled),
                    rows_run=min(on, len(raw_labelled)))
        tables = {}
        for name in config_names(recipe):
            km = Clock()
            with mock.patch.object(select_module, "kmeans_labels", km.wrap(select_module.kmeans_labels)):
                t, _ = stage(f"select: {name}", lambda: select_configs(recipe, raw_labelled, [name], sel),
                             lambda out, s: {"kmeans_s": round(km.seconds, 3)} if name == "div-k" else {})
            tables.update(t)
        stage("select: quality scores (card)", lambda: config_quality(tables, emb, task.num_labels))

        def export():
            folder = tmp / "out"
            folder.mkdir()
            return dataset_infos(recipe, tables, write_configs(tables, folder))
        stage("export: parquet configs + dataset_info", export, lambda out, s: {"configs": len(tables)})
    return rows


def repeat_columns(items, part):
    """``items`` with the columns ``part`` (its first rows, labelled) added, repeated down to every row."""
    for col in [c for c in part.column_names if c not in items.column_names]:
        values = part[col]
        items = items.add_column(col, [values[i % len(values)] for i in range(len(items))],
                                 feature=part.features[col])
    return items


def repeat_rows(embed_fn, rows: int):
    """``embed_fn`` run on the first ``rows`` texts only, its vectors repeated (plus 1% noise) for the rest."""
    import numpy as np

    def embed(texts):
        head = np.asarray(embed_fn(texts[:rows]))
        if len(texts) <= rows:
            return head
        out = head[np.arange(len(texts)) % rows]
        noise = np.random.default_rng(0).normal(scale=0.01, size=out.shape).astype(out.dtype)
        out = out + noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)
    return embed


def summary(rows: list[dict]) -> list[dict]:
    """Per stage: the per-1,000-row cost at the largest size over that at the smallest (stages whose model pass
    ran on fewer rows than the size are left out: their cost per row was measured, not their growth)."""
    sizes = sorted({r["n"] for r in rows})
    out = []
    for name in dict.fromkeys(r["stage"] for r in rows):
        cost = {r["n"]: r["s_per_1k"] for r in rows if r["stage"] == name and "model_rows" not in r}
        if len(sizes) > 1 and cost.get(sizes[0]) and sizes[-1] in cost:
            ratio = round(cost[sizes[-1]] / cost[sizes[0]], 2)
            out.append({"stage": name, "ratio": ratio, "superlinear": ratio > SUPERLINEAR})
    return out


def markdown(result: dict) -> str:
    c, sizes = result["cpu"], result["sizes"]
    lines = [f"# Cost per 1,000 rows of the stages after generation, NLI, {' and '.join(map(str, sizes))} rows", "",
             f"CPU: {c['model']}, {c['cores']} cores; avx512_bf16: {c['avx512_bf16']}; amx: "
             f"{', '.join(c['amx']) or 'no'}. Teacher: {result['teacher']}.", "",
             "Peak RSS: the process's (what earlier stages hold included); rise: over its RSS when the stage began. "
             "model_rows N: that model pass ran on N rows (its s / 1,000 rows is over them; fixed batches cost the "
             "same per row at any size) and its output was repeated for the rest, which the later stages ran on.",
             "", "| rows | stage | seconds | s / 1,000 rows | peak RSS (MiB) | rise (MiB) | notes |",
             "|---:|---|---:|---:|---:|---:|---|"]
    base = ("n", "stage", "seconds", "s_per_1k", "peak_rss_mib", "rise_mib")
    for r in result["rows"]:
        notes = ", ".join(f"{k} {v}" for k, v in r.items() if k not in base)
        lines.append(f"| {r['n']} | {r['stage']} | {r['seconds']:.3f} | {r['s_per_1k']:.4f} | {r['peak_rss_mib']} | "
                     f"{r['rise_mib']} | {notes} |")
    if result["ratios"]:
        lines += ["", f"Per-1,000-row cost at {sizes[-1]} over {sizes[0]} rows (> {SUPERLINEAR}: superlinear):", "",
                  "| stage | ratio |", "|---|---:|"]
        lines += [f"| {r['stage']} | {r['ratio']}{' **superlinear**' if r['superlinear'] else ''} |"
                  for r in result["ratios"]]
    return "\n".join(lines) + "\n"


def run(sizes: list[int], model: str | None, out: Path, log=say, model_rows: int | None = None) -> dict:
    rows = [r for n in sorted(sizes) for r in measure(n, model, log, model_rows)]
    result = {"cpu": cpu(), "sizes": sorted(sizes), "teacher": model or "embedded multilingual-e5-small, fresh head",
              "rows": rows, "ratios": summary(rows)}
    out = out.with_name(f"{out.name}-n{'-'.join(map(str, sorted(sizes)))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {out}.json and {out}.md")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000], help="sizes (default 10000 100000)")
    parser.add_argument("--model", default=None, help="teacher encoder (default: the embedded multilingual-e5-small)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "stage-cost"),
                        help="output path without suffix; -n<sizes> is appended")
    parser.add_argument("--model-rows", type=int, default=None,
                        help="run the model passes (labelling, embedding) on at most this many rows per size and "
                             "repeat their output for the rest (default: all rows; 10000 keeps 100K rows under half "
                             "an hour on 2 cores)")
    args = parser.parse_args(argv)
    run(args.rows, args.model, Path(args.out), model_rows=args.model_rows)


if __name__ == "__main__":
    main()

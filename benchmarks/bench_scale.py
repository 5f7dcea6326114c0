"""The endpoint path at scale: requests/s against a bare ``AsyncOpenAI`` loop, clean and under injected faults.

N prompts (``--n``, default 100000) go through the generate stage (``backend: endpoint``: shards, request
cache, retries, breaker, adaptive concurrency) against a fast local OpenAI stand-in (tests/openai_standin.py,
answers at once), run in its own process on 127.0.0.1. The same bodies go through a bare loop in the same
run (``bench_servers.bare_run``: ``openai.AsyncOpenAI``, a semaphore of ``--in-flight``, the client's own
retries, ``max_retries=8``). Both see the same stand-in, clean and with faults (5% dropped connections:
half after the headers, half closed without a response; 2% 503s; 1% requests that never answer, cut by
the ``--request-timeout``). Also reported: peak resident memory per phase, the client's CPU per request, the
request cache's size on disk, and what a resume that finds every answer in the request cache costs (the shard
files removed, the cache kept).

Fair order: the two paths share 2 cores with the stand-in, and two back-to-back runs of the same path differed
by up to 12% here, as much as the gap being measured. So each condition gets a warm-up of both paths (not
reported), then ``--rounds`` rounds of both in alternating order (bare first, then endpoint first, ...), and the
ratio reported is the median over rounds of each round's endpoint / bare. Run it on an idle machine; for a quick
check use a small ``--n``:

    python -m benchmarks.bench_scale --n 2000 --out /tmp/scale-smoke

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/scale-n<N>``).
"""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

if __package__ in (None, ""):  # run as a file (python benchmarks/bench_scale.py): import the package from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extras import require  # noqa: E402
from benchmarks.memory import PeakRSS  # noqa: E402

REQUIRED = ("openai", "aiohttp", "datasets", "torch")  # checked before any work (torch: bench_servers)
require("benchmarks.bench_scale", REQUIRED, 'pip install -e ".[test]"')

import json  # noqa: E402 - after the import check
import pathlib  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
STANDIN = HERE.parent / "tests" / "openai_standin.py"
FAULTS = {"headers": 0.025, "close": 0.025, "503": 0.02, "hang": 0.01}


def start_standin(rates: dict) -> tuple[subprocess.Popen, str]:
    """The stand-in in its own process (its own GIL); returns the process and its base URL."""
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--rates", json.dumps(rates)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        sys.exit(f"the stand-in did not start (got {url!r})")
    return proc, url


def endpoint_run(prompts, cfg, work: pathlib.Path) -> tuple[float, int, dict]:
    """Seconds, answers and request accounting of the generate stage (backend: endpoint)."""
    from hf_crossaug.stages.generate import generate

    accounting: dict = {}
    start = time.perf_counter()
    out = generate(prompts, cfg, work, desc="scale", accounting=accounting)
    return time.perf_counter() - start, sum(t is not None for t in out["generation"]), accounting["scale"]


def cache_mib(work: pathlib.Path) -> float:
    return sum(f.stat().st_size for f in (work / "requests").glob("requests.sqlite*")) / 2**20


def cpu_s() -> float:
    """CPU seconds of this process (the client; the stand-in runs in its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase(rows: list, name: str, n: int, seconds: float, answered: int, peak: float, cpu: float, **extra) -> None:
    rows.append({"phase": name, "requests_per_s": round(n / seconds, 1), "seconds": round(seconds, 2),
                 "answered": answered, "peak_rss_mib": round(peak, 1), "cpu_ms_per_request": round(1000 * cpu / n, 3),
                 **extra})
    print(f"{name:>28}: {n / seconds:8.1f} requests/s  ({seconds:.1f} s, {answered}/{n} answered, "
          f"{1000 * cpu / n:.2f} ms CPU a request, peak RSS {peak:.0f} MiB) {extra or ''}", flush=True)


def run(args) -> dict:
    from datasets import Dataset

    from benchmarks.bench_servers import bare_run  # the same bare loop as the server benchmark
    from hf_crossaug.config.generate import GenerationConfig
    from hf_crossaug.utils.fingerprint import shard_seed

    def prompts_of(n: int) -> Dataset:
        return Dataset.from_dict({"prompt": [f"Write sentence number {i} about the sea.\nSentence:"
                                             for i in range(n)]})

    def bare(prompts, cfg, rows, name):
        seeds = [shard_seed(cfg.seed, i) for i in range(len(prompts))]  # the bodies the generate stage sends
        with PeakRSS() as mem:
            cpu = cpu_s()
            texts, _, _, secs = bare_run(prompts["prompt"], seeds, cfg, max_retries=8)
            cpu = cpu_s() - cpu
        if rows is not None:
            phase(rows, name, len(prompts), secs, sum(t is not None for t in texts), mem.peak, cpu)
        return len(prompts) / secs

    def endpoint(prompts, cfg, rows, name, work):
        with PeakRSS() as mem:
            cpu = cpu_s()
            secs, answered, cost = endpoint_run(prompts, cfg, work)
            cpu = cpu_s() - cpu
        if rows is not None:
            phase(rows, name, len(prompts), secs, answered, mem.peak, cpu, retries=cost.get("retries", {}),
                  failures=cost.get("failures", {}), in_flight=cost.get("concurrency"),
                  cache_mib=round(cache_mib(work), 1), cache_hits=cost.get("cache_hits"))
        return len(prompts) / secs

    prompts, rows, summary = prompts_of(args.n), [], []
    for label, rates in (("clean", {}), ("faults", FAULTS)):
        proc, url = start_standin(rates)
        try:
            cfg = GenerationConfig(backend="endpoint", base_url=url, model="standin/echo-1", temperature=0.0,
                                   max_new_tokens=8, shard_size=args.shard_size, max_in_flight=args.in_flight,
                                   request_timeout=args.request_timeout, request_deadline=120.0, max_retries=8,
                                   max_failed_fraction=0.01, seed=0)
            if args.warmup:  # both paths once, unreported: the stand-in and this process settle first
                warm = prompts_of(args.warmup)
                with tempfile.TemporaryDirectory() as tmp:
                    bare(warm, cfg, None, "")
                    endpoint(warm, cfg, None, "", pathlib.Path(tmp))
            ratios, rates_of = [], {"bare": [], "endpoint": []}
            for r in range(1, args.rounds + 1):
                with tempfile.TemporaryDirectory() as tmp:
                    work, got = pathlib.Path(tmp), {}
                    for path in (("bare", "endpoint") if r % 2 else ("endpoint", "bare")):
                        name = f"{'bare AsyncOpenAI' if path == 'bare' else 'endpoint path'}, {label}, round {r}"
                        got[path] = (bare(prompts, cfg, rows, name) if path == "bare"
                                     else endpoint(prompts, cfg, rows, name, work))
                    ratios.append(got["endpoint"] / got["bare"])
                    for path, rate in got.items():
                        rates_of[path].append(rate)
                    if label == "clean" and r == 1:  # a resume that finds every answer in the request cache
                        for folder in work.glob("scale-*"):
                            shutil.rmtree(folder)
                        endpoint(prompts, cfg, rows, "resume, all cached", work)
            summary.append({"condition": label, "rounds": args.rounds,
                            "bare_requests_per_s": round(statistics.median(rates_of["bare"]), 1),
                            "endpoint_requests_per_s": round(statistics.median(rates_of["endpoint"]), 1),
                            "ratio_median": round(statistics.median(ratios), 3),
                            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]})
            print(f"{label}: endpoint / bare, median of {args.rounds} rounds: {summary[-1]['ratio_median']} "
                  f"(range {summary[-1]['ratio_range']})", flush=True)
        finally:
            proc.stdin.close()
            proc.wait(30)
    return {"n": args.n, "in_flight": args.in_flight, "shard_size": args.shard_size, "rounds": args.rounds,
            "warmup": args.warmup, "request_timeout": args.request_timeout, "faults": FAULTS, "summary": summary,
            "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"# Endpoint path at scale: {result['n']} prompts, {result['in_flight']} in flight, "
             f"shards of {result['shard_size']}",
             "", f"Faults: {json.dumps(result['faults'])}; request timeout {result['request_timeout']} s; "
             f"{result['rounds']} rounds per condition, alternating which path goes first, after a warm-up of "
             f"{result['warmup']} requests through each.", "",
             "| condition | bare requests/s (median) | endpoint requests/s (median) | endpoint / bare (median of "
             "rounds) | range over rounds |", "|---|---:|---:|---:|---|"]
    lines += [f"| {s['condition']} | {s['bare_requests_per_s']} | {s['endpoint_requests_per_s']} | "
              f"{s['ratio_median']} | {s['ratio_range'][0]}-{s['ratio_range'][1]} |" for s in result["summary"]]
    lines += ["", "| run | requests/s | seconds | answered | CPU ms / request | peak RSS (MiB) | cache (MiB) | notes |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        notes = {k: r[k] for k in ("retries", "failures", "in_flight", "cache_hits") if r.get(k)}
        lines.append(f"| {r['phase']} | {r['requests_per_s']} | {r['seconds']} | {r['answered']} | "
                     f"{r['cpu_ms_per_request']} | {r['peak_rss_mib']} | {r.get('cache_mib', '')} | "
                     f"{json.dumps(notes) if notes else ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="prompts (default 100000)")
    parser.add_argument("--in-flight", type=int, default=64, help="max_in_flight, and the bare loop's semaphore")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both paths per condition (default 2)")
    parser.add_argument("--warmup", type=int, default=2000, help="requests through each path first, unreported")
    parser.add_argument("--request-timeout", type=float, default=2.0, help="cuts the hung requests (both paths)")
    parser.add_argument("--out", default=None, help="output path without suffix")
    args = parser.parse_args()
    result = run(args)
    out = pathlib.Path(args.out or HERE / "results" / f"scale-n{args.n}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()

"""The scale benchmark's protocol at a tiny size: a warm-up, alternating rounds of both paths per condition, a
ratio that is the median of each round's endpoint / bare, and the resume row (the real size, 100K requests, runs
on an idle machine)."""

from __future__ import annotations

import argparse
import statistics

from benchmarks import bench_scale


def test_rounds_alternate_which_path_goes_first_and_the_ratio_is_the_median_of_rounds():
    args = argparse.Namespace(n=60, in_flight=8, shard_size=25, request_timeout=2.0, rounds=3, warmup=10)
    result = bench_scale.run(args)
    for condition in ("clean", "faults"):
        runs = [r for r in result["rows"] if f", {condition}, round " in r["phase"]]
        assert [r["phase"].split(",")[0] for r in runs] == ["bare AsyncOpenAI", "endpoint path", "endpoint path",
                                                            "bare AsyncOpenAI", "bare AsyncOpenAI", "endpoint path"]
        assert all(r["answered"] == 60 and r["cpu_ms_per_request"] > 0 for r in runs)
        rate = {(r["phase"].split(",")[0], r["phase"][-1]): r["requests_per_s"] for r in runs}
        ratios = [rate["endpoint path", str(i)] / rate["bare AsyncOpenAI", str(i)] for i in (1, 2, 3)]
        summary = next(s for s in result["summary"] if s["condition"] == condition)
        assert abs(summary["ratio_median"] - statistics.median(ratios)) < 0.01
        assert summary["ratio_range"][0] <= summary["ratio_median"] <= summary["ratio_range"][1]
    resume = next(r for r in result["rows"] if r["phase"] == "resume, all cached")
    assert resume["cache_hits"] == 60  # every answer from the request cache, none sent
    faults = [r for r in result["rows"] if r["phase"].startswith("endpoint path, faults")]
    assert all(r["failures"] == {} for r in faults)  # retried through the faults, none lost
    md = bench_scale.markdown(result)
    assert "| clean |" in md and "| faults |" in md and "alternating which path goes first" in md

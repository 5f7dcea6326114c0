"""The stage-cost benchmark's core at a tiny size: a row per stage after generation, each with positive seconds,
and the JSON and Markdown it writes (the real sizes, 10K and 100K rows, run on an idle machine)."""

from __future__ import annotations

import json

from benchmarks import bench_stage_cost

STAGES = {"clean (default config)", "clean + near_duplicate minhash 0.9", "clean + near_duplicate embedding 0.95",
          "ids", "teacher: one labelling pass, float32", "teacher: one labelling pass, bfloat16",
          "teacher: labelled() as built, 3 passes fp32", "select: sentence embedding (div-k, quality)", "select: raw",
          "select: rand-k", "select: top-k", "select: div-k", "select: amb-k", "select: easy-k",
          "select: quality scores (card)", "export: parquet configs + dataset_info"}


def test_every_stage_after_generation_gets_a_row_with_its_cost(tiny_encoder_dir, tmp_path):
    result = bench_stage_cost.run([150, 200], str(tiny_encoder_dir), tmp_path / "cost", log=lambda m: None)
    for n in (150, 200):
        rows = {r["stage"]: r for r in result["rows"] if r["n"] == n}
        assert set(rows) == STAGES
        assert all(r["seconds"] > 0 and r["s_per_1k"] > 0 and r["peak_rss_mib"] > 0 for r in rows.values())
        one = rows["teacher: one labelling pass, float32"]
        assert one["tokenise_s"] > 0 and one["forward_s"] > 0 and one["tokenise_s"] + one["forward_s"] < one["seconds"]
        assert rows["select: div-k"]["kmeans_s"] > 0
        assert rows["clean (default config)"]["kept"] > 0.9 * n  # the synthetic rows are not exact duplicates
    assert {r["stage"] for r in result["ratios"]} == STAGES
    written = json.loads((tmp_path / "cost-n150-200.json").read_text())
    assert written["rows"] == result["rows"] and written["cpu"]["model"]
    md = (tmp_path / "cost-n150-200.md").read_text()
    assert "| 200 | select: div-k |" in md and "avx512_bf16" in md


def test_model_passes_can_run_on_fewer_rows_than_the_size(tiny_encoder_dir, tmp_path):
    """--model-rows: the passes run on that many rows (cost per row over them), the output is repeated for every
    row, and the stages after them still see all rows; their growth is left out of the ratio table."""
    result = bench_stage_cost.run([150, 300], str(tiny_encoder_dir), tmp_path / "cost", log=lambda m: None,
                                  model_rows=150)
    rows = {r["stage"]: r for r in result["rows"] if r["n"] == 300}
    capped = {s for s, r in rows.items() if "model_rows" in r}
    assert capped == {"clean + near_duplicate embedding 0.95", "teacher: one labelling pass, float32",
                      "teacher: one labelling pass, bfloat16", "teacher: labelled() as built, 3 passes fp32",
                      "select: sentence embedding (div-k, quality)"}
    assert all(rows[s]["model_rows"] == 150 for s in capped)
    assert rows["select: raw"]["seconds"] > 0 and "model_rows" not in rows["select: div-k"]
    assert not capped & {r["stage"] for r in result["ratios"]} and {r["stage"] for r in result["ratios"]}

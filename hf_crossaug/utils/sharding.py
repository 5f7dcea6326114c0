"""The sharded, resumable runner behind every slow stage (generation, translation)."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
from datasets import Dataset, concatenate_datasets

from .logging import progress


def shard_paths(folder: Path, n_rows: int, shard_size: int) -> list[Path]:
    """Where each shard of ``n_rows`` rows in shards of ``shard_size`` is written."""
    return [folder / f"shard-{i:05d}.parquet" for i in range(max(1, -(-n_rows // shard_size)))]


def missing_shards(folder: Path, n_rows: int, shard_size: int) -> list[int]:
    """Indices of the shards not yet on disk (what :func:`run_sharded` will run)."""
    return [i for i, p in enumerate(shard_paths(folder, n_rows, shard_size)) if not p.exists()]


def run_sharded(rows: Dataset, folder: Path, shard_size: int, make_runner, desc: str, unit: str = "row") -> Dataset:
    """Process ``rows`` in shards of ``shard_size``, each written atomically to ``folder`` as it finishes.

    Shared by every slow stage (generation, translation). Existing shards are reused, so a rerun after
    a crash continues where it stopped. ``make_runner()`` is called only when a shard is missing (so a
    finished run never loads a model) and returns ``run(shard, index, bar) -> Dataset``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = shard_paths(folder, len(rows), shard_size)
    n_shards, todo = len(paths), missing_shards(folder, len(rows), shard_size)
    done_rows = sum(min(shard_size, len(rows) - i * shard_size) for i in range(n_shards) if i not in todo)
    if todo:
        run = make_runner()
        bar = progress(len(rows), desc, unit=unit, initial=done_rows)
        bars_were_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # the per-shard writes would each draw a bar under this one
        try:
            for i in todo:
                shard = rows.select(range(i * shard_size, min((i + 1) * shard_size, len(rows))))
                run(shard, i, bar).to_parquet(str(paths[i]) + ".tmp")
                os.replace(str(paths[i]) + ".tmp", paths[i])  # atomic: a kill never leaves half a shard
        finally:
            if bars_were_on:
                datasets.enable_progress_bars()
            bar.close()
    shards = [Dataset.from_parquet(str(p), keep_in_memory=True) for p in paths]
    return concatenate_datasets(shards) if len(shards) > 1 else shards[0]

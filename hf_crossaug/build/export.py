"""The build: run a recipe's pipeline once, select every configured subset, and write a Hub-layout folder.

The folder is the exact layout of a Hub dataset repo -- ``README.md`` (card with YAML ``configs:``),
``data/<config>/train-00000-of-00001.parquet`` and ``crossaug_build.json`` -- so ``load_dataset(folder,
"div-k")`` and ``load_dataset("crossaug/xnli-sw-synth", "div-k")`` behave alike without remote code. Each
config is written once, straight from its `Dataset` (as distilabel's ``Distiset`` does): no builder cache,
one copy of the data on disk. The expensive stages are cached in the work folder by the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config.recipe import Recipe
from ..config.select import RAW
from ..utils.logging import log_or_logger
from ..utils.files import BUILD_FILE, WorkLock, check_replaceable, staged_output
from ..utils.paths import portable
from ..config.tasks import MultipleChoiceSpec
from .card import config_quality, dataset_card
from .configs import dataset_infos, select_configs, selection_context
from .pipeline import preflight, run_pipeline


def write_configs(tables: dict, folder: Path) -> dict[str, int]:
    """Each config's rows as ``data/<config>/train-00000-of-00001.parquet`` under ``folder``; bytes per config."""
    sizes = {}
    for name, ds in tables.items():
        (folder / "data" / name).mkdir(parents=True)
        path = folder / "data" / name / "train-00000-of-00001.parquet"
        ds.to_parquet(str(path))  # cast to the declared features by select_configs
        sizes[name] = path.stat().st_size
    return sizes


def build_dataset(recipe: Recipe, output_dir: str | Path, work_dir: str | Path | None = None,
                  repo_id: str | None = None, log=None) -> dict:
    """Run ``recipe`` and write its Hub-layout folder to ``output_dir``; returns the summary.

    ``output_dir`` is replaced only if an earlier build wrote it; the work folder is locked for the
    whole build, so two builds never write the same cache files.
    """
    log = log_or_logger(log, "build")
    out = Path(output_dir)
    work = Path(work_dir) if work_dir else out.parent / f".{out.name}-work"
    check_replaceable(out)  # before hours of work, not after
    recipe.validate()
    with WorkLock(work):
        preflight(recipe)
        result = run_pipeline(recipe, work, log)
        raw = result.raw
        mc = isinstance(recipe.task_spec, MultipleChoiceSpec)  # no teacher, no encoder to embed with
        context = None if mc else selection_context(recipe)
        log(f"selecting {len(recipe.selection.strategies)} configs ({', '.join(recipe.selection.strategies)}) "
            f"from {len(raw)} labelled rows, k={recipe.selection.k} per class")
        tables, reports = select_configs(recipe, raw, context=context)
        quality = None
        if not mc:
            log(f"scoring diversity and teacher/prompt label agreement of {len(tables)} configs")
            quality = config_quality(tables, context.get_embeddings(raw), recipe.task_spec.num_labels)
        log(f"writing {len(tables)} configs and the dataset card to {out}")
        with staged_output(out) as tmp:  # the finished folder appears at once, never half-written
            sizes = write_configs(tables, tmp)
            repo_id = repo_id or f"crossaug/{recipe.name}"
            rows = {n: len(d) for n, d in tables.items()}
            dataset_card(recipe, result, rows, reports, list(tables[RAW].column_names), repo_id, quality,
                         dataset_infos(recipe, tables, sizes)).save(tmp / "README.md")
            # repo_id: where the card says the dataset lives (students name it in their cards; push updates it);
            # local paths made portable as in the card: the file is uploaded with the dataset
            build = portable({**result.stats, "repo_id": repo_id, "quality": quality})
            (tmp / BUILD_FILE).write_text(json.dumps(build, indent=2, default=str))
    return {"output": str(out), "rows": rows, "stats": result.stats,
            "reports": {n: r.selected for n, r in reports.items()}}

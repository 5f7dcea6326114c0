"""A `datasets` builder for a recipe, for the standard ``download_and_prepare`` / ``as_dataset`` workflow::

    b = CrossAugBuilder(recipe="my-task.yaml", config_name="div-k")
    b.download_and_prepare()
    ds = b.as_dataset(split="train")

Its configs are the Hub-layout folder's (``raw`` plus one per selection strategy) with the same features
(`hf_crossaug.build.configs`): ``_info`` reads them from the recipe and loads no model, so inspecting a builder
is free. Preparing runs the cached pipeline in a work folder shared by every config of the recipe (the
expensive part runs once for all of them), then selects that one config's rows as ``crossaug build`` does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import datasets
from datasets.builder import Key
from datasets.table import table_cast

from ..citations import bibtex
from ..config.recipe import Recipe, load_recipe
from ..utils.files import WorkLock
from ..utils.fingerprint import fingerprint
from ..utils.logging import log_or_logger
from .configs import config_features, config_names, default_config, select_configs
from .pipeline import preflight, recipe_fingerprint, run_pipeline

OVERRIDES = ("per_class", "k", "seed", "source", "limit")  # `Recipe.with_overrides`, as on the command line


@dataclasses.dataclass
class CrossAugConfig(datasets.BuilderConfig):
    """One config of a recipe's dataset (``raw`` or a strategy); ``recipe`` is the recipe with its overrides."""

    recipe: Recipe | None = None


class CrossAugBuilder(datasets.ArrowBasedBuilder):
    """The synthetic dataset of ``recipe`` (a YAML path, a packaged recipe name or a `Recipe`), one config per
    selection config. ``work_dir`` holds the pipeline's cache (default: ``<cache_dir>/<recipe name>/crossaug-work``);
    scale overrides (``per_class``, ``k``, ``seed``, ``source``, ``limit``) are config keyword arguments."""

    BUILDER_CONFIG_CLASS = CrossAugConfig
    VERSION = datasets.Version("1.0.0")

    def __init__(self, recipe: Recipe | str | Path, config_name: str | None = None,
                 work_dir: str | Path | None = None, log=None, **kwargs):
        self.base_recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        self.log = log_or_logger(log, "build")
        kwargs.setdefault("dataset_name", self.base_recipe.name)
        super().__init__(config_name=config_name, **kwargs)
        self.work_dir = Path(work_dir) if work_dir else Path(self._cache_dir_root) / self.dataset_name / "crossaug-work"

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        """The config of ``config_name`` for this builder's recipe (configs depend on the recipe, so they are not a
        class attribute); its id names the recipe's fingerprint, so another recipe or scale gets another cache."""
        overrides = {k: config_kwargs.pop(k) for k in OVERRIDES if k in config_kwargs}
        if config_kwargs:
            raise TypeError(f"unknown argument(s) {', '.join(sorted(config_kwargs))}; "
                            f"scale overrides: {', '.join(OVERRIDES)}")
        recipe = self.base_recipe.with_overrides(**overrides)  # validates a `Recipe` object, too
        name = config_name or default_config(config_names(recipe))
        config_features(recipe, name)  # an unknown name: one line naming the known configs
        config = CrossAugConfig(name=name, version=self.VERSION, recipe=recipe,
                                description=recipe.description or None)
        key = fingerprint(recipe_fingerprint(recipe), dataclasses.asdict(recipe.selection))
        return config, config_id or f"{name}-{key}"

    def _info(self) -> datasets.DatasetInfo:
        recipe = self.config.recipe
        return datasets.DatasetInfo(description=recipe.description, features=config_features(recipe, self.config.name),
                                    license=recipe.license, citation=bibtex())

    def _split_generators(self, dl_manager):
        recipe, name = self.config.recipe, self.config.name
        with WorkLock(self.work_dir):
            preflight(recipe)
            raw = run_pipeline(recipe, self.work_dir, self.log).raw
            ds = select_configs(recipe, raw, [name])[0][name]
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"table": ds.with_format("arrow")[:]})]

    def _generate_tables(self, table):
        yield Key(0, 0), table_cast(table, self.info.features.arrow_schema)

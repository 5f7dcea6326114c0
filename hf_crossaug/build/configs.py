"""The configs of a build (``raw`` plus one per selection strategy) and the schema of each, from the recipe alone.

One declaration of the schema serves the three places a user meets it: the `datasets` builder's ``_info``
(which must not load a model), the parquet files of the Hub-layout folder and the card's ``dataset_info``;
so ``CrossAugBuilder(...).as_dataset()``, ``load_dataset(folder, config)`` and the Hub viewer agree.
"""

from __future__ import annotations

from datasets import Dataset, DatasetInfo, Features, SplitDict, SplitInfo, Value
from datasets.info import DatasetInfosDict

from ..config.recipe import TRANSLATING, Recipe
from ..config.select import RAW
from ..config.tasks import MultipleChoiceSpec, generated_features, teacher_features
from ..models.embed import SentenceEmbedder
from ..stages.select import STRATEGIES, SelectionContext, SelectionReport, select_with_report


def config_names(recipe: Recipe) -> list[str]:
    """``raw`` and each selection strategy of the recipe (multiple choice: ``raw`` only, it has no teacher)."""
    return [RAW] if isinstance(recipe.task_spec, MultipleChoiceSpec) else [RAW, *recipe.selection.strategies]


def default_config(names: list[str]) -> str:
    """The config ``load_dataset(folder)`` and a builder without ``config_name`` give: div-k when built."""
    return "div-k" if "div-k" in names else names[0]


def raw_features(recipe: Recipe) -> Features:
    """The schema of ``raw``, in the pipeline's column order (`hf_crossaug.build.pipeline.run_pipeline`)."""
    task = recipe.task_spec
    if isinstance(task, MultipleChoiceSpec):  # generate_items, then balance_answers adds choices_swapped
        return Features({"id": Value("string"), **task.source_features(), "choices_swapped": Value("bool")})
    feats = generated_features(task)
    if recipe.route in TRANSLATING:  # translated in place; the originals move to ``<col>_<src>``
        src = recipe.translate.src
        feats = Features({(f"{c}_{src}" if c in task.text_columns else c): f for c, f in feats.items()})
        feats.update({c: Value("string") for c in task.text_columns})
        if recipe.code_switch:
            feats["pair_languages"] = Value("string")
    return Features({**feats, **teacher_features(task)})


def config_features(recipe: Recipe, config: str) -> Features:
    """The schema of one config: ``raw``'s columns, plus for a strategy its score columns and ``selected_by`` /
    ``selection_rank``. Reads the recipe only, so a builder's ``_info`` loads no model."""
    names = config_names(recipe)
    if config not in names:
        raise ValueError(f"unknown config {config!r} of recipe {recipe.name!r}; known configs: {', '.join(names)}")
    feats = raw_features(recipe)
    if config != RAW:
        feats.update(STRATEGIES[config].added_features())
    return feats


def cast_to_config(ds: Dataset, recipe: Recipe, config: str) -> Dataset:
    """``ds`` cast to `config_features` (column order included); a column the declaration lacks or has in excess
    is a one-line error, so the declared schema cannot drift from what the pipeline makes."""
    feats = config_features(recipe, config)
    if set(ds.column_names) != set(feats):
        missing, extra = sorted(set(feats) - set(ds.column_names)), sorted(set(ds.column_names) - set(feats))
        raise ValueError(f"config {config!r} does not match its declared features: missing {missing}, "
                         f"undeclared {extra}")
    return ds if ds.features == feats and ds.column_names == list(feats) else ds.cast(feats)


def selection_context(recipe: Recipe) -> SelectionContext:
    """One sentence embedder for every strategy that needs one (div-k) and for the quality scores, so the rows are
    embedded once; the encoder loads on first use."""
    return SelectionContext(recipe.selection, None, SentenceEmbedder(recipe.teacher.model, recipe.teacher.revision),
                            tuple(recipe.task_spec.text_columns))


def select_configs(recipe: Recipe, raw: Dataset, names: list[str] | None = None,
                   context: SelectionContext | None = None) -> tuple[dict[str, Dataset], dict[str, SelectionReport]]:
    """The rows of each config in ``names`` (default: all of `config_names`), selected from ``raw`` and cast to
    their declared features, and each strategy's report. ``context`` is shared between the strategies."""
    tables, reports = {}, {}
    for name in config_names(recipe) if names is None else names:
        if name == RAW:
            tables[name] = cast_to_config(raw, recipe, name)
            continue
        config_features(recipe, name)  # an unknown name fails here, before any embedding
        context = context or selection_context(recipe)
        ds, reports[name] = select_with_report(raw, name, recipe.selection, context=context)
        tables[name] = cast_to_config(ds.flatten_indices(), recipe, name)
    return tables, reports


def dataset_infos(recipe: Recipe, tables: dict[str, Dataset], download_sizes: dict[str, int]) -> DatasetInfosDict:
    """Per config the ``dataset_info`` the Hub shows in a card's YAML: features, the train split's rows and
    bytes, and the parquet size (``download_sizes``)."""
    infos = DatasetInfosDict()
    for name, ds in tables.items():
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=ds.data.nbytes, num_examples=len(ds)))
        infos[name] = DatasetInfo(features=config_features(recipe, name), splits=splits,
                                  download_size=download_sizes[name], dataset_size=ds.data.nbytes, config_name=name)
    return infos

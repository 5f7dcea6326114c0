"""The `datasets` builder of a recipe: its configs build from the cached pipeline, its Features come from the recipe
without loading a model, and the builder, the Hub-layout folder and its card agree on every config's schema."""

from pathlib import Path

import pytest
import yaml
from datasets import ClassLabel, Features, Value, load_dataset
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard

from hf_crossaug.build.builder import CrossAugBuilder
from hf_crossaug.build.configs import config_features
from hf_crossaug.build.export import build_dataset
from test_build_tiny import STRATEGIES, snapshot, tiny_recipe


def prepared(recipe, config, tmp, **kwargs):
    b = CrossAugBuilder(recipe=recipe, config_name=config, cache_dir=str(tmp / "hf-cache"), log=lambda m: None,
                        **kwargs)
    b.download_and_prepare()
    return b, b.as_dataset(split="train")


@pytest.fixture(scope="module")
def built(tiny_llm_dir, tiny_encoder_dir, tmp_path_factory):
    """A sentiment recipe as a YAML file, its div-k config prepared by the builder, then the folder exported
    by ``build_dataset`` from the builder's work folder."""
    tmp = tmp_path_factory.mktemp("builder")
    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir)
    path = tmp / "tiny-sentiment.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    builder, ds = prepared(str(path), "div-k", tmp)
    work = builder.work_dir
    before = snapshot(work)
    build_dataset(recipe, tmp / "out", work, log=lambda m: None)
    assert snapshot(work) == before and before  # the export reused the builder's generations and teacher
    return recipe, tmp, builder, ds


def test_builder_prepares_the_selected_rows(built):
    recipe, tmp, builder, ds = built
    assert builder.work_dir == tmp / "hf-cache" / recipe.name / "crossaug-work"  # under the builder's cache
    k = recipe.selection.k
    counts = [list(ds["prompt_label"]).count(c) for c in range(recipe.task_spec.num_labels)]
    assert 0 < len(ds) <= k * recipe.task_spec.num_labels and max(counts) <= k
    assert set(ds["selected_by"]) == {"div-k"} and ds.features == builder.info.features
    exported = load_dataset(str(tmp / "out"), "div-k", split="train", cache_dir=str(tmp / "load-cache"))
    assert ds.to_list() == exported.to_list()  # the same rows, in the same order, as `crossaug build`


def test_builder_folder_and_card_agree_on_every_config(built):
    recipe, tmp, _, _ = built
    card = DatasetCard.load(tmp / "out" / "README.md")
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert [i["config_name"] for i in card.data["dataset_info"]] == sorted(["raw", *STRATEGIES])  # as `datasets` writes it
    for name in ["raw", *STRATEGIES]:
        builder, ds = prepared(recipe, name, tmp)  # a `Recipe` object works as well as a path
        exported = load_dataset(str(tmp / "out"), name, split="train", cache_dir=str(tmp / "load-cache"))
        assert ds.features == exported.features == infos[name].features == config_features(recipe, name), name
        assert list(ds.features) == exported.column_names, name  # the column order, too
        assert infos[name].splits["train"].num_examples == len(exported) == len(ds), name
        assert ds.to_list() == exported.to_list(), name
    assert isinstance(infos["top-k"].features["teacher_label"], ClassLabel)
    assert infos["top-k"].features["teacher_label"].names == list(recipe.task_spec.labels)


def test_scale_overrides_are_config_kwargs(built):
    recipe, tmp, _, _ = built
    b, ds = prepared(recipe, "rand-k", tmp, k=1)
    assert b.config.recipe.selection.k == 1 and recipe.selection.k == 2
    assert b.cache_dir != CrossAugBuilder(recipe, "rand-k", cache_dir=str(tmp / "hf-cache")).cache_dir  # own cache
    raw = load_dataset(str(tmp / "out"), "raw", split="train", cache_dir=str(tmp / "load-cache"))
    available = [list(raw["prompt_label"]).count(c) for c in range(3)]
    assert [list(ds["prompt_label"]).count(c) for c in range(3)] == [min(1, a) for a in available]


class ModelLoaded(AssertionError):
    pass


@pytest.fixture
def no_models(monkeypatch):
    """Every way the package loads a model or runs the pipeline raises ``ModelLoaded``."""
    import transformers

    import hf_crossaug.build.builder as builder_module
    from hf_crossaug.models.embed import SentenceEmbedder

    def boom(*args, **kwargs):
        raise ModelLoaded("a model was loaded")

    for owner in (transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase):  # where Auto* classes end
        monkeypatch.setattr(owner, "from_pretrained", classmethod(boom))
    monkeypatch.setattr(SentenceEmbedder, "__init__", boom)
    monkeypatch.setattr(builder_module, "run_pipeline", boom)
    monkeypatch.setattr(builder_module, "preflight", boom)
    return boom


def test_info_declares_features_without_loading_a_model(no_models, tmp_path, tiny_encoder_dir):
    from transformers import AutoModel, AutoTokenizer

    for auto in (AutoModel, AutoTokenizer):  # the guard is live
        with pytest.raises(ModelLoaded):
            auto.from_pretrained(str(tiny_encoder_dir))
    nli = CrossAugBuilder(recipe="xnli-sw-synth-small", config_name="div-k", cache_dir=str(tmp_path))
    labels = ClassLabel(names=["entailment", "neutral", "contradiction"])
    assert nli.info.features["prompt_label"] == nli.info.features["teacher_label"] == labels
    assert list(nli.info.features)[:5] == ["id", "premise", "hypothesis", "prompt_label", "domain"]
    assert list(nli.info.features)[-4:] == ["div_cluster", "div_score", "selected_by", "selection_rank"]
    translated = CrossAugBuilder(recipe="xnli-sw-synth-translate-train", config_name="raw", cache_dir=str(tmp_path))
    assert {"premise_en", "hypothesis_en", "premise", "hypothesis"} <= set(translated.info.features)
    copa = CrossAugBuilder(recipe="xcopa-sw-synth", cache_dir=str(tmp_path))  # its one config: raw
    assert copa.config.name == "raw" and copa.info.features == Features({
        "id": Value("string"), "premise": Value("string"), "question": Value("string"), "choice1": Value("string"),
        "choice2": Value("string"), "label": ClassLabel(names=["choice1", "choice2"]), "choices_swapped": Value("bool")})
    # a task that is in no package, defined only in a test recipe: its own labels and columns, no model loaded
    topic = CrossAugBuilder(recipe=str(Path(__file__).parent / "data" / "topic-sw-synth.yaml"), config_name="div-k",
                            cache_dir=str(tmp_path))
    names = ["world", "sports", "business", "science"]
    assert topic.info.features["prompt_label"] == topic.info.features["teacher_label"] == ClassLabel(names=names)
    assert list(topic.info.features)[:4] == ["id", "text", "prompt_label", "domain"]
    with pytest.raises(ModelLoaded):  # preparing does reach the pipeline
        nli.download_and_prepare()


def test_unknown_config_is_one_line_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError) as info:
        CrossAugBuilder(recipe="xnli-sw-synth-small", config_name="best-k", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and "'best-k'" in msg
    assert msg.endswith("known configs: raw, rand-k, top-k, div-k, amb-k, easy-k")
    with pytest.raises(TypeError, match="unknown argument.*per_clas.*scale overrides: per_class"):
        CrossAugBuilder(recipe="xnli-sw-synth-small", per_clas=3, cache_dir=str(tmp_path))

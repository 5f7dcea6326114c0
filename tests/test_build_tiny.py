"""End to end on tiny local models passed as folder paths: build_dataset -> a Hub-layout folder whose configs
load with ``datasets.load_dataset`` and whose card records the full provenance; reruns reuse the cache."""

import re
from pathlib import Path

import pytest
import yaml
from datasets import ClassLabel, load_dataset
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

import hf_crossaug
from hf_crossaug.build.export import build_dataset
from hf_crossaug.build.pipeline import concrete_dtypes
from hf_crossaug.stages.clean import CleanConfig
from hf_crossaug.stages.generate import GenerationConfig
from hf_crossaug.models.resolve import native_dtype, resolve_model
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.stages.select import SelectionConfig
from hf_crossaug.stages.teacher import TeacherConfig
from hf_crossaug.utils.paths import portable

STRATEGIES = ["rand-k", "top-k", "div-k", "amb-k", "easy-k"]


def tiny_recipe(task, llm, encoder, **clean) -> Recipe:
    return Recipe(
        name=f"tiny-{task}", task=task, language="sw", per_class=3,
        # gibberish from a random model rarely holds a newline, so rows run to max_new_tokens; 1 word suffices
        generation=GenerationConfig(model=str(llm), n_shots=2, max_new_tokens=10, batch_size=6, shard_size=6,
                                    seed=3),
        clean=CleanConfig(**{"min_words": 1, "max_words": 200, **clean}),
        teacher=TeacherConfig(model=str(encoder), epochs=2, batch_size=16, seed=5),
        selection=SelectionConfig(strategies=STRATEGIES, k=2, n_clusters=2, seed=11),
    ).validate()


def snapshot(work: Path) -> dict:
    """Shard files and teacher folders of a work dir, with their identity."""
    items = list(work.glob("*/shard-*.parquet")) + list(work.glob("teacher-*"))
    return {str(p.relative_to(work)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in items}


def load(out: Path, config: str, cache: Path):
    return load_dataset(str(out), config, split="train", cache_dir=str(cache))


@pytest.fixture(scope="module", params=["sentiment", "nli"])
def built(request, tiny_llm_dir, tiny_encoder_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"build-{request.param}")
    recipe = tiny_recipe(request.param, tiny_llm_dir, tiny_encoder_dir)
    summary = build_dataset(recipe, tmp / "out", tmp / "work", log=lambda m: None)
    return recipe, tmp, summary


def test_configs_load_with_load_dataset(built):
    recipe, tmp, summary = built
    out, task = tmp / "out", recipe.task_spec
    raw = load(out, "raw", tmp / "hf-cache")
    kept = summary["stats"]["counts"]["generations"]["kept"]
    assert 0 < len(raw) == kept == summary["rows"]["raw"]
    assert isinstance(raw.features["prompt_label"], ClassLabel)
    assert raw.features["prompt_label"].names == list(task.labels)
    assert {*task.text_columns, "id", "teacher_probs", "teacher_label", "epoch_probs"} <= set(raw.column_names)
    assert all(len(e) == 2 for e in raw["epoch_probs"])  # one probability vector per teacher epoch
    available = [list(raw["prompt_label"]).count(c) for c in range(task.num_labels)]

    for name in STRATEGIES:
        ds = load(out, name, tmp / "hf-cache")
        assert isinstance(ds.features["prompt_label"], ClassLabel), name
        assert ds.features["prompt_label"].names == list(task.labels)
        counts = [list(ds["prompt_label"]).count(c) for c in range(task.num_labels)]
        assert counts == [min(2, a) for a in available], name  # k per class, fewer only when short
        assert set(ds["selected_by"]) == {name}
        assert set(ds["id"]) <= set(raw["id"])
        assert summary["rows"][name] == len(ds)

    default = load_dataset(str(out), split="train", cache_dir=str(tmp / "hf-cache"))  # the card's default
    assert set(default["selected_by"]) == {"div-k"}


def test_card_records_provenance(built, tiny_llm_dir, tiny_encoder_dir):
    recipe, tmp, summary = built
    task, stats = recipe.task_spec, summary["stats"]
    card = DatasetCard.load(tmp / "out" / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert list(configs) == ["raw", *STRATEGIES]
    for name, c in configs.items():
        assert c["data_files"] == [{"split": "train", "path": f"data/{name}/train-*.parquet"}]
    assert card.data.language == ["en", "sw"] and card.data.license == "apache-2.0"
    text = card.text

    # generator: the path given, the folder's revision and the model's size (2 layers, hidden 32)
    gen_ref = resolve_model(str(tiny_llm_dir), "unused")
    assert stats["generator"] == {"name": str(tiny_llm_dir), "revision": gen_ref.revision,
                                  "parameters": stats["generator"]["parameters"]}
    assert 10_000 < stats["generator"]["parameters"] < 100_000
    # the card shows paths outside the working folder by name only (hf_crossaug.utils.paths)
    assert f"- model: `{tiny_llm_dir.name}`" in text and f"`{gen_ref.revision}`" in text
    # every template verbatim with its hash
    hashes = task.template_hashes()
    for key, template in {**task.templates, "example_format": task.example_format}.items():
        assert f"`{key}` (sha256 `{hashes[key]}`):\n```text\n{template}" in text, key
    # sampling, seeds
    g = recipe.generation
    assert (f"sampling: temperature={g.temperature}, top_p={g.top_p}, no_repeat_ngram_size=0, "
            f"max_new_tokens={g.max_new_tokens}, batch_size={g.batch_size}, dtype={native_dtype(g.dtype)}") in text
    assert g.dtype == "auto" and native_dtype(g.dtype) in ("float32", "bfloat16")  # the card names what ran
    assert "generation 3, teacher 5, selection 11." in text
    # teacher model + dev accuracy
    teacher = stats["teacher"]
    assert teacher["base_model"]["name"] == str(tiny_encoder_dir) and teacher["epochs"] == 2
    assert f"- base model: `{tiny_encoder_dir.name}` (revision `{teacher['base_model']['revision']}`)" in text
    assert f"dev accuracy **{teacher['dev_accuracy']:.4f}**" in text
    assert teacher["dev_size"] + teacher["train_size"] == 120
    # selection k and what each strategy kept
    assert "k = 2 per class; seed 11; clusters for div-k: 2" in text
    for name in STRATEGIES:
        assert f"- `{name}`: kept {task.labels[0]} " in text
    # counts per stage with drop reasons, in one markdown table
    stages = ["premises", "generations"] if task.two_step else ["generations"]
    assert list(stats["counts"]) == [*stages, "labelled"]
    for stage in stages:
        c = stats["counts"][stage]
        assert sum(v for k, v in c.items() if k != "prompts") == c["prompts"]
        reasons = ", ".join(f"{k}: {v}" for k, v in c.items() if k not in ("prompts", "kept"))
        assert f"| {stage} | {c['prompts']} | {c['kept']} | {reasons} |" in text
    assert stats["counts"]["generations"]["prompts"] == 9
    table = text.split("### Counts after every stage\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert all(line.startswith("|") for line in table) and table[-1].startswith("| teacher labelled | | ")
    # package version, and a recipe that reproduces the build
    assert f'pip install "hf_crossaug=={hf_crossaug.__version__}"' in text
    recipe_yaml = re.search(r"```yaml\n(.*?)\n```", text, re.S).group(1)
    # model paths outside the working folder are recorded by name (the card is read on other machines)
    # the recipe as it ran: portable paths, and ``dtype: auto`` as the dtype it resolved to here
    assert Recipe.from_dict(yaml.safe_load(recipe_yaml)) == Recipe.from_dict(concrete_dtypes(portable(recipe.to_dict())))


def test_rebuild_reuses_the_cache(built):
    recipe, tmp, summary = built
    out, work = tmp / "out", tmp / "work"
    before = snapshot(work)
    assert any("shard-" in k for k in before) and sum(k.startswith("teacher-") for k in before) == 1
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    data = {n: load(out, n, tmp / "hf-cache-a").to_list() for n in ["raw", *STRATEGIES]}

    again = build_dataset(recipe, out, work, log=lambda m: None)
    assert snapshot(work) == before  # no shard regenerated, no teacher retrained
    assert again["rows"] == summary["rows"]
    assert (out / "README.md").read_bytes() == files[Path("README.md")]
    assert {n: load(out, n, tmp / "hf-cache-b").to_list() for n in data} == data

    # another k: selection only; raw, shards and teacher are reused, and the card shows the new recipe
    k1 = recipe.with_overrides(k=1)
    other = build_dataset(k1, tmp / "out-k1", work, log=lambda m: None)
    assert snapshot(work) == before
    assert load(tmp / "out-k1", "raw", tmp / "hf-cache-c").to_list() == data["raw"]
    assert all(n <= recipe.task_spec.num_labels for name, n in other["rows"].items() if name != "raw")
    card = (tmp / "out-k1" / "README.md").read_text()
    assert "k = 1 per class" in card
    assert Recipe.from_dict(yaml.safe_load(re.search(r"```yaml\n(.*?)\n```", card, re.S).group(1))) == \
        Recipe.from_dict(concrete_dtypes(portable(k1.to_dict())))


# a pair task's first generated column is named as the task names it (a user's task has its own)
@pytest.mark.parametrize("task, stage", [("sentiment", "generation"), ("nli", "generated 'premise'")])
def test_everything_dropped_is_a_clear_error(task, stage, tiny_llm_dir, tiny_encoder_dir, tmp_path):
    recipe = tiny_recipe(task, tiny_llm_dir, tiny_encoder_dir, min_words=500, max_words=600)
    with pytest.raises(ValueError) as info:
        build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    msg = str(info.value)
    assert msg.startswith(f"no {stage} survived cleaning: ") and "too_short" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "work").glob("teacher-*"))  # failed before training a teacher


def test_cli_everything_dropped_is_one_line(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    from hf_crossaug.cli import app

    recipe = tiny_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir, min_words=500, max_words=600)
    path = tmp_path / "tiny.yaml"
    data = recipe.to_dict()
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["build", str(path), "--output", str(tmp_path / "out"),
                                      "--work-dir", str(tmp_path / "work")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no generation survived cleaning: 9 prompts, 0 kept, too_short 9" in errors[0]


"""A task is data: the packaged tasks are spec files read by the same code as a task a user writes into a
recipe, and a bad spec is one line naming the field."""

from pathlib import Path

import pytest
import yaml

from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.recipe import Recipe, load_recipe
from hf_crossaug.config.tasks import SPEC_DIR, MultipleChoiceSpec, get_task, packaged_tasks, task_from_dict
from hf_crossaug.stages.prompts import item_prompts, premise_prompts
from hf_crossaug.stages.source import load_configured

HERE = Path(__file__).resolve().parent
TOPIC_RECIPE = HERE / "data" / "topic-sw-synth.yaml"
TOPIC = {
    "name": "topic", "text_columns": ["text"],
    "labels": {"world": "world news", "sports": "sports news"},
    "templates": {"instruct.item": "Write a {label_description} headline about {domain}."},
}


def spec(**changes) -> dict:
    return {**TOPIC, **changes}


def test_packaged_tasks_are_the_spec_files_and_round_trip():
    assert sorted(packaged_tasks()) == sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))
    assert set(packaged_tasks()) == {"nli", "sentiment", "copa", "storycloze", "winograd"}
    for name, task in packaged_tasks().items():
        assert get_task(name) is task
        assert task_from_dict(task.to_dict()) == task  # what a build record or a student carries reads back
    assert isinstance(get_task("copa"), MultipleChoiceSpec) and not isinstance(get_task("nli"), MultipleChoiceSpec)
    # no task is a Python literal any more: the module names no packaged task
    source = (SPEC_DIR.parent / "config" / "tasks.py").read_text()
    assert all(f'name="{n}"' not in source for n in packaged_tasks())


@pytest.mark.parametrize("data, needles", [
    (spec(templates={"instruct.item": "Write a {label_description} {colour} headline."}),
     ["'task.templates.instruct.item'", "{colour}"]),
    (spec(labels={"world": "world news", "sports": ""}), ["'task.labels.sports'", "description"]),
    (spec(labels={"world": "world news", "sports": None}), ["'task.labels.sports'", "description"]),
    (spec(templates={"instruct.item": "Write a headline about {domain}."}),
     ["'task.templates.instruct.item'", "{label_description}"]),
    (spec(labels=[{"name": "world", "description": "a"}, {"name": "world", "description": "b"}]),
     ["'task.labels'", "'world' twice"]),
    (spec(labels={"world": "world news"}), ["'task.labels'", "at least 2"]),
    (spec(text_columns=["a", "b", "c"]), ["'task.text_columns'", "two for a pair"]),
    (spec(text_columns=["label"]), ["'task.text_columns'", "'label'"]),
    (spec(colour="red"), ["unknown field 'task.colour'"]),
    (spec(templates={"instruct.itme": "{label_description}"}), ["'task.templates.instruct.itme'", "not a template"]),
    (spec(templates={"fewshot.item": "{examples} {label_description}"}), ["'task.example_format'", "fewshot"]),
    (spec(name="../x"), ["'task.name'", "plain name"]),
    ({k: v for k, v in TOPIC.items() if k != "labels"}, ["missing required field 'task.labels'"]),
    # a pair task's second step is filled with the first column, never with the column it asks for
    (spec(text_columns=["claim", "evidence"], templates={
        "instruct.item": "{claim} {evidence} {label_description}", "instruct.claim": "{domain}"}),
     ["'task.templates.instruct.item'", "{evidence}"]),
])
def test_a_bad_spec_is_one_line_naming_the_field(tmp_path, data, needles):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "task": data}, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        Recipe.from_yaml(path)
    msg = str(info.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_a_label_given_twice_in_a_spec_file_is_an_error(tmp_path):
    (tmp_path / "topic.yaml").write_text("name: topic\ntext_columns: [text]\nlabels:\n  world: a\n  world: b\n"
                                         "templates: {instruct.item: '{label_description}'}\n")
    (tmp_path / "r.yaml").write_text("name: r\ntask: topic.yaml\n")
    with pytest.raises(ConfigError, match="'world' is given twice"):
        Recipe.from_yaml(tmp_path / "r.yaml")


def test_a_recipe_reads_a_spec_file_next_to_it_into_the_recipe(tmp_path):
    (tmp_path / "topic.yaml").write_text(yaml.safe_dump(TOPIC, sort_keys=False))
    (tmp_path / "r.yaml").write_text("name: r\ntask: topic.yaml\ngeneration: {prompt_style: instruct}\n")
    recipe = Recipe.from_yaml(tmp_path / "r.yaml")
    assert recipe.task == TOPIC  # inlined: the build record carries the whole task, not a path
    assert recipe.task_spec.labels == ("world", "sports") and recipe.task_name == "topic"
    missing = tmp_path / "r2.yaml"
    missing.write_text("name: r\ntask: nope.yaml\n")
    with pytest.raises(ConfigError, match="field 'task': task spec file not found"):
        Recipe.from_yaml(missing)


def test_the_recipe_prompt_style_needs_the_task_template(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "task": TOPIC}))  # prompt_style defaults to fewshot
    with pytest.raises(ConfigError, match="'generation.prompt_style' is 'fewshot', but task 'topic' has no "
                                          "template 'fewshot.item'"):
        Recipe.from_yaml(path)


def test_the_topic_recipe_prompts_in_its_own_labels_from_a_file_with_other_column_names(monkeypatch):
    monkeypatch.chdir(HERE.parent)
    recipe = load_recipe(TOPIC_RECIPE)
    task = recipe.task_spec
    source = load_configured(task, recipe.source)
    assert source.column_names == ["text", "label"] and source.features["label"].names == list(task.labels)
    assert len(source) == 48 and sorted(set(source["label"])) == [0, 1, 2, 3]
    prompts = item_prompts(task, source, 2, recipe.domain_list, "fewshot", 2, 0)
    assert len(prompts) == 8
    assert "Here are sports headlines from a newspaper front page.\nHeadline: " in prompts[1]["prompt"]
    assert prompts[1]["prompt"].endswith("\nHeadline:")


def test_a_pair_task_with_other_column_names_generates_its_first_column_first():
    from datasets import Dataset

    task = task_from_dict(spec(text_columns=["claim", "evidence"], labels={"supports": "supporting", "refutes":
                                                                           "refuting"},
                               templates={"instruct.claim": "A claim from {domain}.",
                                          "instruct.item": "Evidence {label_description} of: {claim}"}))
    assert task.two_step and task.first_column == "claim" and task.generated_column == "evidence"
    source = Dataset.from_dict({"claim": ["The sky is blue."], "evidence": ["It is."], "label": [0]},
                               features=task.source_features())
    first = premise_prompts(task, source, 1, ["science"], "instruct", 1, 0)
    assert first[0]["prompt"] == "A claim from science."
    items = item_prompts(task, source, 1, ["science"], "instruct", 0, 0,
                         [{"prompt_id": "p0", "claim": "Water is wet.", "domain": "science"}])
    assert items["prompt"] == ["Evidence supporting of: Water is wet.", "Evidence refuting of: Water is wet."]
    assert items["claim"] == ["Water is wet."] * 2


def test_source_columns_rename_the_users_columns_and_name_a_missing_one(tmp_path):
    from hf_crossaug.stages.source import load_source

    task = task_from_dict(TOPIC)
    path = tmp_path / "data.csv"
    path.write_text("headline,topic\nA vote,world\nA goal,sports\n")
    ds = load_source(task, str(path), columns={"headline": "text", "topic": "label"})
    assert ds["text"] == ["A vote", "A goal"] and ds["label"] == [0, 1]
    with pytest.raises(ValueError, match="names column 'title', which the data does not have"):
        load_source(task, str(path), columns={"title": "text", "topic": "label"})
    tidy = tmp_path / "tidy.csv"  # already in the task's columns: the mapping does not get in the way
    tidy.write_text("text,label\nA vote,world\n")
    assert load_source(task, str(tidy), columns={"headline": "text", "topic": "label"})["label"] == [0]


# sha256 (16 hex) of every prompt the packaged nli / sentiment specs make from the seed set, computed with the
# Python-literal specs before the move to spec files (afea624): the same prompts, so the same rows for a seed
PROMPTS_BEFORE_THE_MOVE = {"nli.fewshot": "9ba5db1dd436e7cd", "nli.instruct": "b97260457c712806",
                           "sentiment.fewshot": "fae89f91f9d65ac6", "sentiment.instruct": "7d54bb22321c9a76"}


@pytest.mark.parametrize("key", sorted(PROMPTS_BEFORE_THE_MOVE))
def test_packaged_specs_make_the_prompts_the_python_literals_made(key):
    import hashlib

    from hf_crossaug.stages.prompts import source_premises
    from hf_crossaug.stages.source import load_source

    name, style = key.split(".")
    task = get_task(name)
    src = load_source(task, "seed")
    domains, parts, premises = list(task.default_domains), [], None
    if task.two_step:
        parts += list(premise_prompts(task, src, 4, domains, style, 3, 1)["prompt"])
        premises = source_premises(task, src, 4, 1)
    parts += list(item_prompts(task, src, 4, domains, style, 3, 1, premises)["prompt"])
    assert hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16] == PROMPTS_BEFORE_THE_MOVE[key]

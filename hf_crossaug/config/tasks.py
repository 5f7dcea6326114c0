"""Task specs: which columns a task has, its label set, and its class-conditioned prompt templates.

A task is data. The packaged tasks (nli, sentiment, copa, storycloze, winograd) are YAML files in
``hf_crossaug/task_specs/``, read by the same code as a task a user defines inline in a recipe
(``task: {name: topic, text_columns: [text], labels: {...}, templates: {...}}``) or in a file of its own
(``task: my-task.yaml``); `get_task` takes any of these. Templates are plain ``str.format`` strings keyed
``"<style>.<step>"`` so a recipe can override any of them without code. Styles: ``instruct`` (zero-shot
instructions, for instruction-following LLMs), ``fewshot`` (completion with in-context examples of the
requested class, which a 135M model can follow) and ``lm`` (the instruction format an LLM is fine-tuned on).
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path

from datasets import ClassLabel, Features, Sequence, Value

from .base import ConfigError
from .yaml_file import read_yaml

SPEC_DIR = Path(__file__).resolve().parent.parent / "task_specs"
STYLES = ("fewshot", "instruct", "lm")
KINDS = ("classification", "multiple_choice")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# columns the pipeline adds itself: a task's text column must not shadow one
RESERVED = ("id", "label", "prompt_label", "domain", "prompt", "prompt_id", "examples", "generation",
            "generated_tokens", "drop_reason", "teacher_probs", "teacher_label", "teacher_confidence", "epoch_probs")


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about a classification task."""

    name: str
    text_columns: tuple[str, ...]
    labels: tuple[str, ...]
    # What the generator is asked to write, per label (fills ``{label_description}``).
    label_descriptions: dict[str, str]
    # Column produced by the generator; a pair task's first column comes from a first step.
    generated_column: str
    # Templates, keyed ``"<style>.<step>"``: step ``item`` writes the generated column, step ``<first column>``
    # (pair tasks) the first one, ``lm.classify`` asks for the label name (DAFTT, label-likelihood evaluation).
    templates: dict[str, str] = field(default_factory=dict)
    # How one in-context example is rendered for few-shot completion.
    example_format: str = ""
    default_domains: tuple[str, ...] = ()
    description: str = ""  # the task in words, for cards ("natural language inference")
    hub_task_ids: tuple[str, ...] = ()  # the Hub's task_ids for dataset cards
    # pair tasks: how an example of the first column is shown when the first column is generated
    first_example_format: str = ""
    # labelled examples (file or Hub id, in the task's columns) for few-shot prompts instead of the source
    fewshot_pool: str | None = None

    kind = "classification"

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def two_step(self) -> bool:
        """A pair task (NLI) generates its first column first, then one second column per first and label."""
        return len(self.text_columns) > 1

    @property
    def first_column(self) -> str:
        return self.text_columns[0]

    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    def class_label(self) -> ClassLabel:
        return ClassLabel(names=list(self.labels))

    def source_features(self) -> Features:
        feats = {col: Value("string") for col in self.text_columns}
        feats["label"] = self.class_label()
        return Features(feats)

    def with_templates(self, overrides: dict[str, str] | None, where: str = "recipe") -> "TaskSpec":
        """A copy with templates updated from a recipe, checked like a spec (field ``templates.<key>``)."""
        if not overrides:
            return self
        overrides = dict(overrides)
        example_format = overrides.pop("example_format", self.example_format)
        spec = replace(self, templates={**self.templates, **overrides}, example_format=example_format)
        keys = [*overrides, *(["example_format"] if example_format != self.example_format else [])]
        check_templates(spec, where, "templates.", only=keys)
        return spec

    def template_hashes(self) -> dict[str, str]:
        """Short content hashes so a card can prove which template text made the data."""
        items = {**self.templates, "example_format": self.example_format}
        return {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in sorted(items.items())}

    def joined_text(self, row: dict) -> str:
        """One string per example, for embeddings and length checks."""
        return " ".join(str(row[c]) for c in self.text_columns)

    def to_dict(self) -> dict:
        """The spec as a recipe or a spec file writes it (`task_from_dict` reads it back)."""
        out = {"name": self.name, "kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "label_descriptions") or value in (None, "", (), {}) or value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.kind == "classification":
            out["labels"] = dict(self.label_descriptions)
        return out


@dataclass(frozen=True)
class MultipleChoiceSpec(TaskSpec):
    """A two-choice commonsense task (arXiv 2305.14288): COPA, StoryCloze, Winograd.

    The generator writes whole items in ``example_format`` (the same format its few-shot examples are
    shown in, answer included), so ``text_columns`` are every string column of an item and ``labels``
    name the choice columns (``label`` = index of the right one). A student scores each choice as the
    pair (``first_format``, ``second_format``) with ``AutoModelForMultipleChoice``.
    """

    first_format: str = ""  # the text every choice is paired with, e.g. "{premise} What was the {question}?"
    second_format: str = "{choice}"  # one choice (``{choice}``), may use the item's other columns
    list_column: str | None = None  # a column holding a list of sentences (StoryCloze's 4-sentence context)
    list_range: tuple[int, int] = (1, 1)  # allowed number of sentences in ``list_column``
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # closed vocabularies (COPA's question)
    must_occur: tuple[str, str] | None = None  # (column, in column): Winograd's pronoun must be in the sentence

    kind = "multiple_choice"

    @property
    def two_step(self) -> bool:
        return False

    @property
    def choice_columns(self) -> tuple[str, ...]:
        return self.labels

    def source_features(self) -> Features:
        feats = {col: Value("string") for col in self.text_columns}
        if self.list_column:
            feats[self.list_column] = Sequence(Value("string"))
        feats["label"] = self.class_label()
        return Features(feats)

    def text(self, row: dict, column: str) -> str:
        value = row[column]
        return " ".join(value) if isinstance(value, (list, tuple)) else str(value)

    def joined_text(self, row: dict) -> str:
        return " ".join(self.text(row, c) for c in self.text_columns)

    def render(self, row: dict) -> str:
        """One item in ``example_format``, answer as a 1-based option number."""
        fields_ = {c: self.text(row, c) for c in self.text_columns}
        return self.example_format.format(answer=int(row["label"]) + 1, **fields_)

    def pairs(self, row: dict) -> tuple[list[str], list[str]]:
        """(first, second) texts per choice, for the multiple-choice student."""
        fields_ = {c: self.text(row, c) for c in self.text_columns}
        first = self.first_format.format(**fields_)
        return [first] * self.num_labels, [self.second_format.format(choice=fields_[c], **fields_)
                                           for c in self.choice_columns]


# ------------------------------------------------------------------ reading and checking a spec

def _placeholders(template: str, where: str, key: str) -> set[str]:
    """The ``{field}`` names a ``str.format`` template fills (one-line error for a malformed one)."""
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template)
                if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: field {key!r} is not a valid format string: {exc}") from None


def template_fields(task: TaskSpec, key: str) -> set[str] | None:
    """The placeholders template ``key`` may use (each step is filled with different fields); None: no such key."""
    cols = set(task.text_columns)
    if key == "example_format":
        return cols | ({"answer"} if task.kind == "multiple_choice" else {"label_description"})
    if key == "first_example_format":
        return {task.first_column}
    style, _, step = key.partition(".")
    if style not in STYLES:
        return None
    if task.kind == "multiple_choice":
        return {"examples"} if step == "item" else None
    if step == "item":  # the generated column, given the label (and a pair task's first column)
        return {"domain", "examples", "label_description"} | ({task.first_column} if task.two_step else set())
    if task.two_step and step == task.first_column:
        return {"domain", "examples"}
    if style == "lm" and step == "classify":  # the inputs, asking for the label: never the answer
        return cols
    return None


def _known_keys(task: TaskSpec) -> str:
    steps = ["item", *([task.first_column] if task.two_step else [])]
    return ", ".join([f"<{'|'.join(STYLES)}>.{s}" for s in steps] + (["lm.classify"] if task.kind ==
                                                                      "classification" else []))


def check_templates(task: TaskSpec, where: str, prefix: str, only=None) -> None:
    """Every template uses only the fields its step is filled with; an item template asks for a label."""
    items = {**task.templates, "example_format": task.example_format}
    if task.kind == "classification" and task.two_step:
        items["first_example_format"] = task.first_example_format
    for key in (only if only is not None else items):
        text = items.get(key, "")
        allowed = template_fields(task, key)
        if allowed is None:
            raise ConfigError(f"{where}: field {prefix + key!r} is not a template of task {task.name!r} "
                              f"(known: {_known_keys(task)}, example_format)")
        if not isinstance(text, str):
            raise ConfigError(f"{where}: field {prefix + key!r} must be a string")
        extra = sorted(_placeholders(text, where, prefix + key) - allowed)
        if extra:
            known = ", ".join("{" + a + "}" for a in sorted(allowed))
            raise ConfigError(f"{where}: field {prefix + key!r} uses placeholder {{{extra[0]}}}, which this step "
                              f"does not have (it has: {known})")
        if task.kind == "classification" and key.endswith(".item") and "label_description" not in _placeholders(
                text, where, prefix + key):
            raise ConfigError(f"{where}: field {prefix + key!r} must contain {{label_description}}: it is how the "
                              "generator is told which class to write")
    if not any(k.endswith(".item") for k in task.templates):
        raise ConfigError(f"{where}: field {prefix}templates needs at least one item template "
                          f"(e.g. instruct.item or fewshot.item)")


def _strings(value, field_name: str, where: str, minimum: int = 0) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: field {field_name!r} must be a list of non-empty strings, got {value!r}")
    if len(value) < minimum:
        raise ConfigError(f"{where}: field {field_name!r} needs at least {minimum} entries, got {len(value)}")
    if len(set(value)) != len(value):
        dup = next(v for v in value if value.count(v) > 1)
        raise ConfigError(f"{where}: field {field_name!r} names {dup!r} twice")
    return tuple(value)


def _labels(value, where: str, prefix: str) -> dict[str, str]:
    """``{label: description}``, or a list of ``{name:, description:}``; at least two, each described."""
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        names = [v.get("name") for v in value]
        _strings(names, prefix + "labels", where, 2)
        value = {v["name"]: v.get("description") for v in value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: field {prefix + 'labels'!r} must map each label to the description the "
                          f"generator is asked to write, e.g. {{positive: a positive review}}")
    if len(value) < 2:
        raise ConfigError(f"{where}: field {prefix + 'labels'!r} needs at least 2 labels, got {len(value)}")
    for name, text in value.items():
        if not isinstance(name, str) or not COLUMN.match(name.replace("-", "_").replace(" ", "_")):
            raise ConfigError(f"{where}: field {prefix + 'labels'!r}: label {name!r} must be a plain name")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: field {prefix + 'labels.' + name!r} needs a description (what the "
                              "generator is asked to write for this class)")
    return dict(value)


SPEC_FIELDS = {f.name for f in fields(MultipleChoiceSpec)} - {"label_descriptions"} | {"kind"}
MC_ONLY = {f.name for f in fields(MultipleChoiceSpec)} - {f.name for f in fields(TaskSpec)}


def task_from_dict(data, where: str = "task", prefix: str = "task.") -> TaskSpec:
    """A checked `TaskSpec` from a mapping (a spec file, or a recipe's inline ``task:``); the first problem is
    one `ConfigError` line naming the field (``prefix`` + name)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: field {prefix.rstrip('.')!r} must be a task name or a mapping")
    unknown = sorted(set(data) - SPEC_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {prefix + unknown[0]!r} (known: {', '.join(sorted(SPEC_FIELDS))})")
    for required in ("name", "text_columns", "labels", "templates"):
        if required not in data:
            raise ConfigError(f"{where}: missing required field {prefix + required!r}")
    kind = data.get("kind", "classification")
    if kind not in KINDS:
        raise ConfigError(f"{where}: field {prefix + 'kind'!r} must be one of {', '.join(KINDS)}, got {kind!r}")
    name = data["name"]
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: field {prefix + 'name'!r} must be a plain name (a letter, then letters, digits, "
                          f"'_' or '-'), got {name!r}")
    mc = kind == "multiple_choice"
    cols = _strings(data["text_columns"], prefix + "text_columns", where, 1)
    bad = [c for c in cols if not COLUMN.match(c) or c in RESERVED]
    if bad:
        raise ConfigError(f"{where}: field {prefix + 'text_columns'!r}: {bad[0]!r} cannot be a column name "
                          f"(an identifier, not one of {', '.join(RESERVED)})")
    if not mc and len(cols) > 2:
        raise ConfigError(f"{where}: field {prefix + 'text_columns'!r} must name one column, or two for a pair "
                          f"task (the first is generated first), got {len(cols)}")
    if mc:
        labels = _strings(data["labels"], prefix + "labels", where, 2)
        descriptions = {}
        if not set(labels) <= set(cols):
            raise ConfigError(f"{where}: field {prefix + 'labels'!r} of a multiple-choice task names its choice "
                              f"columns, which must be among text_columns")
    else:
        descriptions = _labels(data["labels"], where, prefix)
        labels = tuple(descriptions)
        extra = MC_ONLY & set(data)
        if extra:
            raise ConfigError(f"{where}: field {prefix + sorted(extra)[0]!r} is for multiple-choice tasks only")
    generated = data.get("generated_column", cols[0] if mc else cols[-1])
    if generated not in cols or (not mc and generated != cols[-1]):
        raise ConfigError(f"{where}: field {prefix + 'generated_column'!r} must be "
                          f"{'one of text_columns' if mc else repr(cols[-1]) + ' (the last text column)'}")
    templates = data["templates"]
    if not isinstance(templates, dict) or not all(isinstance(k, str) for k in templates):
        raise ConfigError(f"{where}: field {prefix + 'templates'!r} must map '<style>.<step>' to a template")
    kwargs = {k: v for k, v in data.items() if k not in ("kind", "labels", "text_columns", "name", "templates",
                                                         "generated_column")}
    for key in ("default_domains", "hub_task_ids"):
        if key in kwargs:
            kwargs[key] = _strings(kwargs[key], prefix + key, where, 1 if key == "default_domains" else 0)
    for key in ("description", "example_format", "first_example_format", "first_format", "second_format",
                "fewshot_pool", "list_column"):
        if key in kwargs and not isinstance(kwargs[key], str):
            raise ConfigError(f"{where}: field {prefix + key!r} must be a string")
    if mc:
        kwargs.update({k: tuple(kwargs[k]) for k in ("list_range", "must_occur") if k in kwargs})
        kwargs["allowed"] = {k: tuple(v) for k, v in kwargs.get("allowed", {}).items()}
    if not mc and len(cols) == 2:
        kwargs.setdefault("first_example_format", "{" + cols[0] + "}\n")
    cls = MultipleChoiceSpec if mc else TaskSpec
    task = cls(name=name, text_columns=cols, labels=labels, label_descriptions=descriptions,
               generated_column=generated, templates=dict(templates), **kwargs)
    if any(k.startswith("fewshot.") for k in templates) and not task.example_format:
        raise ConfigError(f"{where}: field {prefix + 'example_format'!r} is needed by the fewshot templates "
                          "(how one in-context example is shown)")
    check_templates(task, where, prefix + "templates.")
    return task


@cache
def _packaged(name: str) -> TaskSpec:
    path = SPEC_DIR / f"{name}.yaml"
    return task_from_dict(read_yaml(path, "task spec"), str(path), "")


def packaged_tasks() -> dict[str, TaskSpec]:
    """The tasks shipped in ``hf_crossaug/task_specs/``, by name."""
    return {p.stem: _packaged(p.stem) for p in sorted(SPEC_DIR.glob("*.yaml"))}


def get_task(ref, where: str = "task") -> TaskSpec:
    """A task from a packaged name, a spec file (``.yaml``), a mapping (a recipe's inline spec, or the one a
    build record or a student's results carry), or a `TaskSpec`."""
    if isinstance(ref, TaskSpec):
        return ref
    if isinstance(ref, dict):
        return task_from_dict(ref, where)
    ref = str(ref)
    if ref.endswith((".yaml", ".yml")):
        if not Path(ref).is_file():
            raise FileNotFoundError(f"{where}: task spec file not found: {ref}")
        return task_from_dict(read_yaml(ref, "task spec"), ref, "")
    if (SPEC_DIR / f"{ref}.yaml").is_file() and NAME.match(ref):
        return _packaged(ref)
    raise ValueError(f"unknown task {ref!r}; packaged tasks: {', '.join(packaged_tasks())} (or define your own: "
                     "a mapping or a .yaml spec file)")


def generated_features(task: TaskSpec) -> Features:
    """Schema of the generate stage's output (before teacher columns)."""
    feats = {"id": Value("string")}
    feats.update({col: Value("string") for col in task.text_columns})
    feats.update({"prompt_label": task.class_label(), "domain": Value("string")})
    return Features(feats)


def teacher_features(task: TaskSpec) -> Features:
    """Schema added by the teacher stage."""
    return Features(
        {
            "teacher_probs": Sequence(Value("float32")),
            "teacher_label": task.class_label(),
            "teacher_confidence": Value("float32"),
            "epoch_probs": Sequence(Sequence(Value("float32"))),
        }
    )

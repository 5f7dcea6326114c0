"""Task specs: which columns a task has, its label set, and its class-conditioned prompt templates.

Templates are plain strings (``str.format`` fields) so a recipe can override any of them without code.
Two prompt styles exist because the right one depends on the generator: ``instruct`` (zero-shot
instructions, as in the data-selection paper, for instruction-following LLMs) and ``fewshot``
(completion with in-context examples of the requested class, which a 135M model can follow).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from datasets import ClassLabel, Features, Sequence, Value


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about a classification task."""

    name: str
    text_columns: tuple[str, ...]
    labels: tuple[str, ...]
    # What the generator is asked to write, per label (fills ``{label_description}``).
    label_descriptions: dict[str, str]
    # Column produced by the generator; for NLI the premise comes from a first step.
    generated_column: str
    # Templates, keyed ``"<style>.<step>"``; every style needs the ``item`` step, NLI also ``premise``.
    # Style ``lm`` is the instruction format an LLM is fine-tuned on (no examples); its ``classify``
    # step asks for the label name (DAFTT annotation, label-likelihood evaluation).
    templates: dict[str, str] = field(default_factory=dict)
    # How one in-context example is rendered for few-shot completion.
    example_format: str = ""
    default_domains: tuple[str, ...] = ()

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def two_step(self) -> bool:
        """NLI generates premises first, then one hypothesis per premise and label."""
        return len(self.text_columns) > 1

    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    def class_label(self) -> ClassLabel:
        return ClassLabel(names=list(self.labels))

    def source_features(self) -> Features:
        feats = {col: Value("string") for col in self.text_columns}
        feats["label"] = self.class_label()
        return Features(feats)

    def with_templates(self, overrides: dict[str, str] | None) -> "TaskSpec":
        """A copy whose templates are updated from a recipe; unknown keys are an error."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.templates) - {"example_format"})
        if unknown:
            raise ValueError(f"unknown template key(s) for task {self.name!r}: {', '.join(unknown)}")
        overrides = dict(overrides)
        example_format = overrides.pop("example_format", self.example_format)
        return replace(self, templates={**self.templates, **overrides}, example_format=example_format)

    def template_hashes(self) -> dict[str, str]:
        """Short content hashes so a card can prove which template text made the data."""
        items = {**self.templates, "example_format": self.example_format}
        return {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in sorted(items.items())}

    def joined_text(self, row: dict) -> str:
        """One string per example, for embeddings and length checks."""
        return " ".join(str(row[c]) for c in self.text_columns)


NLI = TaskSpec(
    name="nli",
    text_columns=("premise", "hypothesis"),
    labels=("entailment", "neutral", "contradiction"),
    label_descriptions={
        "entailment": "definitely true",
        "neutral": "might be true",
        "contradiction": "definitely false",
    },
    generated_column="hypothesis",
    templates={
        "instruct.premise": (
            "Write one sentence that could appear in {domain}. "
            "Reply with the sentence only."
        ),
        "instruct.item": (
            "Here is a sentence from {domain}:\n{premise}\n"
            "Write one new sentence that is {label_description} given that sentence. "
            "Reply with the sentence only."
        ),
        "fewshot.premise": "Here are sentences from {domain}.\n{examples}\nSentence:",
        "fewshot.item": "{examples}\nPremise: {premise}\nHypothesis ({label_description}):",
        # instruction format of a fine-tuned LLM (DAFTT, Self-Translate-Train); the answer follows after a space
        "lm.premise": "Write a premise for a natural language inference example.\nPremise:",
        "lm.item": "Write a hypothesis for the premise.\nPremise: {premise}\nHypothesis ({label_description}):",
        "lm.classify": ("Premise: {premise}\nHypothesis: {hypothesis}\n"
                        "Relation (entailment, neutral or contradiction):"),
    },
    example_format="Premise: {premise}\nHypothesis ({label_description}): {hypothesis}\n",
    default_domains=(
        "a novel",
        "a government report",
        "a travel guide",
        "a telephone conversation",
        "a personal letter",
    ),
)

SENTIMENT = TaskSpec(
    name="sentiment",
    text_columns=("text",),
    labels=("negative", "neutral", "positive"),
    label_descriptions={
        "negative": "negative",
        "neutral": "neutral",
        "positive": "positive",
    },
    generated_column="text",
    templates={
        "instruct.item": (
            "Write one {label_description} sentence that could appear in {domain}. "
            "Reply with the sentence only."
        ),
        "fewshot.item": "Here are {label_description} sentences from {domain}.\n{examples}\nSentence:",
        "lm.item": "Write a {label_description} sentence.\nSentence:",
        "lm.classify": "Sentence: {text}\nSentiment (negative, neutral or positive):",
    },
    example_format="Sentence: {text}\n",
    default_domains=("movie reviews", "product reviews", "social media posts", "news comments"),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (NLI, SENTIMENT)}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


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

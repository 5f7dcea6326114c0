"""Task specs: which columns a task has, its label set, and its class-conditioned prompt templates.

Templates are plain strings (``str.format`` fields) so a recipe can override any of them without code.
Two prompt styles exist because the right one depends on the generator: ``instruct`` (zero-shot
instructions, as in the data-selection paper, for instruction-following LLMs) and ``fewshot``
(completion with in-context examples of the requested class, which a 135M model can follow).
"""

from __future__ import annotations

import hashlib
import string
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
        for key, text in overrides.items():
            default = self.example_format if key == "example_format" else self.templates[key]
            allowed = _placeholders(default, key) | set(self.text_columns)
            extra = sorted(_placeholders(text, key) - allowed)
            if extra:
                raise ValueError(f"template {key!r} uses unknown placeholder {{{extra[0]}}} "
                                 f"(known: {', '.join('{' + a + '}' for a in sorted(allowed))})")
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


def _placeholders(template: str, key: str) -> set[str]:
    """The ``{field}`` names a ``str.format`` template fills (one-line error for a malformed one)."""
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ValueError(f"template {key!r} is not a valid format string: {exc}") from None


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
        fields = {c: self.text(row, c) for c in self.text_columns}
        return self.example_format.format(answer=int(row["label"]) + 1, **fields)

    def pairs(self, row: dict) -> tuple[list[str], list[str]]:
        """(first, second) texts per choice, for the multiple-choice student."""
        fields = {c: self.text(row, c) for c in self.text_columns}
        first = self.first_format.format(**fields)
        return [first] * self.num_labels, [self.second_format.format(choice=fields[c], **fields)
                                           for c in self.choice_columns]


def _mc_templates(opening: str, what: str) -> dict[str, str]:
    """Few-shot completion: the examples, then the format's opening line prefix, so the generator writes the
    rest of a new item; ``instruct`` shows the same examples with an instruction to write one more."""
    return {"fewshot.item": "{examples}\n" + opening,
            "instruct.item": f"Here are examples of {what}.\n\n{{examples}}\nWrite one new example in exactly the same format."}


COPA = MultipleChoiceSpec(
    name="copa",
    text_columns=("premise", "question", "choice1", "choice2"),
    labels=("choice1", "choice2"),
    label_descriptions={},
    generated_column="premise",
    templates=_mc_templates("Premise:", "cause-and-effect questions"),
    example_format=("Premise: {premise}\nWhat was the {question}?\nOption 1: {choice1}\nOption 2: {choice2}\n"
                    "Answer: {answer}\n"),
    first_format="{premise} What was the {question}?",
    allowed={"question": ("cause", "effect")},
)

STORYCLOZE = MultipleChoiceSpec(
    name="storycloze",
    text_columns=("context", "ending1", "ending2"),
    labels=("ending1", "ending2"),
    label_descriptions={},
    generated_column="context",
    templates=_mc_templates("Story:", "four-sentence stories with two endings"),
    example_format="Story: {context}\nEnding 1: {ending1}\nEnding 2: {ending2}\nAnswer: {answer}\n",
    first_format="{context}",
    list_column="context",
    list_range=(3, 5),  # four sentences, give or take a split the sentence splitter gets wrong
)

WINOGRAD = MultipleChoiceSpec(
    name="winograd",
    text_columns=("sentence", "pronoun", "option1", "option2"),
    labels=("option1", "option2"),
    label_descriptions={},
    generated_column="sentence",
    templates=_mc_templates("Sentence:", "pronoun resolution questions"),
    example_format=('Sentence: {sentence}\nWho or what is "{pronoun}"?\nOption 1: {option1}\n'
                    "Option 2: {option2}\nAnswer: {answer}\n"),
    first_format="{sentence}",
    second_format='"{pronoun}" is {choice}.',
    must_occur=("pronoun", "sentence"),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (NLI, SENTIMENT, COPA, STORYCLOZE, WINOGRAD)}


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

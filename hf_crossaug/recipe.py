"""Recipes: one YAML file per published dataset, composed of each stage's own config dataclass.

A recipe is data, not code: a newcomer reads ``dataset_scripts/<name>.yaml`` and sees the whole method
(task, route, source data, templates, sampling, teacher, selection). Validation is strict so a typo
gives a one-line error naming the field instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .clean import CleanConfig
from .daftt import DafttConfig
from .finetune import FinetuneConfig
from .generate import GenerationConfig
from .select import STRATEGIES, SelectionConfig
from .stt import SttConfig
from .tasks import MultipleChoiceSpec, TaskSpec, get_task
from .teacher import TeacherConfig
from .translate import BACKENDS, TranslateConfig

# zero-shot: English generations used as they are; translate-train: generations machine-translated
# (seq2seq / ctranslate2 backend); self-translate: translated by a causal LM (llm backend).
ROUTES = ("zero-shot", "translate-train", "self-translate", "direct")
TRANSLATING = {"translate-train": ("seq2seq", "ctranslate2"), "self-translate": ("llm",)}
PREMISE_SOURCES = ("generate", "source")
ITEMS_FROM = ("generate", "source")  # source: the labelled source rows themselves (e.g. to self-translate them)


@dataclass
class SourceConfig:
    """Labelled English data: ``path`` is a local file or Hub id; ``None`` = the packaged seed set."""

    path: str | None = None
    split: str = "train"
    label_column: str = "label"
    limit: int | None = None  # a seeded subset, for small-scale runs
    label_map: dict | None = None  # source label (name or id) -> task label, e.g. SST-5 folded into 3 classes

    def load(self, task: TaskSpec, seed: int = 0):
        """The labelled rows, normalised to the task (`hf_crossaug.data.load_source`)."""
        from .data import load_source

        return load_source(task, self.path, self.split, self.label_column, self.limit, seed, self.label_map)


@dataclass
class Recipe:
    name: str
    task: str
    language: str = "en"  # target language code, recorded in the card
    route: str = "zero-shot"
    description: str = ""
    license: str = "apache-2.0"
    source: SourceConfig = field(default_factory=SourceConfig)
    dev: SourceConfig | None = None  # English dev set for teacher selection; None = held out from source
    domains: list[str] | None = None  # target-domain descriptions; None = the task's defaults
    per_class: int = 8  # items per class; NLI: premises (each gets every label); multiple choice: items
    premise_source: str = "generate"  # NLI step one: "generate" premises or draw them from "source"
    templates: dict[str, str] = field(default_factory=dict)  # overrides of the task's templates
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)  # used by translating routes; tgt = language
    # Self-Translate-Train: also add both code-switched versions of each translated pair (two-column tasks)
    code_switch: bool = False
    # route "direct": target-language labelled examples shown in the few-shot prompts (file or Hub id),
    # so the generator writes in the target language; the teacher still learns from ``source``
    fewshot_source: SourceConfig | None = None
    # where the rows come from: the generator ("generate") or the labelled source data itself ("source")
    items_from: str = "generate"
    # DAFTT: LoRA-tune the generator on a labelled subset, then annotate or generate (daftt.py)
    daftt: DafttConfig | None = None
    # Self-Translate-Train fine-tuning of the LLM on source + translated rows, run by `crossaug finetune` (stt.py)
    stt: SttConfig | None = None

    @property
    def task_spec(self) -> TaskSpec:
        return get_task(self.task).with_templates(self.templates)

    @property
    def domain_list(self) -> list[str]:
        return list(self.domains or self.task_spec.default_domains)

    def validate(self) -> "Recipe":
        self.task_spec  # unknown task / template keys raise here
        checks = [
            (self.route in ROUTES, "route", f"must be one of {', '.join(ROUTES)}"),
            (self.premise_source in PREMISE_SOURCES, "premise_source", f"must be one of {', '.join(PREMISE_SOURCES)}"),
            (self.per_class >= 1, "per_class", "must be >= 1"),
            (self.selection.k >= 1, "selection.k", "must be >= 1"),
            (self.generation.prompt_style in ("fewshot", "instruct"), "generation.prompt_style",
             "must be fewshot or instruct"),
            (self.domains is None or bool(self.domains), "domains", "must not be empty (omit it for the defaults)"),
            # checked here, not after hours of generation and teacher training
            (all(n in STRATEGIES for n in self.selection.strategies), "selection.strategies",
             f"must name known strategies ({', '.join(STRATEGIES)}), got {self.selection.strategies}"),
        ]
        if self.route in TRANSLATING:
            backends = TRANSLATING[self.route]
            checks += [
                (self.language != "en", "language", f"must be the target language for route {self.route!r}"),
                (self.translate.backend in backends, "translate.backend",
                 f"must be one of {', '.join(backends)} for route {self.route!r} (known: {', '.join(BACKENDS)})"),
                (self.route == "self-translate" or bool(self.translate.model), "translate.model",
                 "must name an MT model (Hub id or folder) for route 'translate-train'"),
            ]
        checks += [
            (not self.code_switch or (self.route in TRANSLATING and len(self.task_spec.text_columns) == 2),
             "code_switch", "needs a translating route and a two-column task (e.g. nli)"),
            (self.route != "direct" or (self.fewshot_source is not None and self.language != "en"),
             "fewshot_source", "must name target-language examples (file or Hub id) for route 'direct'"),
        ]
        if isinstance(self.task_spec, MultipleChoiceSpec):  # whole items, no teacher, no selection (as in the paper)
            checks += [
                (not self.selection.strategies, "selection.strategies",
                 f"must be [] for multiple-choice task {self.task!r}: there is no teacher to select with"),
                (not self.generation.stop_at_newline, "generation.stop_at_newline",
                 "must be false for multiple-choice tasks: an item spans several lines"),
                (self.route in ("zero-shot", "direct"), "route", "must be zero-shot or direct for multiple-choice tasks"),
            ]
        checks.append((self.items_from in ITEMS_FROM, "items_from", f"must be one of {', '.join(ITEMS_FROM)}"))
        if self.daftt is not None:
            checks += [(self.items_from == "generate", "daftt", "needs items_from: generate (it makes the rows)"),
                       (self.route != "direct", "daftt", "does not combine with route 'direct'")]
            checks += [(ok, f"daftt.{name}", why) for ok, name, why in self.daftt.problems()]
        if self.stt is not None:
            checks += [(self.route == "self-translate", "stt", "needs route 'self-translate' (the LLM's own "
                        "translations)"), (self.daftt is None, "stt", "does not combine with 'daftt'")]
            checks += [(ok, f"stt.{name}", why) for ok, name, why in self.stt.problems()]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"recipe {self.name!r}: field {name!r} {why}")
        return self

    def with_overrides(self, per_class: int | None = None, k: int | None = None, seed: int | None = None,
                       source: str | None = None, limit: int | None = None) -> "Recipe":
        """Scale overrides from the command line; ``seed`` seeds every stage."""
        r = dataclasses.replace(self)
        if per_class is not None:
            r.per_class = per_class
        if k is not None:
            r.selection = dataclasses.replace(r.selection, k=k)
        if seed is not None:
            r.generation = dataclasses.replace(r.generation, seed=seed)
            r.teacher = dataclasses.replace(r.teacher, seed=seed)
            r.selection = dataclasses.replace(r.selection, seed=seed)
            r.translate = dataclasses.replace(r.translate, seed=seed)
            for name in ("daftt", "stt"):  # the LoRA fine-tuning of DAFTT / Self-Translate-Train
                section = getattr(r, name)
                if section is not None:
                    setattr(r, name, dataclasses.replace(section, finetune=dataclasses.replace(section.finetune,
                                                                                               seed=seed)))
        if source is not None or limit is not None:
            r.source = dataclasses.replace(r.source, path=source or r.source.path,
                                           limit=limit if limit is not None else r.source.limit)
        return r.validate()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "recipe") -> "Recipe":
        return _build(cls, data, where, "").validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"recipe {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ValueError(f"recipe {path} must be a YAML mapping")
        data.setdefault("name", path.stem)
        return cls.from_dict(data, str(path))


def _build(cls, data: dict, where: str, prefix: str):
    """Instantiate a (nested) config dataclass, rejecting unknown fields and wrong types by name."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: field {prefix.rstrip('.') or 'recipe'!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ValueError(f"{where}: unknown field {prefix + unknown[0]!r} (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        nested = _nested_type(f)
        if nested is not None and value is not None:
            kwargs[name] = _build(nested, value, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(f, value, where, prefix + name)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing required field {prefix + missing[0]!r}")
    return cls(**kwargs)


NESTED = {c.__name__: c for c in (SourceConfig, GenerationConfig, CleanConfig, TeacherConfig, SelectionConfig,
                                   TranslateConfig, DafttConfig, SttConfig, FinetuneConfig)}


def _nested_type(f: dataclasses.Field):
    return next((c for n, c in NESTED.items() if n in str(f.type)), None)


def _check_type(f: dataclasses.Field, value, where: str, name: str):
    t = str(f.type)
    if value is None:
        if "None" in t:
            return None
        raise ValueError(f"{where}: field {name!r} must not be empty")
    for py, label in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (dict, "dict")):
        if t.startswith(label) or t.startswith(f"{label}[") or f"| {label}" in t or t.startswith(label + " |"):
            if label == "float" and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, py) and not (py is int and isinstance(value, bool)):
                return value
            raise ValueError(f"{where}: field {name!r} must be {label}, got {type(value).__name__} {value!r}")
    return value

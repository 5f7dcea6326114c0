"""Recipes: one YAML file per published dataset, composed of each stage's own config dataclass.

A recipe is data, not code: a newcomer reads ``dataset_scripts/<name>.yaml`` and sees the whole method
(task, route, source data, templates, sampling, teacher, selection). Validation is strict so a typo
gives a one-line error naming the field instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .base import ConfigError, Problem, build, check, check_options, one_of
from .clean import CleanConfig
from .finetune import DafttConfig, SttConfig
from .generate import GenerationConfig
from .select import RAW, SelectionConfig
from .source import SourceConfig
from .student import MC_MODES, RecommendedStudent
from .tasks import MultipleChoiceSpec, TaskSpec, get_task
from .yaml_file import read_yaml
from .teacher import TeacherConfig
from .translate import BACKENDS, TranslateConfig

# zero-shot: English generations used as they are; translate-train: generations machine-translated
# (seq2seq / ctranslate2 backend); self-translate: translated by a causal LM (llm backend).
ROUTES = ("zero-shot", "translate-train", "self-translate", "direct")
TRANSLATING = {"translate-train": ("seq2seq", "ctranslate2"), "self-translate": ("llm",)}
PREMISE_SOURCES = ("generate", "source")
ITEMS_FROM = ("generate", "source")  # source: the labelled source rows themselves (e.g. to self-translate them)
# a recipe name becomes a folder name and a Hub repo name: never a path
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class Recipe:
    name: str
    # a packaged task's name (nli, sentiment, copa, storycloze, winograd) or a whole task spec (a mapping; a
    # ``.yaml`` path is read into one when the recipe is loaded): see `hf_crossaug.config.tasks`
    task: str | dict
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
    # the student mode this dataset was measured to serve best; `crossaug train` follows it without --mode
    student: RecommendedStudent | None = None

    @property
    def task_spec(self) -> TaskSpec:
        return get_task(self.task, f"recipe {self.name!r}").with_templates(self.templates, f"recipe {self.name!r}")

    @property
    def task_name(self) -> str:
        return self.task if isinstance(self.task, str) else str(self.task.get("name"))

    @property
    def domain_list(self) -> list[str]:
        return list(self.domains or self.task_spec.default_domains)

    def problems(self) -> list[Problem]:
        """Checks across sections; each section checks its own fields (`hf_crossaug.config.base.check`)."""
        checks = [
            (bool(NAME.match(self.name)) and ".." not in self.name, "name",
             f"must be a plain name (letters, digits, '.', '_', '-'), not a path: got {self.name!r}"),
            one_of(self, "route", ROUTES), one_of(self, "premise_source", PREMISE_SOURCES),
            (self.per_class >= 1, "per_class", "must be >= 1"),
            (self.domains is None or bool(self.domains), "domains", "must not be empty (omit it for the defaults)"),
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
            (self.source.label_column is not None, "source.label_column", "must name the label column: the "
             "source data trains the teacher (only fewshot_source may be unlabelled)"),
            (self.dev is None or self.dev.label_column is not None, "dev.label_column",
             "must name the label column of the dev set"),
        ]
        if isinstance(self.task_spec, MultipleChoiceSpec):  # whole items, no teacher, no selection (as in the paper)
            checks += [
                (not self.selection.strategies, "selection.strategies",
                 f"must be [] for multiple-choice task {self.task_name!r}: there is no teacher to select with"),
                (not self.generation.stop_at_newline, "generation.stop_at_newline",
                 "must be false for multiple-choice tasks: an item spans several lines"),
                (self.route in ("zero-shot", "direct"), "route", "must be zero-shot or direct for multiple-choice tasks"),
            ]
        checks.append((self.items_from in ITEMS_FROM, "items_from", f"must be one of {', '.join(ITEMS_FROM)}"))
        if self.daftt is not None:
            checks += [(self.items_from == "generate", "daftt", "needs items_from: generate (it makes the rows)"),
                       (self.route != "direct", "daftt", "does not combine with route 'direct'")]
        if self.student is not None:
            checks += self._student_problems()
        if self.stt is not None:
            checks += [(self.route == "self-translate", "stt", "needs route 'self-translate' (the LLM's own "
                        "translations)"), (self.daftt is None, "stt", "does not combine with 'daftt'")]
        return checks

    def _student_problems(self) -> list[Problem]:
        """The recommended mode and config must be ones this recipe's dataset has."""
        strategies = [] if isinstance(self.task_spec, MultipleChoiceSpec) else self.selection.strategies
        modes = list(MC_MODES) if isinstance(self.task_spec, MultipleChoiceSpec) else [
            "SRC", "GEN", "SRC+GEN", *(f"{p}{s}" for p in ("T-", "T_pl-") for s in strategies)]
        configs = [RAW, *strategies]
        return [(self.student.mode in modes, "student.mode", f"must be one of {', '.join(modes)}, got "
                 f"{self.student.mode!r}"),
                (self.student.config in (None, *configs), "student.config",
                 f"must be one of {', '.join(configs)} (the configs this recipe builds), got {self.student.config!r}")]

    def validate(self, where: str | None = None) -> "Recipe":
        """Every field of every section, in one pass, before any work starts (one line naming the field)."""
        where = where or f"recipe {self.name!r}"
        try:
            task = get_task(self.task, where).with_templates(self.templates, where)
        except ConfigError:
            raise
        except (KeyError, ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"{where}: field 'task': {str(exc).strip(chr(34) + chr(39))}") from None
        check(self, where)
        for ok, name, why in self._template_problems(task):
            if not ok:
                raise ConfigError(f"{where}: field {name!r} {why}")
        return self

    def _template_problems(self, task: TaskSpec) -> list[Problem]:
        """The templates this recipe's prompt style and steps will fill must exist in the task."""
        if self.items_from != "generate" or self.daftt is not None:
            return []  # DAFTT fills the lm templates (checked by its stage); source rows need none
        style = self.generation.prompt_style
        keys = [f"{style}.item"]
        if task.two_step and self.premise_source == "generate":
            keys.insert(0, f"{style}.{task.first_column}")
        missing = [k for k in keys if k not in task.templates]
        return [(not missing, "generation.prompt_style", f"is {style!r}, but task {task.name!r} has no template "
                 f"{missing[0] if missing else ''!r} (add it under task.templates or templates:)")]

    def with_overrides(self, per_class: int | None = None, k: int | None = None, seed: int | None = None,
                       source: str | None = None, limit: int | None = None) -> "Recipe":
        """Scale overrides from the command line; ``seed`` seeds every stage. A value out of range is one line
        naming the option (not the stage field it lands in, nor a numpy error after the work began)."""
        check_options(1, per_class=per_class, k=k, limit=limit)
        check_options(0, seed=seed)
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
        return build(cls, data, where).validate(where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            data = read_yaml(path, "recipe")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(data, dict):
            raise ConfigError(f"recipe {path} must be a YAML mapping")
        data.setdefault("name", path.stem)
        task = data.get("task")
        if isinstance(task, str) and task.endswith((".yaml", ".yml")):
            # a spec file next to the recipe: read in here, so the build record carries the whole task
            spec = Path(task) if Path(task).is_absolute() else path.parent / task
            if not spec.is_file():
                raise ConfigError(f"{path}: field 'task': task spec file not found: {spec}")
            try:
                data["task"] = read_yaml(spec, "task spec")
            except ValueError as exc:
                raise ConfigError(f"{path}: field 'task': {exc}") from None
        return cls.from_dict(data, str(path))


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up by name: ``./dataset_scripts``, then the recipes shipped in the package
    (a wheel carries them as ``hf_crossaug/recipes/``), then a source checkout's ``dataset_scripts/``."""
    from importlib import resources

    package = Path(str(resources.files("hf_crossaug")))
    return [Path("dataset_scripts"), package / "recipes", package.parent / "dataset_scripts"]


def find_recipe(name: str) -> Path:
    """A recipe file path, or a recipe name looked up in `recipe_dirs`."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FileNotFoundError(f"recipe file not found: {path}")
        return path
    for folder in recipe_dirs():
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise FileNotFoundError(f"no recipe named {name!r}; known recipes: {', '.join(known) or 'none'}")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A validated recipe from a YAML path, or by name (``crossaug recipes`` lists them)."""
    return Recipe.from_yaml(find_recipe(str(name_or_path)))

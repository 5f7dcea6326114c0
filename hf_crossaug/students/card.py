"""Student model cards, rendered from typed `StudentCardData` and validated by ``huggingface_hub``; the
evaluation's per-language scores go into the card's ``model-index``. One renderer for every producer: the CLI
(``crossaug_student.json``, `save_results`) and a library user's `DistillationTrainer.create_model_card`."""

from __future__ import annotations

import json
from pathlib import Path

from ..citations import card_section
from ..config.student import MC_MODES
from ..config.tasks import get_task
from ..utils.files import RESULTS_FILE
from ..utils.paths import portable
from .card_data import EMBEDDED_ORIGINS, StudentCardData, dataset_hub_id

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
MODE_TEXT = {
    "SRC": "English gold data only (zero-shot transfer baseline).",
    "GEN": "generated data only, with the labels the generator was prompted with (as many rows as SRC+GEN).",
    "SRC+GEN": "English gold data plus a random sample of the generated data, with prompt labels.",
    "T": "English gold data plus the generations selected by `{s}`, trained towards the teacher's soft labels "
         "(KL divergence).",
    "T_pl": "English gold data plus the generations selected by `{s}`, with the labels the generator was "
            "prompted with (hard labels).",
}


def save_results(folder: str | Path, results: dict) -> None:
    """Write ``crossaug_student.json`` and (re-)render ``README.md`` from it; under `accelerate launch` only the
    main process writes (every process holds the same results)."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    folder = Path(folder)
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=str))
    student_card(StudentCardData.from_results(results)).save(folder / "README.md")


def student_card(data: StudentCardData):
    """The `huggingface_hub.ModelCard` of ``data``: a multiple-choice model's or a classifier's."""
    return mc_model_card(data) if data.multiple_choice else model_card(data)


def eval_results(data: StudentCardData, task_type: str = "text-classification", f1: bool = True):
    from huggingface_hub import EvalResult

    ev = data.evaluation or {}
    out = []
    for lang, s in (ev.get("scores") or {}).items():
        if lang == "avg":
            continue
        task = task_of(data)
        task_name = (f"Multiple Choice ({task.name})" if task.kind == "multiple_choice" else
                     (task.description or task.name).title() + " Classification")
        target = ev["targets"][lang]
        # a local file has no Hub id: its name stands in; every entry names a config (the language by default)
        dtype = target["type"]
        if Path(dtype.split(" (sha256 ")[0]).suffix in DATA_FILE_SUFFIXES:
            dtype = target["name"]
        common = dict(task_type=task_type, task_name=task_name, dataset_type=dtype,
                      dataset_name=f"{target['name']} ({lang})", dataset_config=target.get("config") or lang,
                      dataset_split=target.get("split"), dataset_args={"language": lang})
        if ev.get("limit"):  # scored on a seeded subset (load_source's limit)
            common["dataset_args"].update(limit=ev["limit"], seed=ev.get("seed", 0))
        out.append(EvalResult(metric_type="accuracy", metric_value=round(s["accuracy"], 4),
                              metric_name=f"accuracy ({lang})", **common))
        if f1:
            out.append(EvalResult(metric_type="f1", metric_value=round(s["macro_f1"], 4),
                                  metric_name=f"macro-F1 ({lang})", metric_args={"average": "macro"}, **common))
    return out


def task_of(data: StudentCardData):
    """The student's task: the spec it carries (a user's own task), else the packaged one it names; None when
    only its labels are known (a library user's trainer)."""
    spec = data.task_spec or data.task
    return get_task(spec) if spec else None


def chosen_by(data: StudentCardData) -> str:
    """A sentence when the mode was not the command's choice (`hf_crossaug.students.common.recommended_mode`)."""
    return (" The mode is the one the dataset's recipe recommends (its `student` section; the dataset card says why)."
            if data.mode_from == "recipe" else "")


def precision(cfg: dict) -> str:
    """What the Trainer computed in (students trained before the option existed: float32)."""
    return "bfloat16 autocast" if cfg.get("dtype") == "bfloat16" else "float32"


def languages(data: StudentCardData) -> list[str] | None:
    """English (the gold data), the target language and every evaluated one; a library user's: as given."""
    scores = (data.evaluation or {}).get("scores") or {}
    if data.mode is None:
        return [data.language] if data.language else None
    return sorted({"en", *([data.language] if data.language else []), *(k for k in scores if k != "avg")})


def hyperparameters(data: StudentCardData, frozen: bool) -> dict:
    """The card's hyperparameter table (StudentConfig's names); settings a run did not record are left out."""
    cfg = data.config
    balanced = cfg.get("class_balance", False)
    hyper = {"epochs": cfg["epochs"], "learning_rate": cfg["learning_rate"], "batch_size": cfg["batch_size"],
             **{k: cfg[k] for k in ("max_steps", "max_length") if k in cfg},
             "temperature": cfg["temperature"], "soft_weight": cfg.get("soft_weight", 1.0),
             **{k: cfg[k] for k in ("hard_weight",) if k in cfg},
             "kd_formulation": cfg["kd_formulation"], "seed": cfg["seed"],
             **{k: cfg[k] for k in ("freeze_embeddings",) if k in cfg}, "precision": precision(cfg),
             **({"class_balance": "gold rows' classes weighted equally (balanced)"} if balanced else {}),
             **({"training time (s)": data.timings["train_s"]} if "train_s" in data.timings else {})}
    head = data.head or {}
    if frozen:  # max_length / freeze_embeddings do not apply: the encoder is frozen, it truncates at its own limit
        hyper = {k: v for k, v in hyper.items() if k not in ("max_length", "freeze_embeddings")}
        hyper["head"] = (f"LayerNorm -> Linear({head.get('input_dim')}, {head.get('hidden')}) -> GELU -> "
                         f"Dropout({head.get('dropout')}) -> Linear({head.get('hidden')}, {head.get('num_labels')})")
        hyper["encoding time (s)"] = data.timings.get("encode_s")
    return hyper


def selection_text(data: StudentCardData) -> str:
    """Which epoch was kept and why (empty when the run picked none: a library user's trainer)."""
    sel = data.selection
    if not sel:
        return ""
    text = (f"the epoch with the best {'macro-F1' if data.config.get('class_balance') else 'accuracy'} on "
            f"{sel['dev']} ({sel['dev_size']} rows, "
            f"{'English' if sel['select_by'] == 'english-dev' else 'TARGET-LANGUAGE'} dev, "
            f"`select_by={sel['select_by']}`): accuracy {sel['dev_accuracy']:.4f}, "
            f"macro-F1 {sel['dev_macro_f1']:.4f}.")
    if sel["select_by"] == "target-dev":
        text += " Selecting on target-language data is not zero-shot: compare with care."
    return text


def dev_history(data: StudentCardData) -> str:
    history = (data.selection or {}).get("history", [])
    return ", ".join(f"epoch {h['epoch']:g}: {h['accuracy']:.4f}" for h in history) or "-"


def model_card(data: StudentCardData):
    """A classifier's `huggingface_hub.ModelCard` rendered from ``data`` (validated by ``huggingface_hub``)."""
    from huggingface_hub import ModelCard, ModelCardData

    ds = data.dataset or {}
    # SRC trains on no synthetic data, so its card names no dataset
    hub_dataset = (ds.get("hub_id") or dataset_hub_id(ds.get("ref"), {})) if ds.get("config") else None
    data = StudentCardData.from_results(portable(data.to_results()))  # local paths: relative, else name (+ sha256)
    ds = data.dataset or {}
    ev = data.evaluation or {}
    scores = ev.get("scores") or {}
    base, mode, task = data.base_model, data.mode, task_of(data)
    frozen = data.config.get("backend") == "frozen-features"
    datasets = [hub_dataset] if hub_dataset else data.datasets
    card_data = ModelCardData(
        model_name=data.model_name, base_model=base.get("hub_id"), language=languages(data),
        license=data.license or ds.get("license"), library_name=None if frozen else "transformers",
        pipeline_tag="text-classification", datasets=datasets or None,
        metrics=["accuracy", "f1"], tags=["hf_crossaug", *(["cross-lingual"] if mode else []), "knowledge-distillation",
                                          *([f"mode:{mode}"] if mode else []), *(["frozen-features"] if frozen else []),
                                          *data.tags],
        eval_results=eval_results(data) or None,
    )
    kind, _, strategy = mode.partition("-") if mode and mode.startswith("T") else (mode, "", "")
    eval_rows = [{"lang": lang, "ref": f"`{ev['targets'][lang]['ref']}`", **s} for lang, s in scores.items()
                 if lang != "avg"]
    if eval_rows and "avg" in scores:
        eval_rows.append({"lang": "**avg**", "ref": "unweighted mean over languages", **scores["avg"]})
    eval_note = (f"Each language scored on a seeded subset of {ev['limit']} rows." if ev.get("limit")
                 else "Scored on the full sets.")
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / ("frozen_student_card.md" if frozen else "student_card.md")),
        head=data.head or {}, model_name=data.model_name, task=data.task,
        labels=data.labels, language=data.language, package_version=data.package_version,
        task_text=(task.description or data.task) if task else "text", mode=mode,
        mode_description=(MODE_TEXT.get(kind, MODE_TEXT.get(mode, "")).format(s=strategy) + chosen_by(data)
                          if mode else ""),
        eval_rows=eval_rows, eval_note=eval_note, selection_text=selection_text(data), base=base,
        base_note=(f"converted offline from the packaged copy of `{base['hub_id']}`"
                   if base.get("name") in EMBEDDED_ORIGINS else ""),
        gold=data.gold, dataset={**ds, "hub_id": hub_dataset}, counts=data.counts or {}, teacher=data.teacher,
        recipe=data.recipe, hyperparameters=hyperparameters(data, frozen), dev_history=dev_history(data),
        usage_id=data.repo_id or data.model_name, pair=bool(task and task.two_step),
        columns=list(task.text_columns) if task else ["text"],
        citation=card_section(),
    )


def mc_model_card(data: StudentCardData):
    """The model card of a multiple-choice student (validated by ``huggingface_hub``)."""
    from huggingface_hub import ModelCard, ModelCardData

    data = StudentCardData.from_results(portable(data.to_results()))  # local paths: relative, else name (+ sha256)
    ev = data.evaluation or {}
    scores = ev.get("scores") or {}
    base, sel, cfg = data.base_model, data.selection, data.config
    card_data = ModelCardData(
        model_name=data.model_name, base_model=base.get("hub_id"), language=languages(data),
        license=data.license or (data.dataset or {}).get("license"), library_name="transformers", metrics=["accuracy"],
        tags=["hf_crossaug", "cross-lingual", "multiple-choice", f"mode:{data.mode}", *data.tags],
        eval_results=eval_results(data, task_type="multiple-choice", f1=False) or None,
    )
    rows = [{"lang": lang, "ref": ev["targets"][lang]["ref"], **s} for lang, s in scores.items() if lang != "avg"]
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / "mc_student_card.md"), model_name=data.model_name, task=data.task,
        choices=", ".join(data.labels), language=data.language, mode=data.mode,
        mode_description=MC_MODES[data.mode] + chosen_by(data), package_version=data.package_version,
        eval_rows=rows,
        limit=ev.get("limit"), sel=sel, base=base, embedded=base["name"] in EMBEDDED_ORIGINS, gold=data.gold,
        dataset=data.dataset, counts=data.counts, recipe=data.recipe,
        hyperparameters={k: cfg[k] for k in ("epochs", "learning_rate", "batch_size", "max_length", "seed",
                                             "freeze_embeddings")}
        | {"precision": precision(cfg), "training time (s)": data.timings["train_s"]},
        dev_history=dev_history(data),
    )

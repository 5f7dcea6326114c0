"""Student model cards, rendered from ``crossaug_student.json`` and validated by ``huggingface_hub``; the
evaluation's per-language scores go into the card's ``model-index``."""

from __future__ import annotations

import json
from pathlib import Path

from ..citations import card_section
from ..config.student import MC_MODES
from ..config.tasks import get_task
from ..utils.files import RESULTS_FILE
from ..utils.paths import portable
from .common import EMBEDDED_ORIGINS, dataset_hub_id

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
    card = mc_model_card if results.get("kind") == "multiple-choice" else model_card
    card(results).save(folder / "README.md")


def eval_results(results: dict, task_type: str = "text-classification", f1: bool = True):
    from huggingface_hub import EvalResult

    ev = results.get("evaluation") or {}
    task = task_of(results)
    task_name = (f"Multiple Choice ({task.name})" if task.kind == "multiple_choice" else
                 (task.description or task.name).title() + " Classification")
    out = []
    for lang, s in (ev.get("scores") or {}).items():
        if lang == "avg":
            continue
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


def task_of(results: dict):
    """The student's task: the spec its results carry (a user's own task), else the packaged one it names."""
    return get_task(results.get("task_spec") or results["task"])


def chosen_by(results: dict) -> str:
    """A sentence when the mode was not the command's choice (`hf_crossaug.students.common.recommended_mode`)."""
    return (" The mode is the one the dataset's recipe recommends (its `student` section; the dataset card says why)."
            if results.get("mode_from") == "recipe" else "")


def precision(cfg: dict) -> str:
    """What the Trainer computed in (students trained before the option existed: float32)."""
    return "bfloat16 autocast" if cfg.get("dtype") == "bfloat16" else "float32"


def model_card(results: dict):
    """A `huggingface_hub.ModelCard` rendered from ``results`` (validated by ``huggingface_hub``)."""
    from huggingface_hub import ModelCard, ModelCardData

    ds = results.get("dataset") or {}
    # SRC trains on no synthetic data, so its card names no dataset
    hub_dataset = (ds.get("hub_id") or dataset_hub_id(ds.get("ref"), {})) if ds.get("config") else None
    results = portable(results)  # local paths: relative to the working folder, else name (+ sha256)
    ds = results.get("dataset") or {}
    ev = results.get("evaluation") or {}
    scores = ev.get("scores") or {}
    langs = sorted({"en", *([results["language"]] if results.get("language") else []),
                    *(k for k in scores if k != "avg")})
    base = results["base_model"]
    mode = results["mode"]
    cfg = results["config"]
    frozen = cfg.get("backend") == "frozen-features"
    data = ModelCardData(
        model_name=results["model_name"], base_model=base.get("hub_id"), language=langs,
        license=(results.get("dataset") or {}).get("license"), library_name=None if frozen else "transformers",
        pipeline_tag="text-classification", datasets=[hub_dataset] if hub_dataset else None,
        metrics=["accuracy", "f1"], tags=["hf_crossaug", "cross-lingual", "knowledge-distillation", f"mode:{mode}",
                                          *(["frozen-features"] if frozen else [])],
        eval_results=eval_results(results) or None,
    )
    kind, _, strategy = mode.partition("-") if mode.startswith("T") else (mode, "", "")
    sel = results["selection"]
    balanced = cfg.get("class_balance", False)
    selection_text = (f"the epoch with the best {'macro-F1' if balanced else 'accuracy'} on {sel['dev']} "
                      f"({sel['dev_size']} rows, "
                      f"{'English' if sel['select_by'] == 'english-dev' else 'TARGET-LANGUAGE'} dev, "
                      f"`select_by={sel['select_by']}`): accuracy {sel['dev_accuracy']:.4f}, "
                      f"macro-F1 {sel['dev_macro_f1']:.4f}.")
    if sel["select_by"] == "target-dev":
        selection_text += " Selecting on target-language data is not zero-shot: compare with care."
    hyper = {"epochs": cfg["epochs"], "learning_rate": cfg["learning_rate"], "batch_size": cfg["batch_size"],
             "max_length": cfg["max_length"], "temperature": cfg["temperature"],
             "soft_weight": cfg.get("soft_weight", 1.0), "kd_formulation": cfg["kd_formulation"], "seed": cfg["seed"],
             "freeze_embeddings": cfg["freeze_embeddings"], "precision": precision(cfg),
             **({"class_balance": "gold rows' classes weighted equally (balanced)"} if balanced else {}),
             "training time (s)": results["timings"]["train_s"]}
    head = results.get("head") or {}
    if frozen:  # max_length / freeze_embeddings do not apply: the encoder is frozen, it truncates at its own limit
        hyper = {k: v for k, v in hyper.items() if k not in ("max_length", "freeze_embeddings")}
        hyper["head"] = (f"LayerNorm -> Linear({head.get('input_dim')}, {head.get('hidden')}) -> GELU -> "
                         f"Dropout({head.get('dropout')}) -> Linear({head.get('hidden')}, {head.get('num_labels')})")
        hyper["encoding time (s)"] = results["timings"].get("encode_s")
    eval_rows = [{"lang": lang, "ref": f"`{ev['targets'][lang]['ref']}`", **s} for lang, s in scores.items()
                 if lang != "avg"]
    if eval_rows and "avg" in scores:
        eval_rows.append({"lang": "**avg**", "ref": "unweighted mean over languages", **scores["avg"]})
    eval_note = (f"Each language scored on a seeded subset of {ev['limit']} rows." if ev.get("limit")
                 else "Scored on the full sets.")
    return ModelCard.from_template(
        data, template_path=str(TEMPLATES / ("frozen_student_card.md" if frozen else "student_card.md")),
        head=head, model_name=results["model_name"], task=results["task"],
        labels=results["labels"], language=results.get("language"), package_version=results["package_version"],
        task_text=task_of(results).description or results["task"], mode=mode,
        mode_description=MODE_TEXT.get(kind, MODE_TEXT.get(mode, "")).format(s=strategy) + chosen_by(results),
        eval_rows=eval_rows, eval_note=eval_note, selection_text=selection_text, base=base,
        base_note=(f"converted offline from the packaged copy of `{base['hub_id']}`"
                   if base["name"] in EMBEDDED_ORIGINS else ""),
        gold=results["gold"], dataset={**ds, "hub_id": hub_dataset}, counts=results["counts"], teacher=results.get("teacher"),
        recipe=results.get("recipe"), hyperparameters=hyper,
        dev_history=", ".join(f"epoch {h['epoch']:g}: {h['accuracy']:.4f}" for h in sel["history"]) or "-",
        usage_id=results.get("repo_id") or results["model_name"], pair=task_of(results).two_step,
        columns=list(task_of(results).text_columns),
        citation=card_section(),
    )


def mc_model_card(results: dict):
    """The model card of a multiple-choice student (validated by ``huggingface_hub``)."""
    from huggingface_hub import ModelCard, ModelCardData

    results = portable(results)  # local paths: relative to the working folder, else name (+ sha256)
    ev = results.get("evaluation") or {}
    scores = ev.get("scores") or {}
    langs = sorted({"en", *([results["language"]] if results.get("language") else []), *(k for k in scores if k != "avg")})
    base, sel, cfg = results["base_model"], results["selection"], results["config"]
    data = ModelCardData(
        model_name=results["model_name"], base_model=base.get("hub_id"), language=langs,
        license=(results.get("dataset") or {}).get("license"), library_name="transformers", metrics=["accuracy"],
        tags=["hf_crossaug", "cross-lingual", "multiple-choice", f"mode:{results['mode']}"],
        eval_results=eval_results(results, task_type="multiple-choice", f1=False) or None,
    )
    rows = [{"lang": lang, "ref": ev["targets"][lang]["ref"], **s} for lang, s in scores.items() if lang != "avg"]
    return ModelCard.from_template(
        data, template_path=str(TEMPLATES / "mc_student_card.md"), model_name=results["model_name"], task=results["task"],
        choices=", ".join(results["labels"]), language=results.get("language"), mode=results["mode"],
        mode_description=MC_MODES[results["mode"]] + chosen_by(results), package_version=results["package_version"],
        eval_rows=rows,
        limit=ev.get("limit"), sel=sel, base=base, embedded=base["name"] in EMBEDDED_ORIGINS, gold=results["gold"],
        dataset=results["dataset"], counts=results["counts"], recipe=results.get("recipe"),
        hyperparameters={k: cfg[k] for k in ("epochs", "learning_rate", "batch_size", "max_length", "seed",
                                             "freeze_embeddings")}
        | {"precision": precision(cfg), "training time (s)": results["timings"]["train_s"]},
        dev_history=", ".join(f"epoch {h['epoch']:g}: {h['accuracy']:.4f}" for h in sel["history"]) or "-",
    )

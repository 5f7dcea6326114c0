"""The ``crossaug`` command line: build synthetic datasets from recipes, train and evaluate students,
fine-tune an LLM (Self-Translate-Train), push datasets and models to the Hub, run the benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config.student import StudentConfig

app = typer.Typer(help="LLM-generated, teacher-labelled, selected training data for languages without labels.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)  # a long path never breaks a line in two


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="also show the libraries' own progress bars, load reports and debug messages"),
):
    """Console logging for every command: our stage messages and one progress line per stage."""
    from .utils.logging import setup_logging

    setup_logging(verbose)


def fail(exc: Exception) -> None:
    """One-line error, no traceback, exit code 2 (finished shards and stages stay cached)."""
    # soft_wrap: rich would break a long message over several lines; escape: "[...]" in it is not markup
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def build(
    recipe: str = typer.Argument(..., help="recipe name in dataset_scripts/ or a path to a YAML recipe"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="output folder (default: outputs/<recipe>)"),
    per_class: Optional[int] = typer.Option(None, help="examples per class (NLI: premises)"),
    k: Optional[int] = typer.Option(None, help="rows per class kept by each selection strategy"),
    seed: Optional[int] = typer.Option(None, help="seed for every stage"),
    source: Optional[str] = typer.Option(None, help="labelled English source: local file or Hub dataset id"),
    limit: Optional[int] = typer.Option(None, help="use a seeded subset of this many source rows"),
    work_dir: Optional[Path] = typer.Option(None, help="cache of shards, teacher and raw data (resumable)"),
    repo_id: Optional[str] = typer.Option(None, help="Hub repo id written into the card's usage snippet"),
):
    """Generate, label, select and export a Hub-layout dataset folder."""
    from .build.export import build_dataset
    from .config.recipe import Recipe, find_recipe

    try:
        path = find_recipe(recipe)
        r = Recipe.from_yaml(path).with_overrides(per_class=per_class, k=k, seed=seed, source=source, limit=limit)
        out = output or Path("outputs") / r.name
        console.print(f"[bold]crossaug build[/] {r.name} ({path}) -> {out}")
        summary = build_dataset(r, out, work_dir, repo_id=repo_id)  # messages: the hf_crossaug logger
    except (ValueError, OSError, RuntimeError) as exc:  # OSError: FileExistsError for an -o not ours
        fail(exc)
    print_summary(summary)


def print_summary(summary: dict) -> None:
    from .build.card import FROM_CACHE

    stats = summary["stats"]
    table = Table(title=f"built {summary['output']}")
    table.add_column("stage / config")
    table.add_column("rows", justify="right")
    table.add_column("details")
    for stage, c in stats["counts"].items():
        if isinstance(c, dict):
            drops = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("prompts", "kept") and v)
            table.add_row(stage, f"{c.get('kept')}/{c.get('prompts')}", drops or "no drops")
    if stats.get("teacher"):
        table.add_row("teacher", str(stats["counts"]["labelled"]), f"dev accuracy {stats['teacher']['dev_accuracy']:.3f}")
    for stage, cost in (stats.get("requests") or {}).items():  # what generation cost, per stage
        timing = ([f"{cost.get('tokens_per_s', 0)} tok/s", f"{cost.get('wall_s', 0)} s"]
                  if cost.get("wall_s", 0) is not None else [FROM_CACHE])
        detail = [f"{cost.get('completion_tokens', 0)} tokens", *timing]
        if "requests" in cost:  # a server backend
            detail[:0] = [f"{cost.get('cache_hits', 0)} cached"]
            detail += [f"retries {k} {v}" for k, v in (cost.get("retries") or {}).items() if v]
            detail += [f"failed {k} {v}" for k, v in (cost.get("failures") or {}).items() if v]
        table.add_row(f"generate {stage}", str(cost.get("requests", cost.get("rows", ""))), ", ".join(detail))
    for name, rows in summary["rows"].items():
        per_class = summary["reports"].get(name)
        table.add_row(f"config {name}", str(rows), " ".join(f"{v}" for v in per_class.values()) if per_class else "")
    table.add_row("wall time (s)", "", ", ".join(f"{k} {v:.0f}" for k, v in stats["timings"].items()))
    Console().print(table)


@app.command("recipes")
def list_recipes():
    """List the recipes in dataset_scripts/."""
    from .config.recipe import recipe_dirs

    seen = set()
    for folder in recipe_dirs():
        for p in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            if p.stem not in seen:
                seen.add(p.stem)
                print(p)


def config_options(cls):
    """Give a command one ``--option`` per field of the config dataclass ``cls`` that has ``help`` metadata
    (`hf_crossaug.config.base.option`), so the CLI never re-declares a config. Each option defaults to None
    (not given); the command receives them in ``**options`` and builds ``cls`` through the one validation."""
    import dataclasses
    import inspect
    import typing

    from .config.base import type_options

    def wrap(func):
        sig = inspect.signature(func)
        params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata:
                continue
            base = next(o for o in type_options(hints[f.name]) if o is not type(None))
            text = f.metadata["help"] if "default" in f.metadata["help"] or f.default is None else (
                f"{f.metadata['help']} (default: {f.default})")
            flags = (f"--{f.name.replace('_', '-')}", *f.metadata["flags"])
            if base is bool:
                flags = (f"{flags[0]}/--no-{f.name.replace('_', '-')}",)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[base],
                                            default=typer.Option(None, *flags, help=text, show_default=False)))
        func.__signature__ = sig.replace(parameters=params)
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func

    return wrap


@app.command()
@config_options(StudentConfig)
def train(
    dataset: str = typer.Argument(..., help="built dataset: local folder or Hub id"),
    source: Optional[str] = typer.Option(None, help="English gold data: file, Hub id or 'seed' (default: seed)"),
    dev: Optional[str] = typer.Option(None, help="model-selection set: file or Hub id (default: held out from source)"),
    output: Path = typer.Option(..., "--output", "-o", help="output model folder"),
    **options,
):
    """Train a student on English gold + synthetic data in one of the paper's modes (a multiple-choice model
    for copa / storycloze / winograd datasets)."""
    from .config.base import build as build_config, check
    from .students.classification import train_student

    try:
        given = {k: v for k, v in options.items() if v is not None}
        cfg = check(build_config(StudentConfig, given, "crossaug train"), "crossaug train")
        mode = cfg.mode or "the mode its recipe recommends"
        console.print(f"[bold]crossaug train[/] {mode} ({cfg.backend}) on {dataset} -> {output}")
        res = train_student(cfg, dataset, source or "seed", dev, output, log=lambda m: console.print(m))
    except (ValueError, OSError, RuntimeError) as exc:
        fail(exc)
    sel, counts = res["selection"], res["counts"]
    table = Table(title=f"trained {output}")
    table.add_column("what")
    table.add_column("value")
    chosen = {"recipe": ", the dataset recipe's recommendation", "default": ", the default"}.get(res["mode_from"], "")
    table.add_row("mode", f"{res['mode']} (config {res['dataset']['config'] or '-'}{chosen})")
    table.add_row("student", res["config"]["backend"] + (" (a head on frozen embeddings)" if res.get("head") else ""))
    table.add_row("rows", f"{counts['gold']} gold + {counts['generated']} generated ({counts['soft']} soft)")
    table.add_row(f"dev ({sel['select_by']})", f"accuracy {sel['dev_accuracy']:.4f}, macro-F1 "
                  f"{sel['dev_macro_f1']:.4f} on {sel['dev_size']} rows")
    table.add_row("train time (s)", f"{res['timings']['train_s']:.0f}")
    Console().print(table)


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="model folder (from crossaug train) or Hub id"),
    target: list[str] = typer.Option(..., "--target", "-t", help="LANG=FILE or LANG=HUB_ID[:config][@split]"),
    task: Optional[str] = typer.Option(None, help="nli, sentiment, copa, storycloze or winograd (default: from the model folder)"),
    limit: Optional[int] = typer.Option(None, help="score a seeded subset of this many rows per language"),
    batch_size: int = typer.Option(64, help="inference batch size"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON here"),
):
    """Per-language accuracy and macro-F1 (classifiers or multiple-choice models); updates the model card of a
    crossaug model folder. A file target may name a row slice: LANG=FILE@train[120:]."""
    import json

    from .students.evaluate import evaluate_model
    from .utils.files import check_output_file, write_atomic

    try:
        if json_out:
            check_output_file(json_out, "--json")  # before the scoring, not after
        res = evaluate_model(model, parse_targets(target), task=task, limit=limit, batch_size=batch_size)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(exc)
    table = Table(title=f"{model} ({res['task']}{f', {limit} rows per language' if limit else ''})")
    for col, just in (("language", "left"), ("rows", "right"), ("accuracy", "right"), ("macro-F1", "right")):
        table.add_column(col, justify=just)
    for lang, s in res["scores"].items():
        table.add_row(lang, str(s["n"]), f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}")
    Console().print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(json_out, json.dumps(res, indent=2))


def parse_targets(specs: list[str]) -> dict[str, str]:
    """``LANG=PATH_OR_HUB_ID`` options as a mapping, with a one-line error for a malformed one."""
    targets = {}
    for spec in specs:
        lang, sep, ref = spec.partition("=")
        if not sep or not lang or not ref:
            raise ValueError(f"--target {spec!r} must look like LANG=PATH_OR_HUB_ID")
        targets[lang] = ref
    return targets


@app.command()
def finetune(
    recipe: str = typer.Argument(..., help="recipe with an 'stt' section (name in dataset_scripts/ or a YAML path)"),
    target: list[str] = typer.Option(..., "--target", "-t",
                                     help="evaluation set: LANG=FILE or LANG=HUB_ID[:config][@split]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="dataset folder (default: outputs/<recipe>)"),
    adapter_output: Optional[Path] = typer.Option(None, help="adapter + evaluation.json (default: <output>-lora)"),
    eval_limit: Optional[int] = typer.Option(None, help="score a seeded subset of this many rows per language"),
    seed: Optional[int] = typer.Option(None, help="seed for every stage"),
    source: Optional[str] = typer.Option(None, help="labelled English source: local file or Hub dataset id"),
    limit: Optional[int] = typer.Option(None, help="use a seeded subset of this many source rows"),
    work_dir: Optional[Path] = typer.Option(None, help="cache of shards, teacher, adapter and raw data (resumable)"),
    english_baseline: Optional[bool] = typer.Option(
        None, "--english-baseline/--no-english-baseline",
        help="also LoRA-tune on the English source alone and score it beside (default: the recipe's stt section)"),
):
    """Self-Translate-Train: build the self-translated data, LoRA-tune the LLM on it, evaluate before/after."""
    from .config.recipe import Recipe, find_recipe
    from .methods.stt import run_stt

    try:
        path = find_recipe(recipe)
        r = Recipe.from_yaml(path).with_overrides(seed=seed, source=source, limit=limit)
        out = output or Path("outputs") / r.name
        lora = adapter_output or out.with_name(out.name + "-lora")
        console.print(f"[bold]crossaug finetune[/] {r.name} ({path}) -> {out}, {lora}")
        res = run_stt(r, out, lora, parse_targets(target), work_dir, eval_limit, log=lambda m: console.print(m),
                      english_baseline=english_baseline)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(exc)
    table = Table(title=f"{lora}: accuracy by label likelihood ({res['task']}; chance {res['chance']:.3f})")
    baseline = "english_only" in res
    for col in ("language", "rows", "base LLM", *(["English-only"] * baseline), "STT", "STT macro-F1"):
        table.add_column(col, justify="left" if col == "language" else "right")
    for lang, s in res["after"].items():
        table.add_row(lang, str(s["n"]), f"{res['before'][lang]['accuracy']:.4f}",
                      *([f"{res['english_only'][lang]['accuracy']:.4f}"] * baseline), f"{s['accuracy']:.4f}",
                      f"{s['macro_f1']:.4f}")
    Console().print(table)


@app.command("push")
def push_cmd(
    folder: Path = typer.Argument(..., help="a built dataset folder (crossaug build) or a model folder (crossaug train)"),
    repo_id: str = typer.Argument(..., help="Hub repo id, NAMESPACE/NAME"),
    private: bool = typer.Option(False, "--private/--public", help="visibility of a repo this push creates"),
    revision: Optional[str] = typer.Option(None, help="branch to push to (created if missing; default main)"),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="commit message"),
    dataset_repo: Optional[str] = typer.Option(None, help="model only: Hub id of its training dataset, for the card"),
):
    """Upload a dataset or student folder to the Hub (token: HF_TOKEN or `hf auth login`); unchanged -> no commit."""
    from .hub import push

    try:
        console.print(f"[bold]crossaug push[/] {folder} -> {repo_id}{f'@{revision}' if revision else ''}")
        res = push(folder, repo_id, private=private, revision=revision, commit_message=message,
                   dataset_repo=dataset_repo)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(exc)
    print(res.summary())


bench_app = typer.Typer(help="Benchmarks from the checkout's benchmarks/ folder (need the shared data).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
BENCH_DIRS = (Path("benchmarks"), Path(__file__).resolve().parent.parent / "benchmarks")


@bench_app.command("reproduce", add_help_option=False,
                   context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_reproduce(ctx: typer.Context):
    """The data-selection paper's table, offline (benchmarks/reproduce.py; --help lists its options)."""
    import importlib

    script = next((d / "reproduce.py" for d in BENCH_DIRS if (d / "reproduce.py").is_file()), None)
    if script is None:
        fail(FileNotFoundError("benchmarks/reproduce.py not found: run from a checkout of hf_crossaug"))
    out = option_value(ctx.args, "--out")
    if out:  # default: the checkout's results folder; another only if the package may write it
        from .utils.files import mark_output_folder

        try:
            mark_output_folder(out, "--out")
        except OSError as exc:
            fail(exc)
    sys.argv = [str(script), *ctx.args]
    sys.path.insert(0, str(script.resolve().parent.parent))  # the checkout, where `benchmarks` is a package
    importlib.import_module("benchmarks.reproduce").main(ctx.args)  # as python -m benchmarks.reproduce


def option_value(args: list[str], name: str) -> str | None:
    """The last value of option ``name`` among arguments passed through (``--out X`` or ``--out=X``)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"{name}="):
            value = arg[len(name) + 1:]
    return value


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

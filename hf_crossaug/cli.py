"""The ``crossaug`` command line: build synthetic datasets from recipes (more commands join here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="LLM-generated, teacher-labelled, selected training data for languages without labels.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)

RECIPE_DIRS = (Path("dataset_scripts"), Path(__file__).resolve().parent.parent / "dataset_scripts")


def find_recipe(name: str) -> Path:
    """A recipe file path, or a name looked up in ``./dataset_scripts`` and the package checkout."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FileNotFoundError(f"recipe file not found: {path}")
        return path
    for folder in RECIPE_DIRS:
        for cand in (folder / f"{name}.yaml", folder / name / "recipe.yaml"):
            if cand.exists():
                return cand
    known = sorted({p.stem for d in RECIPE_DIRS if d.is_dir() for p in d.glob("*.yaml")})
    raise FileNotFoundError(f"no recipe named {name!r}; known recipes: {', '.join(known) or 'none'}")


def fail(exc: Exception) -> None:
    """One-line error, no traceback, exit code 2 (finished shards and stages stay cached)."""
    console.print(f"[bold red]error:[/] {exc}")
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
    from .builder import build_dataset
    from .recipe import Recipe

    try:
        path = find_recipe(recipe)
        r = Recipe.from_yaml(path).with_overrides(per_class=per_class, k=k, seed=seed, source=source, limit=limit)
        out = output or Path("outputs") / r.name
        console.print(f"[bold]crossaug build[/] {r.name} ({path}) -> {out}")
        summary = build_dataset(r, out, work_dir, repo_id=repo_id, log=lambda m: console.print(m))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        fail(exc)
    print_summary(summary)


def print_summary(summary: dict) -> None:
    stats = summary["stats"]
    table = Table(title=f"built {summary['output']}")
    table.add_column("stage / config")
    table.add_column("rows", justify="right")
    table.add_column("details")
    for stage, c in stats["counts"].items():
        if isinstance(c, dict):
            drops = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("prompts", "kept") and v)
            table.add_row(stage, f"{c.get('kept')}/{c.get('prompts')}", drops or "no drops")
    table.add_row("teacher", str(stats["counts"]["labelled"]), f"dev accuracy {stats['teacher']['dev_accuracy']:.3f}")
    for name, rows in summary["rows"].items():
        per_class = summary["reports"].get(name)
        table.add_row(f"config {name}", str(rows), " ".join(f"{v}" for v in per_class.values()) if per_class else "")
    table.add_row("wall time (s)", "", ", ".join(f"{k} {v:.0f}" for k, v in stats["timings"].items()))
    Console().print(table)


@app.command("recipes")
def list_recipes():
    """List the recipes in dataset_scripts/."""
    for folder in RECIPE_DIRS:
        for p in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            print(p)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

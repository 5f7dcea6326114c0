"""Issue #26: every dotted ``hf_crossaug.`` path that a card template, a README or the package's own text
names exists (cards told readers about ``hf_crossaug.trainer.DistillationTrainer``, which never did)."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "benchmarks/README.md", "space/README.md", "model_cards/**/*", "hf_crossaug/templates/*.md",
        "hf_crossaug/**/*.py"]  # the package's .py files: docstrings and comments
DOTTED = re.compile(r"\bhf_crossaug(?:\.[A-Za-z_]\w*)+")


def named_paths() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pattern in DOCS:
        for path in sorted(ROOT.glob(pattern)):
            if path.is_file():
                for name in DOTTED.findall(path.read_text(encoding="utf-8")):
                    found.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    return found


def resolve(name: str):
    """Import the longest importable module prefix of ``name``, then look the rest up as attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


NAMED = named_paths()


def test_the_scan_finds_the_paths_the_docs_name():
    assert len(NAMED) > 10 and "hf_crossaug.students.trainer.DistillationTrainer" in NAMED
    with pytest.raises(AttributeError):  # what a stale path looks like to the check
        resolve("hf_crossaug.students.trainer.NoSuchTrainer")
    with pytest.raises(AttributeError):
        resolve("hf_crossaug.trainer.DistillationTrainer")  # no module hf_crossaug.trainer: an attribute of the package


@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_named_path_exists(name):
    try:
        resolve(name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{name} (named in {', '.join(sorted(set(NAMED[name])))}) does not exist: {exc}")

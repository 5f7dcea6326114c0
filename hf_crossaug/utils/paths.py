"""Paths a reader of a card can use without the machine it was built on.

Cards (dataset and student) record where the data and models came from. A local path is rewritten:
relative to the working folder when it lies inside it, else reduced to the file name plus its sha256
(files) or the folder name (folders). Hub ids and other plain strings stay as they are.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from .fingerprint import file_sha256

# an absolute POSIX path, a home-relative path, or a Windows drive path, at the start of a string
_ABSOLUTE = re.compile(r"^(/|~[/\\]|[A-Za-z]:[/\\])")


def looks_local(value: str) -> bool:
    """True for strings that name a local path (absolute, ``~``-relative, ``./``/``../``), not a Hub id."""
    return bool(_ABSOLUTE.match(value)) or value.startswith(("./", "../", ".\\", "..\\"))


@lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


def portable_path(value: str, root: str | Path | None = None) -> str:
    """``value`` as a card should show it (see the module docstring); non-paths come back unchanged."""
    if not isinstance(value, str) or not looks_local(value):
        return value
    path = Path(value).expanduser()
    base = Path(root or os.getcwd()).resolve()
    try:
        resolved = path.resolve()
    except OSError:  # pragma: no cover - unreadable path
        return path.name
    try:
        rel = resolved.relative_to(base)
        return rel.as_posix() if str(rel) != "." else "."
    except ValueError:
        pass
    if resolved.is_file():
        stat = resolved.stat()
        return f"{resolved.name} (sha256 {_sha256(str(resolved), stat.st_mtime_ns, stat.st_size)})"
    return resolved.name


def portable(obj, root: str | Path | None = None):
    """A copy of ``obj`` (dicts, lists, tuples, strings) with every local path made `portable_path`."""
    if isinstance(obj, str):
        return portable_path(obj, root)
    if isinstance(obj, Path):
        return portable_path(str(obj), root)
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(portable(v, root) for v in obj)
    return obj


def absolute_paths(text: str) -> list[str]:
    """Absolute POSIX paths appearing in ``text`` (what a card must not contain), for checks and tests."""
    return re.findall(r"(?<![\w.:/])/(?:tmp|home|root|Users|work|var|mnt|private|opt|srv)/[^\s`'\")]*", text)

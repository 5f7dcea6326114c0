"""Explicit fingerprints: cache keys built from what decides an output, never from hashing model weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def fingerprint(*parts) -> str:
    """Explicit fingerprint from JSON-able parts (never model weights)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def content_fingerprint(ds, columns: list[str] | None = None) -> str:
    """Hash of a Dataset's content (in-memory datasets get random fingerprints from ``datasets``)."""
    h = hashlib.sha256()
    for col in columns or ds.column_names:
        h.update(col.encode())
        for value in ds[col]:
            h.update(json.dumps(value, default=str).encode())
            h.update(b"\0")
    return h.hexdigest()[:16]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def shard_seed(seed: int, shard: int) -> int:
    """The seed of one shard: (seed, shard index) alone decide it, so a resumed run equals an uninterrupted one."""
    return int(hashlib.sha256(f"{seed}:{shard}".encode()).hexdigest()[:8], 16)

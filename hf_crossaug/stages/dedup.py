"""Near-duplicate removal for the clean stage: a row that nearly copies an earlier kept row of its group.

Exact duplicates are dropped by `hf_crossaug.stages.clean`; an LLM asked for many rows also writes the same
sentence with one word changed, and such copies add volume without adding data. Both methods judge a row
only against earlier kept rows of its group (the exact-duplicate key: for pair tasks, the same first column),
so the first of a group of copies is kept and the result depends only on the row order.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Callable, Hashable

import numpy as np

from ..config.clean import NearDuplicateConfig

NUM_PERM = 128  # MinHash permutations
_PRIME = (1 << 61) - 1
# fixed permutations: a < 2**32 and 32-bit shingle hashes keep a * h inside uint64
_A, _B = np.random.default_rng(27).integers(1, 1 << 32, size=(2, NUM_PERM), dtype=np.uint64)
BLOCK = 1024  # rows per embedding similarity block


def near_duplicates(texts: list[str], norms: list[str], groups: list[Hashable], config: NearDuplicateConfig,
                    embedder: Callable[[list[str]], np.ndarray] | None = None) -> list[bool]:
    """For each row, whether it is a near copy of an earlier kept row with the same group.

    ``norms`` are the texts normalised as for exact duplicates (MinHash shingles them); ``texts`` as
    parsed (the embedder reads them); ``embedder`` maps texts to L2-normalised vectors.
    """
    if config.method == "none" or not texts:
        return [False] * len(texts)
    if config.method == "minhash":
        return _minhash(norms, groups, config.threshold, config.ngram)
    if embedder is None:
        raise ValueError("clean.near_duplicate.method 'embedding' needs a sentence embedder")
    return _embedding(np.asarray(embedder(list(texts)), dtype=np.float32), groups, config.threshold)


def shingles(norm: str, n: int) -> frozenset[str]:
    """Character ``n``-grams of a normalised text with its word boundaries (the text itself when shorter)."""
    s = f" {norm} "
    return frozenset(s[i:i + n] for i in range(len(s) - n + 1)) or frozenset([s])


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


def band_rows(threshold: float, num_perm: int = NUM_PERM, recall: float = 0.999) -> int:
    """Rows per LSH band: the most for which a pair at ``threshold`` Jaccard still shares a band with
    probability >= ``recall`` (more rows per band, fewer false candidates to verify)."""
    ok = [r for r in range(1, num_perm + 1) if 1 - (1 - threshold ** r) ** (num_perm // r) >= recall]
    return max(ok, default=1)


def signature(shingle_set: frozenset[str]) -> np.ndarray:
    """MinHash signature: per permutation, the smallest permuted 32-bit hash of a shingle."""
    h = np.fromiter((zlib.crc32(s.encode()) for s in shingle_set), dtype=np.uint64, count=len(shingle_set))
    return (((h[:, None] * _A) % _PRIME + _B) % _PRIME).min(axis=0)


def _minhash(norms: list[str], groups: list[Hashable], threshold: float, n: int) -> list[bool]:
    """MinHash LSH proposes earlier kept rows sharing a band; the exact Jaccard of the shingles decides,
    so ``threshold`` is exact (a pair at it is missed with probability < 0.1%)."""
    r = band_rows(threshold)
    buckets: dict[tuple, list[int]] = defaultdict(list)
    sets: list[frozenset] = []
    out = []
    for i, (norm, group) in enumerate(zip(norms, groups)):
        sets.append(shingles(norm, n))
        sig = signature(sets[i])
        keys = [(group, b, sig[b * r:(b + 1) * r].tobytes()) for b in range(NUM_PERM // r)]
        candidates = {j for k in keys for j in buckets.get(k, ())}
        dup = any(jaccard(sets[i], sets[j]) >= threshold for j in candidates)
        out.append(dup)
        if not dup:
            for k in keys:
                buckets[k].append(i)
    return out


def _embedding(vectors: np.ndarray, groups: list[Hashable], threshold: float) -> list[bool]:
    """Cosine of unit vectors, per group in blocks: a block against the group's earlier kept rows, then
    its rows one by one against the block's earlier kept rows."""
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    out = [False] * len(groups)
    for rows in members.values():
        kept: list[int] = []
        for start in range(0, len(rows), BLOCK):
            block = rows[start:start + BLOCK]
            v = vectors[block]
            before = (v @ vectors[kept].T).max(axis=1) >= threshold if kept else np.zeros(len(block), bool)
            inner, local = v @ v.T, []
            for j in range(len(block)):
                if before[j] or (local and inner[j, local].max() >= threshold):
                    out[block[j]] = True
                else:
                    local.append(j)
            kept += [block[j] for j in local]
    return out

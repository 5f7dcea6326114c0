"""Quality filters for machine- or self-translated text.

Like cleaning, filtering never raises: each row gets a ``translation_drop_reason`` (``None`` when kept)
so the counts per reason go into the card. The checks are cheap heuristics aimed at the failure modes
of small MT models and base LMs: nothing produced, the source copied back, the wrong script, loops,
and outputs far too short or long for a translation.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from datasets import Dataset

REASONS = ("empty", "untranslated", "wrong_script", "repetition", "length_ratio")

# Unicode ranges per script; letters and combining marks outside them count against the target.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)),
    "devanagari": ((0x900, 0x97F), (0xA8E0, 0xA8FF)),
    "arabic": ((0x600, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
}
SCRIPT_OF = {"en": "latin", "sw": "latin", "hi": "devanagari", "mr": "devanagari", "ur": "arabic"}
MIN_SCRIPT_SHARE = 0.6

# Target chars / source chars for an English source. Measured on hand translations of short sentences,
# a translation runs at 0.6-1.3x its English length (Swahili is agglutinative but spelt in full, Devanagari
# and Arabic script pack vowels into marks); the bands are wide on purpose, catching only truncations
# and run-ons. Sources under MIN_RATIO_CHARS characters are not checked (ratios of tiny strings are noise).
LENGTH_BANDS: dict[str, tuple[float, float]] = {
    "sw": (0.5, 2.2),
    "hi": (0.4, 2.0),
    "mr": (0.4, 2.0),
    "ur": (0.4, 2.0),
}
DEFAULT_BAND = (0.3, 3.0)
MIN_RATIO_CHARS = 15
MAX_OVERLAP = 0.8  # non-Latin targets: share of output tokens also in the source


def _norm_tokens(s: str) -> list[str]:
    return re.sub(r"[^\w]+", " ", s.lower()).split()


def script_share(text: str, script: str) -> float:
    """Share of letters (and combining marks) inside the script's Unicode ranges; 0.0 without letters."""
    ranges = SCRIPTS[script]
    letters = [ord(c) for c in text if c.isalpha() or unicodedata.category(c).startswith("M")]
    if not letters:
        return 0.0
    return sum(any(lo <= c <= hi for lo, hi in ranges) for c in letters) / len(letters)


def is_repetitive(text: str, n: int = 2, times: int = 3, char_run: int = 8) -> bool:
    """A word n-gram (n >= ``n``) occurring ``times`` times, one word ``times`` times in a row, or a
    character repeated ``char_run`` times: the loops greedy decoding falls into."""
    if re.search(r"(.)\1{%d,}" % (char_run - 1), text):
        return True
    words = text.lower().split()
    if any(len(set(words[i : i + times])) == 1 for i in range(len(words) - times + 1)):
        return True
    for size in range(n, 5):
        grams = Counter(tuple(words[i : i + size]) for i in range(len(words) - size + 1))
        if grams and max(grams.values()) >= times:
            return True
    return False


def translation_drop_reason(source: str, target: str, tgt: str) -> str | None:
    """The first failed check for one translated string, else ``None``."""
    target = (target or "").strip()
    if not target or not _norm_tokens(target):
        return "empty"
    src_tokens, tgt_tokens = _norm_tokens(source), _norm_tokens(target)
    script = SCRIPT_OF.get(tgt)
    if src_tokens == tgt_tokens:
        return "untranslated"
    if script and script != "latin" and tgt_tokens:
        src_set = set(src_tokens)
        if sum(t in src_set for t in tgt_tokens) / len(tgt_tokens) > MAX_OVERLAP:
            return "untranslated"
    if script and script_share(target, script) < MIN_SCRIPT_SHARE:
        return "wrong_script"
    if is_repetitive(target):
        return "repetition"
    if len(source) >= MIN_RATIO_CHARS:
        lo, hi = LENGTH_BANDS.get(tgt, DEFAULT_BAND)
        if not lo <= len(target) / len(source) <= hi:
            return "length_ratio"
    return None


def filter_translations(ds: Dataset, columns: list[str] | tuple[str, ...], tgt: str, src: str = "en") -> Dataset:
    """Add ``translation_drop_reason``: the first failure over ``columns`` (sources in ``<col>_<src>``)."""
    cols = {c: ds[c] for c in columns}
    sources = {c: ds[f"{c}_{src}"] for c in columns}
    reasons = []
    for i in range(len(ds)):
        reason = None
        for c in columns:
            reason = translation_drop_reason(sources[c][i], cols[c][i], tgt)
            if reason:
                break
        reasons.append(reason)
    if "translation_drop_reason" in ds.column_names:
        ds = ds.remove_columns("translation_drop_reason")
    return ds.add_column("translation_drop_reason", reasons)


def translation_drop_counts(ds: Dataset) -> dict[str, int]:
    """Counts per reason (zeros included) plus ``kept``, as :func:`hf_crossaug.stages.clean.drop_counts`."""
    counts = Counter(r or "kept" for r in ds["translation_drop_reason"])
    return {"kept": counts.get("kept", 0), **{r: counts.get(r, 0) for r in REASONS}}

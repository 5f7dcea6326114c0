"""The clean stage: parsing a continuation and marking every unusable row with its reason."""

import pytest
from datasets import Dataset

from hf_crossaug.stages.clean import REASONS, CleanConfig, clean, drop_counts, parse_generation


@pytest.mark.parametrize("raw, parsed", [
    ("The cat sat on the mat.\nPremise: more", "The cat sat on the mat."),
    ("\n\n   \n  A second-line answer.  \nnext", "A second-line answer."),
    ('"Quoted sentence here."', "Quoted sentence here."),
    ("“Curly quotes.”", "Curly quotes."),
    ("1. A numbered item.", "A numbered item."),
    ("2) Another one", "Another one"),
    ("- a dash item", "a dash item"),
    ("* a star item", "a star item"),
    ("• 'bullet and quotes'", "bullet and quotes"),
    ("-5 degrees outside today", "-5 degrees outside today"),  # a minus sign is not a list marker
    ("", ""),
    ("\n \n", ""),
])
def test_parse_generation(raw, parsed):
    assert parse_generation(raw) == parsed


PREMISE = "The old fisherman walked home as the sun went down."
EXAMPLE = "A man sold fresh bread at the market every morning."


def row(generation, premise=PREMISE, examples=(EXAMPLE,)):
    return {"generation": generation, "premise": premise, "examples": list(examples)}


CASES = [
    (row(" The fisherman went home in the evening.\nHypothesis: x"), None),
    (row(""), "empty"),
    (row("\n   \n"), "empty"),
    (row('""'), "wrong_format"),  # something, but nothing left after parsing
    (row("Premise: The fisherman went home."), "wrong_format"),
    (row("Hypothesis (definitely true): He went home."), "wrong_format"),
    (row("The fisherman went home and then he said:"), "wrong_format"),
    (row("!!! ... ???"), "wrong_format"),  # no word at all: neither an echo nor a duplicate
    (row("I'm sorry, I cannot write that sentence."), "refusal"),
    (row("As an AI language model I will not answer."), "refusal"),
    (row("Home."), "too_short"),
    (row(" ".join(["word"] * 13)), "too_long"),
    (row("the old fisherman walked home as the SUN went down!"), "echo"),  # equals the premise
    (row("sold fresh bread at the market"), "echo"),  # copies an in-context example
    (row("The fisherman went home in the evening."), "duplicate"),  # same premise + hypothesis again
    (row("The fisherman went home in the evening.", premise="A fisherman repaired a net on the beach."), None),
    (row("Man walked home as the sun set."), None),  # shares words with the premise, still new
    (row("The bread was cold and stale."), None),
]


def test_clean_marks_each_reason():
    ds = Dataset.from_list([r for r, _ in CASES])
    out = clean(ds, "hypothesis", CleanConfig(min_words=2, max_words=12), key_columns=("premise",))
    assert out["drop_reason"] == [reason for _, reason in CASES]
    assert out["hypothesis"][0] == "The fisherman went home in the evening."
    assert len(out) == len(ds) and out["generation"] == ds["generation"]  # nothing removed, nothing reordered

    counts = drop_counts(out)
    assert list(counts) == ["kept", *REASONS]
    assert sum(counts.values()) == len(ds)
    assert counts == {"kept": 4, "empty": 2, "wrong_format": 5, "refusal": 2, "too_short": 1, "too_long": 1,
                      "echo": 2, "duplicate": 1, "near_duplicate": 0, "request_failed": 0, "bad_json": 0}
    kept = out.filter(lambda r: r["drop_reason"] is None)
    assert len(kept) == counts["kept"] and all(kept["hypothesis"])


def test_clean_without_key_columns_and_partial_word_echo():
    ds = Dataset.from_list([
        {"generation": "A great film.", "examples": ["the film was great"]},
        {"generation": "a GREAT film", "examples": []},  # same text as row 0 after normalising
        {"generation": "man", "examples": ["The fisherman walked."]},  # a part of a word is no copy
        {"generation": "the film was great", "examples": ["So the film was great, really."]},
    ])
    out = clean(ds, "text", CleanConfig(min_words=1))
    assert out["drop_reason"] == [None, "duplicate", None, "echo"]
    assert drop_counts(out)["kept"] == 2


def test_clean_replaces_an_existing_output_column():
    ds = Dataset.from_list([{"generation": "A new sentence here.", "text": "old", "examples": []}])
    out = clean(ds, "text")
    assert out.column_names.count("text") == 1 and out["text"] == ["A new sentence here."]

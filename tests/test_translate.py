"""The translate stage and its quality filters: filters on hand-written sw/hi/ur/mr strings; tiny
Marian / NLLB / M2M100 models built here (language codes, forced BOS); batching, order, pair
consistency, resume; CTranslate2 conversion; LLM self-translation with the tiny Llama."""

import json

import pytest
import torch
from datasets import Dataset

from hf_crossaug.stages.filters import (REASONS, filter_translations, is_repetitive, script_share,
                                 translation_drop_counts, translation_drop_reason)
from hf_crossaug.models.resolve import ModelRef
from hf_crossaug.stages.translate import (EXAMPLES, LLMBackend, Seq2SeqBackend, TranslateConfig, lang_code, make_backend,
                                   model_family, self_translation_prompt, translate)

EN = "The farmers sold their maize at the market yesterday."
GOOD = {
    "sw": "Wakulima waliuza mahindi yao sokoni jana.",
    "hi": "किसानों ने कल बाज़ार में अपना मक्का बेचा।",
    "ur": "کسانوں نے کل بازار میں اپنی مکئی بیچی۔",
    "mr": "शेतकऱ्यांनी काल बाजारात त्यांचा मका विकला.",
}
# Right script, wrong language: the other Devanagari / Latin language would pass, so take another script.
WRONG_SCRIPT = {"sw": GOOD["hi"], "hi": GOOD["ur"], "ur": GOOD["mr"], "mr": "Wakulima waliuza mahindi yao sokoni jana."}
LOOPS = {
    "sw": "Wakulima wakulima wakulima waliuza mahindi.",
    "hi": "किसानों ने बाज़ार में बाज़ार में बाज़ार में मक्का बेचा।",
    "ur": "کسانوں نے کل بازار میں بازار میں بازار میں مکئی بیچی۔",
    "mr": "शेतकऱ्यांनी काल बाजारात मका विकला..........",
}
TRUNCATED = {"sw": "Wakulima.", "hi": "किसान।", "ur": "کسان۔", "mr": "शेतकरी."}


@pytest.mark.parametrize("tgt", ["sw", "hi", "ur", "mr"])
def test_filters_keep_good_and_mark_each_failure(tgt):
    assert translation_drop_reason(EN, GOOD[tgt], tgt) is None
    for source, target in EXAMPLES[tgt]:
        assert translation_drop_reason(source, target, tgt) is None  # the built-in shots pass too
    assert translation_drop_reason(EN, "", tgt) == "empty"
    assert translation_drop_reason(EN, " ... ", tgt) == "empty"
    assert translation_drop_reason(EN, EN.upper(), tgt) == "untranslated"
    assert translation_drop_reason(EN, WRONG_SCRIPT[tgt], tgt) == "wrong_script"
    assert translation_drop_reason(EN, LOOPS[tgt], tgt) == "repetition"
    assert translation_drop_reason(EN, TRUNCATED[tgt], tgt) == "length_ratio"
    assert translation_drop_reason(EN, " ".join([GOOD[tgt]] * 3).replace(".", ",").replace("۔", "،"),
                                   tgt) in ("length_ratio", "repetition")
    assert translation_drop_reason("Yes.", TRUNCATED[tgt], tgt) is None  # short sources: no ratio check


def test_untranslated_overlap_only_for_non_latin_targets():
    mixed = "The farmers sold their maize at the market कल"  # mostly copied English tokens
    assert translation_drop_reason(EN, mixed, "hi") == "untranslated"
    # Swahili shares names and loanwords with English: only a full copy counts
    assert translation_drop_reason("Amina went to Nairobi by bus.", "Amina alienda Nairobi kwa basi.", "sw") is None


def test_script_share_and_repetition_helpers():
    assert script_share(GOOD["hi"], "devanagari") == 1.0
    assert script_share(GOOD["ur"], "arabic") == 1.0
    assert script_share("Hindi: " + GOOD["hi"], "devanagari") > 0.6
    assert script_share("2024 ۔۔ 17", "arabic") == 0.0  # no letters at all
    assert is_repetitive("aaaaaaaa") and not is_repetitive("aaaaaaa")
    assert not is_repetitive(GOOD["sw"])


def test_filter_translations_columns_and_counts():
    ds = Dataset.from_dict({
        "premise": [GOOD["hi"], GOOD["hi"], ""], "premise_en": [EN] * 3,
        "hypothesis": ["किसानों ने मक्का बेचा।", "Farmers sold maize.", "किसानों ने मक्का बेचा।"],
        "hypothesis_en": ["Farmers sold maize.", "Farmers sold maize.", "Farmers sold maize."],
        "teacher_label": [0, 1, 2],
    })
    out = filter_translations(ds, ["premise", "hypothesis"], "hi")
    assert out["translation_drop_reason"] == [None, "untranslated", "empty"]
    assert out["teacher_label"] == [0, 1, 2]
    counts = translation_drop_counts(out)
    assert counts == {"kept": 1, "empty": 1, "untranslated": 1, **{r: 0 for r in REASONS[2:]}}


def test_language_code_table():
    assert lang_code("sw", "nllb") == "swh_Latn" and lang_code("ur", "nllb") == "urd_Arab"
    assert lang_code("mr", "m2m100") == "mr" and lang_code("hi", "marian") == "hi"
    assert lang_code("fra_Latn", "nllb") == "fra_Latn"  # family codes pass through


# ---------------------------------------------------------------- fake backend: stage mechanics


class CountingBackend:
    """Upper-cases text and records every batch it was given."""

    def __init__(self, fail_after: int | None = None):
        self.ref = ModelRef("fake/mt", "fake/mt", "r1")
        self.batches: list[list[str]] = []
        self.fail_after = fail_after

    def translate(self, texts, src, tgt):
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.batches.append(list(texts))
        return [f"{tgt}:{t.upper()}" for t in texts]


def nli_rows() -> Dataset:
    premises = ["A man rides a horse on the beach.", "Two kids play chess.", "A long quiet road in the rain."]
    rows = {"premise": [], "hypothesis": [], "teacher_label": []}
    for p in premises:
        for k, h in enumerate(["It is true.", f"Maybe {len(p)}.", "It is false."]):
            rows["premise"].append(p), rows["hypothesis"].append(h), rows["teacher_label"].append(k)
    return Dataset.from_dict(rows)


def test_pair_consistency_batching_and_order(tmp_path):
    ds = nli_rows()  # 9 rows, 3 premises each shared by 3 hypotheses
    backend = CountingBackend()
    cfg = TranslateConfig(model="fake/mt", tgt="sw", batch_size=2, shard_size=100)
    out = translate(ds, ["premise", "hypothesis"], cfg, tmp_path, backend)
    sent = [t for b in backend.batches for t in b]
    assert len(sent) == len(set(sent)) == 3 + 5  # each premise once; "It is true/false" shared too
    assert all(len(b) <= 2 for b in backend.batches)
    assert out["premise_en"] == ds["premise"] and out["hypothesis_en"] == ds["hypothesis"]
    assert out["premise"] == [f"sw:{p.upper()}" for p in ds["premise"]]
    assert out["hypothesis"] == [f"sw:{h.upper()}" for h in ds["hypothesis"]]
    assert out["teacher_label"] == ds["teacher_label"]
    # rows sharing a source premise share one target premise
    assert len(set(out["premise"])) == 3


def test_resume_reuses_finished_shards(tmp_path):
    ds = Dataset.from_dict({"text": [f"sentence number {i} " + "x" * i for i in range(5)]})
    cfg = TranslateConfig(model="fake/mt", tgt="hi", batch_size=2, shard_size=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        translate(ds, ["text"], cfg, tmp_path, CountingBackend(fail_after=1))  # shard 0 done, shard 1 crashes
    shards = sorted(tmp_path.glob("*/shard-*.parquet"))
    assert [p.name for p in shards] == ["shard-00000.parquet"] and not list(tmp_path.glob("*/*.tmp"))
    stamp = shards[0].stat().st_mtime_ns
    backend = CountingBackend()
    out = translate(ds, ["text"], cfg, tmp_path, backend)
    assert [t for b in backend.batches for t in b] == ds["text"][2:]  # only the unfinished shards
    assert shards[0].stat().st_mtime_ns == stamp and len(list(tmp_path.glob("*/shard-*.parquet"))) == 3
    assert out["text"] == [f"hi:{t.upper()}" for t in ds["text"]]
    again = CountingBackend()
    assert translate(ds, ["text"], cfg, tmp_path, again).to_list() == out.to_list() and not again.batches
    other = translate(ds, ["text"], TranslateConfig(model="fake/mt", tgt="ur", batch_size=2, shard_size=2),
                      tmp_path, CountingBackend())
    assert other["text"][0].startswith("ur:") and len(list(tmp_path.iterdir())) == 2  # new fingerprint


# ---------------------------------------------------------------- tiny real seq2seq models

TEXTS = ["the farmers sold maize", "a man rides a horse", "kids play chess in the park", "rain", "the road is long"]
CHARS = sorted(set("".join(TEXTS)) - {" "})


def _small(cfg_cls, vocab_size, **kw):
    return cfg_cls(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
                   **kw)


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-marian")
    words = sorted(set(" ".join(TEXTS).split()))
    # opus-mt layout: </s> 0, <unk> 1, <pad> last (CTranslate2 drops the pad row when converting)
    vocab = {w: i for i, w in enumerate(["</s>", "<unk>", *words, "<pad>"])}
    pad = len(vocab) - 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    torch.manual_seed(0)
    model = MarianMTModel(_small(MarianConfig, len(vocab), pad_token_id=pad, eos_token_id=0,
                                 decoder_start_token_id=pad, forced_eos_token_id=None))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def nllb_dir(tmp_path_factory):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    folder = tmp_path_factory.mktemp("tiny-nllb")
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "▁", *CHARS])}
    tokenizer = NllbTokenizer(vocab=vocab, merges=[])  # the 200 FLORES codes become special tokens
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(_small(M2M100Config, len(tokenizer), pad_token_id=1, bos_token_id=0,
                                                  eos_token_id=2, decoder_start_token_id=2))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def m2m_dir(tmp_path_factory):
    import sentencepiece as spm
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    folder = tmp_path_factory.mktemp("tiny-m2m")
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 4), model_prefix=str(folder / "sentencepiece"),
                                   vocab_size=len(CHARS) + 4, model_type="char", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.model"))
    pieces = ["<s>", "<pad>", "</s>", "<unk>"] + [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    (folder / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(dict.fromkeys(pieces))}))
    tokenizer = M2M100Tokenizer(str(folder / "vocab.json"), str(folder / "sentencepiece.model"))
    vocab_size = max(tokenizer.get_lang_id(c) for c in ("en", "sw", "hi", "ur", "mr")) + 1  # len() omits codes
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(_small(M2M100Config, vocab_size, pad_token_id=1, bos_token_id=0,
                                                  eos_token_id=2, decoder_start_token_id=2))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def spy_generate(backend) -> list[dict]:
    calls, original = [], backend.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    backend.model.generate = spy
    return calls


@pytest.mark.parametrize("fixture,family,src_code,tgt_code", [
    ("marian_dir", "marian", None, None),
    ("nllb_dir", "nllb", "eng_Latn", "swh_Latn"),
    ("m2m_dir", "m2m100", "__en__", "__sw__"),
])
def test_seq2seq_backend_families(request, tmp_path, fixture, family, src_code, tgt_code):
    folder = request.getfixturevalue(fixture)
    cfg = TranslateConfig(backend="seq2seq", model=str(folder), tgt="sw", batch_size=2, max_new_tokens=6,
                          shard_size=4)
    backend = make_backend(cfg)
    assert isinstance(backend, Seq2SeqBackend) and backend.family == family
    calls = spy_generate(backend)
    ds = Dataset.from_dict({"text": TEXTS, "teacher_label": list(range(5))})
    out = translate(ds, ["text"], cfg, tmp_path, backend)
    assert [c["input_ids"].shape[0] for c in calls] == [2, 2, 1]  # 5 texts, batch 2, shards of 4
    assert out["text_en"] == TEXTS and out["teacher_label"] == list(range(5))
    assert all(isinstance(t, str) for t in out["text"])
    tok = backend.tokenizer
    if family == "marian":
        assert all("forced_bos_token_id" not in c for c in calls)
    else:
        assert all(c["forced_bos_token_id"] == tok.convert_tokens_to_ids(tgt_code) for c in calls)
        assert all((c["input_ids"][:, 0] == tok.convert_tokens_to_ids(src_code)).all() for c in calls)
    # order preserved: each row equals translating that text alone
    assert out["text"] == [backend.translate([t], "en", "sw")[0] for t in TEXTS]


def test_model_family_detection():
    class NllbTokenizerFast: ...
    class Other: ...

    assert model_family("m2m_100", NllbTokenizerFast()) == "nllb"
    assert model_family("m2m_100", Other()) == "m2m100"
    assert model_family("marian", Other()) == "marian"
    with pytest.raises(ValueError, match="unsupported"):
        model_family("t5", Other())


def test_ctranslate2_backend_matches_transformers(marian_dir, tmp_path):
    import ctranslate2
    out_dir = tmp_path / "ct2"
    ctranslate2.converters.TransformersConverter(str(marian_dir)).convert(str(out_dir))
    cfg = TranslateConfig(backend="ctranslate2", model=str(out_dir), tgt="sw", batch_size=2, max_new_tokens=6)
    from hf_crossaug.stages.translate import CTranslate2Backend

    ct2 = CTranslate2Backend(cfg, tokenizer_path=str(marian_dir))
    hf = Seq2SeqBackend(TranslateConfig(model=str(marian_dir), max_new_tokens=6))
    out = translate(Dataset.from_dict({"text": TEXTS}), ["text"], cfg, tmp_path / "w", ct2)
    assert out["text_en"] == TEXTS
    assert out["text"] == hf.translate(TEXTS, "en", "sw")


def test_llm_self_translation_structure(tiny_llm_dir, tmp_path):
    prompt = self_translation_prompt("Two kids play chess.", "en", "ur", 2)
    assert prompt.count("English: ") == 3 and prompt.endswith("English: Two kids play chess.\nUrdu:")
    assert EXAMPLES["ur"][1][1] in prompt and EXAMPLES["ur"][2][1] not in prompt
    with pytest.raises(ValueError, match="built-in examples"):
        self_translation_prompt("x", "en", "de", 2)
    cfg = TranslateConfig(backend="llm", model=str(tiny_llm_dir), tgt="hi", batch_size=2, max_new_tokens=8,
                          n_shots=2)
    backend = make_backend(cfg)
    assert isinstance(backend, LLMBackend)
    ds = nli_rows().select(range(4))
    out = translate(ds, ["premise", "hypothesis"], cfg, tmp_path, backend)
    assert out["premise_en"] == ds["premise"] and out["teacher_label"] == ds["teacher_label"]
    assert all(isinstance(t, str) and "\n" not in t for t in list(out["premise"]) + list(out["hypothesis"]))
    assert len(set(list(out["premise"])[:3])) == 1  # shared premise, one translation
    filtered = filter_translations(out, ["premise", "hypothesis"], "hi")
    assert sum(translation_drop_counts(filtered).values()) == 4


# ---------------------------------------------------------------- the pipeline's translating routes


def test_pipeline_translate_train_route(tiny_llm_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    import hf_crossaug.stages.translate as tr
    from hf_crossaug.stages.clean import CleanConfig
    from hf_crossaug.stages.generate import GenerationConfig
    from hf_crossaug.build.pipeline import recipe_fingerprint, run_pipeline
    from hf_crossaug.config.recipe import Recipe
    from hf_crossaug.stages.teacher import TeacherConfig

    class Reverser(CountingBackend):  # Latin-script "Swahili" that passes the filters unless the input loops
        def translate(self, texts, src, tgt):
            self.batches.append(list(texts))
            return [t[::-1] for t in texts]

    backend = Reverser()
    monkeypatch.setattr(tr, "make_backend", lambda config, *a: backend)
    recipe = Recipe(name="tiny-tt", task="nli", language="sw", route="translate-train", per_class=2,
                    premise_source="source",
                    generation=GenerationConfig(model=str(tiny_llm_dir), n_shots=2, max_new_tokens=10, batch_size=6,
                                                shard_size=6, seed=3),
                    clean=CleanConfig(min_words=1, max_words=200),
                    teacher=TeacherConfig(model=str(tiny_encoder_dir), epochs=1, batch_size=16, seed=5),
                    translate=TranslateConfig(model="fake/mt", tgt="hi", batch_size=4)).validate()
    result = run_pipeline(recipe, tmp_path, log=lambda m: None)
    raw, stats = result.raw, result.stats
    counts = stats["counts"]["translation"]
    assert counts["prompts"] == stats["counts"]["generations"]["kept"] == sum(v for k, v in counts.items()
                                                                              if k != "prompts")
    assert len(raw) == counts["kept"] > 0 and stats["translator"]["backend"] == "seq2seq"
    expected = {"premise", "hypothesis", "premise_en", "hypothesis_en", "teacher_probs", "prompt_label"}
    assert expected <= set(raw.column_names)
    assert list(raw["premise"]) == [p[::-1] for p in raw["premise_en"]]  # tgt follows recipe.language
    sent = [t for b in backend.batches for t in b]
    assert len(sent) == len(set(sent)) and len(set(raw["premise_en"])) <= 2  # each premise translated once
    # a zero-shot recipe's cache key ignores the (unused) translate settings
    zs = Recipe(name="z", task="nli")
    other = Recipe(name="z", task="nli", translate=TranslateConfig(tgt="ur"))
    assert recipe_fingerprint(zs) == recipe_fingerprint(other)

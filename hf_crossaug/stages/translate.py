"""The translate stage: routes English generations into the target language.

Three backends behind one small interface (:class:`TranslationBackend`): a Hugging Face seq2seq MT
model (Marian/opus-mt, NLLB-200, M2M100), the same model converted for CTranslate2 (several times
faster on CPU), or few-shot self-translation by any causal LM. Texts are deduplicated before
translation, so an NLI premise shared by several hypotheses is translated once and every row gets the
same target premise (pair consistency). Work is sharded and resumable through the generate stage's
runner; quality filters live in :mod:`hf_crossaug.stages.filters`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from datasets import Dataset, concatenate_datasets

from ..backends.local import LocalGenerator
from ..config.generate import GenerationConfig
from ..config.translate import BACKENDS, TranslateConfig
from ..utils.fingerprint import content_fingerprint, fingerprint, shard_seed
from ..utils.sharding import run_sharded
from ..models.resolve import GENERATOR_DEFAULT, ModelRef, resolve_model



@dataclass(frozen=True)
class Language:
    name: str  # English name, used in self-translation prompts
    nllb: str  # NLLB-200 / FLORES-200 code
    m2m: str  # M2M100 code
    script: str  # expected script, checked by the wrong-script filter


LANGUAGES: dict[str, Language] = {
    "en": Language("English", "eng_Latn", "en", "latin"),
    "sw": Language("Swahili", "swh_Latn", "sw", "latin"),
    "hi": Language("Hindi", "hin_Deva", "hi", "devanagari"),
    "ur": Language("Urdu", "urd_Arab", "ur", "arabic"),
    "mr": Language("Marathi", "mar_Deva", "mr", "devanagari"),
}


def lang_code(iso: str, family: str) -> str:
    """The code a model family uses for an ISO 639-1 code; unknown codes pass through (``fra_Latn``)."""
    lang = LANGUAGES.get(iso)
    if lang is None or family == "marian":
        return iso
    return lang.nllb if family == "nllb" else lang.m2m


class TranslationBackend(Protocol):
    """Anything that translates a batch; ``ref`` names the model in fingerprints and cards."""

    ref: ModelRef

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]: ...


def model_family(model_type: str | None, tokenizer) -> str:
    """``marian``, ``nllb`` or ``m2m100``: NLLB is an ``m2m_100`` model with an NLLB tokenizer."""
    name = type(tokenizer).__name__.lower()
    if "nllb" in name:
        return "nllb"
    if model_type == "m2m_100" or "m2m100" in name:
        return "m2m100"
    if model_type in (None, "marian"):
        return "marian"
    raise ValueError(f"unsupported seq2seq model type {model_type!r} (expected marian, m2m_100 or NLLB)")


def target_token_id(tokenizer, family: str, tgt: str) -> int | None:
    """Token forced at the start of the output: the target language code (none for Marian)."""
    if family == "marian":
        return None
    code = lang_code(tgt, family)
    if family == "m2m100" and hasattr(tokenizer, "get_lang_id"):
        return tokenizer.get_lang_id(code)
    token_id = tokenizer.convert_tokens_to_ids(code)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no language token for {tgt!r} ({code!r})")
    return token_id


def set_source_language(tokenizer, family: str, src: str) -> None:
    if family != "marian":
        tokenizer.src_lang = lang_code(src, family)


class Seq2SeqBackend:
    """An ``AutoModelForSeq2SeqLM`` with deterministic (greedy or beam) decoding."""

    def __init__(self, config: TranslateConfig, model=None, tokenizer=None):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.config = config
        self.ref = _ref(config)
        rev = config.revision if self.ref.path == self.ref.name else None
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.ref.path, revision=rev)
        self.model = (model or AutoModelForSeq2SeqLM.from_pretrained(self.ref.path, revision=rev)).eval()
        self.family = model_family(self.model.config.model_type, self.tokenizer)

    @torch.inference_mode()
    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        set_source_language(self.tokenizer, self.family, src)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        kwargs = {"max_new_tokens": self.config.max_new_tokens, "num_beams": self.config.num_beams,
                  "do_sample": False}
        forced = target_token_id(self.tokenizer, self.family, tgt)
        if forced is not None:
            kwargs["forced_bos_token_id"] = forced
        out = self.model.generate(**enc, **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


class CTranslate2Backend:
    """A model converted with ``ct2-transformers-converter``; tokenisation by its HF tokenizer."""

    def __init__(self, config: TranslateConfig, tokenizer_path: str | None = None):
        import ctranslate2
        from transformers import AutoTokenizer

        self.config = config
        self.ref = _ref(config)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or self.ref.path)
        self.family = model_family(None, self.tokenizer)
        self.translator = ctranslate2.Translator(self.ref.path, device="cpu", inter_threads=1,
                                                 intra_threads=torch.get_num_threads())

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        set_source_language(self.tokenizer, self.family, src)
        tok = self.tokenizer
        source = [tok.convert_ids_to_tokens(tok(t, truncation=True)["input_ids"]) for t in texts]
        prefix = None if self.family == "marian" else [[lang_code(tgt, self.family)]] * len(texts)
        if self.family == "m2m100":
            prefix = [[tok.convert_ids_to_tokens(target_token_id(tok, "m2m100", tgt))]] * len(texts)
        results = self.translator.translate_batch(source, target_prefix=prefix, beam_size=self.config.num_beams,
                                                  max_decoding_length=self.config.max_new_tokens)
        outs = []
        for r in results:
            tokens = r.hypotheses[0][1:] if prefix else r.hypotheses[0]
            outs.append(tok.decode(tok.convert_tokens_to_ids(tokens), skip_special_tokens=True).strip())
        return outs


# Few-shot pairs for self-translation, written for this package (one per line, short and literal).
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "sw": [
        ("The children are playing in the garden.", "Watoto wanacheza bustanini."),
        ("I will travel to Nairobi tomorrow.", "Nitasafiri kwenda Nairobi kesho."),
        ("The food at this restaurant is very good.", "Chakula katika mgahawa huu ni kizuri sana."),
        ("She is reading a book about history.", "Anasoma kitabu kuhusu historia."),
    ],
    "hi": [
        ("The children are playing in the garden.", "बच्चे बगीचे में खेल रहे हैं।"),
        ("I will travel to Delhi tomorrow.", "मैं कल दिल्ली की यात्रा करूँगा।"),
        ("The food at this restaurant is very good.", "इस रेस्तराँ का खाना बहुत अच्छा है।"),
        ("She is reading a book about history.", "वह इतिहास के बारे में एक किताब पढ़ रही है।"),
    ],
    "ur": [
        ("The children are playing in the garden.", "بچے باغ میں کھیل رہے ہیں۔"),
        ("I will travel to Lahore tomorrow.", "میں کل لاہور کا سفر کروں گا۔"),
        ("The food at this restaurant is very good.", "اس ریستوران کا کھانا بہت اچھا ہے۔"),
        ("She is reading a book about history.", "وہ تاریخ کے بارے میں ایک کتاب پڑھ رہی ہے۔"),
    ],
    "mr": [
        ("The children are playing in the garden.", "मुले बागेत खेळत आहेत."),
        ("I will travel to Mumbai tomorrow.", "मी उद्या मुंबईला प्रवास करणार आहे."),
        ("The food at this restaurant is very good.", "या रेस्टॉरंटमधील जेवण खूप चांगले आहे."),
        ("She is reading a book about history.", "ती इतिहासाबद्दलचे एक पुस्तक वाचत आहे."),
    ],
}


def self_translation_prompt(text: str, src: str, tgt: str, n_shots: int) -> str:
    """``English: ...\\n<Language>: ...`` blocks, then the open slot; a base LM continues the pattern."""
    if src != "en" or tgt not in EXAMPLES:
        raise ValueError(f"self-translation has built-in examples for en -> {', '.join(EXAMPLES)}, not {src} -> {tgt}")
    name = LANGUAGES[tgt].name
    shots = "".join(f"English: {e}\n{name}: {t}\n\n" for e, t in EXAMPLES[tgt][:n_shots])
    return f"Translate from English to {name}.\n\n{shots}English: {text}\n{name}:"


class LLMBackend:
    """Few-shot self-translation with a causal LM (greedy, first line kept): in process, or through an
    OpenAI-compatible server when ``base_url`` is set (the generate stage's backends)."""

    def __init__(self, config: TranslateConfig, generator=None, work_dir: str | Path | None = None):
        self.config = config
        gen_cfg = GenerationConfig(
            model=config.model, revision=config.revision, prompt_style="fewshot", n_shots=config.n_shots,
            temperature=0.0, no_repeat_ngram_size=config.no_repeat_ngram_size, max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size, seed=config.seed, dtype=config.dtype, stop_at_newline=True,
            **({"backend": "endpoint", "base_url": config.base_url, "api_key_env": config.api_key_env}
               if config.base_url else {}))
        if generator is None and config.base_url:
            from ..backends.endpoint import EndpointGenerator

            generator = EndpointGenerator(gen_cfg, Path(work_dir or ".") / "requests")
        self.generator = generator or LocalGenerator(gen_cfg)
        self.ref = backend_ref(config) if config.base_url else self.generator.ref

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        prompts = [self_translation_prompt(t, src, tgt, self.config.n_shots) for t in texts]
        if self.config.base_url:  # greedy: one seed for every request; a failed request translates to ""
            outs, _ = self.generator(prompts, [self.config.seed] * len(prompts))
        else:
            outs, _ = self.generator(prompts)
        return [next((line.strip() for line in (o or "").splitlines() if line.strip()), "") for o in outs]


def _ref(config: TranslateConfig) -> ModelRef:
    if not config.model:
        raise ValueError(f"translate backend {config.backend!r} needs a model (Hub id or folder)")
    return resolve_model(config.model, config.model, config.revision)


def make_backend(config: TranslateConfig, work_dir: str | Path | None = None) -> TranslationBackend:
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown translate backend {config.backend!r}; known: {', '.join(BACKENDS)}")
    if config.backend == "llm":
        return LLMBackend(config, work_dir=work_dir)
    return {"seq2seq": Seq2SeqBackend, "ctranslate2": CTranslate2Backend}[config.backend](config)


def backend_ref(config: TranslateConfig) -> ModelRef:
    """The model's provenance without loading it (a finished run never loads a model)."""
    if config.backend == "llm" and config.base_url:  # a served model: its id and revision, no local files
        return ModelRef(config.model, config.model, config.revision or "served")
    if config.backend == "llm":
        return resolve_model(config.model, GENERATOR_DEFAULT, config.revision)
    return _ref(config)


def translate(ds: Dataset, columns: list[str] | tuple[str, ...], config: TranslateConfig, work_dir: str | Path,
              backend: TranslationBackend | None = None, desc: str = "translate") -> Dataset:
    """Translate ``columns`` in place; the originals move to ``<col>_<src>`` (``premise_en``), every other column
    is kept.

    Unique texts over all ``columns`` are translated once (length-sorted batches) in resumable shards
    under ``work_dir/<desc>-<fingerprint>/``, then mapped back onto the rows.
    """
    texts: dict[str, None] = {}
    for col in columns:
        texts.update(dict.fromkeys(ds[col]))
    unique = Dataset.from_dict({"text": list(texts)})
    ref = backend.ref if backend is not None else backend_ref(config)
    fp = fingerprint(ref.provenance(), config.work_fingerprint(), content_fingerprint(unique))
    folder = Path(work_dir) / f"{desc}-{fp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fingerprint.json").write_text(json.dumps(
        {"model": ref.provenance(), "config": config.work_fingerprint(), "texts": len(unique)}, indent=2))

    def make_runner():
        b = backend if backend is not None else make_backend(config, work_dir)
        return lambda shard, i, bar: _translate_shard(shard, b, config, i, bar)

    done = run_sharded(unique, folder, config.shard_size, make_runner, desc, unit="text")
    table = dict(zip(done["text"], done["translation"]))
    for col in columns:
        translated = [table[t] for t in ds[col]]
        ds = ds.rename_column(col, f"{col}_{config.src}").add_column(col, translated)
    return ds


def _translate_shard(shard: Dataset, backend: TranslationBackend, config: TranslateConfig, index: int,
                     bar) -> Dataset:
    torch.manual_seed(shard_seed(config.seed, index))
    texts = shard["text"]
    order = sorted(range(len(texts)), key=lambda j: (len(texts[j]), j))  # less padding per batch
    out: list[str | None] = [None] * len(texts)
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        for j, t in zip(idx, backend.translate([texts[j] for j in idx], config.src, config.tgt)):
            out[j] = t
        bar.update(len(idx))
    return Dataset.from_dict({"text": list(texts), "translation": out})


def translate_generations(ds: Dataset, columns, config: TranslateConfig, tgt: str, work_dir: str | Path,
                          backend: TranslationBackend | None = None) -> tuple[Dataset, dict, dict]:
    """The pipeline's route step: translate into ``tgt``, filter, keep passing rows.

    Returns the kept rows (``<col>_<src>`` originals alongside), counts per filter reason and the
    translator's provenance for the card. Raises when no row survives, naming the reasons.
    """
    from .filters import filter_translations, translation_drop_counts

    config = replace(config, tgt=tgt)
    ref = backend.ref if backend is not None else backend_ref(config)
    out = filter_translations(translate(ds, columns, config, work_dir, backend), columns, tgt, config.src)
    counts = {"prompts": len(out), **translation_drop_counts(out)}  # "prompts": rows in, as in the card's table
    if counts["kept"] == 0:
        drops = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("prompts", "kept") and v)
        raise ValueError(f"no translation survived the filters: {drops}")
    kept = out.filter(lambda r: r is None, input_columns="translation_drop_reason")
    kept = kept.remove_columns("translation_drop_reason").flatten_indices()
    return kept, counts, {**ref.provenance(), "backend": config.backend}


def code_switched_pairs(ds: Dataset, columns, src: str, tgt: str) -> Dataset:
    """Self-Translate-Train's code-switched pairs: for each translated pair, add the two mixed rows
    (first column in ``src`` + second in ``tgt``, and the reverse), next to the all-``tgt`` row.

    Every row keeps its ``<col>_<src>`` originals, so the teacher labels all three from the same source-language
    pair; ``pair_languages`` says which language each column is in.
    """
    first, second = columns
    base = ds.add_column("pair_languages", [f"{tgt}-{tgt}"] * len(ds))
    mixed = []
    for a, b, tag in ((src, tgt, "cs1"), (tgt, src, "cs2")):
        swap = {first: f"{first}_{src}"} if a == src else {second: f"{second}_{src}"}
        part = ds.map(lambda row: {**{c: row[en] for c, en in swap.items()},
                                   "id": f"{row['id']}-{tag}", "pair_languages": f"{a}-{b}"},
                      desc=f"code-switch {a}-{b}")
        mixed.append(part.select_columns(base.column_names).cast(base.features))
    return concatenate_datasets([base, *mixed])

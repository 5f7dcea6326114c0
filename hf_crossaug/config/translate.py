"""Configuration of the translate stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .base import Problem, Validated, at_least, one_of
from .generate import DTYPES

BACKENDS = ("seq2seq", "ctranslate2", "llm")


@dataclass
class TranslateConfig(Validated):
    """How generations are translated; every field except ``model`` is part of the work fingerprint."""

    backend: str = "seq2seq"  # "seq2seq" | "ctranslate2" | "llm"
    model: str | None = None  # Hub id or folder (CTranslate2: a converted folder holding the HF tokenizer too)
    revision: str | None = None
    src: str = "en"
    tgt: str = "sw"
    batch_size: int = 16
    max_new_tokens: int = 128
    num_beams: int = 1
    shard_size: int = 256
    seed: int = 42
    n_shots: int = 4  # llm only: built-in example pairs in the prompt
    no_repeat_ngram_size: int = 0  # llm only, on the continuation: greedy base LMs loop ("kazi kazi kazi ...")
    dtype: str = "auto"  # llm only; as generation.dtype
    # llm only: translate through an OpenAI-compatible server serving ``model`` (as generation.backend: endpoint)
    base_url: str | list[str] | None = None
    api_key_env: str | None = None  # NAME of the environment variable holding the server's key

    def problems(self) -> list[Problem]:
        return [one_of(self, "backend", BACKENDS), one_of(self, "dtype", DTYPES),
                *at_least(self, 1, "batch_size", "max_new_tokens", "num_beams", "shard_size"),
                *at_least(self, 0, "n_shots", "no_repeat_ngram_size", "seed"),
                (not self.base_url or (self.backend == "llm" and bool(self.model)), "base_url",
                 "needs backend 'llm' and the served model id in 'model'")]

    def work_fingerprint(self) -> dict:
        data = asdict(self)
        data.pop("model"), data.pop("revision")  # the resolved model's provenance stands in for them
        data.pop("base_url"), data.pop("api_key_env")  # where answers come from, not what they are
        return data

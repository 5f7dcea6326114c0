"""Sentence embeddings for div-k and the diversity score, from the teacher's encoder by default.

The embedded multilingual-e5-small is both the teacher's base and a sentence embedder, so one cached
conversion serves both roles; any Hub id or folder of an encoder works too (mean pooling, e5 prefix).
"""

from __future__ import annotations

import numpy as np

from .embedded.e5 import mean_pool_embed
from .resolve import ENCODER_DEFAULT, resolve_model


class SentenceEmbedder:
    """Loads an encoder once on first call; ``embedder(texts)`` -> L2-normalised float32 array."""

    def __init__(self, model: str | None = None, revision: str | None = None, prefix: str = "query: ",
                 batch_size: int = 64):
        self.ref = resolve_model(model, ENCODER_DEFAULT, revision)
        self.prefix, self.batch_size = prefix, batch_size
        self._model = self._tokenizer = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.ref.path)
            self._model = AutoModel.from_pretrained(self.ref.path, use_safetensors=True).eval()
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        vecs = mean_pool_embed(self._model, self._tokenizer, [texts[i] for i in order], self.prefix, self.batch_size)
        out = np.empty_like(vecs)
        out[order] = vecs
        return out

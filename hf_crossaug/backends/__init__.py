"""Generators: what turns a batch of prompts into continuations. ``local`` runs a causal LM in this process
with transformers; ``endpoint`` sends requests to an OpenAI-compatible server (vLLM, llama.cpp,
``transformers serve``, Inference Endpoints), crash-safe through a request cache in the work folder; ``ray``
sends them as Ray Data jobs. All three are a `Generator`, so the generate stage calls them alike."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Generator(Protocol):
    """Prompts and seeds in, texts (None for a request that failed for good) and token counts out, plus what a
    card records about the model (``provenance()``). ``progress``: a tqdm bar to advance; ``field``: ask a server
    for JSON holding that field (structured output, the endpoint backend only)."""

    def __call__(self, prompts: list[str], seeds: list[int] | None = None, progress=None,
                 field: str | None = None) -> tuple[list[str | None], list[int]]: ...

    def provenance(self) -> dict: ...

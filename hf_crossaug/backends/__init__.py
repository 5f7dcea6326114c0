"""Generators: what turns a batch of prompts into continuations. ``local`` runs a causal LM in this process
with transformers; ``endpoint`` sends requests to an OpenAI-compatible server (vLLM, llama.cpp,
``transformers serve``, Inference Endpoints), crash-safe through a request cache in the work folder."""

"""Configuration of the generate stage: which model answers (in process or behind a server) and how it samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..utils.fingerprint import file_sha256
from .base import Problem, Validated, at_least, one_of

BACKENDS = ("local", "endpoint", "ray")  # in process, an OpenAI-compatible server, or servers driven by Ray Data
PROMPT_STYLES = ("fewshot", "instruct")
DTYPES = ("auto", "float32", "bfloat16")  # auto: bfloat16 where computed natively, else float32


@dataclass
class GenerationConfig(Validated):
    """Sampling and batching for the generate stage; every sampling field is part of the fingerprint.

    ``backend: endpoint`` sends each prompt to an OpenAI-compatible server (vLLM, llama.cpp,
    ``transformers serve``, an Inference Endpoint): ``model`` is then the served model id, ``base_url``
    one URL or a list of replicas, and ``api_key_env`` the *name* of the environment variable holding the
    key (the key itself is never stored). The connection fields are not part of any cache key: the same
    recipe against another replica of the same model reuses every finished answer. ``backend: ray`` sends
    the same requests as a Ray Data job (``ray.data.llm``, the optional ``[ray]`` extra) for many nodes.
    """

    model: str | None = None  # None -> embedded SmolLM2-135M-Instruct; else a Hub id or folder (endpoint: served id)
    revision: str | None = None
    prompt_style: str = "fewshot"  # "fewshot" completion or "instruct" (chat template)
    n_shots: int = 4
    temperature: float = 0.8
    top_p: float = 0.9
    # Applied to the continuation only: over the prompt it would ban the few-shot scaffolding.
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = 40
    batch_size: int = 16
    shard_size: int = 64
    seed: int = 42
    dtype: str = "auto"  # local: bfloat16 where the CPU computes it natively, else float32; or either name
    stop_at_newline: bool = True  # only the first line is kept, so stop once every row has one
    # a peft LoRA adapter folder merged into the model (DAFTT's fine-tuned generator); None = the base model
    adapter: str | None = None
    backend: str = "local"
    base_url: str | list[str] | None = None  # endpoint: e.g. http://127.0.0.1:8000/v1, or a list of replicas
    api_key_env: str | None = None  # endpoint: NAME of the environment variable holding the API key
    max_in_flight: int = 16  # endpoint: concurrent requests over all replicas
    request_timeout: float = 120.0  # endpoint: seconds per try of a request before it is retried
    # endpoint: seconds a request may take over all its tries and backoffs, from its first send; past it the
    # request fails ("deadline"), so a server that never answers stops a build in minutes, not hours
    request_deadline: float = 300.0
    max_retries: int = 6  # endpoint: per request, on 429 / 5xx / timeouts / dropped connections
    # endpoint + instruct: ask for JSON holding the generated field (response_format json_schema); a server
    # that refuses it gets plain text (said once); an answer that is not that JSON is dropped as bad_json
    structured_output: bool = False
    max_failed_fraction: float = 0.05  # endpoint: the build stops when more requests than this fail

    def problems(self) -> list[Problem]:
        checks = [one_of(self, "prompt_style", PROMPT_STYLES), one_of(self, "dtype", DTYPES),
                  one_of(self, "backend", BACKENDS),
                  *at_least(self, 0, "n_shots", "temperature", "no_repeat_ngram_size", "max_retries", "seed"),
                  *at_least(self, 1, "max_new_tokens", "batch_size", "shard_size", "max_in_flight"),
                  (0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p!r}"),
                  (self.request_timeout > 0, "request_timeout", "must be > 0"),
                  (self.request_deadline >= self.request_timeout, "request_deadline",
                   f"must be >= request_timeout ({self.request_timeout}), got {self.request_deadline!r}"),
                  (0 <= self.max_failed_fraction <= 1, "max_failed_fraction", "must be in [0, 1]"),
                  (not self.structured_output or (self.backend == "endpoint" and self.prompt_style == "instruct"),
                   "structured_output", "needs backend 'endpoint' and prompt_style 'instruct'")]
        if self.backend in ("endpoint", "ray"):
            urls = self.base_urls()
            checks += [(bool(urls), "base_url", "must name the server (e.g. http://127.0.0.1:8000/v1) for backend "
                        f"{self.backend!r}"),
                       (all(u.startswith(("http://", "https://")) for u in urls), "base_url",
                        f"must be http(s) URLs, got {urls}"),
                       (bool(self.model), "model", f"must name the served model id for backend {self.backend!r}"),
                       (self.adapter is None, "adapter", "is merged in process; serve the tuned model instead")]
        return checks

    def base_urls(self) -> list[str]:
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    def sampling_fingerprint(self) -> dict:
        keys = ("prompt_style", "n_shots", "temperature", "top_p", "no_repeat_ngram_size",
                "max_new_tokens", "seed", "dtype", "stop_at_newline", "batch_size", "shard_size")
        out = {k: getattr(self, k) for k in keys}
        if self.adapter:  # the adapter's content, not its path, decides what is generated
            out["adapter_sha256"] = adapter_sha256(self.adapter)
        if self.structured_output:  # what is asked for changes what comes back
            out["structured_output"] = True
        if self.backend != "local":  # the server decides the numerics; dtype and batching do not apply
            out = {k: v for k, v in out.items() if k not in ("dtype", "batch_size")} | {"backend": self.backend}
        return out


def adapter_sha256(folder: str | Path) -> str:
    path = Path(folder) / "adapter_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"LoRA adapter folder {folder} has no adapter_model.safetensors")
    return file_sha256(path)

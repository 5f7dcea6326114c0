"""What a server is asked: the request body every server backend sends (endpoint, Ray, and the benchmarks' bare
loop), so a cached answer means the same request whichever backend sent it."""

from __future__ import annotations

from . import structured
from ..utils.fingerprint import shard_seed


def default_seeds(config, prompts: list[str], seeds: list[int] | None) -> list[int]:
    """One seed per prompt: the caller's, else derived from (config seed, position) as the generate stage does."""
    return list(seeds) if seeds is not None else [shard_seed(config.seed, i) for i in range(len(prompts))]


def request_body(config, model_id: str, prompt: str, seed: int, field: str | None = None) -> dict:
    """The request JSON every server backend sends (endpoint, Ray, the benchmarks' bare loop); it is also what the
    request cache key hashes, so it holds every sampling choice. ``field``: ask for JSON holding it."""
    body = {"model": model_id, "max_tokens": config.max_new_tokens, "temperature": config.temperature,
            "seed": int(seed)}
    if config.temperature > 0:  # greedy ignores top_p, as the local backend does
        body["top_p"] = config.top_p
    if config.prompt_style == "instruct":
        body["messages"] = [{"role": "user", "content": prompt}]
        if field:
            body[structured.FORMAT_KEY] = structured.response_format(field)
    else:
        body["prompt"] = prompt
        if config.stop_at_newline:
            body["stop"] = ["\n"]
    return body


def parse_answer(response) -> dict:
    """The served text as returned (nothing stripped) and its token counts; raises on a malformed reply."""
    choice = response.choices[0]
    text = choice.message.content if hasattr(choice, "message") else choice.text
    if text is None:
        text = ""
    usage = getattr(response, "usage", None)
    return {"text": text, "finish_reason": choice.finish_reason,
            "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
            "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0)}

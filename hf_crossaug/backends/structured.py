"""Structured output for the endpoint backend: ask an instruct model for JSON holding the generated field.

Why: a chat model asked for "a sentence" often wraps it ("Sure! Here is one: ..."), which the clean stage
then drops as wrong_format or, worse, keeps. A JSON schema (OpenAI ``response_format``) makes servers with
guided decoding (vLLM, llama.cpp, most providers) return exactly the field. Servers that refuse the
parameter get plain text instead (the caller says so once); an answer that is not the JSON asked for is
dropped under its own reason, ``bad_json``, so a server that ignores the schema shows in the card.
"""

from __future__ import annotations

import json

from .retry import RequestFailed

FORMAT_KEY = "response_format"
REFUSED = ("http_400", "http_422")  # how servers without structured output answer a request that asks for it


def response_format(field: str) -> dict:
    """A strict JSON schema: one object with the one string ``field``."""
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field],
              "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": field, "schema": schema, "strict": True}}


def refused(failure: RequestFailed, sent: dict) -> bool:
    """The server turned down a request because it asked for structured output (or so it looks: a 400 to a
    request with ``response_format``; resent as plain text, a 400 for another cause comes back again)."""
    return FORMAT_KEY in sent and failure.reason in REFUSED


def plain(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != FORMAT_KEY}


def unwrap(answer: dict, field: str | None) -> tuple[str | None, str | None]:
    """``(text, None)``, or ``(None, "bad_json")`` when a JSON answer does not hold ``field`` as a string."""
    if answer.get("format") != "json" or not field:
        return answer["text"], None
    try:
        value = json.loads(answer["text"])[field]
    except (ValueError, TypeError, KeyError):
        return None, "bad_json"
    return (value, None) if isinstance(value, str) else (None, "bad_json")

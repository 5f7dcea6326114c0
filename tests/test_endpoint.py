"""The endpoint backend against a real ``transformers serve`` behind a fault-injecting proxy.

Greedy decoding (temperature 0) makes every answer a function of its prompt alone, so a run broken by
faults, a dead replica or ``kill -9`` must return exactly what plain sequential requests return.
Proxy counters prove what was (not) sent. Pure logic (backoff, Retry-After, dispatch, cache) needs no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hf_crossaug.backends.endpoint import (
    EndpointGenerator, Replica, backoff_delay, parse_retry_after, pick_replica, redact_url,
)
from hf_crossaug.backends.request_cache import CACHE_FILE, RequestCache, key_for
from servers import free_port

TOPICS = ["cats", "rain", "trains", "bread", "music", "the sea", "dogs", "snow", "a garden", "the moon",
          "coffee", "a river"]
PROMPTS = [f"Here is a short sentence about {t}.\nSentence:" for t in TOPICS]
SEEDS = list(range(len(PROMPTS)))
COMPLETIONS = "/v1/completions"
FAST = dict(backoff_base=0.05, cooloff=0.3)  # test-sized waits; production defaults are 0.5 s / 2 s
MEASURED: dict[str, float] = {}  # set by the reference fixture


def make_config(base_url, **overrides) -> SimpleNamespace:
    cfg = dict(model=None, revision=None, prompt_style="fewshot", temperature=0.0, top_p=0.9, max_new_tokens=8,
               seed=0, stop_at_newline=True, backend="endpoint", base_url=base_url, api_key_env=None,
               max_in_flight=2, request_timeout=120.0, request_deadline=600.0, max_retries=6,
               max_failed_fraction=0.05)
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


def unfinished_counts(message: str) -> tuple[int, int]:
    """``(sent but unanswered, not sent)`` from a failure line of a run that stopped early."""
    tail = re.search(r", (?:(\d+) sent but unanswered)?(?: and )?(?:(\d+) not sent)? as the run stopped early", message)
    return (int(tail[1] or 0), int(tail[2] or 0)) if tail else (0, 0)


def cached_keys(cache_dir: Path) -> set[str]:
    """Keys committed so far, read by a separate connection (as after a crash)."""
    if not (cache_dir / CACHE_FILE).exists():
        return set()
    with contextlib.closing(sqlite3.connect(cache_dir / CACHE_FILE)) as db:
        try:
            return {k for (k,) in db.execute("SELECT key FROM answers")}
        except sqlite3.OperationalError:  # the writer has created the file but not yet the table
            return set()


@pytest.fixture(scope="session")
def reference(served_model) -> list[str]:
    """Answers of plain sequential requests, one at a time, without the generator."""
    import openai

    client = openai.OpenAI(base_url=served_model.url, api_key="EMPTY", max_retries=0, timeout=120)
    out, start = [], time.monotonic()
    for p, s in zip(PROMPTS, SEEDS):
        reply = client.completions.create(model=served_model.model_id, prompt=p, max_tokens=8, temperature=0.0,
                                          seed=s, stop=["\n"])
        out.append(reply.choices[0].text)
    client.close()
    # A timeout only a hung request reaches, sized to this machine's load: a server that is kept
    # waiting past it still generates the abandoned answer, so a too-short timeout snowballs.
    MEASURED["hang_timeout"] = max(3.0, 8 * (time.monotonic() - start) / len(PROMPTS))
    assert len(set(out)) > len(out) // 2, f"prompts too alike to check the order of answers: {out}"
    return out


# ----- pure logic -----

def test_retry_after_parsing():
    now = 1_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def test_backoff_is_full_jitter_under_a_growing_cap():
    rng = random.Random(0)
    for attempt, bound in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0)]:
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(300)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.8 * bound and min(delays) < 0.2 * bound  # spread over the whole range


def test_least_loaded_dispatch_skips_replicas_cooling_off():
    a, b, c = (Replica(u, u) for u in "abc")
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 1
    b.sent, c.sent = 5, 2
    assert pick_replica([a, b, c], now=10.0) == (c, 0.0)  # least loaded; tie -> fewest sent
    c.down_until = 12.0
    assert pick_replica([a, b, c], now=10.0) == (b, 0.0)
    a.down_until, b.down_until = 15.0, 11.0
    replica, wait = pick_replica([a, b, c], now=10.0)
    assert replica is b and wait == pytest.approx(1.0)


def test_cache_key_is_content_not_url_and_answers_persist(tmp_path):
    body = {"model": "m", "prompt": "p", "max_tokens": 8, "temperature": 0.0, "seed": 1}
    assert key_for("m", None, body) == key_for("m", None, dict(reversed(body.items())))
    assert key_for("m", None, body) != key_for("m", "rev2", body)
    assert key_for("m", None, body) != key_for("m", None, {**body, "seed": 2})
    keys = [key_for("m", None, {**body, "seed": i}) for i in range(1200)]
    with RequestCache(tmp_path) as cache:
        for i, k in enumerate(keys[:700]):
            cache.put(k, {"text": f"t{i}"})
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with RequestCache(tmp_path) as cache:  # reopened: committed rows are there
        found = cache.get_many(keys)
        assert len(found) == 700 and found[keys[699]] == {"text": "t699"} and cache.get(keys[700]) is None


def test_redact_url_drops_credentials_and_query():
    assert redact_url("https://user:pw@api.example.com:8443/v1/?key=abc") == "https://api.example.com:8443/v1"


def test_missing_key_variable_and_unreachable_server_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSAUG_TEST_KEY", raising=False)
    with pytest.raises(RuntimeError, match="CROSSAUG_TEST_KEY.*not set"):
        EndpointGenerator(make_config("http://127.0.0.1:1/v1", api_key_env="CROSSAUG_TEST_KEY"), tmp_path)
    monkeypatch.setenv("CROSSAUG_TEST_KEY", "sk-live-SECRET")
    port = free_port()
    gen = EndpointGenerator(make_config(f"http://user:s3cret@127.0.0.1:{port}/v1", api_key_env="CROSSAUG_TEST_KEY",
                                        request_timeout=5.0), tmp_path)
    with pytest.raises(RuntimeError) as err:
        gen(PROMPTS[:2], SEEDS[:2])
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/v1" in message and "unreachable" in message
    assert "\n" not in message and "s3cret" not in message and "SECRET" not in message
    gen.close()


# ----- against the real server -----

@pytest.mark.slow  # a real transformers serve
def test_answers_in_order_and_rerun_sends_nothing(served_model, reference, make_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSAUG_TEST_KEY", "sk-test-123")
    first, second = make_proxy(), make_proxy()
    gen = EndpointGenerator(make_config(first.url, max_in_flight=3, api_key_env="CROSSAUG_TEST_KEY"), tmp_path)
    texts, tokens = gen(PROMPTS, SEEDS)
    assert texts == reference
    assert all(0 < n <= 8 for n in tokens) and sum(tokens) == gen.stats["completion_tokens"]
    assert first.forwarded[COMPLETIONS] == len(PROMPTS) == gen.stats["requests"] == gen.stats["answered"]
    assert {e["auth"] for e in first.log} == {"Bearer sk-test-123"}  # the key is sent, never recorded
    prov = gen.provenance()
    assert prov["model"] == served_model.model_id and "sk-test" not in json.dumps(prov)
    assert "127.0.0.1" not in json.dumps(prov)
    gen.close()

    # Another URL (a different proxy), a fresh generator, called from a thread and from a running loop:
    # the cache key ignores the URL, so nothing is generated again.
    again = EndpointGenerator(make_config(second.url), tmp_path)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("thread", again(PROMPTS, SEEDS)))
    thread.start()
    thread.join(60)

    async def in_loop():
        return again(PROMPTS, SEEDS)

    out["loop"] = asyncio.run(in_loop())
    assert out["thread"] == out["loop"] == (texts, tokens)
    assert second.received[COMPLETIONS] == 0 and again.stats["cache_hits"] == 2 * len(PROMPTS)
    again.close()


@pytest.mark.slow  # a real transformers serve
def test_instruct_style_uses_chat_completions(make_proxy, tmp_path):
    proxy = make_proxy()
    gen = EndpointGenerator(make_config(proxy.url, prompt_style="instruct"), tmp_path)
    prompts = ["Name a fruit.", "Name a colour."]
    texts, tokens = gen(prompts, [0, 1])
    assert proxy.forwarded["/v1/chat/completions"] == 2 and proxy.forwarded[COMPLETIONS] == 0
    assert all(isinstance(t, str) and t.strip() for t in texts) and all(n > 0 for n in tokens)
    sent = sorted(proxy.bodies(), key=lambda b: b["messages"][0]["content"])
    assert [b["messages"] for b in sent] == [[{"role": "user", "content": p}] for p in sorted(prompts)]
    assert not any("stop" in b or "prompt" in b for b in sent)
    gen.close()


@pytest.mark.slow  # a real transformers serve
def test_faults_are_retried_counted_and_lose_nothing(reference, make_proxy, tmp_path):
    proxy = make_proxy()
    proxy.push("429:1", "500", "drop", "hang")
    gen = EndpointGenerator(make_config(proxy.url, request_timeout=MEASURED["hang_timeout"]), tmp_path, **FAST)
    texts, _ = gen(PROMPTS[:8], SEEDS[:8])
    assert texts == reference[:8]
    assert gen.stats["retries"] == {"429": 1, "5xx": 1, "connection": 1, "timeout": 1, "bad_response": 0}
    assert gen.stats["failures"] == {} and gen.stats["answered"] == 8 and gen.stats["requests"] == 12
    assert proxy.delivered[COMPLETIONS] == 8
    limited = next(e for e in proxy.log if e["fault"].startswith("429"))
    retry = next(e for e in proxy.log if e["t"] > limited["t"] and e["body"] == limited["body"])
    assert retry["t"] - limited["t"] >= 0.95  # Retry-After: 1 was honoured
    gen.close()


@pytest.mark.slow  # a real transformers serve
def test_client_errors_are_final_and_within_the_limit_yield_none(reference, make_proxy, tmp_path):
    proxy = make_proxy()
    proxy.push("pass", "400")
    gen = EndpointGenerator(make_config(proxy.url, max_in_flight=1, max_failed_fraction=0.5), tmp_path, **FAST)
    texts, tokens = gen(PROMPTS[:4], SEEDS[:4])
    assert texts[1] is None and tokens[1] == 0
    assert [t for i, t in enumerate(texts) if i != 1] == [t for i, t in enumerate(reference[:4]) if i != 1]
    assert gen.stats["failures"] == {"http_400": 1} and sum(gen.stats["retries"].values()) == 0
    assert proxy.received[COMPLETIONS] == 4  # the 400 was not retried
    gen.close()


@pytest.mark.slow  # a real transformers serve
def test_too_many_failures_raise_one_line_and_keep_finished_answers(reference, make_proxy, tmp_path):
    proxy = make_proxy()
    proxy.push("pass", "pass", "500")
    gen = EndpointGenerator(make_config(proxy.url, max_in_flight=1, max_retries=0), tmp_path, **FAST)
    with pytest.raises(RuntimeError) as err:
        gen(PROMPTS[:8], SEEDS[:8])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("generation: 1 of 8 requests failed (5xx 1")
    assert "max_failed_fraction 0.05" in message and str(gen.cache.path) in message and "rerun" in message
    assert len(cached_keys(tmp_path)) == 2
    gen.close()

    proxy.reset_counts()
    rerun = EndpointGenerator(make_config(proxy.url), tmp_path)
    assert rerun(PROMPTS[:8], SEEDS[:8])[0] == reference[:8]
    assert proxy.received[COMPLETIONS] == 6 and rerun.stats["cache_hits"] == 2
    rerun.close()


@pytest.mark.slow  # a real transformers serve
def test_a_dead_server_stops_the_run_after_a_streak_of_failures(make_proxy, tmp_path):
    proxy = make_proxy()
    proxy.push("pass", "die")
    config = make_config(proxy.url, max_in_flight=1, max_retries=1, max_failed_fraction=0.9)
    gen = EndpointGenerator(config, tmp_path, backoff_base=0.01, backoff_cap=0.2, cooloff=0.05)
    with pytest.raises(RuntimeError) as err:
        gen(PROMPTS, SEEDS)
    message = str(err.value)
    assert "\n" not in message and message.startswith("generation: 8 of 12 requests failed (connection 8)")
    unanswered, unsent = unfinished_counts(message)  # tried once and waiting to retry / never tried
    assert unanswered + unsent == 3 and "the last 8 requests all failed" in message
    assert gen.stats["retries"]["connection"] == 8 + unanswered and len(cached_keys(tmp_path)) == 1
    gen.close()


@pytest.mark.slow  # a real transformers serve
def test_a_replica_dying_mid_run_fails_over_without_loss_or_duplicates(reference, make_proxy, tmp_path):
    doomed, healthy = make_proxy(delay=0.2), make_proxy()
    doomed.push("pass", "pass", "die")
    gen = EndpointGenerator(make_config([doomed.url, healthy.url], max_in_flight=4), tmp_path, **FAST)
    texts, _ = gen(PROMPTS, SEEDS)
    assert texts == reference
    assert doomed.dead and doomed.delivered[COMPLETIONS] >= 1 and healthy.delivered[COMPLETIONS] >= 1
    assert doomed.delivered[COMPLETIONS] + healthy.delivered[COMPLETIONS] == len(PROMPTS)  # each answered once
    assert gen.stats["answered"] == len(cached_keys(tmp_path)) == len(PROMPTS)
    assert gen.stats["retries"]["connection"] >= 1 and gen.stats["failures"] == {}
    gen.close()


CHILD = """
import json, os, sys
from types import SimpleNamespace
from hf_crossaug.backends.endpoint import EndpointGenerator
args = json.loads(os.environ["CROSSAUG_CHILD"])
gen = EndpointGenerator(SimpleNamespace(**args["config"]), args["cache_dir"])
gen(args["prompts"], args["seeds"])
"""


@pytest.mark.slow  # a real transformers serve
def test_kill_9_mid_run_then_rerun_sends_no_finished_request_again(reference, make_proxy, tmp_path):
    slow = make_proxy(delay=0.4)
    config = vars(make_config(slow.url))
    env = {**os.environ, "CROSSAUG_CHILD": json.dumps(
        {"config": config, "cache_dir": str(tmp_path), "prompts": PROMPTS, "seeds": SEEDS})}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while len(cached_keys(tmp_path)) < 4:
            assert child.poll() is None, f"child ended early: {child.stderr.read().decode()[-500:]}"
            assert time.monotonic() < deadline, "no answers landed in the cache within 90 s"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stderr.close()
    time.sleep(0.5)  # let the proxy finish reading what the child sent before it died
    finished = cached_keys(tmp_path)
    assert 4 <= len(finished) < len(PROMPTS)

    slow.reset_counts()
    gen = EndpointGenerator(make_config(slow.url), tmp_path)
    texts, _ = gen(PROMPTS, SEEDS)
    assert texts == reference
    resent = {key_for(b["model"], None, b) for b in slow.bodies()}
    assert not resent & finished  # nothing answered before the kill went out again
    assert slow.received[COMPLETIONS] == len(PROMPTS) - len(finished) == gen.stats["requests"]
    gen.close()

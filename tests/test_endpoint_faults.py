"""The endpoint backend under transient faults, hung servers and queueing servers, against the fast in-process
OpenAI stand-in (tests/openai_standin.py) behind the fault proxy; no model, so hundreds of requests take seconds.

A transient fault must cost the request that met it, not the run: throughput under 10% dropped connections
stays within 2x of a clean run measured in the same test, and the proxy's counts prove nothing was answered
twice. Breaker, retry delays and the adaptive limit are pure logic and are tested without a server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import statistics
import time

import pytest
from datasets import Dataset

from hf_crossaug.backends.concurrency import AdaptiveLimit, keepalive_pools
from hf_crossaug.backends.endpoint import EndpointGenerator, Replica, pick_replica
from hf_crossaug.backends.retry import Breaker, RequestFailed, retry_delay
from hf_crossaug.config.clean import CleanConfig
from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.stages.clean import clean, drop_counts
from hf_crossaug.stages.generate import generate
from hf_crossaug.utils.fingerprint import shard_seed
from openai_standin import MODEL_ID, standin_text
from test_endpoint import COMPLETIONS, make_config, unfinished_counts

FAST = dict(backoff_base=0.05, backoff_cap=1.0, cooloff=0.3)
CHAT = "/v1/chat/completions"


class Bar:
    """Records what the generator does to a tqdm bar."""

    def __init__(self):
        self.n, self.postfixes = 0, []

    def update(self, n):
        self.n += n

    def set_postfix(self, **kwargs):
        self.postfixes.append(kwargs)


def prompts_and_seeds(n: int, offset: int = 0):
    seeds = list(range(offset, offset + n))
    return [f"Write sentence number {i}.\nSentence:" for i in seeds], seeds


# ----- pure logic -----

def test_breaker_opens_on_a_streak_not_on_sparse_faults_and_probes_half_open():
    breaker = Breaker(cooloff=1.0, cap=4.0, threshold=5, window=20, max_rate=0.5)
    for i in range(200):  # one failure in ten, spread out: never opens
        assert not breaker.record(i % 10 == 0, now=float(i))
    assert not breaker.is_open and breaker.wait(0.0) == 0.0
    assert [breaker.record(True, now=300.0) for _ in range(5)] == [False] * 4 + [True]
    assert breaker.wait(300.5) == pytest.approx(0.5)
    assert breaker.wait(301.0) == 0.0  # half-open: one probe may go
    assert breaker.on_send()  # the probe
    assert breaker.wait(301.0) is None  # ... and only one
    assert not breaker.record(True, now=301.2)  # a request sent before it opened times out: says nothing of now
    assert not breaker.record(False, now=301.3) and breaker.wait(301.3) is None  # ... nor does a late answer
    assert breaker.record(True, now=301.5, probe=True)  # the probe failed: open again, twice as long
    assert breaker.wait(301.5) == pytest.approx(2.0)
    assert breaker.wait(303.5) == 0.0
    assert breaker.on_send()
    assert not breaker.record(False, now=303.6, probe=True) and not breaker.is_open  # the probe succeeded: closed
    opened = [breaker.record(i % 3 != 2, now=400.0) for i in range(12)]  # 2 of 3 fail, never 5 in a row
    assert opened.count(True) == 1 and breaker.is_open and breaker.trips == 3


def test_a_bursts_failures_in_a_row_do_not_trip_while_more_were_in_flight():
    """Errors come back before answers: 5 failures of a burst of 64 arrive in a row and say nothing of the
    replica; a streak longer than what is in flight does (a dead server fails them all)."""
    breaker = Breaker(threshold=5, window=20)
    for i in range(30):
        breaker.record(False, now=float(i), in_flight=64)
    assert not any(breaker.record(True, now=40.0, in_flight=64 - i) for i in range(8))
    assert not breaker.is_open
    for i in range(20):
        breaker.record(False, now=41.0, in_flight=60)
    assert [breaker.record(True, now=42.0, in_flight=3) for _ in range(5)] == [False] * 4 + [True]


def test_dispatch_skips_replicas_out_of_rotation_and_waits_for_a_probe():
    a, b = Replica("a", "a", breaker=Breaker(cooloff=1.0)), Replica("b", "b", breaker=Breaker(cooloff=1.0))
    for _ in range(5):
        a.breaker.record(True, now=10.0)
    assert pick_replica([a, b], now=10.0) == (b, 0.0)
    for _ in range(5):
        b.breaker.record(True, now=10.5)
    replica, wait = pick_replica([a, b], now=10.2)
    assert replica is a and wait == pytest.approx(0.8)
    a.breaker.on_send()  # a's probe is out: look again in a little while, or when b is back
    replica, wait = pick_replica([a, b], now=11.1)
    assert replica is a and 0 < wait <= 0.4
    replica, wait = pick_replica([a, b], now=11.4)
    assert replica is b and wait == pytest.approx(0.1)


def test_first_dropped_connection_retries_at_once_later_ones_back_off():
    drop = RequestFailed("connection")
    assert retry_delay(drop, attempt=0, connection_failures=1, base=1.0, cap=30.0) == 0.0
    later = [retry_delay(drop, attempt=3, connection_failures=2, base=1.0, cap=30.0) for _ in range(50)]
    assert max(later) > 1.0
    assert retry_delay(RequestFailed("429", retry_after=2.5), 0, 0, 1.0, 30.0) == 2.5
    assert retry_delay(RequestFailed("5xx"), 0, 0, 1.0, 30.0) <= 1.0


def test_adaptive_limit_slow_starts_shrinks_when_latency_climbs_and_grows_back():
    limit = AdaptiveLimit(cap=64, start=4)
    for _ in range(8 + 8 + 16):
        limit.on_latency(0.1)
    assert limit.level == 32 and limit.slow_start  # 4 -> 8 -> 16 -> 32 while latency holds
    for _ in range(4 * 32):
        limit.on_latency(0.5)  # the server queues: latency 5x the best seen
    assert limit.level < 16 and limit.decreases >= 2 and not limit.slow_start
    low = limit.level
    for _ in range(400):
        limit.on_latency(0.1)
    assert limit.level > low + 5  # additive increase once latency is back
    level, decreases = limit.level, limit.decreases
    limit.in_flight = level
    for _ in range(level):  # a burst of 429s: every request in flight comes back with one
        limit.release()
        limit.on_overload()
    assert limit.decreases == decreases + 1 and limit.level == int(level * 0.7)  # once per burst
    assert AdaptiveLimit(cap=3, start=8).level == 3  # max_in_flight stays the cap


def test_adaptive_limit_holds_its_level_over_a_long_run_and_follows_a_server_slower_for_good():
    """Latency that grows with the level (a fast server, a client busy with its own CPU) must hold the level where
    it was, however long the run: the best latency seen used to drift up 5% on every shrink and never come back,
    so after ~60 shrinks the level sat at the cap for good. A server that got slower at every level must still
    win its level back (the drift's purpose)."""
    rng = random.Random(0)
    limit, levels = AdaptiveLimit(cap=64), []
    for i in range(60_000):
        limit.on_latency(0.0016 * limit.level * rng.uniform(0.8, 1.25) + (0.05 if rng.random() < 0.002 else 0))
        levels.append(limit.level)
    early, late = statistics.mean(levels[5_000:15_000]), statistics.mean(levels[-10_000:])
    assert limit.decreases > 100 and 15 < early < 45 and abs(late - early) < 5 and max(levels[-10_000:]) < 64
    slower = AdaptiveLimit(cap=64)
    for _ in range(2_000):
        slower.on_latency(0.1)
    for _ in range(4_000):
        slower.on_latency(0.5)  # 5x at every level, for good
    assert slower.level == 64


def test_adaptive_limit_is_a_fifo_semaphore():
    async def main():
        limit, order = AdaptiveLimit(cap=1, start=1), []

        async def take(i):
            await limit.acquire()
            order.append(i)
            await asyncio.sleep(0)
            limit.release()

        await asyncio.gather(*(take(i) for i in range(6)))
        return order, limit.in_flight

    assert asyncio.run(main()) == (list(range(6)), 0)


def test_idle_keepalive_connections_follow_the_adaptive_level():
    """httpx probes every idle connection it keeps on each request it routes: the connections a high level opened
    must not stay idle once the level falls (the cap of the real client's pool is what is checked)."""
    import openai

    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="none")
    pools = keepalive_pools([client])
    assert len(pools) == 1 and pools[0]._max_keepalive_connections == 100  # the openai default, until followed
    limit = AdaptiveLimit(cap=64, start=4)
    limit.follow(pools)
    assert pools[0]._max_keepalive_connections == 4
    for _ in range(8 + 8):
        limit.on_latency(0.1)
    assert limit.level == pools[0]._max_keepalive_connections == 16
    for _ in range(16):
        limit.on_latency(0.5)
    assert limit.level == pools[0]._max_keepalive_connections == 11  # 16 * 0.7
    limit.follow([])
    limit.on_overload()
    assert pools[0]._max_keepalive_connections == 11  # no longer followed
    assert keepalive_pools([object()]) == []  # a client built another way: nothing to follow, nothing breaks


def test_request_deadline_and_structured_output_are_validated_config_fields():
    def failing(**kwargs):
        """The fields a config built with ``kwargs`` is refused for (configs check themselves when built)."""
        try:
            GenerationConfig(**kwargs)
        except ConfigError as exc:
            return [exc.name]
        return []

    assert failing() == [] and 60 <= GenerationConfig().request_deadline <= 600  # a few minutes by default
    assert failing(request_timeout=120.0, request_deadline=60.0) == ["request_deadline"]
    assert failing(request_timeout=5.0, request_deadline=5.0) == []
    assert failing(structured_output=True) == ["structured_output"]  # the local backend has no response_format
    assert failing(structured_output=True, backend="endpoint", prompt_style="instruct", model="m",
                   base_url="http://127.0.0.1:1/v1") == []


# ----- against the stand-in -----

def run_timed(proxy, tmp_path, prompts, seeds, **overrides):
    gen = EndpointGenerator(make_config(proxy.url, **{"max_in_flight": 32, **overrides}), tmp_path, **FAST)
    bar = Bar()
    start = time.monotonic()
    texts, _ = gen(prompts, seeds, progress=bar)
    return gen, texts, time.monotonic() - start, bar


def test_dropped_connections_cost_the_request_not_the_run(make_standin, tmp_path):
    prompts, seeds = prompts_and_seeds(400)
    expected = [standin_text(p, s) for p, s in zip(prompts, seeds)]
    clean = make_standin()
    gen, texts, clean_s, _ = run_timed(clean, tmp_path / "clean", prompts, seeds)
    assert texts == expected
    gen.close()

    faulty = make_standin(rates={"headers": 0.05, "close": 0.05}, seed=1)
    gen, texts, faulty_s, bar = run_timed(faulty, tmp_path / "faulty", prompts, seeds)
    assert texts == expected
    injected = faulty.injected["headers"] + faulty.injected["close"]
    assert 20 <= injected <= 70  # about 10% of the requests (and retries)
    assert gen.stats["retries"]["connection"] == injected and gen.stats["failures"] == {}
    assert faulty.received[COMPLETIONS] == len(prompts) + injected == gen.stats["requests"]
    assert sorted(faulty.delivered_bodies.values()) == [1] * len(prompts)  # each answered exactly once
    assert faulty_s < 2 * clean_s + 1.0, f"clean {clean_s:.2f}s, with dropped connections {faulty_s:.2f}s"
    assert all(not r.breaker.trips for r in gen.replicas)  # sparse faults never took the replica out
    assert bar.n == len(prompts)
    assert any(p["retries"] > 0 for p in bar.postfixes) and re.fullmatch(r"\d+/\d+", bar.postfixes[-1]["in_flight"])
    gen.close()


def test_a_dead_replica_leaves_rotation_while_the_other_carries_the_run(make_standin, tmp_path):
    doomed, healthy = make_standin(), make_standin()
    doomed.push(*["pass"] * 30, "die")
    prompts, seeds = prompts_and_seeds(200)
    gen = EndpointGenerator(make_config([doomed.url, healthy.url], max_in_flight=16), tmp_path, **FAST)
    texts, _ = gen(prompts, seeds)
    assert texts == [standin_text(p, s) for p, s in zip(prompts, seeds)] and gen.stats["failures"] == {}
    delivered = doomed.delivered_bodies + healthy.delivered_bodies
    assert sorted(delivered.values()) == [1] * len(prompts)  # nothing lost, nothing answered twice
    assert doomed.dead and gen.replicas[0].breaker.trips >= 1 and not gen.replicas[1].breaker.trips
    assert sum(healthy.delivered_bodies.values()) > len(prompts) // 2
    gen.close()


def test_a_server_that_never_answers_fails_in_one_line_within_the_deadline(make_standin, tmp_path):
    proxy = make_standin(rates={"hang": 1.0})
    prompts, seeds = prompts_and_seeds(6)
    config = make_config(proxy.url, max_in_flight=2, request_timeout=0.4, request_deadline=1.5)
    gen = EndpointGenerator(config, tmp_path, **FAST)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        gen(prompts, seeds)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert 1.5 <= elapsed < 1.5 + 3.0, message
    assert "\n" not in message and "rerun to continue" in message
    head = re.match(r"generation: (\d+) of 6 requests failed \(deadline \d+: no answer within request_deadline 1\.5s "
                    r"\(\d+ tries, last timeout\)\)", message)
    assert head, message
    failed, (unanswered, unsent) = int(head[1]), unfinished_counts(message)
    time.sleep(0.3)  # let the proxy read what was sent just before the stop
    distinct = {json.dumps(e["body"], sort_keys=True) for e in proxy.log}
    assert failed >= 1 and failed + unanswered == len(distinct) and failed + unanswered + unsent == 6
    assert gen.stats["requests"] == proxy.received[COMPLETIONS] and gen.stats["failures"]["deadline"] == failed
    gen.close()


def test_adaptive_concurrency_shrinks_on_a_queueing_server_and_grows_back(make_standin, tmp_path, monkeypatch):
    proxy = make_standin(latency=0.1, capacity=2)  # answers 2 at a time, queues the rest
    gen = EndpointGenerator(make_config(proxy.url, max_in_flight=32), tmp_path, **FAST)
    caps, follow = [], AdaptiveLimit.follow
    monkeypatch.setattr(AdaptiveLimit, "follow", lambda self, pools: caps.extend(
        p._max_keepalive_connections for p in self._pools) or follow(self, pools))
    prompts, seeds = prompts_and_seeds(100)
    gen(prompts, seeds)
    queued = gen.stats["concurrency"]
    assert queued["decreases"] >= 2 and queued["level"] <= 8 and queued["cap"] == 32  # a fixed level: 32

    assert caps and caps[-1] == queued["level"]  # the client's keep-alive cap followed the level to the end
    proxy.upstream.set_capacity(None)  # the queue is gone: latency holds at any level
    prompts, seeds = prompts_and_seeds(360, offset=100)
    gen(prompts, seeds)
    assert gen.stats["concurrency"]["level"] >= queued["level"] + 6, gen.stats["concurrency"]
    assert gen.stats["failures"] == {}
    gen.close()


def test_the_generate_stage_sends_all_missing_shards_in_one_call_and_resumes_from_the_cache(make_standin, tmp_path,
                                                                                               monkeypatch):
    proxy = make_standin()
    prompts = Dataset.from_dict({"prompt": [f"Write sentence {i}." for i in range(10)]})
    config = GenerationConfig(backend="endpoint", base_url=proxy.url, model=MODEL_ID, temperature=0.0,
                              shard_size=3, max_in_flight=4)
    calls, call = [], EndpointGenerator.__call__

    def counted(self, prompts, seeds, **kwargs):
        calls.append(len(prompts))
        return call(self, prompts, seeds, **kwargs)

    monkeypatch.setattr(EndpointGenerator, "__call__", counted)
    gen = EndpointGenerator(config, tmp_path / "requests")
    out = generate(prompts, config, tmp_path, gen, desc="text")
    # no shard boundary inside the run; each row keeps its own seed, so slicing cannot shift answers
    assert calls == [10] and out["generation"] == [standin_text(p, shard_seed(config.seed, i))
                                                   for i, p in enumerate(prompts["prompt"])]
    (folder,) = tmp_path.glob("text-*")
    shards = sorted(folder.glob("shard-*.parquet"))
    assert len(shards) == 4
    shards[1].unlink(), shards[3].unlink()  # as after a crash: the rerun asks for their 4 rows, all cached
    again = generate(prompts, config, tmp_path, gen, desc="text")
    assert calls == [10, 4] and again["generation"] == out["generation"]
    assert proxy.received[COMPLETIONS] == 10 and gen.stats["cache_hits"] == 4
    gen.close()


# ----- structured output (instruct style) -----

def instruct_config(url, **overrides) -> GenerationConfig:
    return GenerationConfig(backend="endpoint", base_url=url, model=MODEL_ID, prompt_style="instruct",
                            structured_output=True, temperature=0.0, max_new_tokens=16, shard_size=3,
                            max_in_flight=4, **overrides)


@pytest.mark.parametrize("server, reason", [("accept", None), ("garble", "bad_json")])
def test_structured_output_asks_for_the_generated_field_and_drops_what_is_not_json(make_standin, tmp_path, server,
                                                                                   reason):
    proxy = make_standin(response_format=server)
    prompts = Dataset.from_dict({"prompt": [f"Write sentence {i}." for i in range(5)]})
    out = generate(prompts, instruct_config(proxy.url), tmp_path, desc="hypothesis")
    sent = proxy.bodies()
    assert len(sent) == 5 and all(b["response_format"]["json_schema"]["schema"]["required"] == ["hypothesis"]
                                  for b in sent)
    if server == "accept":  # the field, unwrapped from the JSON
        expected = {standin_text(b["messages"], b["seed"]).strip() for b in sent}
        assert set(out["generation"]) == expected and out["generation_error"] == [None] * 5
    else:
        assert out["generation"] == [None] * 5 and out["generation_error"] == ["bad_json"] * 5
    cleaned = clean(out, "hypothesis", CleanConfig(min_words=1, max_words=50))
    assert cleaned["drop_reason"] == [reason] * 5
    assert drop_counts(cleaned)["bad_json"] == (5 if reason else 0)


def test_structured_output_falls_back_to_plain_text_once_where_a_server_refuses_it(make_standin, tmp_path, caplog):
    proxy = make_standin(response_format="reject")
    prompts, seeds = prompts_and_seeds(8)
    gen = EndpointGenerator(instruct_config(proxy.url), tmp_path, **FAST)
    with caplog.at_level(logging.WARNING, logger="hf_crossaug.backends.endpoint"):
        texts, _ = gen(prompts, seeds, field="hypothesis")
    assert texts == [standin_text([{"role": "user", "content": p}], s) for p, s in zip(prompts, seeds)]
    assert sum("refused response_format" in r.getMessage() for r in caplog.records) == 1  # said once
    refused = [e for e in proxy.log if "response_format" in e["body"]]
    assert 1 <= len(refused) <= 4  # only those in flight before the first refusal came back
    assert proxy.received[CHAT] == 8 + len(refused) and proxy.upstream.answered[CHAT] == 8  # each answered once
    assert gen.stats["failures"] == {} and sum(gen.stats["retries"].values()) == 0 and gen.last_errors == [None] * 8
    gen.close()

"""The ``ray`` backend (``ray.data.llm`` HTTP processor) on a local one-CPU Ray against ``transformers serve``.

Greedy decoding: each answer is a function of its prompt, so the Ray job must return exactly what the
``endpoint`` backend returns for the same rows, in the same order, and the generate stage must accept
``backend: ray``. The ``[ray]`` extra is part of the ``[test]`` extra, so this always runs.
"""

from __future__ import annotations

import shutil

import pytest
import ray
from datasets import Dataset
from fault_proxy import FaultProxy

from hf_crossaug.backends.endpoint import EndpointGenerator
from hf_crossaug.backends.ray_batch import generate_with_ray
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.stages.generate import generate
from hf_crossaug.utils.fingerprint import shard_seed

pytestmark = pytest.mark.slow  # a real transformers serve and a local Ray instance

PROMPTS = [f"Here is a short sentence about {t}.\nSentence:" for t in
           ["cats", "rain", "trains", "bread", "music", "the sea"]]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def config_for(served, **overrides) -> GenerationConfig:
    cfg = dict(backend="ray", base_url=served.url, model=served.model_id, temperature=0.0, max_new_tokens=8,
               max_in_flight=2, shard_size=len(PROMPTS), seed=0)
    return GenerationConfig(**(cfg | overrides))


def test_ray_matches_endpoint(served_model, local_ray, tmp_path):
    cfg = config_for(served_model)
    out = generate_with_ray(Dataset.from_dict({"prompt": PROMPTS, "id": list(range(len(PROMPTS)))}), cfg)
    assert out["id"] == list(range(len(PROMPTS)))  # rows come back in their order, other columns kept
    assert all(isinstance(t, str) for t in out["generation"])
    assert all(0 < n <= 8 for n in out["generated_tokens"])
    endpoint_cfg = config_for(served_model, backend="endpoint")
    with EndpointGenerator(endpoint_cfg, tmp_path / "requests") as gen:
        texts, tokens = gen(PROMPTS, [shard_seed(0, i) for i in range(len(PROMPTS))])
    assert out["generation"] == texts
    assert out["generated_tokens"] == tokens


def test_generate_stage_backend_ray(served_model, local_ray, tmp_path):
    """Through a counting proxy: the stage's Ray jobs commit each answer to the work folder's request cache,
    so with every finished shard deleted a rerun rebuilds the same rows without sending one request."""
    proxy = FaultProxy(served_model.upstream).start()
    try:
        cfg = config_for(served_model, shard_size=4, base_url=proxy.url)  # two shards: one Ray job each
        assert all(ok for ok, *_ in cfg.problems())
        cost: dict = {}
        out = generate(Dataset.from_dict({"prompt": PROMPTS}), cfg, tmp_path, accounting=cost)
        assert len(out) == len(PROMPTS) and all(isinstance(t, str) for t in out["generation"])
        fingerprints = list(tmp_path.glob("generate-*/fingerprint.json"))
        assert len(fingerprints) == 1 and '"backend": "ray"' in fingerprints[0].read_text()
        sent = proxy.received["/v1/completions"]
        assert sent == len(PROMPTS) and cost["generate"]["requests"] == len(PROMPTS)
        assert cost["generate"]["completion_tokens"] == sum(out["generated_tokens"]) > 0

        for shard in fingerprints[0].parent.glob("shard-*"):  # as if the stage had never finished a shard
            shutil.rmtree(shard) if shard.is_dir() else shard.unlink()
        again = generate(Dataset.from_dict({"prompt": PROMPTS}), cfg, tmp_path, accounting=cost)
        assert again.to_list() == out.to_list() and proxy.received["/v1/completions"] == sent
        assert cost["generate"].get("requests", 0) == 0 and cost["generate"]["cache_hits"] == len(PROMPTS)
    finally:
        proxy.stop()

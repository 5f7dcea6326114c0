"""The generate stage on a tiny local Llama (a folder path): order, determinism, shards, resume after kill -9,
the continuation-only n-gram ban, per-row newline stopping and the work-folder fingerprint."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from hf_crossaug.stages.source import load_source
from hf_crossaug.stages.generate import GenerationConfig, generate
from hf_crossaug.backends.local import ContinuationNoRepeatNGram, StopAtNewline
from hf_crossaug.models.resolve import ModelRef
from hf_crossaug.stages.prompts import item_prompts, source_premises
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")


def nli_prompts(n_premises: int = 4, seed: int = 0, task=NLI) -> Dataset:
    source = load_source(NLI)
    premises = source_premises(task, source, n_premises, seed)
    return item_prompts(task, source, per_class=n_premises, domains=["a novel"], style="fewshot", n_shots=2,
                        seed=seed, premises=premises)


def shard_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*/shard-*.parquet"))


def test_generate_adds_columns_keeps_order_and_is_seeded(tiny_llm_dir, tmp_path):
    prompts = nli_prompts(4)  # 4 premises x 3 labels = 12 prompts
    assert len(prompts) == 12
    cfg = GenerationConfig(model=str(tiny_llm_dir), batch_size=3, shard_size=4, max_new_tokens=8, seed=1)
    a = generate(prompts, cfg, tmp_path / "a")
    assert {"generation", "generated_tokens"} <= set(a.column_names)
    assert set(prompts.column_names) <= set(a.column_names)
    assert a["prompt_id"] == prompts["prompt_id"]  # length-sorted batching is undone
    assert a["prompt"] == prompts["prompt"]
    assert all(isinstance(g, str) for g in a["generation"])
    assert all(1 <= n <= 8 for n in a["generated_tokens"])
    assert shard_names(tmp_path / "a") == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert not list((tmp_path / "a").glob("*/*.tmp"))

    b = generate(prompts, cfg, tmp_path / "b")  # fresh work dir, same seed: identical
    assert b.to_list() == a.to_list()
    c = generate(prompts, GenerationConfig(**{**cfg.__dict__, "seed": 2}), tmp_path / "c")
    assert c["prompt_id"] == a["prompt_id"]
    assert c["generation"] != a["generation"]


CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)  # same kernels as the in-process run of the test session
    from datasets import Dataset
    from hf_crossaug.stages.generate import GenerationConfig, LocalGenerator, generate

    class SlowGenerator(LocalGenerator):  # sleeping does not touch the RNG: results stay identical
        def __call__(self, prompts, *args, **kwargs):
            out = super().__call__(prompts, *args, **kwargs)
            time.sleep(float(sys.argv[4]))
            return out

    prompts = Dataset.from_parquet(sys.argv[1])
    cfg = GenerationConfig(model=sys.argv[2], batch_size=2, shard_size=2, max_new_tokens=16,
                           stop_at_newline=False, seed=7)
    generate(prompts, cfg, sys.argv[3], SlowGenerator(cfg))
    """
)


def test_resume_after_kill_reuses_finished_shards(tiny_llm_dir, tmp_path):
    prompts = nli_prompts(6)  # 18 prompts -> 9 shards of 2
    prompts.to_parquet(str(tmp_path / "prompts.parquet"))
    prompts = Dataset.from_parquet(str(tmp_path / "prompts.parquet"))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    work = tmp_path / "work"
    cfg = GenerationConfig(model=str(tiny_llm_dir), batch_size=2, shard_size=2, max_new_tokens=16,
                           stop_at_newline=False, seed=7)

    killed = False
    for attempt, delay in enumerate((0.5, 2.0)):  # the slower retry only if the child outran the kill
        work = tmp_path / f"work{attempt}"
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "prompts.parquet"),
                                 str(tiny_llm_dir), str(work), str(delay)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and proc.poll() is None and len(shard_names(work)) < 2:
                time.sleep(0.02)
            if proc.poll() is None and len(shard_names(work)) >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
        finally:
            if proc.poll() is None and not killed:
                proc.kill()
            _, err = proc.communicate(timeout=60)
        if killed and len(shard_names(work)) < 9:
            break
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        killed = False
    assert killed, "the child finished every shard before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in work.glob("*/shard-*.parquet")}
    assert 2 <= len(done) < 9
    resumed = generate(prompts, cfg, work)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in work.glob("*/shard-*.parquet")}
    assert len(after) == 9 and len(list(work.iterdir())) == 1  # same fingerprint folder continued
    assert {name: after[name] for name in done} == done  # finished shards were not regenerated
    assert not list(work.glob("*/*.tmp"))

    fresh = generate(prompts, cfg, tmp_path / "fresh")
    assert resumed.to_list() == fresh.to_list()


def test_continuation_no_repeat_ngram_bans_only_from_the_continuation():
    from transformers import NoRepeatNGramLogitsProcessor

    prompt_len = 4
    ids = torch.tensor([
        [5, 6, 7, 1, 9, 3, 5],  # bigram 5->6 only in the prompt: 6 stays allowed after the last 5
        [1, 2, 3, 4, 8, 9, 8],  # bigram 8->9 repeated in the continuation: 9 is banned after the last 8
    ])
    scores = torch.zeros(2, 12)
    out = ContinuationNoRepeatNGram(2, prompt_len)(ids, scores.clone())
    assert torch.isfinite(out[0]).all()
    banned = torch.isinf(out[1]).nonzero().flatten().tolist()
    assert banned == [9]
    # the stock processor, run over prompt + continuation, would have banned the prompt's bigram
    stock = NoRepeatNGramLogitsProcessor(2)(ids, scores.clone())
    assert torch.isinf(stock[0, 6])

    # fewer generated tokens than n: nothing to compare yet
    short = ContinuationNoRepeatNGram(3, prompt_len)(ids[:, :6], scores.clone())
    assert torch.isfinite(short).all()
    # trigram: (9, 8) followed by ... only when the pair repeats in the continuation
    tri = torch.tensor([[1, 2, 3, 4, 8, 9, 4, 8, 9]])
    out3 = ContinuationNoRepeatNGram(3, prompt_len)(tri, torch.zeros(1, 12))
    assert torch.isinf(out3[0]).nonzero().flatten().tolist() == [4]


def test_stop_at_newline_only_after_a_newline_in_the_continuation():
    newline = torch.tensor([10, 11])
    stop = StopAtNewline(newline, prompt_len=3)
    ids = torch.tensor([
        [10, 1, 2, 3, 4],  # newline in the prompt only: not done
        [1, 2, 3, 4, 11],  # newline generated: done
        [1, 2, 3, 10, 5],  # newline generated, then more tokens: done
        [1, 2, 3, 4, 5],   # none: not done
    ])
    done = stop(ids, None)
    assert done.dtype == torch.bool and done.tolist() == [False, True, True, False]
    assert stop(ids[:, :3], None).tolist() == [False] * 4  # nothing generated yet


class FakeGenerator:
    """Stands in for LocalGenerator: the fingerprint needs only ``ref``; generation returns fixed text."""

    def __init__(self, revision="r1"):
        self.ref = ModelRef("fake/model", "fake/model", revision)

    def __call__(self, prompts, seeds=None, progress=None, field=None):
        return ["x"] * len(prompts), [1] * len(prompts)

    def provenance(self) -> dict:
        return self.ref.provenance()


def work_folder(prompts, cfg, work, generator=None) -> str:
    generate(prompts, cfg, work, generator or FakeGenerator())
    return max(work.iterdir(), key=lambda p: p.stat().st_mtime_ns).name


def test_fingerprint_tracks_sampling_prompts_and_model(tmp_path):
    prompts = nli_prompts(2)
    cfg = GenerationConfig(model="fake/model", shard_size=100)
    base = work_folder(prompts, cfg, tmp_path / "w")
    assert base.startswith("generate-")
    assert work_folder(prompts, GenerationConfig(model="fake/model", shard_size=100), tmp_path / "w") == base
    assert work_folder(nli_prompts(2), cfg, tmp_path / "w") == base  # same prompts rebuilt: same folder
    assert len(list((tmp_path / "w").iterdir())) == 1

    changed = {
        "temperature": work_folder(prompts, GenerationConfig(model="fake/model", shard_size=100, temperature=0.5),
                                   tmp_path / "t"),
        "template": work_folder(
            nli_prompts(2, task=NLI.with_templates({"fewshot.item": "{examples}\nP: {premise}\nH ({label_description}):"})),
            cfg, tmp_path / "p"),
        "prompt text": work_folder(prompts.map(lambda r: {"prompt": r["prompt"] + " "}), cfg, tmp_path / "q"),
        "revision": work_folder(prompts, cfg, tmp_path / "r", FakeGenerator("r2")),
        "seed": work_folder(prompts, GenerationConfig(model="fake/model", shard_size=100, seed=1), tmp_path / "s"),
    }
    for what, folder in changed.items():
        assert folder != base, what
    # columns other than the prompt text are not part of the work
    assert work_folder(prompts.map(lambda r: {"domain": "elsewhere"}), cfg, tmp_path / "d") == base


def test_auto_dtype_is_the_native_one_and_cache_keys_and_cards_name_it(monkeypatch):
    """``dtype: auto`` is bf16 only where bf16 is computed natively (2.9x slower than fp32 on an AVX2-only
    CPU, 4.2x faster with AMX); the cache key and the card use the resolved name, so a recipe that said
    ``bfloat16`` keeps its cached data on a bf16 machine."""
    from hf_crossaug.build.pipeline import public_recipe, recipe_fingerprint
    from hf_crossaug.config.recipe import Recipe
    from hf_crossaug.models.resolve import native_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert native_dtype("auto") == "float32" and native_dtype("bfloat16") == "bfloat16"

    def recipe(dtype):
        return Recipe.from_dict({"name": "r", "task": "nli", "generation": {"dtype": dtype}})

    assert recipe_fingerprint(recipe("auto")) == recipe_fingerprint(recipe("float32"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_dtype("auto") == "bfloat16" and native_dtype("float32") == "float32"
    assert recipe_fingerprint(recipe("auto")) == recipe_fingerprint(recipe("bfloat16")) != recipe_fingerprint(
        recipe("float32"))
    assert public_recipe(recipe("auto"))["generation"]["dtype"] == "bfloat16"
    assert GenerationConfig().dtype == "auto"

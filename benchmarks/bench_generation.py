"""Generation speed: hf_crossaug's generate stage vs a naive one-prompt-at-a-time pipeline loop.

Same prompts (few-shot NLI hypotheses from the seed set), same model (embedded SmolLM2-135M), same
sampling; the baseline is ``pipeline("text-generation")`` called per prompt. Reports generated
tokens/s, kept examples/s (after the same cleaning), and model-FLOP utilisation against a matmul
roofline measured in the same run (fp32 and bf16).

    python benchmarks/bench_generation.py --prompts 96
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

import torch

from hf_crossaug.stages.clean import clean, drop_counts
from hf_crossaug.stages.source import load_source
from hf_crossaug.stages.generate import GenerationConfig, LocalGenerator, generate
from hf_crossaug.stages.prompts import item_prompts, source_premises
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")


def matmul_roofline(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured GFLOP/s of a square matmul on this machine (the practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def model_flops(model, prompt_tokens: int, generated_tokens: int) -> float:
    """2 x matmul parameters per token processed (embedding lookup excluded, lm_head included)."""
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    if model.config.tie_word_embeddings:
        params += model.get_output_embeddings().weight.numel()
    return 2.0 * params * (prompt_tokens + generated_tokens)


def ours(prompts, dtype: str, batch_size: int):
    cfg = GenerationConfig(batch_size=batch_size, shard_size=len(prompts), dtype=dtype, max_new_tokens=32)
    gen = LocalGenerator(cfg)
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        out = generate(prompts, cfg, work, gen)
        secs = time.perf_counter() - t
    prompt_tokens = sum(len(gen.tokenizer(p)["input_ids"]) for p in prompts["prompt"])
    return out, secs, gen, prompt_tokens


def naive(prompts, gen: LocalGenerator):
    """The baseline: one pipeline call per prompt, same model object, same sampling settings."""
    from transformers import pipeline

    pipe = pipeline("text-generation", model=gen.model.float(), tokenizer=gen.tokenizer, device="cpu")
    torch.manual_seed(0)
    texts, t = [], time.perf_counter()
    for p in prompts["prompt"]:
        res = pipe(p, do_sample=True, temperature=0.8, top_p=0.9, max_new_tokens=32, return_full_text=False,
                   pad_token_id=gen.tokenizer.pad_token_id)
        texts.append(res[0]["generated_text"])
    secs = time.perf_counter() - t
    tokens = sum(len(gen.tokenizer(x, add_special_tokens=False)["input_ids"]) for x in texts)
    return prompts.add_column("generation", texts), secs, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/generation.json")
    args = ap.parse_args()
    source = load_source(NLI)
    prompts = item_prompts(NLI, source, 0, ["a novel"], "fewshot", 4, 0,
                           premises=source_premises(NLI, source, args.prompts // 3, 0))
    roof = {"float32": matmul_roofline(torch.float32), "bfloat16": matmul_roofline(torch.bfloat16)}
    result = {"machine": f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
              "prompts": len(prompts), "roofline_gflops": {k: round(v, 1) for k, v in roof.items()}, "runs": {}}
    gen = None
    for dtype in ("float32", "bfloat16"):
        out, secs, gen_, ptoks = ours(prompts, dtype, args.batch_size)
        gtoks = int(sum(out["generated_tokens"]))
        kept = drop_counts(clean(out, "hypothesis", key_columns=("premise",)))["kept"]
        flops = model_flops(gen_.model, ptoks, gtoks)
        result["runs"][f"ours-{dtype}"] = {
            "seconds": round(secs, 2), "tokens_per_s": round(gtoks / secs, 1), "kept_per_s": round(kept / secs, 3),
            "kept": kept, "gflops": round(flops / secs / 1e9, 1), "mfu": round(flops / secs / 1e9 / roof[dtype], 3)}
        gen = gen_ if dtype == "float32" else gen
    out, secs, gtoks = naive(prompts, gen)
    kept = drop_counts(clean(out, "hypothesis", key_columns=("premise",)))["kept"]
    result["runs"]["naive-pipeline-float32"] = {"seconds": round(secs, 2), "tokens_per_s": round(gtoks / secs, 1),
                                                "kept_per_s": round(kept / secs, 3), "kept": kept}
    base = result["runs"]["naive-pipeline-float32"]
    for name, r in result["runs"].items():
        r["speedup_kept_per_s"] = round(r["kept_per_s"] / base["kept_per_s"], 2)
    print(json.dumps(result, indent=2))
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

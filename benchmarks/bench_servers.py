"""Generation through inference servers vs in process: completions kept per second, as ratios.

Same prompts (few-shot NLI hypotheses built by the prompt stage from the seed set), same model (the
embedded SmolLM2-135M-Instruct; llama.cpp serves its Q4_1 GGUF), same sampling (temperature 0.8, top_p
0.9, stop at newline, per-row seeds), one run each. Rows:

* ``local-bf16`` (``--dtype``, or ``local-fp32``): the generate stage in process (``backend: local``, batch_size
  ``--batch-size``) — the reference every ratio is against;
* ``local-auto-float32``: the same stage with the package's default ``dtype: auto``, on machines where that
  is float32 (CPUs without native bf16, where emulated bf16 is slow);
* ``naive-loop-bf16``: one ``pipeline("text-generation")`` call per prompt, same model, same dtype;
* ``pipeline-batched-bf16``: one ``pipeline(prompts, batch_size=...)`` call;
* ``<server>@<c>``: the generate stage's endpoint path (``EndpointGenerator``) with ``c`` requests in flight,
  for each server whose URL is given (vLLM CPU, llama.cpp, ``transformers serve``; skipped with a note if not);
* ``<server>-bare@<c>``: a plain ``openai.AsyncOpenAI`` loop with a semaphore of ``c``, same request bodies:
  ``endpoint_vs_bare`` = endpoint kept/s over bare kept/s (the endpoint path must reach >= 0.90).

Kept = rows the clean stage keeps. Model-FLOP utilisation counts 2 x matmul parameters per token
(embedding lookup excluded, lm_head included), on generated tokens and on prompt tokens separately,
over ``--peak-gflops``: by default the faster of a 1024x1024 bf16 and fp32 matmul measured in this process
(the practical CPU peak; bf16 alone would understate it on CPUs that emulate bf16); pass a datasheet number for a GPU server. Run on an idle machine. Either let the script start each
server in turn (only one holds the cores at a time; start-up is not timed):

    python benchmarks/bench_servers.py --start-servers vllm,llama,tserve

or point it at servers started beforehand:

    benchmarks/servers/start_vllm_cpu.sh "" 8000 &   benchmarks/servers/start_llama_cpp.sh "" 8001 &
    transformers serve MODEL_DIR --port 8002 &
    python benchmarks/bench_servers.py --vllm-url http://127.0.0.1:8000/v1 --llama-url http://127.0.0.1:8001/v1 \
        --tserve-url http://127.0.0.1:8002/v1

Writes ``benchmarks/results/servers.json`` and ``servers.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import torch

from hf_crossaug.backends.body import request_body
from hf_crossaug.backends.endpoint import EndpointGenerator
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")
from hf_crossaug.models.resolve import native_dtype
from hf_crossaug.stages.clean import clean, drop_counts
from hf_crossaug.stages.generate import LocalGenerator, generate
from hf_crossaug.stages.prompts import item_prompts, source_premises
from hf_crossaug.stages.source import load_source
from hf_crossaug.utils.fingerprint import shard_seed

SAMPLING = dict(temperature=0.8, top_p=0.9, stop_at_newline=True, seed=42)
SERVERS = ("vllm", "llama", "tserve")


def matmul_roofline(dtype: torch.dtype = torch.bfloat16, n: int = 1024, seconds: float = 2.0) -> float:
    """Measured GFLOP/s of a square matmul on this machine (the practical peak), timed for ~``seconds``
    (bf16 matmuls are very slow on CPUs without AVX512-BF16/AMX, so a fixed repeat count can take minutes)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t = 0, time.perf_counter()
    while reps == 0 or time.perf_counter() - t < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def matmul_params(model) -> int:
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    if model.config.tie_word_embeddings:
        params += model.get_output_embeddings().weight.numel()
    return params


def kept(prompts, texts) -> int:
    out = prompts.add_column("generation", [t if t is not None else "" for t in texts])
    return drop_counts(clean(out, "hypothesis", key_columns=("premise",)))["kept"]


def row(name, secs, n_kept, gen_tokens, prompt_tokens, params, peak_gflops, **extra) -> dict:
    def mfu(tokens):
        return round(2.0 * params * tokens / secs / 1e9 / peak_gflops, 5)

    return {"name": name, "seconds": round(secs, 2), "kept": n_kept, "kept_per_s": round(n_kept / secs, 3),
            "generated_tokens": gen_tokens, "prompt_tokens": prompt_tokens,
            "generated_tokens_per_s": round(gen_tokens / secs, 1),
            "mfu_generated": mfu(gen_tokens), "mfu_prompt": mfu(prompt_tokens), **extra}


# ----- in process -----

def local_stage(prompts, args, dtype: str = "bfloat16"):
    cfg = GenerationConfig(batch_size=args.batch_size, shard_size=len(prompts), dtype=dtype,
                           max_new_tokens=args.max_new_tokens, **SAMPLING)
    gen = LocalGenerator(cfg)
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        out = generate(prompts, cfg, work, gen)
        secs = time.perf_counter() - t
    return gen, list(out["generation"]), int(sum(out["generated_tokens"])), secs


def pipeline_run(prompts, gen: LocalGenerator, args, batch_size: int | None):
    """``pipeline("text-generation")`` on the same model, same dtype: per prompt (batch_size None) or batched."""
    from transformers import pipeline

    pipe = pipeline("text-generation", model=gen.model, tokenizer=gen.tokenizer, device="cpu")
    kwargs = dict(do_sample=True, temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                  max_new_tokens=args.max_new_tokens, return_full_text=False, stop_strings=["\n"],
                  tokenizer=gen.tokenizer, pad_token_id=gen.tokenizer.pad_token_id)
    torch.manual_seed(0)
    texts = list(prompts["prompt"])
    t = time.perf_counter()
    if batch_size is None:
        res = [pipe(p, **kwargs)[0]["generated_text"] for p in texts]
    else:
        res = [r[0]["generated_text"] for r in pipe(texts, batch_size=batch_size, **kwargs)]
    secs = time.perf_counter() - t
    tokens = sum(len(gen.tokenizer(x, add_special_tokens=False)["input_ids"]) for x in res)
    return res, tokens, secs


# ----- servers -----

def served_id(url: str) -> str:
    import openai

    client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=30)
    try:
        return client.models.list().data[0].id
    finally:
        client.close()


def endpoint_config(url, model, in_flight, args) -> GenerationConfig:
    return GenerationConfig(backend="endpoint", base_url=url, model=model, max_in_flight=in_flight,
                            max_new_tokens=args.max_new_tokens, shard_size=10**6, request_timeout=600.0,
                            **SAMPLING)


def endpoint_run(prompts, seeds, cfg):
    """The endpoint path with a fresh request cache (nothing answered from disk)."""
    with tempfile.TemporaryDirectory() as work, EndpointGenerator(cfg, pathlib.Path(work) / "requests") as gen:
        gen.provenance()  # the /v1/models call, outside the timing
        t = time.perf_counter()
        texts, tokens = gen(prompts, seeds)
        secs = time.perf_counter() - t
        return texts, sum(tokens), gen.stats["prompt_tokens"], secs


def bare_run(prompts, seeds, cfg, max_retries: int = 0):
    """A plain AsyncOpenAI loop: a semaphore of max_in_flight, the same bodies, no cache, the client's own
    retries (none by default), ``cfg.request_timeout``; a request that still fails yields ``(None, 0, 0)``."""
    import openai

    bodies = [request_body(cfg, cfg.model, p, s) for p, s in zip(prompts, seeds)]

    async def main():
        client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key="EMPTY", max_retries=max_retries,
                                    timeout=cfg.request_timeout)
        sem = asyncio.Semaphore(cfg.max_in_flight)

        async def one(body):
            async with sem:
                try:
                    r = await client.completions.create(**body)
                except openai.OpenAIError:
                    return None, 0, 0
                return r.choices[0].text, r.usage.completion_tokens, r.usage.prompt_tokens

        try:
            return await asyncio.gather(*(one(b) for b in bodies))
        finally:
            await client.close()

    t = time.perf_counter()
    out = asyncio.run(main())
    secs = time.perf_counter() - t
    return [o[0] for o in out], sum(o[1] for o in out), sum(o[2] for o in out), secs


HERE = pathlib.Path(__file__).resolve().parent


def launch_command(name: str, port: int, dtype: str = "bfloat16") -> list[str]:
    """How ``--start-servers`` starts each server: the documented scripts, and ``transformers serve`` from this
    environment, all on the embedded SmolLM2 (vLLM and transformers in ``dtype``, llama.cpp on its Q4_1 GGUF)."""
    if name == "vllm":
        return ["bash", str(HERE / "servers" / "start_vllm_cpu.sh"), "", str(port)]
    if name == "llama":
        return ["bash", str(HERE / "servers" / "start_llama_cpp.sh"), "", str(port)]
    from hf_crossaug.models.resolve import GENERATOR_DEFAULT, resolve_model

    exe = shutil.which("transformers", path=str(pathlib.Path(sys.executable).parent)) or "transformers"
    return [exe, "serve", resolve_model(None, GENERATOR_DEFAULT).path, "--host", "127.0.0.1", "--port", str(port),
            "--device", "cpu", "--dtype", dtype, "--log-level", "warning"]


@contextlib.contextmanager
def started(name: str, port: int, timeout: float, log_dir: pathlib.Path, dtype: str = "bfloat16"):
    """Start one server, wait (bounded) until ``/v1/models`` answers, yield its URL, stop it (process group)."""
    import urllib.request

    env = {**os.environ, "PROJECT_PY": sys.executable, "HF_HUB_OFFLINE": "1", "DTYPE": dtype}  # DTYPE: vLLM's
    log = log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(launch_command(name, port, dtype), stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    url, t = f"http://127.0.0.1:{port}/v1", time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while starting (log: {log})")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t > timeout:
                raise TimeoutError(f"{name} not ready after {timeout:.0f} s (log: {log})")
            time.sleep(2)
        print(f"{name} ready in {time.monotonic() - t:.0f} s", flush=True)
        yield url, round(time.monotonic() - t, 1)
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)


def warm_up(url, model, args, prompts, seeds, in_flight: int):
    """One untimed pass over every prompt, so each timed run meets the same warm server: vLLM caches
    prompt prefixes, and without this the first timed run (the endpoint path) alone paid for a cold cache
    (its hit rate climbed to ~50% over the next run in the server log)."""
    bare_run(prompts, seeds, endpoint_config(url, model, in_flight, args))


def measure_server(name, url, in_flight, args, prompts, texts_in, seeds, params, peak, result) -> None:
    """The endpoint path and the bare client loop, side by side, at each concurrency."""
    try:
        model = served_id(url)
        warm_up(url, model, args, texts_in, seeds, max(in_flight))
    except Exception as exc:  # noqa: BLE001 - a server that is down is a note, not a crash
        result["notes"].append(f"{name}: skipped ({type(exc).__name__} at {url})")
        return
    for c in in_flight:
        cfg = endpoint_config(url, model, c, args)
        try:
            texts, gtoks, sptoks, secs = endpoint_run(texts_in, seeds, cfg)
        except RuntimeError as exc:  # the build's one-line stop (e.g. the server died): a note, then the next server
            result["notes"].append(f"{name}@{c}: the endpoint run stopped: {exc}")
            return
        ep = row(f"{name}@{c}", secs, kept(prompts, texts), gtoks, sptoks, params, peak, in_flight=c)
        texts, gtoks, sptoks, secs = bare_run(texts_in, seeds, cfg)
        bare = row(f"{name}-bare@{c}", secs, kept(prompts, texts), gtoks, sptoks, params, peak, in_flight=c)
        ep["endpoint_vs_bare"] = round(ep["kept_per_s"] / bare["kept_per_s"], 3) if bare["kept_per_s"] else None
        result["rows"] += [ep, bare]
        print(f"{name}@{c}: {ep['kept_per_s']} kept/s, endpoint/bare {ep['endpoint_vs_bare']}", flush=True)


# ----- report -----

def markdown(result: dict) -> str:
    lines = [f"# Generation through servers vs in process ({result['prompts']} prompts, {result['machine']})", "",
             f"Peak for MFU: {result['peak_gflops']} GFLOP/s ({result['peak_source']}). One run each; "
             f"ratios are kept/s over `{result['rows'][0]['name']}` (the in-process generate stage).", "",
             f"| row | in flight | kept/s | vs {result['rows'][0]['name']} | gen tok/s | MFU gen | MFU prompt | endpoint/bare |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r.get('in_flight', '')} | {r['kept_per_s']} | {r['vs_local']} | "
                     f"{r['generated_tokens_per_s']} | {r['mfu_generated']} | {r['mfu_prompt']} | "
                     f"{r.get('endpoint_vs_bare', '')} |")
    if result["notes"]:
        lines += ["", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32, help="in-process batch size (stage and pipeline)")
    ap.add_argument("--in-flight", default="1,4,16,64", help="server concurrencies, comma-separated")
    ap.add_argument("--in-flight-for", action="append", default=[], metavar="SERVER=C1,C2",
                    help="other concurrencies for one server, e.g. llama=1,4 for a server that answers one "
                    "request at a time (reported in the notes)")
    ap.add_argument("--vllm-url", help="vLLM OpenAI URL, e.g. http://127.0.0.1:8000/v1 (row skipped if absent)")
    ap.add_argument("--llama-url", help="llama.cpp server URL (skipped if absent)")
    ap.add_argument("--tserve-url", help="`transformers serve` URL (skipped if absent)")
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="peak GFLOP/s for MFU; default: the faster of a bf16 and an fp32 1024x1024 matmul measured here")
    ap.add_argument("--skip-baselines", action="store_true", help="no naive loop / batched pipeline rows")
    ap.add_argument("--start-servers", help="comma-separated servers (vllm,llama,tserve) the script starts one at "
                    "a time, each stopped before the next (start-up not timed)")
    ap.add_argument("--port", type=int, default=8765, help="port for --start-servers")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                    help="the in-process reference row's dtype and, with --start-servers, vLLM's and transformers "
                    "serve's (llama.cpp serves its Q4_1 GGUF); float32 on CPUs that emulate bf16")
    ap.add_argument("--start-timeout", type=float, default=900.0, help="seconds a started server may take to be ready")
    ap.add_argument("--out", default="benchmarks/results/servers.json")
    args = ap.parse_args()
    in_flight = [int(c) for c in args.in_flight.split(",")]
    in_flight_for = {}
    for spec in args.in_flight_for:
        name, _, levels = spec.partition("=")
        if name not in SERVERS or not levels:
            raise SystemExit(f"--in-flight-for {spec!r}: expected SERVER=C1,C2 with SERVER in {', '.join(SERVERS)}")
        in_flight_for[name] = [int(c) for c in levels.split(",")]

    source = load_source(NLI)
    prompts = item_prompts(NLI, source, 0, ["a novel"], "fewshot", 4, 0,
                           premises=source_premises(NLI, source, -(-args.prompts // 3), 0))  # 3 labels each
    prompts = prompts.select(range(min(args.prompts, len(prompts))))
    texts_in, seeds = list(prompts["prompt"]), [shard_seed(SAMPLING["seed"], i) for i in range(len(prompts))]
    measured = {} if args.peak_gflops else {str(dt).split(".")[1]: round(matmul_roofline(dt), 1)
                                             for dt in (torch.bfloat16, torch.float32)}
    peak = args.peak_gflops or max(measured.values())
    result = {"machine": f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
              "prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "sampling": SAMPLING,
              "peak_gflops": round(peak, 1),
              "peak_source": "--peak-gflops" if args.peak_gflops else f"measured matmul GFLOP/s {measured}, the faster",
              "rows": [], "notes": []}
    rows = result["rows"]

    gen, texts, gtoks, secs = local_stage(prompts, args, args.dtype)
    params = matmul_params(gen.model)
    ptoks = sum(len(gen.tokenizer(p)["input_ids"]) for p in texts_in)
    short = {"bfloat16": "bf16", "float32": "fp32"}[args.dtype]
    rows.append(row(f"local-{short}", secs, kept(prompts, texts), gtoks, ptoks, params, peak,
                    batch_size=args.batch_size))
    if not args.skip_baselines:
        texts, gtoks, secs = pipeline_run(prompts, gen, args, None)
        rows.append(row(f"naive-loop-{short}", secs, kept(prompts, texts), gtoks, ptoks, params, peak))
        texts, gtoks, secs = pipeline_run(prompts, gen, args, args.batch_size)
        rows.append(row(f"pipeline-batched-{short}", secs, kept(prompts, texts), gtoks, ptoks, params, peak,
                        batch_size=args.batch_size))
    del gen
    if native_dtype("auto") != args.dtype:  # the package's default here: what a user's build runs
        gen, texts, gtoks, secs = local_stage(prompts, args, "auto")
        rows.append(row("local-auto-float32", secs, kept(prompts, texts), gtoks, ptoks, params, peak,
                        batch_size=args.batch_size))
        del gen
    save(result, args.out)

    to_start = [n for n in (args.start_servers or "").split(",") if n]
    unknown = sorted(set(to_start) - set(SERVERS))
    if unknown:
        raise SystemExit(f"--start-servers: unknown server {unknown[0]!r} (known: {', '.join(SERVERS)})")
    log_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-servers-"))
    for name in SERVERS:
        levels = in_flight_for.get(name, in_flight)
        if levels != in_flight:
            result["notes"].append(f"{name}: measured at {', '.join(map(str, levels))} in flight only (--in-flight-for)")
        if name in to_start:
            try:
                with started(name, args.port, args.start_timeout, log_dir, args.dtype) as (url, ready_s):
                    result["notes"].append(f"{name}: started by the script, ready in {ready_s} s (not timed)")
                    measure_server(name, url, levels, args, prompts, texts_in, seeds, params, peak, result)
            except (RuntimeError, TimeoutError) as exc:
                result["notes"].append(f"{name}: skipped ({exc})")
            save(result, args.out)
            continue
        url = getattr(args, f"{name}_url")
        if not url:
            result["notes"].append(f"{name}: skipped (no --{name}-url or --start-servers)")
            continue
        measure_server(name, url, levels, args, prompts, texts_in, seeds, params, peak, result)
        save(result, args.out)

    print(save(result, args.out, final=True))


def save(result: dict, out: str, final: bool = False) -> str:
    """Ratios and the 90% check over the rows so far, written to ``out`` (.json and .md): called after each
    server too, so a long run interrupted later keeps what it measured."""
    rows = result["rows"]
    base = rows[0]["kept_per_s"]
    for r in rows:
        r["vs_local"] = round(r["kept_per_s"] / base, 3) if base else None
    low = [r["name"] for r in rows if r.get("endpoint_vs_bare") is not None and r["endpoint_vs_bare"] < 0.9]
    result["endpoint_vs_bare_ok"] = not low
    report = {**result, "complete": final,
              "notes": result["notes"] + ([f"endpoint path below 90% of the bare loop: {', '.join(low)}"] if low else [])}
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    text = markdown(report)
    path.with_suffix(".md").write_text(text)
    return text


if __name__ == "__main__":
    main()

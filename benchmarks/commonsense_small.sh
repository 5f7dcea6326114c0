#!/bin/bash
# Commonsense multiple choice (arXiv 2305.14288) at small scale on the embedded models, from the repo root:
# generate items with SmolLM2-135M, then train e5-small multiple-choice students on English only (SRC,
# the paper's baseline) and on English + generated items (SRC+GEN), same settings, and score them on
# XCOPA sw val and on XStoryCloze sw rows 120-359 (rows 0-119 are the prompt pool; files are line-aligned).
# Usage: bash benchmarks/commonsense_small.sh [OUT_DIR]   (about an hour of wall time on a busy 2-core VM)
set -euo pipefail
E=${1:-outputs/commonsense-small}
D=../shared/data
CX="python -m hf_crossaug.cli"
$CX build xcopa-sw-synth --per-class 64 -o $E/xcopa-sw-synth --work-dir $E/xcopa-work
$CX build xstorycloze-sw-synth --per-class 32 -o $E/xstorycloze-sw-synth --work-dir $E/xsc-work
for mode in SRC SRC+GEN; do
  $CX train $E/xcopa-sw-synth --task copa --mode $mode --source $D/xcopa/train-en.jsonl \
      --dev $D/xcopa/val-en.jsonl --epochs 1 --lr 1e-4 --max-length 64 -o $E/copa-$mode
  $CX evaluate $E/copa-$mode -t sw=$D/xcopa/val-sw.jsonl -t en=$D/xcopa/val-en.jsonl --json $E/copa-$mode.json
  $CX train $E/xstorycloze-sw-synth --task storycloze --mode $mode \
      --source "$D/xstorycloze/train-en.jsonl@train[:120]" --epochs 2 --lr 1e-4 -o $E/xsc-$mode
  $CX evaluate $E/xsc-$mode -t "sw=$D/xstorycloze/train-sw.jsonl@train[120:]" \
      -t "en=$D/xstorycloze/train-en.jsonl@train[120:]" --json $E/xsc-$mode.json
done

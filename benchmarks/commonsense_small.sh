#!/bin/bash
# Commonsense multiple choice (arXiv 2305.14288) at small scale on the embedded models, from the repo root:
# generate items, then train e5-small multiple-choice students on English only (SRC, the paper's
# baseline) and on English + generated items (SRC+GEN), same settings, and score them per language.
#   copa        SmolLM2 writes English COPA items; XCOPA sw val (+ en val)
#   xsc         SmolLM2 writes English stories; XStoryCloze sw rows 120-359 (rows 0-119 are the prompt
#               pool; the files are line-aligned across languages)
#   xsc-direct  gemma-3-270m writes Swahili stories from Swahili examples (generation in the target
#               language); same evaluation as xsc, whose SRC student it shares
#   xwg         SmolLM2 writes English Winograd schemas from XWinograd dev-en rows 0-399; XWinograd ru /
#               pt / jp dev and en rows 400+
# Usage: bash benchmarks/commonsense_small.sh [OUT_DIR] [PART ...]   (default: every part)
set -euo pipefail
set -f  # "@train[:120]" split specs are not globs
E=${1:-outputs/commonsense-small}
shift || true
PARTS=${*:-copa xsc xsc-direct xwg}
D=../shared/data
CX="python -m hf_crossaug.cli"
XSC_TARGETS="-t sw=$D/xstorycloze/train-sw.jsonl@train[120:] -t en=$D/xstorycloze/train-en.jsonl@train[120:]"

student() {  # NAME FOLDER TASK MODE "TRAIN OPTIONS" "EVALUATION TARGETS": one student, trained then scored
  [ -f "$E/$1-$4.json" ] && return 0  # done in an earlier run
  $CX train "$2" --task "$3" --mode "$4" $5 -o "$E/$1-$4"
  $CX evaluate "$E/$1-$4" $6 --json "$E/$1-$4.json"
}

for part in $PARTS; do
  case $part in
    copa)
      $CX build xcopa-sw-synth --per-class 64 -o $E/xcopa-sw-synth --work-dir $E/xcopa-work
      for mode in SRC SRC+GEN; do
        student copa $E/xcopa-sw-synth copa $mode \
          "--source $D/xcopa/train-en.jsonl --dev $D/xcopa/val-en.jsonl --epochs 1 --lr 1e-4 --max-length 64" \
          "-t sw=$D/xcopa/val-sw.jsonl -t en=$D/xcopa/val-en.jsonl"
      done ;;
    xsc)
      $CX build xstorycloze-sw-synth --per-class 32 -o $E/xstorycloze-sw-synth --work-dir $E/xsc-work
      for mode in SRC SRC+GEN; do
        student xsc $E/xstorycloze-sw-synth storycloze $mode \
          "--source $D/xstorycloze/train-en.jsonl@train[:120] --epochs 2 --lr 1e-4" "$XSC_TARGETS"
      done ;;
    xsc-direct)
      $CX build xstorycloze-sw-synth-direct --per-class 32 -o $E/xstorycloze-sw-synth-direct --work-dir $E/xscd-work
      student xsc-direct $E/xstorycloze-sw-synth-direct storycloze SRC+GEN \
        "--source $D/xstorycloze/train-en.jsonl@train[:120] --epochs 2 --lr 1e-4" "$XSC_TARGETS" ;;
    xwg)
      $CX build xwinograd-synth --per-class 64 -o $E/xwinograd-synth --work-dir $E/xwg-work
      for mode in SRC SRC+GEN; do
        student xwg $E/xwinograd-synth winograd $mode \
          "--source $D/xwinograd/dev-en.jsonl@train[:400] --epochs 2 --lr 1e-4 --max-length 64" \
          "-t ru=$D/xwinograd/dev-ru.jsonl -t pt=$D/xwinograd/dev-pt.jsonl -t jp=$D/xwinograd/dev-jp.jsonl -t en=$D/xwinograd/dev-en.jsonl@train[400:]"
      done ;;
    *) echo "error: unknown part '$part' (copa, xsc, xsc-direct, xwg)" >&2; exit 2 ;;
  esac
done

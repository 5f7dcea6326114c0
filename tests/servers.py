"""Start and stop a real OpenAI-compatible server (``transformers serve``) for the endpoint tests.

``transformers serve`` is used without ``--continuous-batching``: on CPU, continuous batching was slower
here and ignores ``stop``, while the sequential path honours ``stop`` and answers a short request in
about half a second. The server is pinned to the embedded SmolLM2 folder and runs offline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def embedded_generator_dir() -> str:
    """Folder of the embedded SmolLM2-135M-Instruct (the one place that knows where resolve_model lives)."""
    from hf_crossaug.models.resolve import GENERATOR_DEFAULT, resolve_model

    return resolve_model(None, GENERATOR_DEFAULT).path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def transformers_cli() -> list[str]:
    """The ``transformers`` command of this interpreter's environment (not whatever PATH finds first)."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())"]


@dataclass
class ServedModel:
    proc: subprocess.Popen
    port: int
    model_id: str  # the id the server lists in /v1/models and expects in requests
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_transformers_serve(model_dir: str, log_path: Path, timeout: float = 180.0) -> ServedModel:
    """Start ``transformers serve`` on a free local port and return once a 1-token completion works."""
    port = free_port()
    cmd = transformers_cli() + ["serve", model_dir, "--host", "127.0.0.1", "--port", str(port),
                                "--device", "cpu", "--dtype", "float32", "--log-level", "warning"]
    # one thread: on a shared 2-core box an oversubscribed OpenMP pool spins instead of working
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    served = ServedModel(proc, port, model_dir, log_path)
    try:
        _wait_ready(served, timeout)
    except BaseException:
        stop_server(proc)
        raise
    return served


def _wait_ready(served: ServedModel, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    warmup = {"model": served.model_id, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    while True:
        if served.proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with code {served.proc.returncode} before it was ready;"
                               f" log: {_tail(served.log_path)}")
        try:
            _post(served.url + "/completions", warmup, timeout=max(1.0, deadline - time.monotonic()))
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve on port {served.port} not ready after {timeout:.0f}s;"
                                   f" log: {_tail(served.log_path)}") from None
            time.sleep(0.5)


def _post(url: str, body: dict, timeout: float) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return " | ".join(path.read_text(errors="replace")[-chars:].splitlines())
    except OSError:
        return "(no log)"


def stop_server(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the server's own process group (it was started in a new session), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue

"""Training past one process: the teacher and ``crossaug train`` run unchanged under ``accelerate launch`` (DDP,
here 2 CPU processes over gloo on the tiny models); one process writes the output, and what it writes loads."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two processes import torch and transformers: about a minute on 2 busy cores

REPO = Path(__file__).resolve().parent.parent
TEACHER_SCRIPT = """
import sys
from accelerate import PartialState
from hf_crossaug.config.tasks import get_task
from hf_crossaug.config.teacher import TeacherConfig
from hf_crossaug.stages.source import load_source
from hf_crossaug.stages.teacher import label, train_teacher

task = get_task("sentiment")
teacher = train_teacher(load_source(task, limit=60), task, TeacherConfig(model=sys.argv[1], epochs=2, batch_size=8),
                        sys.argv[2])
rows = label(load_source(task, limit=10).select_columns(["text"]), task, teacher)
print("labelled", len(rows), "rows in one of", PartialState().num_processes, "processes", flush=True)
"""


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 ARGS`` on a free port, bounded in time: without a GPU
    (``--cpu`` starts one process) that is torchrun's 2 processes, joined over gloo on the CPU."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_teacher_trains_under_accelerate_launch_and_one_process_writes_it(tiny_encoder_dir, tmp_path):
    script = tmp_path / "teacher.py"
    script.write_text(TEACHER_SCRIPT)
    done = launch(str(script), str(tiny_encoder_dir), str(tmp_path / "work"), cwd=tmp_path)
    # one DDP group of two; both processes label with the model it saved
    assert done.stdout.count("labelled 10 rows in one of 2 processes") == 2
    (folder,) = (tmp_path / "work").glob("teacher-*")
    info = json.loads((folder / "teacher.json").read_text())
    assert info["source_rows"] == 60 and info["epoch_checkpoints"] == ["epochs/epoch-001.safetensors",
                                                                      "epochs/epoch-002.safetensors"]
    assert all((folder / f).is_file() for f in info["epoch_checkpoints"])
    assert not list(folder.glob("checkpoint-*")) and (folder / "best" / "model.safetensors").is_file()


def test_crossaug_train_runs_under_accelerate_launch(tiny_built_dataset, tiny_encoder_dir, tmp_path):
    from transformers import pipeline

    out, batch = tmp_path / "student", 4
    done = launch("-m", "hf_crossaug.cli", "train", str(tiny_built_dataset), "--model", str(tiny_encoder_dir),
                  "--mode", "T-div-k", "--epochs", "1", "--batch-size", str(batch), "--max-length", "48",
                  "--limit", "24", "-o", str(out), cwd=tmp_path)
    assert done.stderr.count("mode T-div-k:") == 2  # each process ran train_student (the log is on stderr)
    results = json.loads((out / "crossaug_student.json").read_text())
    # the data split over 2 processes: half the optimizer steps of one process (the sampler pads to an even split)
    steps = math.ceil(math.ceil(results["counts"]["total"] / 2) / batch)
    assert results["selection"]["best_checkpoint"] == f"checkpoint-{steps}"
    assert not (out / "checkpoints").exists() and (out / "README.md").is_file()
    clf = pipeline("text-classification", model=str(out))
    assert clf({"text": "A man plays.", "text_pair": "A person plays."})["label"] in results["labels"]

"""Sharing on the Hub: cards that validate and link each other, the write path, and the read path.

Write path: no push-capable Hub server exists offline, so ``crossaug push`` runs against
`hub_standin.HubStandIn`, a local HTTP server that records every Hub API call huggingface_hub makes
(create repo, branch, preupload, LFS batch + PUT, commit) and keeps the pushed files in memory.

Read path: a real read-only Hub mirror, ``olah``, serves the pushed dataset and student as local git repos
on 127.0.0.1 in offline mode, and a fresh Python process with ``HF_ENDPOINT`` pointing at it loads them
exactly as a remote user would.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HUB_DATASET_ID
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData, constants
from hub_standin import HubStandIn
from test_build_tiny import STRATEGIES
from typer.testing import CliRunner

from hf_crossaug.citations import SEED_PAPERS
from hf_crossaug.hub import push_dataset, push_model

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_standinSECRETtoken0123456789"


def local_files(folder: Path, skip=("checkpoints",)) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not set(p.relative_to(folder).parts) & set(skip)}


def assert_token_only_in_auth_header(calls: list[dict]) -> None:
    assert calls
    for c in calls:
        assert TOKEN not in c["path"] and TOKEN not in json.dumps(c["query"]), c["path"]
        assert TOKEN.encode() not in c["body"], c["path"]
        for name, value in c["headers"].items():
            if name.lower() == "authorization":
                assert value == f"Bearer {TOKEN}", c["path"]
            else:
                assert TOKEN not in value, (c["path"], name)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in, with the token in HF_TOKEN and an empty HF_HOME (no login cache)."""
    server = HubStandIn().start()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS, not Xet
    yield server
    server.shutdown()


# ---------------------------------------------------------------- cards

def test_cards_validate_and_link_each_other(tiny_built_dataset, tiny_student):
    card = DatasetCard.load(tiny_built_dataset / "README.md")
    data = card.data
    assert isinstance(data, DatasetCardData)
    assert data.license == "apache-2.0" and data.language == ["en", "sw"]
    assert data.task_categories == ["text-classification"] and data.task_ids == ["natural-language-inference"]
    assert data.size_categories == ["n<1K"] and data.source_datasets == ["original"]
    assert [c["config_name"] for c in data.configs] == ["raw", *STRATEGIES]
    assert DatasetCardData(**data.to_dict()).to_dict() == data.to_dict()  # the schema round-trips
    assert f'load_dataset("{HUB_DATASET_ID}", "div-k", split="train")' in card.text
    assert json.loads((tiny_built_dataset / "crossaug_build.json").read_text())["repo_id"] == HUB_DATASET_ID

    model = ModelCard.load(tiny_student / "README.md")
    assert isinstance(model.data, ModelCardData)
    assert model.data.datasets == [HUB_DATASET_ID] and model.data.license == "apache-2.0"
    assert model.data.pipeline_tag == "text-classification" and model.data.language == ["en", "sw"]
    assert f"[`{HUB_DATASET_ID}`](https://huggingface.co/datasets/{HUB_DATASET_ID}), config `div-k`" in model.text
    assert f'load_dataset("{HUB_DATASET_ID}", "div-k", split="train")' in model.text
    for text in (card.text, model.text):
        for paper in SEED_PAPERS:
            assert f"[arXiv:{paper['arxiv']}](https://arxiv.org/abs/{paper['arxiv']})" in text
            assert f"eprint={{{paper['arxiv']}}}" in text


# ---------------------------------------------------------------- write path

def test_push_dataset_with_the_cli_then_unchanged_repush_makes_no_commit(hub, tiny_built_dataset, tmp_path):
    folder = tmp_path / "xnli-sw-synth"
    shutil.copytree(tiny_built_dataset, folder)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "hf_crossaug.cli", "push", str(folder), "someone/xnli-sw-synth",
                           "--private", "-m", "first upload"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dataset someone/xnli-sw-synth: new commit" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr

    create = [c for c in hub.calls if c["path"] == "/api/repos/create"]
    assert [json.loads(c["body"]) for c in create] == [
        {"name": "xnli-sw-synth", "organization": "someone", "visibility": "private", "type": "dataset"}]
    (commit,) = hub.commits_posted()
    assert commit["path"] == "/api/datasets/someone/xnli-sw-synth/commit/main"
    lines = [json.loads(x) for x in commit["body"].splitlines()]
    assert lines[0] == {"key": "header", "value": {"summary": "first upload", "description": ""}}
    pushed = local_files(folder)
    assert sorted(x["value"]["path"] for x in lines[1:]) == sorted(pushed)
    assert {x["value"]["path"] for x in lines[1:] if x["key"] == "lfsFile"} == {p for p in pushed if p.endswith(".parquet")}
    repo = hub.repos[("dataset", "someone/xnli-sw-synth")]
    assert repo.private and repo.files("main") == {**pushed, ".gitattributes": repo.files("main")[".gitattributes"]}
    # the card now names the repo it was pushed to
    assert 'load_dataset("someone/xnli-sw-synth", "div-k", split="train")' in pushed["README.md"].decode()
    assert json.loads(pushed["crossaug_build.json"])["repo_id"] == "someone/xnli-sw-synth"
    assert all(TOKEN.encode() not in content for content in pushed.values())
    head = repo.branches["main"]

    n_calls = len(hub.calls)
    again = push_dataset(folder, "someone/xnli-sw-synth", private=True, endpoint=hub.url)
    assert not again.changed and again.commit == head == repo.branches["main"]
    assert len(hub.commits_posted()) == 1
    second = hub.calls[n_calls:]
    assert not [c for c in second if c["method"] == "PUT"]  # no bytes uploaded again
    assert any("/preupload/" in c["path"] for c in second)  # the hashes were compared, not assumed

    (folder / "data" / "top-k" / "train-00000-of-00001.parquet").unlink()  # a rebuild without top-k
    (folder / "data" / "top-k").rmdir()
    readme = (folder / "README.md").read_text()
    (folder / "README.md").write_text(readme.replace("- config_name: top-k\n  data_files:\n  - split: train\n"
                                                     "    path: data/top-k/train-*.parquet\n", ""))
    third = push_dataset(folder, "someone/xnli-sw-synth", endpoint=hub.url, commit_message="drop top-k")
    assert third.changed and len(hub.commits_posted()) == 2
    ops = [json.loads(x) for x in hub.commits_posted()[-1]["body"].splitlines()][1:]
    assert sorted((o["key"], o["value"]["path"]) for o in ops) == [
        ("deletedFile", "data/top-k/train-00000-of-00001.parquet"), ("file", "README.md")]
    assert "data/top-k/train-00000-of-00001.parquet" not in repo.files("main")
    assert_token_only_in_auth_header(hub.calls)


def test_push_model_to_a_branch_with_model_index(hub, tiny_student, tmp_path):
    from hf_crossaug.stages.source import load_source
    from hf_crossaug.students.evaluate import evaluate_model
    from hf_crossaug.config.tasks import get_task
    NLI = get_task("nli")

    folder = tmp_path / "student"
    shutil.copytree(tiny_student, folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickled weights are never uploaded")
    rows = load_source(NLI, "seed", limit=8, seed=1)
    target = tmp_path / "dev-sw.jsonl"
    target.write_text("".join(json.dumps({**r, "label": NLI.labels[r["label"]]}) + "\n" for r in rows))
    evaluate_model(folder, {"sw": str(target)})

    res = push_model(folder, "someone/tiny-student", revision="v1", endpoint=hub.url,
                     dataset_repo="someone/xnli-sw-synth")
    assert res.changed and res.repo_type == "model" and res.notes == []  # evaluated: model-index present
    assert [json.loads(c["body"])["visibility"] for c in hub.calls if c["path"] == "/api/repos/create"] == ["public"]
    assert [c["path"] for c in hub.calls if "/branch/" in c["path"]] == ["/api/models/someone/tiny-student/branch/v1"]
    (commit,) = hub.commits_posted()
    assert commit["path"] == "/api/models/someone/tiny-student/commit/v1"
    repo = hub.repos[("model", "someone/tiny-student")]
    files = repo.files("v1")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "crossaug_student.json"} <= set(files)
    assert "pytorch_model.bin" not in files and not any(p.startswith("checkpoints/") for p in files)
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert repo.files("main") == {".gitattributes": files[".gitattributes"]}  # main untouched
    card = ModelCard(files["README.md"].decode())
    assert card.data.datasets == ["someone/xnli-sw-synth"]
    assert {r.metric_type for r in card.data.eval_results} == {"accuracy", "f1"}
    assert "model-index" in files["README.md"].decode()
    assert 'pipeline("text-classification", model="someone/tiny-student")' in card.text

    again = push_model(folder, "someone/tiny-student", revision="v1", endpoint=hub.url,
                       dataset_repo="someone/xnli-sw-synth")
    assert not again.changed and len(hub.commits_posted()) == 1
    assert_token_only_in_auth_header(hub.calls)


def test_push_errors_are_one_line(hub, monkeypatch, tiny_built_dataset, tiny_student, tmp_path):
    from hf_crossaug.cli import app

    runner = CliRunner()
    monkeypatch.delenv("HF_TOKEN")
    r = runner.invoke(app, ["push", str(tiny_built_dataset), "someone/x"])
    assert r.exit_code == 2 and "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`" in r.output
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    r = runner.invoke(app, ["push", str(tiny_built_dataset), "no-namespace"])
    assert r.exit_code == 2 and "must look like NAMESPACE/NAME" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["push", str(tmp_path / "empty"), "someone/x"])
    assert r.exit_code == 2 and "neither a built dataset" in r.output
    no_tokenizer = tmp_path / "model"
    shutil.copytree(tiny_student, no_tokenizer)
    (no_tokenizer / "tokenizer_config.json").unlink()
    r = runner.invoke(app, ["push", str(no_tokenizer), "someone/x"])
    assert r.exit_code == 2 and "has no tokenizer (tokenizer_config.json)" in r.output
    assert hub.calls == [] and TOKEN not in r.output


@pytest.mark.parametrize("kind", ["dataset", "model"])
def test_push_offline_is_one_line_and_changes_nothing(kind, tiny_built_dataset, tiny_student, tmp_path):
    """No Hub reachable (HF_ENDPOINT at a closed port): one error line, and the folder's bytes -- card,
    crossaug_build.json / crossaug_student.json -- are exactly as before (they used to be rewritten first)."""
    folder = tmp_path / kind
    shutil.copytree(tiny_built_dataset if kind == "dataset" else tiny_student, folder)
    before = local_files(folder, skip=())
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_TOKEN": TOKEN,
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "hf_crossaug.cli", "push", str(folder), "someone/elsewhere",
                           *(["--dataset-repo", "someone/data"] if kind == "model" else [])],
                          env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out and TOKEN not in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the Hub at http://127.0.0.1:" in errors[0], out[-2000:]
    assert "folder is unchanged" in errors[0]
    assert len(out.strip().splitlines()) == 2, out  # "crossaug push ... -> ..." and the error
    assert local_files(folder, skip=()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name != "hf-home"] == [kind]  # no staging copy left


# ---------------------------------------------------------------- read path

READ_SCRIPT = """
import json, sys
from datasets import load_dataset
from huggingface_hub import HfApi
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

ds = load_dataset("crossaug/xnli-sw-synth", "div-k")  # exactly as written in the card
repo = "crossaug/tiny-student"
sha = HfApi().model_info(repo, revision="main").sha  # olah needs a full sha for from_pretrained (see docstring)
model = AutoModelForSequenceClassification.from_pretrained(repo, revision=sha)
tok = AutoTokenizer.from_pretrained(repo, revision=sha)
clf = pipeline("text-classification", model=model, tokenizer=tok, top_k=None)
out = clf({"text": ds["train"][0]["premise"], "text_pair": ds["train"][0]["hypothesis"]})
print(json.dumps({"rows": ds["train"].num_rows, "columns": ds["train"].column_names, "sha": sha,
                  "labels": sorted(d["label"] for d in out)}))
"""


def _git_repo(src: Path, dest: Path) -> str:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("checkpoints"))
    git = ["git", "-c", "user.name=crossaug", "-c", "user.email=crossaug@localhost", "-C", str(dest)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "push"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_read_path_through_an_olah_mirror(tiny_built_dataset, tiny_student, tmp_path):
    """``load_dataset("crossaug/xnli-sw-synth", "div-k")`` works through olah exactly as written.

    The student loads by repo id with ``revision=<full commit sha>`` (from ``model_info(revision="main")``):
    olah 0.5 in offline mode answers 401 instead of 404 for a file missing at a *branch* name, and
    ``from_pretrained`` probes for ``adapter_config.json`` first, so a bare ``from_pretrained(repo_id)``
    reads that as "repository not found" through olah. Against huggingface.co the bare call works.
    """
    mirrors = tmp_path / "mirrors"
    _git_repo(tiny_built_dataset, mirrors / "datasets" / "crossaug" / "xnli-sw-synth")
    model_sha = _git_repo(tiny_student, mirrors / "models" / "crossaug" / "tiny-student")
    port = _free_port()
    (tmp_path / "olah.toml").write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nmirrors-path = ["{mirrors}"]\nrepos-path = "{tmp_path / "repos"}"\n'
        f'mirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n[accessibility]\noffline = true\n')
    olah_cli = Path(sys.executable).with_name("olah-cli")
    server = subprocess.Popen([str(olah_cli), "-c", str(tmp_path / "olah.toml")], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "olah did not start"
                time.sleep(0.3)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "user-cache"))
        proc = subprocess.run([sys.executable, "-c", READ_SCRIPT], env=env, capture_output=True, text=True,
                              timeout=240, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rows"] == 6 and {"premise", "hypothesis", "teacher_probs", "selected_by"} <= set(out["columns"])
    assert out["sha"] == model_sha
    assert out["labels"] == ["contradiction", "entailment", "neutral"]
    # everything came from the mirror into the fresh user cache
    assert (tmp_path / "user-cache" / "hub" / "models--crossaug--tiny-student" / "snapshots" / model_sha).is_dir()

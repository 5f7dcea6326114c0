"""The demo Space (space/app.py) on tiny models: every endpoint through gradio_client, bad input as a
message, and Debian's headless Chromium rendering the three tabs (screenshot kept in tests/artifacts/)."""

import html
import importlib.util
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_dataset
from gradio_client import Client

pytestmark = pytest.mark.slow  # a served app and a headless browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
TABS = ["Browse a dataset", "Generate live", "Classify"]
# A browser on a closed network hangs on background services unless they are all switched off.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def load_app():
    spec = importlib.util.spec_from_file_location("crossaug_space_app", ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# what the README's test command runs first; the test only finds the browser (installing is set-up, not a test)
INSTALL_CHROMIUM = "command -v chromium || (apt-get update -q && apt-get install -y -q chromium)"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; missing, the test fails (never skips) and says how to install it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(f"the browser test needs Debian's chromium on PATH; install it first: {INSTALL_CHROMIUM}")
    return path


@pytest.fixture(scope="module")
def space(tiny_built_dataset, tiny_student, tiny_llm_dir, tiny_encoder_dir):
    """The app, configured through its environment variables as a Space would be, on 127.0.0.1."""
    teacher = sorted((tiny_built_dataset.parent / "work").glob("teacher-*/best"))[0]
    env = {"CROSSAUG_DATASET": str(tiny_built_dataset), "CROSSAUG_STUDENT": str(tiny_student),
           "CROSSAUG_TEACHER": str(teacher), "CROSSAUG_GENERATOR": str(tiny_llm_dir),
           "CROSSAUG_EMBEDDER": str(tiny_encoder_dir), "CROSSAUG_SPACE_DATA_ROOT": str(tiny_built_dataset.parent),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        app = load_app()
        settings = app.Settings.from_env()
        assert (settings.dataset, settings.student, settings.generator) == (
            env["CROSSAUG_DATASET"], env["CROSSAUG_STUDENT"], env["CROSSAUG_GENERATOR"])
        demo = app.build_demo()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield {"url": f"http://127.0.0.1:{port}/", "dataset": str(tiny_built_dataset)}
        finally:
            demo.close()


def test_every_endpoint_answers(space, tmp_path):
    client = Client(space["url"], verbose=False)
    configs, classes = client.predict(space["dataset"], api_name="/configs")
    assert [c[0] for c in configs["choices"]] == ["raw", "rand-k", "top-k", "div-k", "amb-k", "easy-k"]
    assert configs["value"] == "div-k" and [c[0] for c in classes["choices"]][1:] == ["entailment", "neutral",
                                                                                     "contradiction"]
    table, chart, info = client.predict(space["dataset"], "div-k", "all", api_name="/browse")
    assert {"premise", "hypothesis", "teacher probabilities", "kept by"} <= set(table["headers"])
    assert len(table["data"]) == 6
    kept = table["headers"].index("kept by")
    assert all("div-k" in row[kept] for row in table["data"])  # each row names every strategy that kept it
    assert "diversity score **" in info and "| generations |" in info
    # the chart: rows per class in every config, exactly what the folder holds (k = 2 per class)
    expected = []
    for name in ["raw", "rand-k", "top-k", "div-k", "amb-k", "easy-k"]:
        labels = list(load_dataset(space["dataset"], name, split="train", cache_dir=str(tmp_path))["prompt_label"])
        expected += [[name, cls, labels.count(y)] for y, cls in enumerate(["entailment", "neutral", "contradiction"])]
    assert chart["columns"] == ["config", "class", "rows"] and chart["data"] == expected
    assert sum(n for name, _, n in expected if name == "div-k") == len(table["data"])
    table, _, info = client.predict(space["dataset"], "raw", "entailment", api_name="/browse")
    assert table["data"] and {row[table["headers"].index("prompt label")] for row in table["data"]} == {"entailment"}

    assert client.predict("sentiment", api_name="/labels")["value"] == "negative"
    table, note = client.predict("nli", "neutral", "a travel guide", 2, api_name="/generate")
    assert len(table["data"]) == 2 and "labelled by teacher" in note
    label_col = table["headers"].index("teacher label")
    assert {row[label_col] for row in table["data"]} <= {"entailment", "neutral", "contradiction"}
    assert {row[table["headers"].index("asked for")] for row in table["data"]} == {"neutral"}

    out = client.predict("Mtu anacheza gitaa.", "A person makes music.", api_name="/classify")
    assert {c["label"] for c in out["confidences"]} == {"entailment", "neutral", "contradiction"}
    assert abs(sum(c["confidence"] for c in out["confidences"]) - 1) < 1e-4


@pytest.mark.parametrize("api, args, message", [
    ("/classify", ("", ""), "type a text"),
    ("/classify", ("A man walks.", ""), "enter the hypothesis too"),
    ("/generate", ("nli", "happy", "a novel", 1), "unknown label 'happy'"),
    ("/generate", ("sentiment", "positive", "  ", 1), "describe a domain"),
    ("/browse", ("/nowhere/dataset", "div-k", "all"), "'/nowhere/dataset' is neither a Hub id (namespace/name) nor a folder under"),
    ("/browse", ("missing-folder", "div-k", "all"), "dataset folder not found: missing-folder"),
])
def test_bad_input_is_a_message(space, api, args, message):
    with pytest.raises(Exception) as info:
        Client(space["url"], verbose=False).predict(*args, api_name=api)
    assert message in str(info.value) and "Traceback" not in str(info.value)


def test_headless_chromium_renders_the_three_tabs(space, chromium, tmp_path):
    base = [chromium, *CHROMIUM_FLAGS, "--window-size=1280,900", "--virtual-time-budget=20000"]
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-a'}", "--dump-dom", space["url"]],
                         capture_output=True, text=True, timeout=120)
    tabs = [html.unescape(re.sub(r"<[^>]+>", "", m).strip())
            for m in re.findall(r'<button[^>]*role="tab"[^>]*>(.*?)</button>', dom.stdout, re.S)]
    assert tabs == TABS, dom.stderr[-1500:]
    assert re.search(r'role="tab" aria-selected="true"[^>]*>Browse a dataset<', dom.stdout)
    for text in ("dataset (folder or Hub id)", "selection config", "domain description", "student probabilities"):
        assert text in dom.stdout, text  # every tab's components are in the page
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "space.png"
    shot.unlink(missing_ok=True)
    subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-b'}", f"--screenshot={shot}", space["url"]],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_space_folder_is_ready_for_the_hub():
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(ROOT / "space" / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.sdk_version == __import__("gradio").__version__
    requirements = (ROOT / "space" / "requirements.txt").read_text()
    assert re.search(r"^\S*hf_crossaug\S*\[space\]$", requirements, re.M) and "gradio==" in requirements

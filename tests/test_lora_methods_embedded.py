"""End to end on the embedded offline models, at tiny scale: DAFTT (`crossaug build` with a `daftt:` section,
SmolLM2-135M LoRA-tuned) and Self-Translate-Train (`crossaug finetune`, gemma-3-270m translating and then
LoRA-tuned). Structure is asserted, not quality."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset
from huggingface_hub import DatasetCard

from hf_crossaug.stages.source import seed_path
from hf_crossaug.models.resolve import file_sha256
from hf_crossaug.config.tasks import get_task
NLI = get_task("nli")

pytestmark = pytest.mark.slow  # the embedded real models: minutes on a CPU

SCRIPTS = Path(__file__).resolve().parent.parent / "dataset_scripts"
# Swahili NLI pairs written for this test (not from a benchmark), labels in the task's order
SW = [("Watoto wanacheza mpira bustanini.", "Watoto wako nje.", "entailment"),
      ("Watoto wanacheza mpira bustanini.", "Watoto wamelala kitandani.", "contradiction"),
      ("Mama anapika chakula jikoni.", "Mama anapika wali.", "neutral"),
      ("Soko linafunguliwa mapema Jumapili.", "Soko limefungwa siku nzima ya Jumapili.", "contradiction")]
N = 6  # English source rows translated (2 of the 6 pass the filters) in the Self-Translate-Train test


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hf_crossaug.cli", *args], capture_output=True, text=True,
                          timeout=1800, cwd=tmp_path)  # minutes alone; far more on a busy 2-core box
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def recipe_file(tmp_path: Path, name: str, **changes) -> Path:
    data = yaml.safe_load((SCRIPTS / f"{name}.yaml").read_text())
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# The LLMs are the methods' embedded models; the teacher (and sentence embedder) is the tiny encoder, as
# it is not what these tests are about and the embedded one adds minutes on 2 cores.
def tiny_teacher(encoder) -> dict:
    return dict(teacher={"model": str(encoder), "epochs": 1, "batch_size": 16},
                selection={"strategies": ["rand-k", "top-k"], "k": 1}, dev={"path": "seed", "limit": 9})


def test_daftt_build_embedded(tmp_path, tiny_encoder_dir):
    recipe = recipe_file(tmp_path, "xnli-sw-synth-daftt", per_class=2,
                         daftt={"train_fraction": None, "train_rows": 6,
                                "finetune": {"epochs": 1, "batch_size": 6}}, **tiny_teacher(tiny_encoder_dir))
    out, work = tmp_path / "out", tmp_path / "work"
    run(["build", str(recipe), "--limit", "24", "--output", str(out), "--work-dir", str(work)], tmp_path)

    stats = json.loads((out / "crossaug_build.json").read_text())
    adapter = stats["daftt"]["adapter"]
    assert stats["daftt"]["mode"] == "generate" and stats["daftt"]["labelled_rows"] == 6
    assert adapter["base_model"]["name"] == "embedded:smollm2-135m-instruct" and adapter["training_rows"] == 6
    # crossaug_build.json is uploaded with the dataset: the path is relative to the folder the build ran in
    assert not Path(adapter["path"]).is_absolute()
    assert file_sha256(tmp_path / adapter["path"] / "adapter_model.safetensors") == adapter["sha256"]
    assert stats["counts"]["generations"]["prompts"] == 6  # 2 source premises x 3 labels
    raw = load_dataset(str(out), "raw", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(raw) == stats["counts"]["generations"]["kept"] > 0
    card = DatasetCard.load(out / "README.md").text
    for needle in ("Fine-tuned generator (DAFTT", adapter["sha256"], "r=8, alpha=16", "`lm.item`",
                   "temperature=0.8 (DAFTT generate)"):
        assert needle in card, needle


def test_self_translate_train_finetune_embedded(tmp_path, tiny_encoder_dir):
    target = tmp_path / "dev-sw.jsonl"
    target.write_text("".join(json.dumps({"premise": p, "hypothesis": h, "label": lab}) + "\n" for p, h, lab in SW))
    recipe = recipe_file(tmp_path, "xnli-sw-stt", source={"limit": N}, translate={"max_new_tokens": 32},
                         stt={"finetune": {"epochs": 1, "batch_size": 8, "max_length": 128}},
                         **tiny_teacher(tiny_encoder_dir))
    out, lora = tmp_path / "out", tmp_path / "lora"
    proc = run(["finetune", str(recipe), "--target", f"sw={target}", "--target", f"en={seed_path(NLI)}",
                "--eval-limit", "2", "--output", str(out), "--adapter-output", str(lora), "--work-dir", str(tmp_path / "work"),
                "--english-baseline"], tmp_path)
    assert all(col in proc.stdout for col in ("base LLM", "English-only", "STT macro-F1"))

    ev = json.loads((lora / "evaluation.json").read_text())
    for when in ("before", "english_only", "after"):
        assert {k: ev[when][k]["n"] for k in ("en", "sw")} == {"en": 2, "sw": 2}
        assert all(0 <= ev[when][k]["accuracy"] <= 1 for k in ("en", "sw", "avg"))
    assert ev["adapter"]["base_model"]["name"] == "embedded:gemma-3-270m"
    assert file_sha256(lora / "adapter_model.safetensors") == ev["adapter"]["sha256"]
    assert (lora / "adapter_config.json").exists()
    baseline = ev["english_only_adapter"]  # the paper's baseline: the same LoRA on the English rows alone
    assert baseline["training_rows"] == N and baseline["sha256"] != ev["adapter"]["sha256"]
    assert file_sha256(lora / "english-only" / "adapter_model.safetensors") == baseline["sha256"]
    training = ev["training"]
    kept = training["translation_counts"]["kept"]
    assert training["english"] == N and training["translated"] == 3 * kept  # + both code-switched versions
    assert training["rows"] == N + 3 * kept

    stats = json.loads((out / "crossaug_build.json").read_text())
    assert stats["counts"]["source_rows"] == {"prompts": N, "kept": N} and stats["generator"] is None
    raw = load_dataset(str(out), "raw", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(raw) == 3 * kept and set(raw["pair_languages"]) <= {"sw-sw", "en-sw", "sw-en"}
    assert "labelled source rows themselves" in (out / "README.md").read_text()

"""The wheel carries what an installed ``crossaug`` needs away from a checkout: every recipe (as
``hf_crossaug/recipes/``), the seed data, the task specs, the card templates and the metric scripts."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_recipes_seed_data_templates_and_metrics(tmp_path):
    src = tmp_path / "src"  # build from a copy: the in-tree build/ and *.egg-info stay out of the checkout
    top = {".git", ".venv", "build", "dist", "outputs", "benchmarks", "tests", "space", "model_cards"}
    shutil.copytree(ROOT, src, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n == "__pycache__" or n.endswith(".egg-info")])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("hf_crossaug-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pkg = ROOT / "hf_crossaug"
    expected = {f"hf_crossaug/recipes/{p.name}" for p in (ROOT / "dataset_scripts").glob("*.yaml")}
    expected |= {f"hf_crossaug/{p.relative_to(pkg).as_posix()}" for pattern in
                 ("seed_data/*.jsonl", "templates/*.md", "task_specs/*.yaml", "metrics/*/*.py", "**/*.py")
                 for p in pkg.glob(pattern)
                 if "__pycache__" not in p.parts}
    assert len(expected) > 40
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    assert not any(n.startswith(("dataset_scripts/", "tests/", "recipes/")) for n in names)

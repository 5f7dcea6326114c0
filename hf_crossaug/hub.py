"""Sharing on the Hub: upload a built dataset folder or a trained student folder with ``huggingface_hub``.

Both folders are already laid out like Hub repos (`hf_crossaug.build.export.build_dataset`,
`hf_crossaug.students.classification.train_student`), so a push is ``create_repo`` + ``upload_folder``. The token is
whatever ``huggingface_hub`` resolves (``HF_TOKEN``, then the ``hf auth login`` cache); this module never
reads, prints or writes it. A re-push of an unchanged folder makes no commit: the Hub's preupload answer
carries each remote file's hash and ``upload_folder`` drops files whose local hash matches, and skips
the commit when nothing is left (read in huggingface_hub 2.4, in both its LFS and its Xet upload paths).
The pushed card records the target repo, so cards name where they live and a student's card names the
Hub id of its training dataset. The folder itself is left alone until the upload succeeded: the rewritten
card and stats are uploaded from a staging copy (hard links for every other file), and written into the
folder only afterwards, so a failed push (no network, a refused token) changes nothing on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .students.card import save_results
from .utils.files import BUILD_FILE, RESULTS_FILE, write_atomic

# Never uploaded: training checkpoints, pickled weights (safetensors only), half-written files, caches.
MODEL_IGNORE = ["checkpoints/*", "*.bin", "*.pt", "*.pth", "*.pkl", "*.tmp", "runs/*", ".cache/*"]
DATASET_IGNORE = ["*.tmp", ".cache/*"]
# Remote files under these patterns that the folder no longer has are deleted in the same commit
# (a config dropped from a rebuild, old weight shards), so the repo mirrors the folder.
DATASET_DELETE = ["data/*"]
MODEL_DELETE = ["*.safetensors", "*.safetensors.index.json"]


@dataclass
class PushResult:
    repo_id: str
    repo_type: str
    url: str
    commit: str  # the revision's head after the push
    changed: bool  # False: the folder matched the repo and no commit was made
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = f"new commit {self.commit[:10]}" if self.changed else f"unchanged, no commit (head {self.commit[:10]})"
        return "\n".join([f"{self.repo_type} {self.repo_id}: {what} -> {self.url}", *(f"note: {n}" for n in self.notes)])


def folder_kind(folder: str | Path) -> str:
    """``"dataset"`` for a built dataset folder, ``"model"`` for a model folder; a clear error otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    if (folder / "config.json").is_file():
        return "model"
    if (folder / "data").is_dir() or (folder / BUILD_FILE).is_file():
        return "dataset"
    raise ValueError(f"{folder} is neither a built dataset (data/ + README.md) nor a model folder (config.json)")


def push(folder: str | Path, repo_id: str, **kwargs) -> PushResult:
    """`push_dataset` or `push_model`, chosen by what ``folder`` holds."""
    if folder_kind(folder) == "model":
        return push_model(folder, repo_id, **kwargs)
    kwargs.pop("dataset_repo", None)
    return push_dataset(folder, repo_id, **kwargs)


def push_dataset(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
                 commit_message: str | None = None, endpoint: str | None = None) -> PushResult:
    """Upload a built dataset folder (card, every config, build stats) to the dataset repo ``repo_id``."""
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    _check_target(repo_id)
    card = _load_card(DatasetCard, folder)
    configs = card.data.configs or []
    if not configs:
        raise ValueError(f"{folder / 'README.md'}: the card has no 'configs:'; is this a folder made by crossaug build?")
    for c in configs:
        for spec in c.get("data_files", []):
            for pattern in spec["path"] if isinstance(spec["path"], list) else [spec["path"]]:
                if not list(folder.glob(pattern)):
                    raise FileNotFoundError(f"{folder}: config {c['config_name']!r} has no files matching {pattern}")
    message = commit_message or f"Upload {folder.name} ({len(configs)} configs) with hf_crossaug"
    return _upload(folder, repo_id, "dataset", private, revision, message, endpoint, DATASET_IGNORE, DATASET_DELETE,
                   rewrite=lambda staging: _record_dataset_repo(folder, staging, repo_id))


def push_model(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
               commit_message: str | None = None, endpoint: str | None = None,
               dataset_repo: str | None = None) -> PushResult:
    """Upload a model folder (safetensors weights, tokenizer, card) to the model repo ``repo_id``.

    For a folder made by ``crossaug train``, the card is re-rendered first with ``repo_id`` in its usage
    snippet and, when given, ``dataset_repo`` as the Hub id of its training dataset.
    """
    from huggingface_hub import ModelCard

    folder = Path(folder)
    _check_target(repo_id)
    if not list(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"{folder} has no *.safetensors weights (pickled weights are never uploaded)")
    if not (folder / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer (tokenizer_config.json); save it next to the model")
    results_file = folder / RESULTS_FILE
    rewrite = None
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        results["repo_id"] = repo_id
        if dataset_repo:
            results["dataset"]["hub_id"] = dataset_repo

        def rewrite(staging: Path) -> list[str]:
            save_results(staging, results)  # fresh files in the staging copy, never the folder's own
            return [RESULTS_FILE, "README.md"]
    card = _load_card(ModelCard, folder)
    message = commit_message or f"Upload {folder.name} with hf_crossaug"
    result = _upload(folder, repo_id, "model", private, revision, message, endpoint, MODEL_IGNORE, MODEL_DELETE,
                     rewrite=rewrite, rewrites=[RESULTS_FILE, "README.md"] if rewrite else [])
    if not card.data.eval_results:
        result.notes.append("the card has no model-index results yet: run `crossaug evaluate` on the folder, "
                            "then push again")
    return result


def _load_card(card_class, folder: Path):
    """The folder's card parsed by huggingface_hub (its YAML must load into the card-data class)."""
    path = folder / "README.md"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no README.md card")
    try:
        return card_class.load(path)
    except ValueError as exc:
        raise ValueError(f"{path}: invalid card metadata: {str(exc).splitlines()[0]}") from None


def _record_dataset_repo(folder: Path, staging: Path, repo_id: str) -> list[str]:
    """Write into ``staging`` the folder's card and ``crossaug_build.json`` pointed at ``repo_id``, when they
    name another repo; returns the files written (none when they already name it)."""
    build_file = folder / BUILD_FILE
    if not build_file.is_file():
        return []
    build = json.loads(build_file.read_text())
    old = build.get("repo_id")
    if old == repo_id:
        return []
    written = [BUILD_FILE]
    if old:
        text = (folder / "README.md").read_text().replace(f'"{old}"', f'"{repo_id}"')
        text = text.replace(f"train {old} ", f"train {repo_id} ").replace(f"`{old}`", f"`{repo_id}`")
        (staging / "README.md").write_text(text)
        written.append("README.md")
    build["repo_id"] = repo_id
    (staging / BUILD_FILE).write_text(json.dumps(build, indent=2, default=str))
    return written


def _stage(folder: Path, ignore: list[str], skip: set[str]) -> Path:
    """A staging copy of ``folder`` (hard links where possible) without the ignored files and ``skip``."""
    from huggingface_hub.utils import filter_repo_objects

    try:  # next to the folder, so hard links work
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.push-", dir=folder.parent))
    except OSError:  # a read-only parent folder
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.push-"))
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    for rel in filter_repo_objects(files, ignore_patterns=ignore):
        if rel in skip:
            continue
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(folder / rel, staging / rel)
        except OSError:  # another file system, or no hard links: a copy
            shutil.copy2(folder / rel, staging / rel)
    return staging


def _check_target(repo_id: str) -> None:
    """Fail before touching the folder: a malformed repo id, or no token anywhere huggingface_hub looks."""
    from huggingface_hub import get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo id {repo_id!r} must look like NAMESPACE/NAME")
    if get_token() is None:
        raise ValueError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")


def _upload(folder: Path, repo_id: str, repo_type: str, private: bool, revision: str | None, message: str,
            endpoint: str | None, ignore: list[str], delete: list[str], rewrite=None,
            rewrites: list[str] | None = None) -> PushResult:
    """Upload ``folder``; ``rewrite(staging)`` writes changed files into a staging copy and returns their
    names: those are uploaded instead, and copied into ``folder`` only once the upload succeeded."""
    staging = None
    try:
        if rewrite is not None:
            # files a rewrite may write are never linked: writing through a hard link would change the folder
            skip = set(rewrites or ["README.md", BUILD_FILE, RESULTS_FILE])
            staging = _stage(folder, ignore, skip)
            written = set(rewrite(staging))
            for rel in skip - written:  # not rewritten after all: upload the folder's own copy
                if (folder / rel).is_file():
                    shutil.copy2(folder / rel, staging / rel)
        else:
            written = set()
        result = _push(staging or folder, repo_id, repo_type, private, revision, message, endpoint, ignore, delete)
        for rel in sorted(written):  # the push succeeded: the folder now says where it lives
            write_atomic(folder / rel, (staging / rel).read_text(encoding="utf-8"))
        return result
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _push(folder: Path, repo_id: str, repo_type: str, private: bool, revision: str | None, message: str,
          endpoint: str | None, ignore: list[str], delete: list[str]) -> PushResult:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        before = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type=repo_type, revision=revision,
                                 commit_message=message, ignore_patterns=list(ignore), delete_patterns=delete)
    except HfHubHTTPError as exc:  # one line; the message names the URL, never the token
        raise RuntimeError(f"the Hub refused the push: {_first_line(exc)}") from None
    except (*_transport_errors(), OSError) as exc:  # no network, no DNS, a closed port, a timeout
        where = endpoint or api.endpoint
        raise RuntimeError(f"cannot reach the Hub at {where} ({type(exc).__name__}: {_first_line(exc)}); "
                           "nothing was uploaded and the folder is unchanged") from None
    return PushResult(repo_id=repo_id, repo_type=repo_type, url=str(url), commit=info.oid, changed=info.oid != before)


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client errors huggingface_hub lets through (httpx2 in 2.x, httpx in 1.x)."""
    import importlib

    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)

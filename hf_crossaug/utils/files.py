"""Safe files and folders: atomic writes, an exclusive lock on a work folder, and a marker that says a folder
was written by hf_crossaug (the only kind of folder the package ever replaces)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUILD_FILE = "crossaug_build.json"  # a built dataset's stats and provenance, next to its card
RESULTS_FILE = "crossaug_student.json"  # a trained student's results, next to its card
MARKER_FILE = ".crossaug-output"  # written into every folder the package creates and may later replace
LOCK_FILE = ".crossaug.lock"


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_replaceable(out: Path, option: str = "-o") -> None:
    """An output folder may be (re)written only if it is absent, empty, or was written by the package
    (it holds `MARKER_FILE`); anything else is one clear error, and nothing is touched."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink() and ((out / MARKER_FILE).is_file() or not any(out.iterdir())):
        return
    raise FileExistsError(f"output folder {out} exists and was not written by hf_crossaug; "
                          f"choose another {option} or remove it yourself")


def replace_output_folder(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder (which holds `MARKER_FILE`) to ``out``, replacing an earlier build."""
    check_replaceable(out)
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def check_output_file(path: str | Path, option: str) -> None:
    """A file the package will write must not be a folder, nor sit under a file: said before the work,
    so the results are never lost to a failed write at the end."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file path, e.g. {path / 'results.json'}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")


def mark_output_folder(out: str | Path, option: str) -> None:
    """Create ``out`` (or accept it when `check_replaceable` does) and mark it as the package's."""
    out = Path(out)
    check_replaceable(out, option)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_FILE).touch()


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A fresh marked folder to write ``out``'s files into; when the block ends without an error it replaces
    ``out`` (checked first: `check_replaceable`), so a failed run leaves the earlier output as it was.

    The staging folder has ``out``'s name (inside a hidden per-process folder beside it), so whatever
    records the folder's name while writing (a student's ``model_name``) records the final one."""
    out = Path(out)
    check_replaceable(out)
    run, distributed, finisher = _launch()
    holder = out.with_name(f".{out.name}.crossaug-tmp-{run}")
    if not distributed:  # our own leftover: the name carries this process's PID (ranks would race on it)
        shutil.rmtree(holder, ignore_errors=True)
    tmp = holder / out.name
    tmp.mkdir(parents=True, exist_ok=distributed)
    (tmp / MARKER_FILE).touch()
    try:
        yield tmp
        if finisher:
            replace_output_folder(tmp, out)
    finally:
        if finisher:
            shutil.rmtree(holder, ignore_errors=True)


def _launch() -> tuple[str, bool, bool]:
    """(staging id, distributed, whether this process finishes the output). Under ``accelerate launch`` /
    torchrun (``WORLD_SIZE`` > 1) every rank must write into one folder -- the Trainer saves checkpoints on rank 0
    and every rank loads the best one from there -- so the id is the launcher's (the ranks' parent) and rank 0
    alone moves the finished folder into place."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return str(os.getppid()), True, int(os.environ.get("RANK", "0")) == 0
    return str(os.getpid()), False, True


class WorkLock:
    """An exclusive lock on a work folder (``fcntl.flock`` on `LOCK_FILE`): a second build with the same
    work folder gets one line naming the holder's PID instead of corrupting shared files. The OS drops the
    lock when the holder dies, so a ``kill -9`` never leaves a stale lock behind."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._fh = None

    def __enter__(self) -> "WorkLock":
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # not "[Errno 17] File exists"
            raise ValueError(f"work folder {self.folder} cannot be created: it, or a folder above it, is a file; "
                             "pass another --work-dir") from None
        self._fh = open(self.folder / LOCK_FILE, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "{}"
            self._fh.close()
            info = json.loads(holder) if holder.startswith("{") else {}
            raise RuntimeError(f"work folder {self.folder} is in use by another build (pid {info.get('pid', '?')} "
                               f"on {info.get('host', '?')}); wait for it or pass another --work-dir") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        self._fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()

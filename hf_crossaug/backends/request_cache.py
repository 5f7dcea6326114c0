"""A request-level answer cache in the work folder, so a killed or failed endpoint run resumes for free.

Each answer is committed the moment it arrives (SQLite in WAL mode, one row per request), so ``kill -9``
loses only the requests in flight. Keys hash what decides an answer (model id, revision, request body
with its sampling parameters and seed) and never the URL: moving to another replica, port or provider
serving the same model keeps every cached answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

CACHE_FILE = "requests.sqlite"  # default file name inside a cache folder


def key_for(model: str, revision: str | None, body: dict) -> str:
    """Content hash of one request; ``body`` is the JSON sent (prompt or messages, sampling, seed)."""
    blob = json.dumps({"model": model, "revision": revision, "body": body}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    """``key -> JSON dict`` in one SQLite file, safe to share between threads and an asyncio loop.

    Calls are short (one indexed row), so a lock around a single connection is enough; writers in
    other processes are serialised by SQLite itself (``busy_timeout``). ``synchronous=NORMAL`` in WAL
    mode survives a killed process (not a power cut), which is the failure this cache is for.
    """

    def __init__(self, path: str | Path):
        """``path``: the SQLite file, or an existing folder to hold ``requests.sqlite``."""
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """Cached answers among ``keys`` (chunked: SQLite caps the number of bound parameters)."""
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for k, v in self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk):
                    found[k] = json.loads(v)
        return found

    def put(self, key: str, value: dict) -> None:
        """Store and commit at once (autocommit): the answer survives a kill right after this returns."""
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
                             (key, blob, time.time()))

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""The SQLite database under LAB_HOME: schema and connections, nothing else.

Tables: `runs` (training run records), `votes` (arena battles), `evaluations` (batch evaluation records).
Each writer opens a short-lived connection (`connect`), so several processes and threads (the UI, a
training child, the CLI) can share the file: WAL mode and a busy timeout make concurrent writes wait
rather than fail. Modules above this one own the meaning of the rows.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.errors import LabError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,             -- queued | running | finished | stopped | failed | cancelled
    method TEXT NOT NULL,
    base_model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    data_hash TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL,             -- JSON of TrainConfig
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',   -- JSON: final loss, eval loss, tokens/s, peak memory
    error TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    question TEXT NOT NULL,
    system_a TEXT NOT NULL,
    system_b TEXT NOT NULL,
    answer_a TEXT NOT NULL,
    answer_b TEXT NOT NULL,
    winner TEXT NOT NULL,             -- a | b | tie | both_bad
    blind INTEGER NOT NULL DEFAULT 1,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS battles (
    id TEXT PRIMARY KEY,              -- random id the server issued when the battle started
    created_at REAL NOT NULL,
    question TEXT NOT NULL,
    system_a TEXT NOT NULL,
    system_b TEXT NOT NULL,
    answer_a TEXT,                    -- NULL until both answers are complete
    answer_b TEXT,
    status TEXT NOT NULL,             -- generating | ready | failed | voted
    settings TEXT NOT NULL DEFAULT '{}',
    vote_id INTEGER                   -- votes.id once voted (one vote per battle)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    qa TEXT NOT NULL,
    systems TEXT NOT NULL,            -- JSON list
    status TEXT NOT NULL,             -- running | finished | cancelled | failed
    summary TEXT NOT NULL DEFAULT '{}',
    path TEXT NOT NULL
);
"""


class DatabaseError(LabError):
    """lab.db cannot be used (damaged, not a database, unwritable); the message says what to do."""


_READY: set[tuple] = set()  # (path, device, inode) of database files this process has initialised


def _identity(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), st.st_dev, st.st_ino)


def init(path: str | Path) -> Path:
    """Create the database file and tables if missing; return the path. Raises DatabaseError, once, in words.
    Cheap after the first call for the same file (a file replaced or deleted since is initialised again)."""
    path = Path(path)
    if _identity(path) in _READY:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _create(path)
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):
            raise DatabaseError(
                f"{path} stayed locked by another process for 40 s: close the other program using it or try again"
            ) from None
        raise DatabaseError(
            f"{path} is not a usable SQLite database ({exc}): move it aside (for example to {path.name}.broken) "
            "and start again; a new empty database is created, saved datasets, runs and indexes are kept"
        ) from None
    _READY.add(_identity(path))
    return path


def _create(path: Path, attempts: int = 40) -> None:
    """The schema, retried while another process holds the file: two processes opening a new database at once
    (the app and a CLI, two training children) can see "database is locked" from the switch to WAL, which does
    not wait on the busy timeout. Only a locked file is retried; anything else is raised at once."""
    for attempt in range(attempts):
        try:
            with connect(path) as conn:
                conn.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


@contextlib.contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits on success, rolls back on error and always closes."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        if conn.in_transaction:  # executescript commits on its own
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def rows(path: str | Path, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
    """Run a query and return plain dicts (JSON columns left as text)."""
    with connect(path) as conn:
        return [dict(r) for r in conn.execute(sql, params).fetchall()]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)

"""SQLite storage of a study: its settings and every trial, each committed when it finishes.

One file, ``DIR/study.db``. A trial is written as ``running`` before it is evaluated and updated to
``complete`` (or ``failed``) in its own transaction, so a study killed at any point keeps every
finished trial; ``running`` rows found on resume were interrupted and are evaluated again.

The schema is versioned (SQLite's ``user_version``): opening a database written by an older cato
migrates it, in one transaction, step by step; one written by a newer cato is refused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,          -- 'search' or 'baseline'
    name TEXT,                   -- baseline name such as all@50
    state TEXT NOT NULL,         -- running, complete, failed
    config TEXT NOT NULL,
    objective_values TEXT,
    details TEXT,
    started REAL NOT NULL,
    finished REAL
);
"""



class TrialState(str, Enum):
    """A trial's lifecycle: running until its evaluation returns, then complete or failed (an error,
    or interrupted by a killed process)."""
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"




def _settings_gain_model_seeds(db: sqlite3.Connection) -> None:
    """v0 -> v1: studies made before ``model_seeds`` scored every model with one seed; they keep doing so."""
    row = db.execute("SELECT value FROM study WHERE key = 'settings'").fetchone()
    if row:
        settings = json.loads(row[0])
        settings.setdefault("model_seeds", 1)
        db.execute("UPDATE study SET value = ? WHERE key = 'settings'", (json.dumps(settings),))


#: Migrations: MIGRATIONS[v] takes a database from version v to v + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_settings_gain_model_seeds]
SCHEMA_VERSION = len(MIGRATIONS)


class StorageError(RuntimeError):
    pass


@dataclass
class TrialRecord:
    number: int
    kind: str
    name: str | None
    state: TrialState
    config: dict
    values: dict | None
    details: dict
    started: float
    finished: float | None


class SQLiteStorage:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            with self.transaction():
                new = self.db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'trials'").fetchone()[0] == 0
                if new:
                    # Statement by statement: executescript() would commit the transaction first.
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        self.db.execute(statement)
                    self._set_version(SCHEMA_VERSION)
                else:
                    self._migrate()
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path}: not a cato study database ({e})") from None

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _set_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version = {int(version)}")

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise StorageError(f"{self.path}: written by a newer cato (study schema v{version}; this cato reads "
                               f"up to v{SCHEMA_VERSION}): upgrade cato to open it")
        for step in MIGRATIONS[version:]:
            step(self.db)
        self._set_version(SCHEMA_VERSION)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: committed whole, or rolled back on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # settings
    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM study WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO study (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # trials
    def start_trial(self, kind: str, config: dict, name: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO trials (kind, name, state, config, started) VALUES (?, ?, ?, ?, ?)",
            (kind, name, TrialState.RUNNING.value, json.dumps(config), time.time()))
        return int(cur.lastrowid)

    def finish_trial(self, number: int, values: dict | None, details: dict,
                     state: TrialState = TrialState.COMPLETE) -> None:
        self.db.execute(
            "UPDATE trials SET state = ?, objective_values = ?, details = ?, finished = ? WHERE number = ?",
            (TrialState(state).value, json.dumps(values) if values is not None else None, json.dumps(details, default=str),
             time.time(), number))

    def revise_trial(self, number: int, values: dict, details: dict) -> None:
        """Replace a finished trial's measurements (a study measured again by a newer profiler, say), its
        state and times kept."""
        self.db.execute("UPDATE trials SET objective_values = ?, details = ? WHERE number = ?",
                        (json.dumps(values), json.dumps(details, default=str), number))

    def trials(self, kind: str | None = None, state: TrialState | None = None) -> list[TrialRecord]:
        sql, args = "SELECT * FROM trials WHERE 1=1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if state:
            sql += " AND state = ?"
            args.append(TrialState(state).value)
        rows = self.db.execute(sql + " ORDER BY number", args).fetchall()
        return [TrialRecord(r[0], r[1], r[2], TrialState(r[3]), json.loads(r[4]), json.loads(r[5]) if r[5] else None,
                            json.loads(r[6]) if r[6] else {}, r[7], r[8]) for r in rows]

"""SQLite storage of a study: its settings and every trial, each committed when it finishes.

One file, ``DIR/study.db``. A trial is written as ``running`` before it is evaluated and updated to
``complete`` (or ``failed``) in its own transaction, so a study killed at any point keeps every
finished trial; ``running`` rows found on resume were interrupted and are evaluated again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

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

RUNNING, COMPLETE, FAILED = "running", "complete", "failed"


class StorageError(RuntimeError):
    pass


@dataclass
class TrialRecord:
    number: int
    kind: str
    name: str | None
    state: str
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
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path}: not a cato study database ({e})") from None

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
            (kind, name, RUNNING, json.dumps(config), time.time()))
        return int(cur.lastrowid)

    def finish_trial(self, number: int, values: dict | None, details: dict, state: str = COMPLETE) -> None:
        self.db.execute(
            "UPDATE trials SET state = ?, objective_values = ?, details = ?, finished = ? WHERE number = ?",
            (state, json.dumps(values) if values is not None else None, json.dumps(details, default=str),
             time.time(), number))

    def trials(self, kind: str | None = None, state: str | None = None) -> list[TrialRecord]:
        sql, args = "SELECT * FROM trials WHERE 1=1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if state:
            sql += " AND state = ?"
            args.append(state)
        rows = self.db.execute(sql + " ORDER BY number", args).fetchall()
        return [TrialRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]) if r[5] else None,
                            json.loads(r[6]) if r[6] else {}, r[7], r[8]) for r in rows]

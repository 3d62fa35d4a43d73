"""`cato tune` killed with SIGKILL at random moments, again and again, then resumed (#19): no finished trial
lost, changed or repeated, and the study database never corrupt."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"


def _trials(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        try:
            return con.execute("SELECT number, config, objective_values FROM trials WHERE kind = 'search' "
                               "AND state = 'complete' ORDER BY number").fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # killed between creating the file and its schema
                return []
            raise


def test_tune_killed_at_random_moments_resumes_to_the_same_study(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["pcap,label"]
    for i in range(3):
        for name, label in (("small", "web"), ("long", "bulk")):
            shutil.copy(TRACES / f"{name}.pcap", corpus / f"{name}{i}.pcap")
            rows.append(f"{name}{i}.pcap,{label}")
    (corpus / "labels.csv").write_text("\n".join(rows) + "\n")
    study, budget = tmp_path / "study", 8
    args = [sys.executable, "-m", "cato", "tune", str(corpus), "--study", str(study), "--budget", str(budget),
            "--initial", "2", "--max-depth", "3", "--models", "dt", "--folds", "2", "--no-baselines",
            "--model-seeds", "1", "-j", "1", "--deployment", "bare"]  # the resume is tested, not the deployment
    env = {**os.environ, "CATO_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore"}
    rng = random.Random(19)
    seen: list[tuple] = []
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(args + (["--resume"] if attempt else []), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        # Once a new trial has finished, at a random moment of the next one (or of the extraction, or the
        # start-up, when the kill comes early).
        deadline = time.monotonic() + 300
        while proc.poll() is None and len(_trials(study / "study.db")) <= len(seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:  # finished before the kill
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        now = _trials(study / "study.db")
        assert now[:len(seen)] == seen, "a finished trial was lost or changed"
        seen = now
    assert kills >= 3 and 0 < len(seen) < budget, "the study ended before it was killed thrice: kill sooner"
    final = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    done = _trials(study / "study.db")
    assert done[:len(seen)] == seen
    configs = [json.dumps(json.loads(c), sort_keys=True) for _, c, _ in done]
    assert len(configs) == budget and len(set(configs)) == budget, "a trial was repeated or is missing"

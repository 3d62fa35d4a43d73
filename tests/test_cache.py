"""The cache's writes: whole files only, and writers of one entry never collide."""

from __future__ import annotations

import threading
import time

import pytest

from cato.cache import write_atomic, write_text_atomic


def test_concurrent_writers_of_one_entry_both_succeed(tmp_path):
    path = tmp_path / "entry.json"
    seen_partial, errors = [], []

    def slow_write(p):
        with open(p, "w") as out:
            out.write("{\"half\": ")
            out.flush()
            time.sleep(0.2)  # the other writer runs meanwhile
            out.write("1}")

    def writer():
        try:
            write_atomic(path, slow_write)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    def reader():
        for _ in range(40):
            if path.exists() and path.read_text() != "{\"half\": 1}":
                seen_partial.append(path.read_text())
            time.sleep(0.01)

    threads = [threading.Thread(target=f) for f in (writer, writer, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not seen_partial
    assert path.read_text() == "{\"half\": 1}"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"], "a private file was left behind"


def test_a_failed_write_leaves_the_old_entry(tmp_path):
    path = tmp_path / "entry.txt"
    write_text_atomic(path, "old")

    def broken(p):
        p.write_text("new, half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["entry.txt"]

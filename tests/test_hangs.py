"""No cato run hangs in silence: a stale BoTorch build lock, a Zeek that never ends (#19)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

#: A study's BO iteration in a fresh process, on toy objectives: the initial design, then qLogNEHVI.
BO_ROUND = textwrap.dedent("""
    import sys
    from cato.search._fused_kernel import extension_lock
    from cato.search.samplers import BoTorchSampler
    from cato.search.space import SearchSpace
    feats = ("orig_pkts", "resp_pkts", "orig_size_mean", "resp_size_mean")
    space = SearchSpace(feats, 10)
    lock = extension_lock()
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.touch()  # what a process killed while compiling leaves behind
    history = []
    for n in range(5):
        sampler = BoTorchSampler(space, ("f1", "cpu"), seed=1, n_initial=3, num_restarts=2, raw_samples=32)
        config, info = sampler.ask(history, n)
        useful = sum(f in config.features for f in feats[:2])
        history.append((config, {"f1": 0.3 * useful + 0.01 * config.depth, "cpu": 5.0 * len(config.features)}))
    from botorch.acquisition.multi_objective import logei
    print("source", info["source"], "fused", logei._C is not None, "lock", lock.exists(), lock)
""")


def _python(code: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


def test_botorch_as_shipped_waits_forever_on_a_stale_build_lock(tmp_path):
    # The user's report, reproduced: BoTorch left alone waits on the lock at 0% CPU.
    code = ("from pathlib import Path; import sys; from cato.search._fused_kernel import extension_lock; "
            "lock = extension_lock(); lock.parent.mkdir(parents=True, exist_ok=True); lock.touch(); "
            "from botorch.acquisition.multi_objective import logei; logei._try_load_fused_kernel()")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        _python(code, {"TORCH_EXTENSIONS_DIR": str(tmp_path)}, timeout=6)
    assert time.monotonic() - started >= 6


def test_a_stale_build_lock_never_stops_a_bo_iteration(tmp_path):
    r = _python(BO_ROUND, {"TORCH_EXTENSIONS_DIR": str(tmp_path), "CATO_BOTORCH_FUSED": ""}, timeout=180)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["source", "qLogNEHVI"], r.stdout  # a real BO proposal was made
    assert "fused False" in r.stdout and "lock True" in r.stdout  # pure-torch path; the lock was not touched
    assert not list(tmp_path.rglob("*.so")), "nothing was compiled"


def test_a_stale_build_lock_is_named_when_the_fused_kernel_is_asked_for(tmp_path):
    started = time.monotonic()
    r = _python(BO_ROUND, {"TORCH_EXTENSIONS_DIR": str(tmp_path), "CATO_BOTORCH_FUSED": "1"}, timeout=120)
    assert r.returncode != 0
    lock = tmp_path / "logei_fused_ext" / "lock"  # torch builds straight under $TORCH_EXTENSIONS_DIR
    assert "KernelLockError" in r.stderr and str(lock) in r.stderr, r.stderr
    assert time.monotonic() - started < 120


# A Zeek that hangs for real: on the connection to UDP port 4242 it stops processing packets and
# waits, at 0% CPU, for a resume that never comes (what a deadlocked or wedged Zeek looks like).
# Honest work gets a wide margin: the traces here take Zeek well under a second, even on a busy machine.
HANG_TIMEOUT_S = 10
HANG = "\nevent new_connection(c: connection) { if ( c$id$resp_p == 4242/udp ) suspend_processing(); }\n"


def _hang_capture(path: Path) -> Path:
    import dpkt
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i in range(3):
            udp = dpkt.udp.UDP(sport=5000, dport=4242, data=b"x" * 10)
            udp.ulen = len(bytes(udp))
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17, data=udp)
            ip.len = len(bytes(ip))
            w.writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\1" * 6, type=0x800, data=ip)), ts=1000 + i)
    return path


def _corpus(root: Path) -> Path:
    import shutil
    traces = Path(__file__).parent / "btest" / "Traces"
    root.mkdir()
    shutil.copy(traces / "small.pcap", root / "small.pcap")
    shutil.copy(traces / "long.pcap", root / "long.pcap")
    _hang_capture(root / "hang.pcap")
    (root / "labels.csv").write_text("pcap,label\nsmall.pcap,a\nhang.pcap,b\nlong.pcap,c\n")
    return root


@pytest.mark.zeek
def test_a_capture_zeek_hangs_on_is_named_and_the_rest_extracted(zeek, tmp_path):
    from cato.codegen import generate
    from cato.features import resolve
    from cato.zeek.corpus_run import run_over_captures
    root = _corpus(tmp_path / "c")
    script = tmp_path / "gen.zeek"
    script.write_text(generate(resolve("orig_pkts,resp_port"), [5]).text + HANG)
    started = time.monotonic()
    run = run_over_captures(script, [(p, root / p) for p in ("small.pcap", "hang.pcap", "long.pcap")],
                            jobs=1, zeek=zeek, timeout=HANG_TIMEOUT_S)
    took = time.monotonic() - started
    skipped = {p.capture: p.reason for p in run.problems if p.skipped}
    assert list(skipped) == ["hang.pcap"] and "hung" in skipped["hang.pcap"], skipped
    assert f"{HANG_TIMEOUT_S}s" in skipped["hang.pcap"], skipped
    assert set(run.vectors["capture"]) == {"small.pcap", "long.pcap"}
    # The merged stream, then the capture alone: two timeouts, then the others run on (not a third).
    assert 2 * HANG_TIMEOUT_S <= took < 3 * HANG_TIMEOUT_S + 60


@pytest.mark.zeek
def test_a_capture_zeek_hangs_on_is_left_out_of_a_profile(zeek, tmp_path, monkeypatch):
    import dataclasses

    from cato.codegen import generate
    from cato.corpus import load_corpus
    from cato.features import resolve
    from cato.zeek.profiling import profile
    monkeypatch.setenv("CATO_ZEEK_TIMEOUT", str(HANG_TIMEOUT_S))
    corpus = load_corpus(_corpus(tmp_path / "c"))
    script = generate(resolve("orig_pkts,resp_port"), [5])
    hanging = dataclasses.replace(script, text=script.text + HANG)
    cache = tmp_path / "cache"
    result = profile(corpus, hanging, repeat=1, attribute=False, cache_dir=cache, zeek=zeek)
    assert list(result.left_out) == ["hang.pcap"] and "hung" in result.left_out["hang.pcap"]
    assert result.connections > 0
    # Every later measurement of this corpus leaves it out too, without hanging again: costs stay comparable.
    # (A long limit now: running the capture again would take all of it, whatever the machine's load.)
    monkeypatch.setenv("CATO_ZEEK_TIMEOUT", "60")
    started = time.monotonic()
    other = profile(corpus, generate(resolve("orig_pkts"), [5]), repeat=1, attribute=False, cache_dir=cache,
                    zeek=zeek)
    assert list(other.left_out) == ["hang.pcap"] and time.monotonic() - started < 30


@pytest.mark.zeek
def test_zeek_runs_have_a_time_limit_by_default(zeek, tmp_path, monkeypatch):
    from cato.zeek import ZeekError, run_zeek
    monkeypatch.setenv("CATO_ZEEK_TIMEOUT", "2")  # only the hang runs: no honest work to give a margin
    with pytest.raises(ZeekError, match="did not finish within 2s") as e:
        run_zeek(_hang_capture(tmp_path / "h.pcap"), [_write(tmp_path / "h.zeek", HANG)], workdir=tmp_path / "w",
                 zeek=zeek, check=False)
    assert e.value.timed_out
    monkeypatch.setenv("CATO_ZEEK_TIMEOUT", "soon")
    with pytest.raises(ZeekError, match="CATO_ZEEK_TIMEOUT"):
        run_zeek(None, [], zeek=zeek)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

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
        sampler = BoTorchSampler(space, ("f1", "cpu"), seed=1, n_initial=3, num_restarts=2, raw_samples=32,
                                 depth_sweep_every=0)
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
        _python(code, {"TORCH_EXTENSIONS_DIR": str(tmp_path)}, timeout=8)
    assert time.monotonic() - started >= 8


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

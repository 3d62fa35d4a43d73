"""Extraction and search trials as Ray tasks (``--ray``), on a Ray cluster of two nodes on this machine.

The cluster is a head and a worker node, each a raylet of its own with one CPU, started by
``ray.cluster_utils.Cluster`` and stopped by it at teardown (it ends the processes it started, by handle).
``ray start --address`` cannot add a node that stays on the loopback interface (with Ray's clusters on,
it takes the machine's address for 127.0.0.1 and binds every interface); here every server binds
127.0.0.1 alone. Ray is in the ``test`` extra: without it these tests skip outside CI and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.executors import ExecutorError, RayExecutor, connect, ray_available
from cato.study import Study, StudySettings, run_study
from cato.study.storage import TrialState

from conftest import IN_CI

pytestmark = [pytest.mark.zeek, pytest.mark.corpora, pytest.mark.slow]

MAX_DEPTH = 5


def _need_ray() -> None:
    if not ray_available():
        if IN_CI:
            pytest.fail("CI=true but Ray is not installed: the test extra installs it (cato[ray])")
        pytest.skip(f"Ray not installed ({'pip install cato[ray]'})")


@pytest.fixture(scope="module")
def ray_cluster(zeek, cache):
    """Two Ray nodes on this machine (one CPU each), on 127.0.0.1 only; this process connected to them."""
    _need_ray()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the raylets' children read it
        mp.setenv("CATO_CACHE", str(cache))  # connect() hands it to the tasks
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # node address 127.0.0.1, servers bound to it
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            context = connect(cluster.address)
            try:
                yield context
            finally:
                context.close()
        finally:
            cluster.shutdown()


def test_the_cluster_is_two_nodes_on_the_loopback(ray_cluster):
    import ray
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert ray_cluster.nodes == 2 and ray_cluster.cpus == 2
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}


def test_extraction_on_ray_matches_the_local_one(ray_cluster, mini_corpus, tmp_path):
    corpus = load_corpus(mini_corpus)
    local = load_dataset(corpus, MAX_DEPTH, tmp_path / "local")
    remote = load_dataset(corpus, MAX_DEPTH, tmp_path / "ray", executor=RayExecutor(ray_cluster))
    assert remote.key == local.key and remote.connections == local.connections > 50
    assert remote.classes == local.classes and (remote.y == local.y).all()
    import numpy as np
    for depth in (1, MAX_DEPTH):
        assert np.array_equal(remote.matrix(local.features, depth), local.matrix(local.features, depth))


def _study(directory: Path, mini_corpus: Path, cache: Path, costs: Path, *, initial: int, baselines: bool = False,
           sampler_params: dict | None = None):
    """A small study (search only, three folds, one model seed) whose profiles and F1s go to ``costs``:
    each backend measures its own."""
    settings = StudySettings(str(mini_corpus), max_depth=MAX_DEPTH, baselines=baselines, initial=initial, folds=3,
                             model_seeds=1, sampler_params=sampler_params or {})
    study = Study.open(directory, settings)
    corpus = settings.load_corpus()
    dataset = load_dataset(corpus, MAX_DEPTH, cache)
    evaluator = study.evaluator(corpus, dataset)
    evaluator.cache_dir = costs
    return study, dataset, evaluator


def _rows(study: Study):
    return study.storage.trials("search")


def test_a_study_on_ray_with_one_slot_is_the_local_study(ray_cluster, mini_corpus, cache, tmp_path):
    """The same trials in the same order: the baselines, two from the initial design, two from qLogNEHVI; each F1 the
    same (cross-validated again on the Ray nodes). What the search proposes depends on the measured costs,
    which differ from one measurement to the next, so the Ray study reads the local study's (its profiles'
    cache); the next test measures costs on Ray. The accurate-end bisection is off: whether it takes the BO
    trials depends on how ALL's measured cost compares with a top-k's, and what is checked here is the GP."""
    budget = 4
    no_bisection = {"accurate_end_bisection": False}
    local, dataset, evaluator = _study(tmp_path / "local", mini_corpus, cache, tmp_path / "costs-local", initial=2,
                                       baselines=True, sampler_params=no_bisection)
    run_study(local, dataset, evaluator, budget)
    for kind in ("profiles", "baselines"):
        shutil.copytree(tmp_path / "costs-local" / kind, tmp_path / "costs-ray" / kind)
    remote, dataset, evaluator = _study(tmp_path / "ray", mini_corpus, cache, tmp_path / "costs-ray", initial=2,
                                        baselines=True, sampler_params=no_bisection)
    run_study(remote, dataset, evaluator, budget, executor=RayExecutor(ray_cluster, slots=1))

    assert [(t.number, t.name, t.values) for t in local.trials("baseline")] == \
        [(t.number, t.name, t.values) for t in remote.trials("baseline")]
    a, b = local.trials("search"), remote.trials("search")
    assert len(a) == len(b) == budget and len(_rows(remote)) == budget
    assert [t.config.key() for t in a] == [t.config.key() for t in b]
    assert [t.details["source"] for t in a] == [t.details["source"] for t in b]
    assert any(t.details["source"].startswith("qLogNEHVI") for t in b)
    assert [t.values for t in a] == [t.values for t in b]
    assert not any(t.details["quality_cached"] for t in b)
    import ray
    node_ids = {n["NodeID"] for n in ray.nodes()}
    assert all(t.details["node_id"] in node_ids for t in b)


def test_two_slots_keep_two_trials_running_and_never_propose_a_running_one(ray_cluster, mini_corpus, cache,
                                                                            tmp_path):
    budget = 4
    study, dataset, evaluator = _study(tmp_path / "s", mini_corpus, cache, tmp_path / "costs", initial=2,
                                       baselines=True)
    run_study(study, dataset, evaluator, budget, executor=RayExecutor(ray_cluster, slots=2))
    # The baselines (ALL, MI-top-10 and RFE-top-10 at the one depth the space has) ran on Ray too, in order.
    baselines = study.storage.trials("baseline")
    assert [r.name for r in baselines] == list(study.baseline_configs(study.storage.get("importance")))
    assert all(r.state == TrialState.COMPLETE and r.details["node_id"] for r in baselines)
    rows = _rows(study)
    assert len(rows) == budget and all(r.state == TrialState.COMPLETE for r in rows)
    keys = [study.trials("search")[i].config.key() for i in range(budget)]
    assert len(set(keys)) == budget
    trials = study.trials("search")
    # Costs measured on the Ray nodes (a profile is cached only when two trials share a script).
    assert all(t.values["cpu"] > 0 and t.details["cpu_ratio"] > 0 for t in trials)
    assert not trials[0].details["profile_cached"]
    # Two tasks of one CPU at once on two one-CPU nodes: both nodes ran trials.
    assert len({t.details["node_id"] for t in trials}) == 2


def test_tune_joins_a_cluster_by_its_address(ray_cluster, mini_corpus, cache, tmp_path):
    import json
    import sqlite3
    import subprocess
    import sys
    env = {**os.environ, "CATO_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0",
           # the cluster listens on 127.0.0.1 alone: Ray must not swap it for the machine's address
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    study = tmp_path / "s"
    r = subprocess.run([sys.executable, "-m", "cato", "tune", str(mini_corpus), "--study", str(study), "--budget", "2",
                        "--no-baselines", "--max-depth", str(MAX_DEPTH), "--folds", "3", "--ray", ray_cluster.address,
                        "--deployment", "bare"],  # Ray is tested, not the deployment
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = sqlite3.connect(study / "study.db").execute(
        "SELECT state, details FROM trials WHERE kind = 'search'").fetchall()
    assert [state for state, _ in rows] == ["complete", "complete"]
    assert all(json.loads(d)["node_id"] for _, d in rows)


class _Stalling:
    """The study's evaluator, except that the first evaluation to start records its process id in
    ``marker`` and then waits to be killed; the evaluation Ray runs again after the kill finds the
    marker and evaluates."""

    def __init__(self, inner, marker: Path) -> None:
        self.inner, self.marker, self.dataset, self.corpus = inner, marker, inner.dataset, inner.corpus

    def evaluate(self, config, progress=None):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.inner.evaluate(config, progress)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        while True:  # until killed
            time.sleep(1)


def test_a_worker_killed_mid_trial_costs_no_trial(ray_cluster, mini_corpus, cache, tmp_path):
    from ray import cloudpickle

    budget = 3
    study, dataset, evaluator = _study(tmp_path / "s", mini_corpus, cache, tmp_path / "costs", initial=3)
    marker = tmp_path / "stalled-pid"
    stalling = _Stalling(evaluator, marker)
    cloudpickle.register_pickle_by_value(__import__(__name__))  # the Ray workers cannot import this module
    killed: list[int] = []

    def kill_when_stalled() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                pid = int(marker.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_stalled, daemon=True)
    killer.start()
    try:
        run_study(study, dataset, stalling, budget, executor=RayExecutor(ray_cluster, slots=2))
    finally:
        cloudpickle.unregister_pickle_by_value(__import__(__name__))
    killer.join(timeout=5)
    assert killed, "no evaluation stalled"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    rows = _rows(study)
    # Every trial started once and finished once: none failed, none lost, none counted twice.
    assert len(rows) == budget and all(r.state == TrialState.COMPLETE for r in rows)
    assert len({r.number for r in rows}) == budget
    assert len({study.trials("search")[i].config.key() for i in range(budget)}) == budget


FEATS = ("orig_pkts", "resp_pkts", "orig_size_mean", "resp_size_mean", "orig_iat_mean", "tcp_rtt")


@pytest.mark.parametrize("name", ["random", "tpe", "botorch"])
def test_no_sampler_proposes_a_running_configuration(name):
    """What a study asks for while trials run (``pending``): never one of them, and with none pending
    exactly what it asked for before."""
    from cato.search.samplers import BoTorchSampler, RandomSampler, TPESampler, initial_design
    from cato.search.space import SearchSpace
    space = SearchSpace(FEATS, 20)
    init = initial_design(space, list(FEATS), list(reversed(FEATS)), seed=3, ks=(2,))
    sampler = {"random": lambda: RandomSampler(space, seed=3),
               "tpe": lambda: TPESampler(space, ("f1", "cpu"), seed=3),
               "botorch": lambda: BoTorchSampler(space, ("f1", "cpu"), seed=3, initial=init, n_initial=4,
                                                 raw_samples=64)}[name]()
    if name == "botorch":  # running trials hold their places in the initial design
        assert sampler.ask([], 0)[0] == init[0] and sampler.ask([], 1, [init[0]])[0] == init[1]
    rng = __import__("numpy").random.default_rng(0)
    history = []
    for _ in range(6):
        c = space.sample(rng)
        history.append((c, {"f1": 0.3 + 0.1 * len(c.features) - 0.001 * c.depth,
                            "cpu": 10.0 * len(c.features) + c.depth}))
    first, _ = sampler.ask(history, 6)
    assert sampler.ask(history, 6, ())[0] == first
    pending = [first]
    for number in (7, 8):
        config, info = sampler.ask(history, number, pending)
        assert config.key() not in {c.key() for c in pending} | {c.key() for c, _ in history}
        if name == "botorch":
            assert info["source"].startswith(("qLogNEHVI", "depth sweep"))
        pending.append(config)


def test_ray_missing_is_named_with_its_fix(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import cato.executors
    from cato.cli import app
    monkeypatch.setattr(cato.executors, "ray_available", lambda: False)
    with pytest.raises(ExecutorError, match=r"pip install 'cato\[ray\]'"):
        connect("local")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "labels.csv").write_text("pcap,label\n")
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "c"), "-o", str(tmp_path / "t.parquet"),
                                      "--ray", "local"])
    assert result.exit_code == 2 and "pip install 'cato[ray]'" in result.output
    result = CliRunner().invoke(app, ["tune", str(tmp_path / "c"), "--study", str(tmp_path / "s"), "--ray-trials", "2"])
    assert result.exit_code == 2 and "--ray-trials needs --ray" in result.output

"""The search layer without Zeek: space encoding, Pareto fronts, hypervolume, samplers, storage."""

from __future__ import annotations

import itertools
import json
import math
import re
import time

import numpy as np
import pytest

from cato.model import ModelSpec, ModelSpecError
from cato.search.importance import inclusion_prior, top_k
from cato.search.objectives import ObjectiveError, parse_objectives
from cato.search.pareto import hypervolume, pareto_mask, reference, to_max_space
from cato.search.samplers import BoTorchSampler, RandomSampler, TPESampler, initial_design
from cato.search.space import Config, SearchSpace
from cato.study.storage import SQLiteStorage, TrialState

FEATS = ("orig_pkts", "resp_pkts", "orig_size_mean", "resp_size_mean", "orig_iat_mean", "tcp_rtt")
SPACE = SearchSpace(FEATS, 20)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(200):
        c = SPACE.sample(rng)
        assert c.features and set(c.features) <= set(FEATS)
        assert 1 <= c.depth <= 20
        assert SPACE.decode(SPACE.encode(c)) == c


def test_decode_never_gives_an_empty_selection():
    x = np.zeros(SPACE.dims)
    x[SPACE.depth_dim] = 3
    assert len(SPACE.decode(x).features) == 1


def test_model_spec_rejects_unknown_family():
    with pytest.raises(ModelSpecError):
        ModelSpec("svm")
    assert ModelSpec("dt", 70, 5).n_trees == 1


def test_parse_objectives():
    assert parse_objectives("f1,cpu") == ("f1", "cpu")
    assert parse_objectives("f1,cpu,latency") == ("f1", "cpu", "latency")
    for bad in ("cpu", "f1", "f1,watts", "f1,cpu,cpu"):
        with pytest.raises(ObjectiveError):
            parse_objectives(bad)


def _brute_force_front(y):
    return [i for i in range(len(y)) if not any(np.all(y[j] >= y[i]) and np.any(y[j] > y[i])
                                                  for j in range(len(y)))]


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 6, size=(30, 2)).astype(float)
        assert list(np.flatnonzero(pareto_mask(y))) == _brute_force_front(y)


def test_hypervolume_two_objectives_against_a_grid():
    rng = np.random.default_rng(3)
    values = [{"f1": float(f), "cpu": float(c)} for f, c in zip(rng.random(12), 10 ** rng.uniform(0, 3, 12))]
    ref = reference(values, ("f1", "cpu"))
    hv = hypervolume(values, ("f1", "cpu"), ref)
    # Monte-Carlo-free check: the dominated area on a fine grid of the transformed space.
    y = to_max_space(values, ("f1", "cpu"), ref)
    ga = np.linspace(0, 1, 801)
    gb = np.linspace(0, y[:, 1].max(), 801)
    a, b = np.meshgrid(ga[1:] - 0.5 / 800, gb[1:] - gb[1] / 2)
    dominated = np.zeros_like(a, dtype=bool)
    for p in y:
        dominated |= (a <= p[0]) & (b <= p[1])
    grid = dominated.mean() * 1.0 * y[:, 1].max()
    assert hv == pytest.approx(grid, rel=0.02)
    # Adding a dominated point changes nothing; a better one increases it.
    assert hypervolume(values + [{"f1": 0.0, "cpu": ref["cpu"]}], ("f1", "cpu"), ref) == pytest.approx(hv)
    assert hypervolume(values + [{"f1": 1.0, "cpu": 1.0}], ("f1", "cpu"), ref) > hv


def test_hypervolume_three_objectives_reduces_to_two():
    values = [{"f1": 0.5, "cpu": 10.0, "latency": 1.0}, {"f1": 0.8, "cpu": 100.0, "latency": 1.0}]
    ref = {"f1": 0.0, "cpu": 1000.0, "latency": 10.0}
    hv3 = hypervolume(values, ("f1", "cpu", "latency"), ref)
    hv2 = hypervolume(values, ("f1", "cpu"), ref)
    assert hv3 == pytest.approx(hv2 * 1.0)  # every point is 1 decade under the latency reference


def test_prior_ranks_and_top_k():
    mi = np.array([0.0, 0.5, 2.0, 1.0])
    p = inclusion_prior(mi, expected=1.5)
    assert list(np.argsort(p)) == [0, 1, 3, 2] and p.min() > 0 and p.max() < 1
    assert p.sum() == pytest.approx(1.5 + 4 * 0.02)  # a draw holds about `expected` features
    many = inclusion_prior(np.random.default_rng(0).random(90), expected=10)
    assert many.sum() == pytest.approx(10 + 90 * 0.02, rel=0.05)
    assert top_k(["a", "b", "c", "d"], mi, 2) == ["c", "d"]
    assert top_k(["a", "b", "c", "d"], [4, 3, 1, 2], 2, higher_is_better=False) == ["c", "d"]


def _toy_values(config):
    """A cheap synthetic objective: F1 grows with features 0-2 and depth, cost with features and depth."""
    useful = sum(f in config.features for f in FEATS[:3])
    f1 = 0.2 * useful + 0.01 * min(config.depth, 10) + 0.02 * (config.model.family == "rf")
    return {"f1": f1, "cpu": 10.0 + 5 * len(config.features) + config.depth}


def _toy_history(seed: int, n: int = 12) -> list:
    """``n`` distinct random configurations with their toy objectives."""
    rng = np.random.default_rng(seed)
    history = []
    while len(history) < n:
        config = SPACE.sample(rng)
        if config.key() not in {c.key() for c, _ in history}:
            history.append((config, _toy_values(config)))
    return history


@pytest.mark.parametrize("sampler_name", ["random", "tpe", "botorch", "botorch-alternating"])
def test_samplers_propose_new_valid_configs_deterministically(sampler_name):
    objectives = ("f1", "cpu")
    prior = inclusion_prior(np.array([1.0, 0.8, 0.6, 0.1, 0.05, 0.0]))

    def make():
        if sampler_name == "random":
            return RandomSampler(SPACE, seed=3)
        if sampler_name == "tpe":
            return TPESampler(SPACE, objectives, seed=3)
        init = initial_design(SPACE, list(FEATS), list(reversed(FEATS)), seed=3, ks=(2,))
        return BoTorchSampler(SPACE, objectives, seed=3, prior=prior, initial=init, n_initial=4,
                              num_restarts=2, raw_samples=64, maxiter_alternating=2,
                              acq_optimizer="alternating" if sampler_name.endswith("alternating") else "local")

    history = []
    kept = make()  # asked every time, as in a study: BoTorch warm-starts its GP fits from what it kept
    for n in range(8):
        started = time.perf_counter()
        config, info = make().ask(history, n)
        asked_s = time.perf_counter() - started
        again, _ = make().ask(history, n)
        assert config == again, "a sampler must be a function of seed, number and history"
        assert kept.ask(history, n)[0] == config, "a resumed study must propose what an uninterrupted one does"
        assert config.key() not in {c.key() for c, _ in history}
        assert set(config.features) <= set(FEATS) and 1 <= config.depth <= SPACE.max_depth
        if sampler_name.startswith("botorch") and n >= 4:
            # The label names the acquisition and the candidate mechanism that made the proposal.
            made_by = ("mixed alternating optimizer" if sampler_name.endswith("alternating") else
                       r"(neighbour|depth line|ranking move)( \+ hill climb)?")
            assert re.fullmatch(rf"qLogNEHVI \+ MI prior \({made_by}\)(; moved to .*)?", info["source"]), info
            assert 0 < info["bo_overhead_s"] <= asked_s, "the overhead recorded is the time the proposal took"
        history.append((config, _toy_values(config)))


def test_relative_gain_is_a_weighted_hypervolume_gain_over_the_front_s_box():
    import torch
    from cato.search.samplers import FeaturePrior, _RelativeGain

    class Constant(torch.nn.Module):
        def __init__(self, log_value: float) -> None:
            super().__init__()
            self.model, self.value = None, log_value

        def forward(self, X):
            return torch.full(X.shape[:-2], self.value, dtype=torch.double)

    # The front's expected gain 0.2 and the accurate end's 0.03 counted once more (weight 1), over a box of 2.
    gain = _RelativeGain([Constant(np.log(0.2)), Constant(np.log(0.03))], [1.0, 1.0], 2.0)
    x = torch.zeros(4, 1, 3, dtype=torch.double)
    assert gain(x).exp().tolist() == pytest.approx([(0.2 + 0.03) / 2.0] * 4)
    assert _RelativeGain([Constant(np.log(0.2))], [1.0], 2.0)(x).exp().tolist() == pytest.approx([0.1] * 4)
    # The prior weights the front's term alone, (π(x) / π(mode))^β: 1 at the mode, here (0.9 x 0.1 / 0.9²)².
    prior = FeaturePrior(np.array([0.9, 0.1]), 2)
    x = torch.tensor([[[1.0, 0.0, 5.0]], [[1.0, 1.0, 5.0]]], dtype=torch.double)
    weighted = _RelativeGain([Constant(np.log(0.2)), Constant(np.log(0.03))], [1.0, 3.0], 2.0, prior, 2.0)
    assert weighted(x).exp().tolist() == pytest.approx([(0.2 + 3 * 0.03) / 2.0,
                                                        ((0.1 / 0.9) ** 2 * 0.2 + 3 * 0.03) / 2.0])


def test_the_accurate_end_counts_its_area_once_more_and_no_more():
    """The weighted hypervolume: a point above the target F1 gains its area above half the best F1 plus,
    weighted, its area above the target; ``target_weight=0`` or no target leaves the front's alone."""
    import torch
    from cato.search.samplers.acquisition import hypervolume_gain, reference_points
    y = torch.tensor([[0.5, -2.0], [0.8, -3.0]], dtype=torch.double)  # (F1, -log10 cost)
    refs, weights, box = reference_points(y, ("f1", "cpu"), 0.5, 0.79, 1.0)
    assert [float(r[0]) for r in refs] == pytest.approx([0.4, 0.79]) and weights == [1.0, 1.0]
    assert box == pytest.approx((0.8 - 0.4) * (-2.0 - (-3.0 - 0.1)))
    value_of = hypervolume_gain(y.numpy(), ("f1", "cpu"), refs, weights, box)
    # 0.8 at a tenth of the cost: one more decade of cost, over F1 0.4 (front) and 0.79 (accurate end).
    gain = value_of({"f1": 0.8, "cpu": 10 ** 2.0})
    assert gain == pytest.approx(((0.8 - 0.5) * 1.0 + (0.8 - 0.79) * 1.0) / box)
    assert reference_points(y, ("f1", "cpu"), 0.5, 0.79, 0.0)[1] == [1.0]
    assert reference_points(y, ("f1", "cpu"), 0.5, None, 1.0)[1] == [1.0]


def test_initial_design_holds_mi_and_rfe_selections():
    init = initial_design(SPACE, ["tcp_rtt", "orig_pkts", "resp_pkts"], ["orig_iat_mean", "resp_pkts"], seed=0,
                          ks=(2,))
    assert [set(c.features) for c in init[:2]] == [{"tcp_rtt", "orig_pkts"}, {"orig_iat_mean", "resp_pkts"}]
    # Every feature, at a middle depth: a foothold at the front's high-F1 end, in a space much larger
    # than the largest k; in a small one the top-k selections already reach it.
    assert set(init[2].features) == set(SPACE.features) and 1 < init[2].depth < SPACE.max_depth
    # The cheap end: every feature read from the connection record (no per-packet events), and MI's
    # top-k of them (the smallest k) when that is fewer: both ends of the packet-free segment.
    assert init[3].features == ("orig_pkts", "resp_pkts") and init[3].depth == init[2].depth
    assert not SPACE.per_packet[[SPACE.features.index(f) for f in init[3].features]].any()
    assert len(init) == 4  # MI's top 2 of the two packet-free features is all of them: one foothold
    one = initial_design(SPACE, ["resp_pkts", "tcp_rtt", "orig_pkts"], list(FEATS), seed=0, ks=(1,))
    assert [c.features for c in one[3:5]] == [("orig_pkts", "resp_pkts"), ("resp_pkts",)]
    assert one[3].depth == one[4].depth == one[2].depth and len(one) == 5
    # The study's ALL baselines set the footholds' depths: a high-F1 one at each depth whose ALL beats
    # every shallower ALL by more than the tolerance (0.01 here: 3 and 20, deepest first), the cheap
    # end at the shallowest. With no top-k measured there, the RFE ranking's top half.
    rfe = list(reversed(SPACE.features))
    every = lambda d, f1: (SPACE.config(list(SPACE.features), d, init[2].model), {"f1": f1, "cpu": 9.0})  # noqa: E731
    top = lambda rank, k, d, f1: (SPACE.config(rank[:k], d, init[2].model), {"f1": f1, "cpu": 3.0})  # noqa: E731
    known = initial_design(SPACE, list(SPACE.features), rfe, seed=0, ks=(2,), measured=[every(3, 0.75), every(20, 0.8)])
    half = set(rfe[:SPACE.n_features // 2])
    assert [(set(c.features), c.depth) for c in known[2:4]] == [(half, 20), (half, 3)] and known[4].depth == 3
    assert [c.key() for i, c in enumerate(known) if i not in (2, 3, 4)] == [
        c.key() for i, c in enumerate(initial_design(SPACE, list(SPACE.features), rfe, seed=0, ks=(2,))) if i not in (2, 3)]
    # With a ranking's top-k measured there: bisection on log(size) between the best ranking's top-k
    # below the depth's target (2) and ALL (6): round(sqrt(12)) = 3.
    mi = list(SPACE.features)
    stepped = initial_design(SPACE, mi, rfe, seed=0, ks=(2,), measured=[
        every(3, 0.75), every(20, 0.8), top(rfe, 2, 20, 0.78), top(mi, 2, 20, 0.6), top(rfe, 2, 3, 0.79)])
    assert stepped[2].features == tuple(sorted(rfe[:3], key=SPACE.features.index)) and stepped[2].depth == 20
    # ALL@20 within the tolerance of ALL@3: one foothold, at 3; a top-k reaching it there: bisect from 1.
    shallow = initial_design(SPACE, mi, rfe, seed=0, ks=(2,), measured=[
        every(3, 0.795), every(20, 0.8), top(rfe, 2, 3, 0.79), top(mi, 2, 3, 0.6)])
    assert shallow[2].features == (rfe[0],) and shallow[2].depth == 3 == shallow[3].depth
    assert len(shallow) == 4  # one high-F1 foothold, the cheap end
    # A tolerance below ALL@3's gap to ALL@20 (the study's F1 noise, when its seeds agree) gives 20 one too.
    assert [c.depth for c in initial_design(SPACE, mi, rfe, seed=0, ks=(2,), tolerance=0.002, measured=[
        every(3, 0.795), every(20, 0.8), top(rfe, 2, 3, 0.79), top(mi, 2, 3, 0.6)])[2:5]] == [20, 3, 3]
    small = initial_design(SPACE, list(FEATS), list(FEATS), seed=0, ks=(3,))
    assert len(small) == 3 and small[2].features == ("orig_pkts", "resp_pkts")
    # A space of one cost class has no separate cheap end.
    packets_only = SearchSpace(("orig_size_mean", "resp_size_mean", "orig_iat_mean", "tcp_rtt"), 20)
    assert len(initial_design(packets_only, list(packets_only.features), list(packets_only.features), seed=0,
                              ks=(2,))) == 2


def test_storage_keeps_finished_trials_across_connections(tmp_path):
    db = tmp_path / "study.db"
    s = SQLiteStorage(db)
    s.put("settings", {"a": 1})
    done = s.start_trial("search", {"x": 1})
    s.finish_trial(done, {"f1": 0.5}, {"eval_s": 1.0})
    failed = s.start_trial("search", {"x": 2})
    s.finish_trial(failed, None, {"error": "boom"}, TrialState.FAILED)
    s.start_trial("search", {"x": 3})  # left running, as a killed process leaves it
    # Another connection (a new process) sees exactly what was committed.
    t = SQLiteStorage(db)
    assert t.get("settings") == {"a": 1}
    assert [r.config for r in t.trials("search", TrialState.COMPLETE)] == [{"x": 1}]
    assert [r.config for r in t.trials("search", TrialState.FAILED)] == [{"x": 2}]
    assert [r.config for r in t.trials("search", TrialState.RUNNING)] == [{"x": 3}]


def _v0_database(path, settings: dict) -> None:
    """A study database as cato wrote it before its schema had a version (and before model seeds)."""
    import sqlite3
    db = sqlite3.connect(path)
    db.executescript("""
CREATE TABLE study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (number INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT, state TEXT NOT NULL,
    config TEXT NOT NULL, objective_values TEXT, details TEXT, started REAL NOT NULL, finished REAL);
""")
    db.execute("INSERT INTO study VALUES ('settings', ?)", (json.dumps(settings),))
    db.execute("INSERT INTO trials (kind, state, config, objective_values, details, started, finished) "
               "VALUES ('search', 'complete', ?, ?, '{}', 1.0, 2.0)",
               (json.dumps(Config(("orig_pkts",), 3, ModelSpec()).to_dict()), json.dumps({"f1": 0.5, "cpu": 9.0})))
    db.commit()
    db.close()


def test_a_study_made_before_the_schema_version_is_migrated(tmp_path):
    from cato.model import DEFAULT_MODEL_SEEDS
    from cato.study import Study, StudySettings
    from cato.study.storage import SCHEMA_VERSION
    fresh = StudySettings(str(tmp_path))
    assert fresh.model_seeds == DEFAULT_MODEL_SEEDS > 1
    older = {k: v for k, v in fresh.to_dict().items() if k != "model_seeds"}
    _v0_database(tmp_path / "study.db", older)
    study = Study.open(tmp_path, resume=True)
    # Scored with one seed before, it keeps one seed, and keeps its trials.
    assert study.settings.model_seeds == 1
    assert study.storage.version == SCHEMA_VERSION >= 1
    assert [t.values for t in study.trials("search")] == [{"f1": 0.5, "cpu": 9.0}]
    study.storage.close()
    again = Study.open(tmp_path, resume=True)  # migrating twice changes nothing
    assert again.settings.model_seeds == 1 and len(again.trials("search")) == 1
    assert Study.open(tmp_path / "new", fresh).storage.version == SCHEMA_VERSION


def test_a_study_from_a_newer_cato_is_refused(tmp_path):
    import sqlite3

    from cato.study.storage import SCHEMA_VERSION, StorageError
    SQLiteStorage(tmp_path / "study.db").close()
    db = sqlite3.connect(tmp_path / "study.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StorageError, match="newer cato"):
        SQLiteStorage(tmp_path / "study.db")


def test_storage_names_a_file_that_is_not_a_database(tmp_path):
    from cato.study.storage import StorageError
    bad = tmp_path / "study.db"
    bad.write_bytes(b"not sqlite" * 100)
    with pytest.raises(StorageError, match="study.db"):
        SQLiteStorage(bad)


def test_every_config_of_a_small_space_is_reachable():
    space = SearchSpace(FEATS[:3], 2, ("dt",))
    rng = np.random.default_rng(0)
    seen = {(c.features, c.depth) for c in (space.sample(rng) for _ in range(400))}
    expected = {(tuple(f for f in FEATS[:3] if f in s), d)
                for k in (1, 2, 3) for s in itertools.combinations(FEATS[:3], k) for d in (1, 2)}
    assert seen == expected


@pytest.mark.parametrize("sampler_name", ["random", "tpe", "botorch"])
def test_a_pinned_model_leaves_features_and_depth(sampler_name):
    dt = ModelSpec("dt", 1, 8)
    space = SearchSpace(FEATS, 10, ("dt",), model=dt)
    assert space.dims == len(FEATS) + 1
    rng = np.random.default_rng(0)
    c = space.sample(rng)
    assert c.model == dt and space.decode(space.encode(c)) == c
    if sampler_name == "random":
        sampler = RandomSampler(space, 0)
    elif sampler_name == "tpe":
        sampler = TPESampler(space, ("f1", "cpu"), 0)
    else:
        sampler = BoTorchSampler(space, ("f1", "cpu"), 0, n_initial=3, num_restarts=2, raw_samples=32,
                                 maxiter_alternating=2)
    history = []
    for n in range(5):
        config, _ = sampler.ask(history, n)
        assert config.model == dt
        history.append((config, _toy_values(config)))


def test_best_within_picks_the_cheapest_point_near_the_target_f1():
    from cato.study import Trial, best_within
    config = SPACE.config(FEATS[:2], 5, ModelSpec())

    def trial(n, **values):
        return Trial(n, "search", None, config, values)

    two = [trial(1, f1=0.70, cpu=50.0), trial(2, f1=0.64, cpu=10.0), trial(3, f1=0.60, cpu=1.0)]
    assert best_within(two, 0.65).number == 2  # trial 3 is cheaper but 0.05 below
    assert best_within(two, 0.80) is None
    # With two costs, the least product: trial 5 is 4x cheaper in CPU but 100x slower to decide.
    three = [trial(4, f1=0.66, cpu=40.0, latency=1.0), trial(5, f1=0.66, cpu=10.0, latency=100.0)]
    assert best_within(three, 0.66).number == 4
    # Equal CPU (scripts at the floor): the one that decides sooner, as recorded for every trial.
    tied = [Trial(6, "search", None, config, {"f1": 0.66, "cpu": 10.0}, {"latency_ms": 4000.0}),
            Trial(7, "search", None, config, {"f1": 0.66, "cpu": 10.0}, {"latency_ms": 0.1})]
    assert best_within(tied, 0.66).number == 7


def test_gp_sees_whether_a_selection_handles_packets():
    """Cost jumps when a script starts handling packets; the surrogate gets that from the catalog."""
    sampler = BoTorchSampler(SPACE, ("f1", "cpu"))
    model = ModelSpec("dt", 1, 8)
    x = sampler._gp_inputs([Config(("orig_pkts", "resp_pkts"), 5, model), Config(("orig_pkts", "tcp_rtt"), 5, model)])
    assert x[:, -1].tolist() == [0.0, 1.0]
    lo, hi = sampler._gp_bounds()
    assert len(lo) == len(hi) == x.shape[1]


def test_the_pool_holds_each_front_selection_at_every_depth_and_the_rankings_top_k():
    model = ModelSpec("dt", 1, 8)
    front = [Config(("orig_pkts",), 4, model), Config(("orig_size_mean", "tcp_rtt"), 9, model)]
    sampler = BoTorchSampler(SPACE, ("f1", "cpu"), rankings=[list(FEATS), list(reversed(FEATS))])
    lines = {(c.features, c.depth) for c in sampler._depth_lines(front)}
    assert lines == {(f.features, d) for f in front for d in range(1, SPACE.max_depth + 1) if d != f.depth}
    moves = sampler._ranking_moves(front)
    selections = {c.features for c in moves}
    for k in range(1, len(FEATS) + 1):  # every k of a small space
        assert SPACE.config(FEATS[:k], 4, model).features in selections
        assert SPACE.config(FEATS[-k:], 4, model).features in selections
    assert {(c.depth, c.model) for c in moves} == {(4, model), (9, model)}


def test_depth_sweeps_model_a_flat_selections_f1_along_depth_and_price_it_as_the_gp_does():
    """A script that reads only the connection record costs the same at every depth: the sweep offers its
    unmeasured depths with a prediction of their F1 (a Wiener process along log depth plus measurement
    noise, fitted to the jumps between measured depths), never with time-to-decision an objective, and
    the study takes the one of highest expected gain when it expects more than the GP's best candidate."""
    from cato.search.samplers import candidates
    model = ModelSpec("dt", 1, 8)
    assert not SPACE.per_packet[FEATS.index("orig_pkts")] and SPACE.per_packet[FEATS.index("orig_size_mean")]
    history = [(Config(("orig_pkts",), 1, model), {"f1": 0.3, "cpu": 10.0, "latency": 0.0}),
               (Config(("orig_pkts",), 20, model), {"f1": 0.35, "cpu": 10.0, "latency": 900.0}),
               (Config(("orig_size_mean",), 5, model), {"f1": 0.5, "cpu": 50.0, "latency": 200.0}),
               (Config(("orig_size_mean", "tcp_rtt"), 9, model), {"f1": 0.6, "cpu": 80.0, "latency": 400.0})]
    wide = SearchSpace(FEATS, 50)
    found = {c.depth: (mean, sd) for c, mean, sd in candidates.depth_sweep(wide, ("f1", "cpu"), history)}
    assert set(found) == set(range(2, 20)) | set(range(21, 51))  # orig_pkts only
    # One jump (0.05 over ln 20), all of it drift: the bridge is linear in log depth, widest between;
    # past the last depth the Wiener process widens.
    assert found[4][0] == pytest.approx(0.3 + 0.05 * np.log(4) / np.log(20))
    assert found[4][1] > found[2][1] and found[4][1] > found[19][1]
    assert found[50][0] == 0.35 and found[50][1] > found[30][1] > 0
    swept, gain = BoTorchSampler(wide, ("f1", "cpu"), seed=0, n_initial=4)._depth_sweep(history)
    assert swept == Config(("orig_pkts",), 50, model) and gain > 0  # the widest past the better end
    # Pure noise (F1 alternating at every depth): no drift, noise the jumps' half-square (0.02^2 / 2),
    # a new measurement's sd sqrt(2 x noise) past the end.
    noisy = [(Config(("orig_pkts",), d, model), {"f1": 0.35 + 0.01 * (-1) ** d, "cpu": 10.0})
             for d in range(1, 21)]
    found = candidates.depth_sweep(wide, ("f1", "cpu"), noisy)
    assert {c.depth for c, _, _ in found} == set(range(21, 51))
    assert all(sd == pytest.approx(0.02, rel=0.05) for _, _, sd in found)
    sampler = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, n_initial=4)
    everywhere = [(Config(("orig_pkts",), d, model), {"f1": 0.35, "cpu": 10.0}) for d in range(1, 21)]
    assert sampler._depth_sweep([*everywhere, *history[2:]])[0] is None
    assert candidates.depth_sweep(SPACE, ("f1", "cpu", "latency"), history) == []
    assert sampler.ask(history, 4)[1]["source"].startswith(("depth sweep", "qLogNEHVI"))


def test_one_hypervolume_exact_in_two_objectives_and_shifted_by_its_reference():
    """The one hypervolume (the sampler's and the reports'): the two-objective sweep agrees with BoTorch's
    box decomposition, and a reference away from the origin is the same as moving the points."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    from cato.search.pareto import dominated_hypervolume
    rng = np.random.default_rng(4)
    for n_obj in (2, 3):
        for _ in range(5):
            y = rng.uniform(-1, 3, size=(7, n_obj))
            ref = rng.uniform(-1, 0.5, size=n_obj)
            above = y[np.all(y > ref, axis=1)]
            botorch = float(Hypervolume(torch.tensor(ref)).compute(torch.tensor(above))) if len(above) else 0.0
            assert dominated_hypervolume(y, ref) == pytest.approx(botorch, abs=1e-9)
            assert dominated_hypervolume(y - ref) == pytest.approx(botorch, abs=1e-9)


def test_f1_noise_is_the_chance_difference_of_two_measurements():
    from cato.search.objectives import f1_noise
    # Seeds [0.70, 0.72, 0.74]: variance 4e-4, standard error of their mean sqrt(4e-4 / 3).
    assert f1_noise([[0.70, 0.72, 0.74]]) == pytest.approx(2 * math.sqrt(2) * math.sqrt(4e-4 / 3))
    # Pooled over measurements (variances averaged); one-seed measurements say nothing of it.
    assert f1_noise([[0.70, 0.72, 0.74], [0.5, 0.5, 0.5], [0.9]]) == pytest.approx(
        2 * math.sqrt(2) * math.sqrt(2e-4 / 3))
    assert f1_noise([[0.7], []]) is None and f1_noise([]) is None


def test_make_sampler_checks_its_parameters():
    from cato.search.samplers import SamplerError, SearchContext, make_sampler, sampler_parameters
    ctx = SearchContext(SPACE, ("f1", "cpu"), seed=0, mi=[0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
                        rfe_rank=[6, 5, 4, 3, 2, 1])
    sampler = make_sampler("botorch", ctx, acq_optimizer="alternating")
    assert sampler.acq_optimizer == "alternating" and len(sampler.initial) >= 2
    assert sampler.rankings == [list(FEATS), list(reversed(FEATS))] and sampler.target_f1 is None
    targeted = make_sampler("botorch", SearchContext(**{**ctx.__dict__, "reference_f1": 0.8}))
    assert targeted.target_f1 == pytest.approx(0.79) and targeted.target_weight == 1.0
    with pytest.raises(SamplerError, match="target_weight"):
        make_sampler("botorch", ctx, target_weight=-1)
    assert make_sampler("botorch", SearchContext(**{**ctx.__dict__, "use_prior": False})).prior is None
    with pytest.raises(SamplerError, match="acq_optimizer"):
        make_sampler("botorch", ctx, acq_optimizer="alternatng")  # misspelt: not silently "local"
    with pytest.raises(SamplerError, match="no parameter acq_optimiser"):
        make_sampler("botorch", ctx, acq_optimiser="alternating")
    with pytest.raises(SamplerError, match="no parameter"):
        make_sampler("random", ctx, acq_optimizer="local")  # only BoTorch has it
    with pytest.raises(SamplerError, match="ref_f1_fraction"):
        make_sampler("botorch", ctx, ref_f1_fraction=1.5)
    with pytest.raises(SamplerError, match="unknown sampler"):
        make_sampler("cmaes", ctx)
    # The footholds' tolerance: the setting's, else the study's F1 noise, else (one model seed) 0.01.
    from cato.search.samplers.factory import _foothold_tolerance
    noisy = SearchContext(**{**ctx.__dict__, "f1_noise": 0.002})
    assert _foothold_tolerance(noisy, None) == 0.002 and _foothold_tolerance(noisy, 0.01) == 0.01
    assert _foothold_tolerance(ctx, None) == 0.01
    with pytest.raises(SamplerError, match="foothold_tolerance"):
        make_sampler("botorch", ctx, foothold_tolerance=-0.1)
    assert "acq_optimizer" in sampler_parameters("botorch") and "rankings" not in sampler_parameters("botorch")
    assert make_sampler("tpe", ctx).objectives == ("f1", "cpu")


def test_an_evaluator_that_raises_makes_a_failed_trial(tmp_path):
    """A configuration whose evaluation raises is stored as failed, with its error; the study goes on."""
    import pandas as pd

    from cato.corpus import Corpus
    from cato.dataset import Dataset
    from cato.search.evaluator import Evaluator
    from cato.study import Study, StudySettings
    rows = [{"capture": f"c{i % 6}.pcap", "uid": f"C{i}", "ts": float(i), "proto": "udp", "orig_h": "10.0.0.1",
             "orig_p": 1000 + i, "resp_h": "10.0.0.2", "resp_p": 53, "depth": d, "label": "ab"[i % 2],
             "group": f"c{i % 6}.pcap", "orig_pkts": d, "orig_size_sum": 60.0 * d + 10 * (i % 2)}
            for i in range(24) for d in (1, 2)]
    dataset = Dataset.from_table(pd.DataFrame(rows), 2)
    corpus = Corpus(tmp_path, pd.DataFrame(columns=["pcap", "label", "group"]), "label", False)
    evaluator = Evaluator(corpus, dataset, ("f1", "cpu"), folds=3, cache_dir=tmp_path / "cache",
                          zeek=tmp_path / "no-zeek-here", model_seeds=1)
    study = Study.open(tmp_path / "study", StudySettings(str(tmp_path), max_depth=2))
    config = Config(("orig_pkts", "orig_size_sum"), 2, ModelSpec("dt", 1, 4))
    assert study._evaluate("search", config, evaluator) is None
    [failed] = study.storage.trials("search", TrialState.FAILED)
    assert failed.config == config.to_dict() and "no-zeek-here" in failed.details["error"]
    assert study.trials("search") == [] and study.storage.trials(state=TrialState.RUNNING) == []


DEADLINE_SPACE = SearchSpace(FEATS, 20, deadlines=(0.001, 30.0))


def test_the_deadline_dimension_round_trips_and_keeps_none_at_its_top():
    rng = np.random.default_rng(2)
    configs = [DEADLINE_SPACE.sample(rng) for _ in range(300)]
    for c in configs:
        assert DEADLINE_SPACE.decode(DEADLINE_SPACE.encode(c)) == c
        assert c.deadline is None or 0.001 <= c.deadline < 30.0
        assert c.deadline is None or float(f"{c.deadline:.2g}") == c.deadline
    deadlines = [c.deadline for c in configs]
    # Log-uniform over 4.5 decades, "none" as likely as one decade.
    assert 0.1 < deadlines.count(None) / len(configs) < 0.3
    assert min(d for d in deadlines if d) < 0.01 and max(d for d in deadlines if d) > 3
    # A config with no deadline keeps the key it had before the dimension existed.
    plain = Config(("orig_pkts",), 3, ModelSpec("rf", 10, 4))
    assert "deadline" not in plain.key() and Config.from_dict(json.loads(plain.key())) == plain
    assert DEADLINE_SPACE.config(["orig_pkts"], 3, ModelSpec("rf", 10, 4), 45.0).deadline is None
    assert SPACE.config(["orig_pkts"], 3, ModelSpec("rf", 10, 4), 0.25).deadline is None  # no dimension


@pytest.mark.parametrize("sampler_name", ["random", "tpe", "botorch"])
def test_samplers_search_the_deadline(sampler_name):
    objectives = ("f1", "latency")
    if sampler_name == "random":
        sampler = RandomSampler(DEADLINE_SPACE, seed=5)
    elif sampler_name == "tpe":
        sampler = TPESampler(DEADLINE_SPACE, objectives, seed=5)
    else:
        init = initial_design(DEADLINE_SPACE, list(FEATS), list(reversed(FEATS)), seed=5, ks=(2, 3))
        assert {c.deadline is None for c in init} == {True, False}
        sampler = BoTorchSampler(DEADLINE_SPACE, objectives, seed=5, initial=init, n_initial=4, raw_samples=64)
    history = []
    for n in range(9):
        config, _ = sampler.ask(history, n)
        assert config.key() not in {c.key() for c, _ in history}
        # A toy world where waiting pays: F1 grows with what the deadline lets in, so does latency.
        wait = min(config.deadline or 30.0, 0.05 * config.depth)
        history.append((config, {"f1": 0.3 + 0.1 * np.log10(1000 * wait) / 4.5 + 0.02 * len(config.features),
                                 "latency": 1000 * wait}))
    # cato's search moves T where the acquisition sees a gain: its pool holds each front selection at every
    # deadline a factor of 2 apart (and none).
    assert len({c.deadline for c, _ in history}) >= (2 if sampler_name == "botorch" else 3)
    if sampler_name == "botorch":
        lines = sampler._depth_lines([Config(FEATS[:2], 4, ModelSpec("rf", 50, 16), 0.2)])
        assert {c.deadline for c in lines} >= {None, DEADLINE_SPACE.deadlines[0], 2 * DEADLINE_SPACE.deadlines[0]}
        moves = sampler._single_moves(Config(FEATS[:2], 4, ModelSpec("rf", 50, 16), 0.2))
        assert {m.deadline for m in moves} >= {0.4, 0.1, None}


def test_the_study_front_holds_every_configuration_it_measured(tmp_path):
    from cato.deploy.compile import pick_trial
    from cato.study import Study, StudySettings
    from cato.study.report import study_report
    study = Study.open(tmp_path / "s", StudySettings(str(tmp_path), max_depth=10))
    model = ModelSpec("rf", 50, 16)

    def add(kind, name, feats, depth, f1, cpu):
        n = study.storage.start_trial(kind, Config(feats, depth, model).to_dict(), name)
        study.storage.finish_trial(n, {"f1": f1, "cpu": cpu}, {"source": "initial design"} if kind == "search" else {})
        return n

    add("baseline", "all@10", FEATS, 10, 0.70, 400.0)
    rfe = add("baseline", "rfe10@10", FEATS[:3], 10, 0.71, 150.0)  # better and cheaper than the search's best
    cheap = add("search", None, FEATS[:1], 2, 0.50, 20.0)
    add("search", None, FEATS[:4], 8, 0.69, 200.0)
    assert [t.number for t in study.pareto()] == [rfe, cheap]
    assert rfe not in [t.number for t in study.pareto("search")]
    data = study_report(study)
    assert [p["trial"] for p in data["pareto"]] == [rfe, cheap]
    assert data["pareto"][0]["source"] == "baseline rfe10@10"
    assert data["versus_all_max"]["point"]["trial"] == rfe
    assert pick_trial(study, pick="most-accurate").number == rfe


def test_no_deadline_at_depth_one():
    # Every vector is made at the first packet: a deadline cannot bind, so it is not a second config.
    assert DEADLINE_SPACE.config(["orig_pkts"], 1, ModelSpec("rf", 10, 4), 0.5).deadline is None
    x = DEADLINE_SPACE.encode(DEADLINE_SPACE.config(["orig_pkts"], 2, ModelSpec("rf", 10, 4), 0.5))
    x[DEADLINE_SPACE.depth_dim] = 1
    assert DEADLINE_SPACE.decode(x).deadline is None


def test_the_search_learns_from_the_baselines_it_is_given():
    model = ModelSpec("rf", 50, 16)
    best = Config(FEATS, 10, model)  # a baseline far better than anything the search has measured
    weak = [SPACE.config([f], 2, model) for f in FEATS[:4]]
    history = [(c, {"f1": 0.3, "cpu": 400.0}) for c in weak]

    def proposal(known: list) -> Config:
        sampler = BoTorchSampler(SPACE, ("f1", "cpu"), seed=1, initial=weak, n_initial=4, raw_samples=64,
                                 hill_climb_steps=0, known=known)
        return sampler.ask(history, 4)[0]

    # The moves start from the most accurate point measured, whatever produced it.
    assert proposal([(best, {"f1": 0.9, "cpu": 300.0})]).features == best.features
    assert proposal([]).features != best.features


def test_the_front_a_trial_improves_on_holds_the_baselines_unless_told_otherwise():
    """``front_with_baselines=False``: matching a baseline earns what it covers (the search's own front is
    judged without them), while the baselines stay in the GP's data."""
    model = ModelSpec("rf", 50, 16)
    baseline = (Config(FEATS[:3], 10, model), {"f1": 0.6, "cpu": 100.0})
    weak = [SPACE.config([f], 2, model) for f in FEATS[:4]]
    history = [(c, {"f1": 0.3, "cpu": 400.0}) for c in weak]
    gains = {}
    for with_baselines in (True, False):
        sampler = BoTorchSampler(SPACE, ("f1", "cpu"), seed=1, initial=weak, n_initial=4, hill_climb_steps=0,
                                 known=[baseline], front_with_baselines=with_baselines)
        value_of = sampler._optimize([baseline, *history], 1)[3]
        gains[with_baselines] = value_of({"f1": 0.61, "cpu": 99.0})  # just beyond the baseline
    assert gains[False] > 10 * gains[True] > 0


def test_a_proposal_moved_to_an_unseen_neighbour_says_so():
    """A proposal already measured is moved by random feature flips; its label names both (issue #31)."""
    measured = Config(("orig_pkts", "tcp_rtt"), 5, ModelSpec("dt", 1, 4))
    sampler = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, n_initial=4, initial=[measured, measured])
    config, info = sampler.ask([(measured, _toy_values(measured))], 1)
    assert config != measured and info["source"] == "initial design; moved to an unseen neighbour (random feature flips)"
    fresh, info = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, n_initial=4, initial=[measured]).ask([], 0)
    assert fresh == measured and info["source"] == "initial design"


def test_each_mechanism_can_be_turned_off_by_a_sampler_parameter():
    """Issue #31's ablation turns one mechanism off at a time, as ``cato tune --sampler-param`` does."""
    from cato.search.samplers import SamplerError, parse_sampler_params
    from cato.search.samplers import candidates
    assert parse_sampler_params("botorch", ["depth_sweep=false", "prior_strength=0", "acq_optimizer=local"]) == {
        "depth_sweep": False, "prior_strength": 0, "acq_optimizer": "local"}
    with pytest.raises(SamplerError, match="no parameter depth_swep"):
        parse_sampler_params("botorch", ["depth_swep=false"])
    with pytest.raises(SamplerError, match="NAME=VALUE"):
        parse_sampler_params("botorch", ["depth_sweep"])
    model = ModelSpec("dt", 1, 8)
    history = [(Config(("orig_pkts",), 1, model), {"f1": 0.3, "cpu": 10.0}),
               (Config(("orig_pkts",), 20, model), {"f1": 0.35, "cpu": 10.0}),
               (Config(("orig_size_mean",), 5, model), {"f1": 0.5, "cpu": 50.0}),
               (Config(("orig_size_mean", "tcp_rtt"), 9, model), {"f1": 0.6, "cpu": 80.0})]
    rankings = [list(FEATS), list(reversed(FEATS))]

    def origins(**switches) -> set[str]:
        made = candidates.pool(SPACE, history, ("f1", "cpu"), np.random.default_rng(0),
                               rankings if switches.get("rankings", True) else [], None,
                               switches.get("per_anchor", 8), switches.get("depth_lines", True))
        return {origin for _, origin in made.values()}

    everything = {candidates.NEIGHBOUR, candidates.DEPTH_LINE, candidates.RANKING_MOVE}
    assert origins() == everything
    assert origins(depth_lines=False) == everything - {candidates.DEPTH_LINE}
    assert origins(rankings=False) == everything - {candidates.RANKING_MOVE}
    assert origins(per_anchor=0) == everything - {candidates.NEIGHBOUR}
    # With the sweep off, the trial the sweep would have taken goes to the acquisition.
    on = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, n_initial=4)
    off = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, n_initial=4, depth_sweep=False)
    assert on._depth_sweep(history)[0] is not None
    assert not off.ask(history, 4)[1]["source"].startswith("depth sweep")
    # Without footholds the design is the ranked top-k selections alone.
    plain = initial_design(SPACE, list(FEATS), list(reversed(FEATS)), seed=0, ks=(2,), footholds=False)
    assert len(plain) == 2 and len(initial_design(SPACE, list(FEATS), list(reversed(FEATS)), seed=0, ks=(2,))) == 4


def test_a_study_keeps_its_sampler_parameters(tmp_path):
    from cato.study import Study, StudySettings
    settings = StudySettings("/nowhere", sampler_params={"depth_sweep": False})
    Study.open(tmp_path / "s", settings)
    assert Study.open(tmp_path / "s", StudySettings("/nowhere"), resume=True).settings.sampler_params == {
        "depth_sweep": False}


def test_the_accurate_end_bisection_carries_the_foothold_on_until_a_trial_matches_all():
    """Issue #31: while ALL lies above every search trial, BO's first move is the high-F1 foothold's next
    bisection step along the ranking; it stops once a trial matches ALL or the bracket closes."""
    from cato.search.samplers import design
    from cato.search.samplers.policy import ACCURATE_END
    model = design.foothold_model(SPACE)
    rfe = list(reversed(FEATS))
    top = lambda k, f1, cpu=3.0: (SPACE.config(rfe[:k], 20, model), {"f1": f1, "cpu": cpu})  # noqa: E731
    known = [(SPACE.config(list(FEATS), 20, model), {"f1": 0.8, "cpu": 9.0}), top(2, 0.7)]
    weak = [(SPACE.config([f], 2, ModelSpec("dt", 1, 8)), {"f1": 0.3, "cpu": 1.0}) for f in FEATS[:3]]

    def step(history: list) -> Config | None:
        seen = {c.key() for c, _ in [*known, *history]}
        return design.accurate_end_step(SPACE, ("f1", "cpu"), [list(FEATS), rfe], known, history, 0.01, seen)

    # Between RFE's top 2 (below ALL's 0.8 less 0.01) and ALL (6): round(sqrt(12)) = 3, then 4.
    assert step(weak) == top(3, 0)[0]
    assert step([*weak, top(3, 0.75)]) == top(4, 0)[0]
    # A trial within the tolerance of ALL at no more CPU matches it: no step.
    assert step([*weak, top(3, 0.75), top(4, 0.795)]) is None
    # As accurate but dearer than ALL: not a match; the bracket (3 below, 4 above) has closed.
    assert step([*weak, top(3, 0.75), top(4, 0.795, cpu=10.0)]) is None
    # The bracket's lower end (top 3, below the target) costing as much as ALL: no step can match it for less.
    assert step([*weak, top(3, 0.75, cpu=9.0)]) is None
    # Trials of another model are not the ranking's top-k: the bisection ignores them.
    other = (SPACE.config(rfe[:3], 20, ModelSpec("gbt", 50, 16)), {"f1": 0.75, "cpu": 3.0})
    assert step([*weak, other]) == top(3, 0)[0]

    sampler = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, initial=[c for c, _ in weak], n_initial=3,
                             known=known, rankings=[list(FEATS), rfe], foothold_tolerance=0.01)
    config, info = sampler.ask(weak, 3)
    assert config == top(3, 0)[0] and info["source"] == ACCURATE_END and info["bo_overhead_s"] >= 0
    off = BoTorchSampler(SPACE, ("f1", "cpu"), seed=0, initial=[c for c, _ in weak], n_initial=3, known=known,
                         rankings=[list(FEATS), rfe], accurate_end_bisection=False, raw_samples=64)
    assert off.ask(weak, 3)[1]["source"] != ACCURATE_END


def test_the_gp_length_scale_prior_is_scaled_apart_for_the_mask_and_the_summaries():
    """BoTorch's dimension-scaled prior, d counted apart for the mask's bits and for the summaries: the
    summaries' length-scales start shorter, and a fit learns a short one where F1 follows the size."""
    import math

    import torch

    from cato.search.samplers.acquisition import split_scale_kernel, warm_started_gp
    kernel = split_scale_kernel(10, 6, 2)
    loc = kernel.lengthscale_prior.loc
    assert loc.shape == (2, 1, 10)
    assert torch.allclose(loc[..., :6], torch.tensor(math.sqrt(2) + math.log(10) / 2, dtype=torch.double))
    assert torch.allclose(loc[..., 6:], torch.tensor(math.sqrt(2) + math.log(4) / 2, dtype=torch.double))
    assert (kernel.lengthscale[..., 6:] < kernel.lengthscale[..., :6].min()).all()
    # F1 follows the size (the 7th input), not the bits.
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.integers(0, 2, (24, 10)).astype(float))
    x[:, 6] = x[:, :6].sum(1)
    y = torch.stack([0.1 * x[:, 6] + 0.01 * torch.tensor(rng.normal(size=24)), -x[:, 6]], -1)
    bounds = torch.tensor([[0.0] * 10, [1.0] * 6 + [6.0] + [1.0] * 3], dtype=torch.double)
    keys = [str(i) for i in range(24)]
    split, _ = warm_started_gp(x, y, bounds, keys, (None, None), 0, 1, 5, 60, n_mask=6)
    one, _ = warm_started_gp(x, y, bounds, keys, (None, None), 0, 1, 5, 60)
    assert split.covar_module.lengthscale[0, 0, 6] < split.covar_module.lengthscale[0, 0, :6].min()
    # Without n_mask: BoTorch's kernel, one prior scaled to all 10 inputs.
    assert float(one.covar_module.lengthscale_prior.loc) == pytest.approx(math.sqrt(2) + math.log(10) / 2)

"""Candidate generation: the configurations cato's search considers at one BO iteration.

Contract: every function here maps what was measured (the front, the most accurate trials), the
rankings and the prior to configurations of the space, using only the random stream it is given. None
scores a candidate (the acquisition prices them all, see ``acquisition``) and none leaves out one that
was measured: the acquisition's optimizer does. :func:`depth_sweep` is the exception: its candidates
come with their own model of F1 (along depth, not the GP), which the policy prices and weighs against
the acquisition's best.

* :func:`pool`: the local optimizer's pool, from :func:`neighbour`, :func:`depth_lines` and
  :func:`ranking_moves`.
* :func:`single_moves`: every configuration one move away, the hill-climb's steps.
* :func:`depth_sweep`: the unmeasured depths of packet-free front selections, with their F1's prediction.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from cato.model import N_TREES_RANGE, TREE_DEPTH_RANGE, ModelSpec
from cato.search.pareto import pareto_mask, to_max_space
from cato.search.samplers.base import History
from cato.search.space import Config, SearchSpace


def feature_weights(space: SearchSpace, prior: np.ndarray | None) -> np.ndarray:
    """Each feature's inclusion probability: the MI prior's, or 1/2 without one."""
    return prior if prior is not None else np.full(space.n_features, 0.5)


def anchors(history: History, objectives: tuple[str, ...]) -> tuple[list[Config], list[Config]]:
    """The configurations the pool grows from: the front of ``history`` and its three most accurate."""
    y = to_max_space([v for _, v in history], objectives)
    front = [history[i][0] for i in np.flatnonzero(pareto_mask(y))]
    f1 = y[:, objectives.index("f1")]
    most_accurate = [history[i][0] for i in np.argsort(-f1)[:3]]
    return front, most_accurate


#: Where a pool candidate comes from (the first of them that made it), for the proposal's label.
NEIGHBOUR, DEPTH_LINE, RANKING_MOVE = "neighbour", "depth line", "ranking move"


def pool(space: SearchSpace, history: History, objectives: tuple[str, ...], rng: np.random.Generator,
         rankings: Sequence[Sequence[str]], prior: np.ndarray | None, per_anchor: int,
         with_depth_lines: bool = True) -> dict[str, tuple[Config, str]]:
    """The candidates of one iteration, by key, in the order they were made, each with where it came
    from: ``per_anchor`` neighbours (1-3 moves; features added by the ``prior``) of each front and most
    accurate configuration, each front selection's depth and deadline lines (``with_depth_lines``), and
    the rankings' top-k selections at the anchors' settings. Measured configurations are kept: the
    optimizer leaves them out."""
    front, most_accurate = anchors(history, objectives)
    weights = feature_weights(space, prior)
    out: dict[str, tuple[Config, str]] = {}
    for anchor in front + most_accurate:
        for _ in range(per_anchor):
            c = neighbour(space, weights, anchor, rng, moves=int(rng.integers(1, 4)))
            out.setdefault(c.key(), (c, NEIGHBOUR))
    for c in depth_lines(space, front) if with_depth_lines else ():
        out.setdefault(c.key(), (c, DEPTH_LINE))
    for c in ranking_moves(space, rankings, front + most_accurate):
        out.setdefault(c.key(), (c, RANKING_MOVE))
    return out


def depth_lines(space: SearchSpace, front: Sequence[Config]) -> list[Config]:
    """Each front selection at every depth (and deadline, a factor of 2 apart, or none): when to decide
    moves a script's cost little (one that handles no packets not at all) while F1 along depth is
    jagged, so the GP, not a few local steps, picks it."""
    out = [space.config(c.features, d, c.model, c.deadline)
           for c in front for d in range(1, space.max_depth + 1) if d != c.depth]
    if space.deadlines:
        lo, hi = space.deadlines
        grid = [None, *(lo * 2.0 ** i for i in range(int(math.log2(hi / lo)) + 1))]
        out += [space.config(c.features, c.depth, c.model, t) for c in front for t in grid]
    return out


def ranking_moves(space: SearchSpace, rankings: Sequence[Sequence[str]], anchors: Sequence[Config]) -> list[Config]:
    """Each ranking's top-k selections, k on a geometric grid, at each anchor's depth, model and deadline:
    the moves a feature-selection baseline makes, priced by the GP like any other candidate."""
    ks = sorted({max(1, round(k)) for k in np.geomspace(1, space.n_features, 16)})
    selections = {tuple(r[:k]) for r in rankings for k in ks}
    settings = {(c.depth, c.model, c.deadline) for c in anchors}
    return [space.config(list(feats), *setting) for feats in selections for setting in settings]


def neighbour(space: SearchSpace, weights: np.ndarray, config: Config, rng: np.random.Generator,
              moves: int) -> Config:
    """``config`` after ``moves`` random moves: a feature added (drawn by ``weights``) or dropped, the
    depth stepped or scaled, the model nudged, or the deadline moved."""
    feats, depth, model, deadline = set(config.features), config.depth, config.model, config.deadline
    p = weights
    for _ in range(moves):
        kind = rng.random()
        if space.deadlines and rng.random() < 0.2:  # the deadline moved by a factor of 2 or 4, or dropped
            deadline = moved_deadline(space, deadline, rng)
            continue
        if kind < 0.6:  # add an informative feature or drop a chosen one
            if feats and rng.random() < 0.5:
                feats.discard(sorted(feats)[int(rng.integers(len(feats)))])
            else:
                out = [i for i, f in enumerate(space.features) if f not in feats]
                if out:
                    w = p[out] / p[out].sum()
                    feats.add(space.features[out[int(rng.choice(len(out), p=w))]])
        elif kind < 0.85:  # a step of 1 or 2 packets, or a factor of 1.5 or 2 either way
            if rng.random() < 0.5:
                moved = depth + int(rng.choice([1, 2])) * int(rng.choice([-1, 1]))
            else:
                factor = float(rng.choice([1.5, 2.0]))
                moved = round(depth * factor) if rng.random() < 0.5 else round(depth / factor)
            depth = int(np.clip(moved, 1, space.max_depth))
        elif not space.model:
            family = model.family if rng.random() < 0.6 else space.families[int(rng.integers(len(space.families)))]
            trees = int(np.clip(model.n_trees + rng.choice([-20, -10, 10, 20]), *N_TREES_RANGE)) \
                if family != "dt" else 1
            if model.family == "dt" and family != "dt":
                trees = 50
            tdepth = int(np.clip(model.tree_depth + rng.choice([-4, -2, 2, 4]), *TREE_DEPTH_RANGE))
            model = ModelSpec(family, trees, tdepth)
    if not feats:
        feats = set(config.features)
    return space.config(feats, depth, model, deadline)


def moved_deadline(space: SearchSpace, deadline: float | None, rng: np.random.Generator) -> float | None:
    """A deadline a factor of 2 or 4 away (from none: half or a quarter of the span), or none."""
    if deadline is not None and rng.random() < 0.25:
        return None
    start = deadline if deadline is not None else space.deadlines[1]
    factor = float(rng.choice([2.0, 4.0]))
    moved = start * factor if deadline is not None and rng.random() < 0.5 else start / factor
    return space.deadline(math.log(moved))


def single_moves(space: SearchSpace, config: Config) -> list[Config]:
    """Every configuration one move away: one feature flipped, depth
    moved by 1 or by a factor of 1.5, or the deadline by a factor of 2 (or to none, or from none to
    half the span)."""
    out = []
    chosen = set(config.features)
    for f in space.features:
        flipped = chosen ^ {f}
        if flipped:
            out.append(space.config(flipped, config.depth, config.model, config.deadline))
    d = config.depth
    for moved in sorted({d - 1, d + 1, round(d * 1.5), round(d / 1.5)} - {d}):
        if 1 <= moved <= space.max_depth:
            out.append(space.config(config.features, moved, config.model, config.deadline))
    if space.deadlines:
        t = config.deadline
        options = {space.deadlines[1] / 2} if t is None else {t * 2, t / 2, None}
        for moved in options:
            c = space.config(config.features, d, config.model, moved)
            if c.deadline != t:
                out.append(c)
    return out


#: One unmeasured depth of a packet-free front selection: the configuration, and the mean and standard
#: deviation of the F1 a measurement there would give (see :func:`depth_sweep`).
SweepCandidate = tuple[Config, float, float]


def depth_sweep(space: SearchSpace, objectives: tuple[str, ...], history: History,
                seen: set[str] = frozenset()) -> list[SweepCandidate]:
    """Every unmeasured depth (not in ``seen`` either) of each packet-free front selection, with the
    predictive mean and standard deviation of the F1 a measurement there would give; none with
    time-to-decision an objective, or before any such selection has two measured depths.

    Such a script reads Zeek's connection record once, whatever the depth, so its CPU does not move
    with depth and the depth is a choice of F1 alone. F1 along depth is jagged (small trees, grouped
    folds: on the ground truth orig_ip_bytes alone reaches 0.379 at depth 20, 0.355 at 21, 0.334 at
    13), more than the GP over every dimension resolves, and the search is scored on the F1 it
    measures, jags included. So F1 along log depth is modelled on its own, as in Kushner's (1964)
    one-dimensional Bayesian optimization: a Wiener process (variance ``drift`` per unit of log depth)
    plus independent measurement noise (variance ``noise``), both fitted to the squared differences
    between neighbouring measured depths of every such selection, E[(f(a) - f(b))^2] = drift |a - b| +
    2 noise. Between two measured depths the prediction is the Brownian bridge's, beyond the last the
    Wiener process's; a new measurement adds its own noise. The policy weighs each candidate's expected
    hypervolume gain against the GP's best, expectation against expectation: the Lipschitz bound that
    came before (Piyavskii-Shubert) promised the best case, its constant grew with every jag measured,
    and the sweep took 26-32 of 40 BO trials on the ground truth."""
    if "latency" in objectives:  # with time-to-decision an objective, depth is never free
        return []
    y = to_max_space([v for _, v in history], objectives)
    flat = {c.key(): c for (c, _), keep in zip(history, pareto_mask(y))
            if keep and not space.handles_packets(c.features)}
    lines = []
    for c in flat.values():
        measured = {h.depth: v["f1"] for h, v in history
                    if h.features == c.features and h.model == c.model and h.deadline == c.deadline}
        depths = np.array(sorted(measured))
        lines.append((c, set(measured), np.log(depths), np.array([measured[d] for d in depths])))
    if not lines:
        return []
    gaps = np.concatenate([np.diff(x) for *_, x, _ in lines])
    jumps = np.concatenate([np.diff(f) ** 2 for *_, f in lines])
    if len(gaps) == 0:  # every such selection measured at one depth
        return []
    drift, noise = _wiener_fit(gaps, jumps)
    out = []
    all_depths = np.arange(1, space.max_depth + 1)
    for c, measured, x, f in lines:
        for d in all_depths:
            config = space.config(c.features, int(d), c.model, c.deadline)
            if int(d) in measured or config.key() in seen:
                continue
            mean, var = _bridge(np.log(d), x, f, drift, noise)
            out.append((config, mean, float(np.sqrt(var))))
    return out


def _wiener_fit(gaps: np.ndarray, jumps: np.ndarray) -> tuple[float, float]:
    """(drift, noise) by non-negative least squares of ``jumps`` = drift * ``gaps`` + 2 noise; with fewer
    than three pairs, all of it drift (the optimistic reading: structure, not noise, to explore)."""
    if len(gaps) < 3:
        return float(np.mean(jumps / gaps)), 0.0
    from scipy.optimize import nnls
    (drift, twice_noise), _ = nnls(np.column_stack([gaps, np.full(len(gaps), 2.0)]), jumps)
    return float(drift), float(twice_noise)


def _bridge(x: float, xs: np.ndarray, fs: np.ndarray, drift: float, noise: float) -> tuple[float, float]:
    """Mean and variance of a new measurement at ``x`` given measurements ``fs`` at ``xs`` (sorted):
    the Brownian bridge between its neighbours (the Wiener process past the ends), plus noise."""
    j = int(np.searchsorted(xs, x))
    if j == 0 or j == len(xs):
        end = 0 if j == 0 else len(xs) - 1
        return float(fs[end]), drift * abs(x - xs[end]) + 2 * noise
    a, b = xs[j - 1], xs[j]
    w = (b - x) / (b - a)
    mean = w * fs[j - 1] + (1 - w) * fs[j]
    return float(mean), drift * (x - a) * (b - x) / (b - a) + noise * (1 + w ** 2 + (1 - w) ** 2)


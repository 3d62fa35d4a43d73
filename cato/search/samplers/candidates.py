"""Candidate generation: the configurations cato's search considers at one BO iteration.

Contract: every function here maps what was measured (the front, the most accurate trials), the
rankings and the prior to configurations of the space, using only the random stream it is given. None
scores a candidate (the acquisition prices them all, see ``acquisition``) and none leaves out one that
was measured: the acquisition's optimizer does. :func:`depth_sweep` is the exception that proves the
rule: its one candidate comes with an optimistic F1 (a Lipschitz bound, not the GP), which the policy
weighs against the acquisition's best.

* :func:`pool`: the local optimizer's pool, from :func:`neighbour`, :func:`depth_lines` and
  :func:`ranking_moves`.
* :func:`single_moves`: every configuration one move away, the hill-climb's steps.
* :func:`depth_sweep`: the depth of a packet-free front selection with the highest F1 bound.
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


def depth_sweep(space: SearchSpace, objectives: tuple[str, ...], history: History) -> tuple[Config | None, float]:
    """A front selection that handles no packets, at the depth where its F1 could be highest, and
    that highest F1; None when there is none, or no unmeasured depth could beat its best.

    Such a script reads Zeek's connection record once, whatever the depth, so its CPU does not move
    with depth and the depth is a choice of F1 alone. F1 along depth is jagged (small trees, grouped
    folds: on the ground truth orig_ip_bytes alone reaches 0.379 at depth 20, 0.355 at 21, 0.334 at
    13), more than a GP over tens of trials resolves, and at the cheap end of a log-cost axis each
    0.01 of F1 is worth much hypervolume. So this is one-dimensional Lipschitz optimization
    (Piyavskii-Shubert) over log depth: the bound at an unmeasured depth is the least, over the
    measured depths, of their F1 plus L times the distance, with L twice the steepest slope seen
    between neighbouring measured depths; the sweep takes the highest bound of any such selection."""
    if "latency" in objectives:  # with time-to-decision an objective, depth is never free
        return None, 0.0
    y = to_max_space([v for _, v in history], objectives)
    front = [c for (c, _), keep in zip(history, pareto_mask(y)) if keep]
    per_packet = dict(zip(space.features, space.per_packet))
    flat = {c.key(): c for c in front if not any(per_packet[f] for f in c.features)}
    log_depths = np.log(np.arange(1, space.max_depth + 1))
    best, best_gain, best_f1 = None, 0.0, 0.0
    for c in flat.values():
        measured = {h.depth: v["f1"] for h, v in history
                    if h.features == c.features and h.model == c.model and h.deadline == c.deadline}
        d = np.array(sorted(measured))
        f1 = np.array([measured[k] for k in d])
        slopes = np.abs(np.diff(f1)) / np.diff(np.log(d)) if len(d) > 1 else np.array([])
        lipschitz = 2 * max(float(slopes.max()) if len(slopes) else 0.0, 1e-3)  # Strongin's r = 2
        bound = (f1[None, :] + lipschitz * np.abs(log_depths[:, None] - np.log(d)[None, :])).min(1)
        bound[d - 1] = -np.inf  # measured
        i = int(np.argmax(bound))
        if bound[i] - f1.max() > best_gain:
            best = space.config(c.features, i + 1, c.model, c.deadline)
            best_gain, best_f1 = float(bound[i] - f1.max()), min(float(bound[i]), 1.0)
    return best, best_f1


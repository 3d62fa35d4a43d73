"""The initial design: what cato's search measures before it has a model to ask, and the footholds'
bisection it carries on afterwards.

Contract: :func:`initial_design` maps a space, the MI and RFE rankings, a seed and what the study
``measured`` before its search (its baselines) to an ordered list of configurations. It is a function
of its arguments alone (its own random stream, trial ``2**31`` of ``seed``). It never scores a
configuration and never leaves out one the study measured: the policy takes the list in order and
moves a point equal to a finished or running search trial to an unseen neighbour. The MI-prior draws
that fill the initial phase beyond the list are the policy's (each takes its trial's own stream).
:func:`accurate_end_step` maps the same baselines and the search's trials so far to the high-F1
foothold's next bisection step, or None; the policy decides when it is asked.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from cato.model import ModelSpec
from cato.search.objectives import F1_TOLERANCE
from cato.search.samplers.base import trial_rng
from cato.search.space import Config, SearchSpace, log_uniform_depth


def default_model(family: str) -> ModelSpec:
    """The model a design point of ``family`` gets: 50 trees (one for a decision tree), depth 16."""
    return ModelSpec(family, 50 if family != "dt" else 1, 16)


def foothold_model(space: SearchSpace) -> ModelSpec:
    """The model of the footholds and their bisection: the space's, else the first family but a single
    tree's default (the baselines' model on a study's default space)."""
    return space.model or default_model(next((f for f in space.families if f != "dt"), space.families[0]))


def foothold_depths(space: SearchSpace, measured: Sequence[tuple[Config, dict]],
                    tolerance: float = F1_TOLERANCE) -> list[tuple[int, float]]:
    """From the study's ALL baselines (every feature at several depths), shallowest first: each depth
    whose ALL beats ALL at every shallower depth by more than ``tolerance`` (the shallowest always),
    with its target F1, that ALL's less ``tolerance``. Between two such depths this corpus's packets
    buy F1 its measurements can tell from noise; past the last, only cost. Each is a point of the
    baselines' front a search must match. Empty when no ALL was measured."""
    f1_at = sorted((c.depth, v["f1"]) for c, v in measured if len(c.features) == space.n_features and "f1" in v)
    depths, best = [], -math.inf
    for depth, f1 in f1_at:
        if f1 - tolerance > best:
            depths.append((depth, f1 - tolerance))
        best = max(best, f1)
    return depths


class Bisection(NamedTuple):
    """One bisection step along a ranking: its features (in the space), the size to try next, and the
    measured values of the bracket's lower end (the largest top-k below the target; None: none)."""
    ranking: list[str]
    size: int
    below: dict | None


def bisection_size(rankings: Sequence[Sequence[str]], space: SearchSpace, measured: Sequence[tuple[Config, dict]],
                   depth: int, target: float) -> Bisection | None:
    """The ranking and the number of its top features to try next for the fewest that reach ``target``
    F1 at ``depth``: one step of bisection on log(size) between the largest top-k the study measured
    there below the target and the smallest that reaches it (every feature, ALL, at worst); from one
    feature when a measured top-k already reaches it. Bisection assumes nothing of how F1 grows with
    size (it saturates early on some corpora, late on others). The ranking is the one whose measured
    top-k came closest to the target. None when no top-k of a ranking was measured at ``depth``."""
    sizes = [(len(c.features), v, rank) for c, v in measured for rank in rankings
             if c.depth == depth and "f1" in v and 0 < len(c.features) < space.n_features
             and set(c.features) == set([f for f in rank if f in space.features][:len(c.features)])]
    every = next((v for c, v in measured if len(c.features) == space.n_features and c.depth == depth), None)
    if every is None or not sizes:
        return None
    rank = max(sizes, key=lambda s: (s[1]["f1"], -s[0]))[2]
    sizes = [(k, v) for k, v, r in sizes if r is rank] + [(space.n_features, every)]
    above = min(k for k, v in sizes if v["f1"] >= target or k == space.n_features)
    below, below_values = max(((k, v) for k, v in sizes if v["f1"] < target and k < above),
                              key=lambda kv: kv[0], default=(0, None))
    low = max(below, 1)
    k = min(max(round(math.sqrt(low * above)), 1), space.n_features - 1)
    if k in (below, above) and above - low > 1:  # rounding landed on a measured end
        k = low + 1 if k == below else above - 1
    return Bisection([f for f in rank if f in space.features], k, below_values)


def initial_design(space: SearchSpace, mi_rank: Sequence[str], rfe_rank: Sequence[str], seed: int,
                   ks: Sequence[int] = (5, 10, 20), measured: Sequence[tuple[Config, dict]] = (),
                   footholds: bool = True, tolerance: float = F1_TOLERANCE) -> list[Config]:
    """MI-top-k and RFE-top-k selections, each at a different depth and model family, and (unless
    ``footholds`` is False) footholds at the ends of the front, placed from the study's own
    measurements (its baselines, ``measured``) where it has them:

    * the high-F1 end, in a space much larger than the largest k (a search starting from top-k
      selections pays for every feature it adds and may never reach the accurate end): one foothold
      at each depth ``foothold_depths`` finds (where ALL beats every shallower ALL by more than
      ``tolerance``; the study passes its own F1 noise), deepest first: one step of bisection along
      the ranking whose measured top-k there came closest to that depth's target, between the sizes
      measured below and above it (``bisection_size``); with ALL measured but no top-k there, the RFE
      ranking's top half. With no ALL measured: every feature at the geometric middle of the depths.
    * the cheap end, when the space mixes features that need per-packet events with features that
      need none, at the shallowest of those depths (the geometric middle without ALL): a foothold at
      each end of the packet-free segment, every packet-free feature (its most accurate point) and
      the MI-top-k (smallest k) of them (its cheapest). Such scripts cost a fraction of any that
      handles packets (see ``acquisition.gp_inputs``), so the front's cheap end is theirs; a search
      starting from top-k selections, nearly all per-packet, may never try one. Their cost grows
      little with how many they read (IoT Sentinel: 12 cost a few µs per connection more than 5,
      RFE's per-packet top 10 85), so neither end is reached from the other in a few moves.

    Order: MI-top-k and RFE-top-k alternating, k ascending, with the footholds (high-F1 end first) from
    third place on.
    """
    rng = trial_rng(seed, 2**31)
    designs = []
    picks = [(rank, k) for k in ks for rank in (mi_rank, rfe_rank)]
    for i, (rank, k) in enumerate(picks):
        feats = [f for f in rank if f in space.features][:k]
        depth = log_uniform_depth(rng, space.max_depth)
        family = space.families[i % len(space.families)]
        # With a deadline dimension, every other design has one (log-uniform): the baselines have none.
        deadline = space.deadline(rng.uniform(*space.bounds()[:, space.deadline_dim])) \
            if space.deadlines and i % 2 else None
        designs.append(space.config(feats, depth, space.model or default_model(family), deadline))
    if not footholds:
        return designs
    model = foothold_model(space)
    found = foothold_depths(space, measured, tolerance)
    middle = max(round(np.sqrt(space.max_depth)), 1)
    feet = []
    if space.n_features > 2 * max(ks, default=0):
        for depth, target in reversed(found):
            step = bisection_size((mi_rank, rfe_rank), space, measured, depth, target)
            # ALL itself is measured: without a top-k there, bisect the RFE ranking from its top half.
            high = step.ranking[:step.size] if step is not None else \
                [f for f in rfe_rank if f in space.features][:space.n_features // 2]
            feet.append(space.config(high, depth, model))
        if not found:
            feet.append(space.config(list(space.features), middle, model))
    per_packet = dict(zip(space.features, space.per_packet))
    cheap = [f for f in space.features if not per_packet[f]]
    if cheap and len(cheap) < space.n_features:
        depth = found[0][0] if found else middle
        feet.append(space.config(cheap, depth, model))
        fewest = [f for f in mi_rank if f in cheap][:min(ks, default=1)]
        if len(fewest) < len(cheap):
            feet.append(space.config(fewest, depth, model))
    at = min(2, len(designs))
    return designs[:at] + feet + designs[at:]


def accurate_end_step(space: SearchSpace, objectives: Sequence[str], rankings: Sequence[Sequence[str]],
                      known: Sequence[tuple[Config, dict]], history: Sequence[tuple[Config, dict]],
                      tolerance: float = F1_TOLERANCE, seen: set[str] = frozenset()) -> Config | None:
    """The high-F1 footholds' bisection carried on: at the deepest of ``foothold_depths`` (from the
    baselines, ``known``) whose ALL no search trial of ``history`` matches yet (F1 at least that depth's
    target, every cost objective at most ALL's), the next step of ``bisection_size`` along a ranking,
    from the baselines and the search's trials of the footholds' model. None when every such ALL is
    matched, or for each unmatched one the bracket's lower end (the largest top-k below the target)
    costs as much as ALL already, or the next step was measured (``seen``: the bracket has closed).

    The design's foothold is one step of that bisection. On a corpus where F1 keeps growing with the
    number of features up to ALL (IoT Sentinel: RFE's top 30 of 96 at depth 50 is 0.004-0.016 F1 below
    ALL, its top 40 within 0.002 at 1.6x lower CPU), one step leaves ALL above every search trial, and
    the acquisition, whose gains there are a sliver of the front's area, rarely climbs to it. Bisection
    on log(size) needs a few steps, and stops once a trial matches ALL or the selections left to try
    would cost as much as ALL (without that stop, up to 9 of 10 BO trials near ALL on IoT Sentinel)."""
    costs = [o for o in objectives if o != "f1"]
    alls = {c.depth: v for c, v in known if len(c.features) == space.n_features and "f1" in v}
    model = foothold_model(space)
    measured = [*known, *((c, v) for c, v in history if c.model == model)]
    for depth, target in reversed(foothold_depths(space, known, tolerance)):
        ceiling = alls[depth]
        if any(v.get("f1", -math.inf) >= target and all(v.get(o, math.inf) <= ceiling.get(o, math.inf) for o in costs)
               for _, v in history):
            continue
        step = bisection_size(rankings, space, measured, depth, target)
        # The bracket's lower end costing as much as ALL already: a larger top-k would too, so no step
        # can match ALL for less.
        if step is None or step.below is not None and all(step.below.get(o, -math.inf) >= ceiling.get(o, math.inf)
                                                          for o in costs):
            continue
        config = space.config(step.ranking[:step.size], depth, model)
        if config.key() not in seen:
            return config
    return None

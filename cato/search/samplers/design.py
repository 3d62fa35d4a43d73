"""The initial design: what cato's search measures before it has a model to ask.

Contract: :func:`initial_design` maps a space, the MI and RFE rankings, a seed and what the study
``measured`` before its search (its baselines) to an ordered list of configurations. It is a function
of its arguments alone (its own random stream, trial ``2**31`` of ``seed``). It never scores a
configuration and never leaves out one the study measured: the policy takes the list in order and
moves a point equal to a finished or running search trial to an unseen neighbour. The MI-prior draws
that fill the initial phase beyond the list are the policy's (each takes its trial's own stream).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from cato.model import ModelSpec
from cato.search.objectives import F1_TOLERANCE
from cato.search.samplers.base import trial_rng
from cato.search.space import Config, SearchSpace, log_uniform_depth


def default_model(family: str) -> ModelSpec:
    """The model a design point of ``family`` gets: 50 trees (one for a decision tree), depth 16."""
    return ModelSpec(family, 50 if family != "dt" else 1, 16)


def target_depth(space: SearchSpace, measured: Sequence[tuple[Config, dict]],
                 tolerance: float = F1_TOLERANCE) -> tuple[int, float] | None:
    """From the study's ALL baselines (every feature at several depths): the target F1, ALL's at the
    deepest depth measured less ``tolerance``, and the shallowest depth whose ALL reaches it. Beyond
    that depth this corpus's packets buy no F1 that its measurements can tell from noise, only cost.
    None when no ALL was measured."""
    f1_at = {c.depth: v["f1"] for c, v in measured if len(c.features) == space.n_features and "f1" in v}
    if not f1_at:
        return None
    target = f1_at[max(f1_at)] - tolerance
    return min(d for d, f1 in f1_at.items() if f1 >= target), target


def bisection_size(rankings: Sequence[Sequence[str]], space: SearchSpace, measured: Sequence[tuple[Config, dict]],
                   depth: int, target: float) -> tuple[list[str], int] | None:
    """The ranking and the number of its top features to try next for the fewest that reach ``target``
    F1 at ``depth``: one step of bisection on log(size) between the largest top-k the study measured
    there below the target and the smallest that reaches it (every feature, ALL, at worst); from one
    feature when a measured top-k already reaches it. Bisection assumes nothing of how F1 grows with
    size (it saturates early on some corpora, late on others). The ranking is the one whose measured
    top-k came closest to the target. None when no top-k of a ranking was measured at ``depth``."""
    sizes = [(len(c.features), v["f1"], rank) for c, v in measured for rank in rankings
             if c.depth == depth and "f1" in v and 0 < len(c.features) < space.n_features
             and set(c.features) == set([f for f in rank if f in space.features][:len(c.features)])]
    f1_all = next((v["f1"] for c, v in measured if len(c.features) == space.n_features and c.depth == depth), None)
    if f1_all is None or not sizes:
        return None
    rank = max(sizes, key=lambda s: (s[1], -s[0]))[2]
    sizes = [(k, f1) for k, f1, r in sizes if r is rank] + [(space.n_features, f1_all)]
    above = min(k for k, f1 in sizes if f1 >= target or k == space.n_features)
    below = max((k for k, f1 in sizes if f1 < target and k < above), default=0)
    low = max(below, 1)
    k = min(max(round(math.sqrt(low * above)), 1), space.n_features - 1)
    if k in (below, above) and above - low > 1:  # rounding landed on a measured end
        k = low + 1 if k == below else above - 1
    return [f for f in rank if f in space.features], k


def initial_design(space: SearchSpace, mi_rank: Sequence[str], rfe_rank: Sequence[str], seed: int,
                   ks: Sequence[int] = (5, 10, 20), measured: Sequence[tuple[Config, dict]] = (),
                   footholds: bool = True, tolerance: float = F1_TOLERANCE) -> list[Config]:
    """MI-top-k and RFE-top-k selections, each at a different depth and model family, and (unless
    ``footholds`` is False) two footholds at the ends of the front, placed from the study's own
    measurements (its baselines, ``measured``) where it has them:

    * the depth of both: the shallowest at which the study's ALL baseline comes within ``tolerance``
      F1 of ALL at the deepest depth measured (``target_depth``; the study passes its own F1 noise);
      without ALL measured, the geometric middle of the depths.
    * the high-F1 end, in a space much larger than the largest k (a search starting from top-k
      selections pays for every feature it adds and may never reach the accurate end): one step of
      bisection along the ranking whose measured top-k came closest to the target, between the sizes
      measured below and above it (``bisection_size``); with ALL measured but no top-k, the RFE
      ranking's top half; with nothing measured, every feature.
    * the cheap end: the MI-top-k (smallest k) of the features that need no per-packet events, when the
      space mixes both kinds. Such scripts cost a fraction of any that handles packets (see
      ``acquisition.gp_inputs``), so the front's cheap end is theirs; a search starting from top-k
      selections, nearly all per-packet, may never try one.

    Order: MI-top-k and RFE-top-k alternating, k ascending, with the footholds (high-F1 end first) in
    third and fourth place.
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
    family = next((f for f in space.families if f != "dt"), space.families[0])
    model = space.model or default_model(family)
    found = target_depth(space, measured, tolerance)
    depth = found[0] if found else max(round(np.sqrt(space.max_depth)), 1)
    per_packet = dict(zip(space.features, space.per_packet))
    cheap = [f for f in mi_rank if f in per_packet and not per_packet[f]][:min(ks, default=1)]
    if cheap and len(cheap) < space.n_features and any(per_packet.values()):
        designs.insert(min(2, len(designs)), space.config(cheap, depth, model))
    if space.n_features > 2 * max(ks, default=0):
        step = bisection_size((mi_rank, rfe_rank), space, measured, depth, found[1]) if found else None
        if step is not None:
            high = step[0][:step[1]]
        else:  # ALL itself is measured: bisect the RFE ranking instead of measuring it again
            high = [f for f in rfe_rank if f in space.features][:space.n_features // 2] if found else list(space.features)
        designs.insert(min(2, len(designs)), space.config(high, depth, model))
    return designs

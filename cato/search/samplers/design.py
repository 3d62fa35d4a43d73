"""The initial design: what cato's search measures before it has a model to ask.

Contract: :func:`initial_design` maps a space, the MI and RFE rankings, a seed and what the study
``measured`` before its search (its baselines) to an ordered list of configurations. It is a function
of its arguments alone (its own random stream, trial ``2**31`` of ``seed``). It never scores a
configuration and never leaves out one the study measured: the policy takes the list in order and
moves a point equal to a finished or running search trial to an unseen neighbour. The MI-prior draws
that fill the initial phase beyond the list are the policy's (each takes its trial's own stream).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cato.model import ModelSpec
from cato.search.samplers.base import trial_rng
from cato.search.space import Config, SearchSpace, log_uniform_depth


def default_model(family: str) -> ModelSpec:
    """The model a design point of ``family`` gets: 50 trees (one for a decision tree), depth 16."""
    return ModelSpec(family, 50 if family != "dt" else 1, 16)


def initial_design(space: SearchSpace, mi_rank: Sequence[str], rfe_rank: Sequence[str], seed: int,
                   ks: Sequence[int] = (5, 10, 20), measured: Sequence[tuple[Config, dict]] = (),
                   footholds: bool = True) -> list[Config]:
    """MI-top-k and RFE-top-k selections, each at a different depth and model family, and (unless
    ``footholds`` is False) two footholds at the ends of the front:

    * the cheap end: the MI-top-k (smallest k) of the features that need no per-packet events, when the
      space mixes both kinds, at the geometric middle of the depths. Such scripts cost a fraction of any
      that handles packets (see ``acquisition.gp_inputs``), so the front's cheap end is theirs; a search
      starting from top-k selections, nearly all per-packet, may never try one.
    * the high-F1 end, in a space much larger than the largest k (on IoT Sentinel F1 within 0.01 of
      ALL@50 takes about 60 features, out of reach of a search that starts from 20 and pays for every
      feature it adds): every feature at the middle depth; or, when the study ``measured`` every
      feature already (its ALL baselines), the RFE ranking's top half at the deepest depth measured,
      the first step of a bisection along the ranking.

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
    middle = max(round(np.sqrt(space.max_depth)), 1)
    family = next((f for f in space.families if f != "dt"), space.families[0])
    per_packet = dict(zip(space.features, space.per_packet))
    cheap = [f for f in mi_rank if f in per_packet and not per_packet[f]][:min(ks, default=1)]
    if cheap and len(cheap) < space.n_features and any(per_packet.values()):
        designs.insert(min(2, len(designs)), space.config(cheap, middle, space.model or default_model(family)))
    if space.n_features > 2 * max(ks, default=0):
        model = space.model or default_model(family)
        if any(len(c.features) == space.n_features for c, _ in measured):
            top_half = [f for f in rfe_rank if f in space.features][:space.n_features // 2]
            high = space.config(top_half, max(c.depth for c, _ in measured), model)
        else:
            high = space.config(list(space.features), middle, model)
        designs.insert(min(2, len(designs)), high)
    return designs

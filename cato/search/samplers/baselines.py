"""The baseline samplers a study compares cato's search with: uniform random draws and Optuna's TPE.

Contract: each ``ask`` returns one configuration of the space, never one measured or running, labelled
``random`` or ``tpe`` (with :data:`~cato.search.samplers.base.MOVED` when it was moved off a measured
one). Neither uses the rankings, the prior or the study's baselines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from cato.model import N_TREES_RANGE, TREE_DEPTH_RANGE, ModelSpec
from cato.search.objectives import OBJECTIVES
from cato.search.samplers.base import History, labelled, trial_rng, unseen
from cato.search.space import Config, SearchSpace


@dataclass
class RandomSampler:
    """Uniform over the space: each feature in or out with probability 1/2, depth and model uniform."""
    space: SearchSpace
    seed: int = 0
    name: str = "random"

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        rng = trial_rng(self.seed, number)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        drawn = self.space.sample(rng)
        return labelled(drawn, unseen(self.space, drawn, seen, rng), "random")


@dataclass
class TPESampler:
    """Optuna's multi-objective TPE, refitted from the finished trials at every ``ask`` (seeded per trial)."""
    space: SearchSpace
    objectives: tuple[str, ...]
    seed: int = 0
    name: str = "tpe"

    def _distributions(self) -> dict:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
        d = {f"f:{f}": IntDistribution(0, 1) for f in self.space.features}
        d["depth"] = IntDistribution(1, self.space.max_depth)
        if self.space.deadlines:  # log seconds; the top decade is "none", as in SearchSpace.sample
            lo, hi = self.space.bounds()[:, self.space.deadline_dim]
            d["log_deadline"] = FloatDistribution(lo, hi + math.log(10))
        if self.space.model:
            return d
        d["family"] = CategoricalDistribution(list(self.space.families))
        d["n_trees"] = IntDistribution(*N_TREES_RANGE)
        d["tree_depth"] = IntDistribution(*TREE_DEPTH_RANGE)
        return d

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        """Optuna's TPE sees the finished trials only; a proposal equal to a ``pending`` one is moved off it."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = self._distributions()
        directions = ["maximize" if OBJECTIVES[o] == "max" else "minimize" for o in self.objectives]
        study = optuna.create_study(directions=directions,
                                    sampler=optuna.samplers.TPESampler(seed=self.seed * 100_003 + number))
        for config, values in history:
            params = {f"f:{f}": int(f in config.features) for f in self.space.features}
            params["depth"] = config.depth
            if self.space.deadlines:
                params["log_deadline"] = self.space.encode(config)[self.space.deadline_dim]
            if not self.space.model:
                params.update(family=config.model.family,
                              n_trees=config.model.n_trees if config.model.family != "dt" else N_TREES_RANGE[0],
                              tree_depth=config.model.tree_depth)
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                      values=[values[o] for o in self.objectives]))
        trial = study.ask(dists)
        p = trial.params
        feats = [f for f in self.space.features if p[f"f:{f}"]]
        rng = trial_rng(self.seed, number)
        if not feats:
            feats = [self.space.features[int(rng.integers(self.space.n_features))]]
        model = self.space.model or ModelSpec(p["family"], p["n_trees"] if p["family"] != "dt" else 1,
                                              p["tree_depth"])
        deadline = self.space.deadline(p["log_deadline"]) if self.space.deadlines else None
        config = self.space.config(feats, p["depth"], model, deadline)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        return labelled(config, unseen(self.space, config, seen, rng), "tpe")

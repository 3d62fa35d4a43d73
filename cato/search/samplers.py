"""Samplers propose the next configuration from the finished trials (as Optuna's samplers do).

* :class:`RandomSampler`: uniform over the space (a baseline).
* :class:`TPESampler`: Optuna's multi-objective TPE (a baseline).
* :class:`BoTorchSampler`: cato's search. An initial design with the MI-top-k and RFE-top-k
  selections and MI-prior-weighted random draws, then multi-objective Bayesian optimization:
  a GP per objective, qLogNEHVI, weighted by the feature-importance
  prior as in πBO (the prior's weight decays as evidence accumulates), optimized with BoTorch's
  mixed alternating optimizer. Unlike HyperMapper, the prior stays on with several objectives.

Every sampler is stateless between calls: what it proposes depends only on the seed, the trial
number and the history, so a resumed study continues exactly where it stopped.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from cato.models import N_TREES_RANGE, TREE_DEPTH_RANGE, ModelSpec
from cato.search.objectives import OBJECTIVES
from cato.search.pareto import to_max_space
from cato.search.space import Config, SearchSpace

History = Sequence[tuple[Config, dict]]

SAMPLERS = ("botorch", "tpe", "random")


class Sampler(Protocol):
    name: str

    def ask(self, history: History, number: int) -> tuple[Config, dict]:
        """The configuration for trial ``number`` and what the sampler wants recorded about it."""


def _rng(seed: int, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, number])


def _unseen(space: SearchSpace, config: Config, seen: set[str], rng: np.random.Generator) -> Config:
    """``config`` or, if it was already evaluated, a neighbour (one feature flipped) that was not."""
    for _ in range(50):
        if config.key() not in seen:
            return config
        feats = set(config.features)
        flip = space.features[int(rng.integers(space.n_features))]
        feats.symmetric_difference_update({flip})
        if feats:
            config = space.config(feats, config.depth, config.model)
    return config


@dataclass
class RandomSampler:
    space: SearchSpace
    seed: int = 0
    name: str = "random"

    def ask(self, history: History, number: int) -> tuple[Config, dict]:
        rng = _rng(self.seed, number)
        seen = {c.key() for c, _ in history}
        return _unseen(self.space, self.space.sample(rng), seen, rng), {"source": "random"}


@dataclass
class TPESampler:
    space: SearchSpace
    objectives: tuple[str, ...]
    seed: int = 0
    name: str = "tpe"

    def _distributions(self) -> dict:
        from optuna.distributions import CategoricalDistribution, IntDistribution
        d = {f"f:{f}": IntDistribution(0, 1) for f in self.space.features}
        d["depth"] = IntDistribution(1, self.space.max_depth)
        if self.space.model:
            return d
        d["family"] = CategoricalDistribution(list(self.space.families))
        d["n_trees"] = IntDistribution(*N_TREES_RANGE)
        d["tree_depth"] = IntDistribution(*TREE_DEPTH_RANGE)
        return d

    def ask(self, history: History, number: int) -> tuple[Config, dict]:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = self._distributions()
        directions = ["maximize" if OBJECTIVES[o] == "max" else "minimize" for o in self.objectives]
        study = optuna.create_study(directions=directions,
                                    sampler=optuna.samplers.TPESampler(seed=self.seed * 100_003 + number))
        for config, values in history:
            params = {f"f:{f}": int(f in config.features) for f in self.space.features}
            params["depth"] = config.depth
            if not self.space.model:
                params.update(family=config.model.family,
                              n_trees=config.model.n_trees if config.model.family != "dt" else N_TREES_RANGE[0],
                              tree_depth=config.model.tree_depth)
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                      values=[values[o] for o in self.objectives]))
        trial = study.ask(dists)
        p = trial.params
        feats = [f for f in self.space.features if p[f"f:{f}"]]
        rng = _rng(self.seed, number)
        if not feats:
            feats = [self.space.features[int(rng.integers(self.space.n_features))]]
        model = self.space.model or ModelSpec(p["family"], p["n_trees"] if p["family"] != "dt" else 1,
                                              p["tree_depth"])
        config = self.space.config(feats, p["depth"], model)
        return _unseen(self.space, config, {c.key() for c, _ in history}, rng), {"source": "tpe"}


@dataclass
class BoTorchSampler:
    space: SearchSpace
    objectives: tuple[str, ...]
    seed: int = 0
    #: Per-feature inclusion probability from mutual information; None turns the prior off.
    prior: np.ndarray | None = None
    #: Configurations tried first (MI-top-k and RFE-top-k selections), then prior-weighted draws.
    initial: list[Config] = field(default_factory=list)
    n_initial: int = 10
    #: πBO weight β: the acquisition is multiplied by prior^(β / t) at BO iteration t.
    prior_strength: float = 2.0
    num_restarts: int = 4
    raw_samples: int = 256
    maxiter_alternating: int = 8
    mc_samples: int = 64
    name: str = "botorch"

    def ask(self, history: History, number: int) -> tuple[Config, dict]:
        rng = _rng(self.seed, number)
        seen = {c.key() for c, _ in history}
        n = len(history)
        if n < self.n_initial:
            if n < len(self.initial):
                return _unseen(self.space, self.initial[n], seen, rng), {"source": "initial design"}
            prior = self.prior if self.prior is not None else None
            return _unseen(self.space, self.space.sample(rng, prior), seen, rng), {
                "source": "prior draw" if prior is not None else "random draw"}
        t0 = time.perf_counter()
        x = self._optimize(history, n - self.n_initial + 1)
        config = _unseen(self.space, self.space.decode(x), seen, rng)
        return config, {"source": "qLogNEHVI" + (" + MI prior" if self.prior is not None else ""),
                        "bo_overhead_s": time.perf_counter() - t0}

    def _optimize(self, history: History, iteration: int) -> np.ndarray:
        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.prior_guided import PriorGuidedAcquisitionFunction
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
        from botorch.sampling import SobolQMCNormalSampler
        from gpytorch.mlls import ExactMarginalLogLikelihood

        torch.manual_seed(self.seed * 7919 + iteration)
        # Small matrices: threads only contend (3x slower with 2 on this 2-core machine).
        torch.set_num_threads(1)
        space = self.space
        bounds = torch.tensor(space.bounds(), dtype=torch.double)
        train_x = torch.tensor(np.array([space.encode(c) for c, _ in history]), dtype=torch.double)
        train_y = torch.tensor(to_max_space([v for _, v in history], self.objectives), dtype=torch.double)
        # One batched GP over all objectives. The model family enters as an ordinal input: a categorical
        # kernel (MixedSingleTaskGP) fits 8x slower here and three families need no more.
        model = SingleTaskGP(train_x, train_y, input_transform=Normalize(space.dims, bounds=bounds),
                             outcome_transform=Standardize(train_y.shape[-1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        # Reference point: the worst cost seen, and half the best F1, so that configurations too weak to
        # use (a single feature at depth 1) earn no hypervolume however cheap they are.
        span = train_y.max(0).values - train_y.min(0).values
        ref_point = train_y.min(0).values - 0.1 * span.clamp_min(1e-6)
        f1 = self.objectives.index("f1")
        ref_point[f1] = 0.5 * train_y[:, f1].max()
        acqf = qLogNoisyExpectedHypervolumeImprovement(
            model=model, ref_point=ref_point, X_baseline=train_x, prune_baseline=True,
            sampler=SobolQMCNormalSampler(torch.Size([self.mc_samples])))
        if self.prior is not None:
            acqf = PriorGuidedAcquisitionFunction(acqf, FeaturePrior(self.prior, space.n_features), log=True,
                                                  prior_exponent=self.prior_strength / iteration)
        discrete = {i: [0.0, 1.0] for i in range(space.n_features)}
        lo, hi = space.bounds()
        for d in (space.depth_dim, *space.model_dims[1:]):
            discrete[d] = [float(v) for v in range(int(lo[d]), int(hi[d]) + 1)]
        cats = {} if space.model else {space.family_dim: [float(i) for i in range(len(space.families))]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cand, _ = optimize_acqf_mixed_alternating(
                acqf, bounds=bounds, discrete_dims=discrete,
                cat_dims=cats or None,
                q=1, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                options={"maxiter_alternating": self.maxiter_alternating})
        return cand[0].detach().numpy()


def _feature_prior_module():
    import torch

    class _FeaturePrior(torch.nn.Module):
        """log π(x) = Σ_i x_i log p_i + (1 - x_i) log(1 - p_i) over the feature mask."""

        def __init__(self, inclusion: np.ndarray, n_features: int) -> None:
            super().__init__()
            p = torch.tensor(np.clip(inclusion, 1e-3, 1 - 1e-3), dtype=torch.double)
            self.register_buffer("log_p", p.log())
            self.register_buffer("log_q", (1 - p).log())
            self.n = n_features

        def forward(self, x):
            mask = x[..., :self.n]
            return (mask * self.log_p + (1 - mask) * self.log_q).sum(-1)

    return _FeaturePrior


def FeaturePrior(inclusion: np.ndarray, n_features: int):  # noqa: N802 - a class built lazily (torch import)
    return _feature_prior_module()(inclusion, n_features)


def initial_design(space: SearchSpace, mi_rank: Sequence[str], rfe_rank: Sequence[str], seed: int,
                   ks: Sequence[int] = (5, 10)) -> list[Config]:
    """MI-top-k and RFE-top-k selections, each at a different depth and model family."""
    rng = _rng(seed, 2**31)
    designs = []
    picks = [(rank, k) for k in ks for rank in (mi_rank, rfe_rank)]
    for i, (rank, k) in enumerate(picks):
        feats = [f for f in rank if f in space.features][:k]
        depth = int(rng.integers(1, space.max_depth + 1))
        family = space.families[i % len(space.families)]
        model = space.model or ModelSpec(family, 50 if family != "dt" else 1, 16)
        designs.append(space.config(feats, depth, model))
    return designs


def make_sampler(name: str, space: SearchSpace, objectives: tuple[str, ...], seed: int,
                 prior: np.ndarray | None = None, initial: list[Config] | None = None,
                 n_initial: int = 10) -> Sampler:
    if name == "random":
        return RandomSampler(space, seed)
    if name == "tpe":
        return TPESampler(space, objectives, seed)
    if name == "botorch":
        return BoTorchSampler(space, objectives, seed, prior=prior, initial=list(initial or []), n_initial=n_initial)
    raise ValueError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")

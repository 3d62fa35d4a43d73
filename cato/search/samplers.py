"""Samplers propose the next configuration from the finished trials (as Optuna's samplers do).

* :class:`RandomSampler`: uniform over the space (a baseline).
* :class:`TPESampler`: Optuna's multi-objective TPE (a baseline).
* :class:`BoTorchSampler`: cato's search. An initial design with the MI-top-k and RFE-top-k
  selections and MI-prior-weighted random draws, then multi-objective Bayesian optimization:
  a GP per objective, qLogNEHVI on two hypervolumes (the front's, and the one above ALL@max's F1 less
  the tolerance), their relative gains summed, weighted by the feature-importance
  prior as in πBO (the prior's weight decays as evidence accumulates), maximised over a pool of
  neighbours of the front, its selections at every depth, the rankings' top-k selections and prior
  draws, then hill-climbed (BoTorch's mixed alternating optimizer is the other choice). Unlike
  HyperMapper, the prior stays on with several objectives. One acquisition every iteration: no
  schedule of special iterations, nothing that depends on the budget.

What every sampler proposes depends only on the seed, the trial number, the history and the trials still
running (``pending``, when a study evaluates several at once), so a resumed study continues exactly where
it stopped (BoTorchSampler's warm-start cache is rebuilt from the history when it is missing). None
proposes a configuration that is running; with nothing pending, each proposes what it did before
``pending`` existed.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, fields
from typing import Callable, Protocol, Sequence

import numpy as np

from cato.model import N_TREES_RANGE, TREE_DEPTH_RANGE, ModelSpec
from cato.search.importance import inclusion_prior, top_k
from cato.search.objectives import F1_TOLERANCE, OBJECTIVES
from cato.search.pareto import dominated_hypervolume, pareto_mask, to_max_space
from cato.search.space import Config, SearchSpace, log_uniform_depth

History = Sequence[tuple[Config, dict]]
ACQ_OPTIMIZERS = ("local", "alternating")


class SamplerError(ValueError):
    pass

class Sampler(Protocol):
    name: str

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        """The configuration for trial ``number`` and what the sampler wants recorded about it, while the
        trials of ``pending`` are being evaluated (never proposed again)."""


def _rng(seed: int, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, number])


def _labelled(proposed: Config, config: Config, source: str) -> tuple[Config, dict]:
    """``config`` and what made it: ``source``, which proposed ``proposed``, and :func:`_unseen` when it
    had to move that proposal (already evaluated) to an unseen neighbour."""
    if config != proposed:
        source += "; moved to an unseen neighbour (random feature flips)"
    return config, {"source": source}


def _unseen(space: SearchSpace, config: Config, seen: set[str], rng: np.random.Generator) -> Config:
    """``config`` or, if it was already evaluated, a neighbour (one feature flipped) that was not."""
    for _ in range(50):
        if config.key() not in seen:
            return config
        feats = set(config.features)
        flip = space.features[int(rng.integers(space.n_features))]
        feats.symmetric_difference_update({flip})
        if feats:
            config = space.config(feats, config.depth, config.model, config.deadline)
    return config


@dataclass
class RandomSampler:
    space: SearchSpace
    seed: int = 0
    name: str = "random"

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        rng = _rng(self.seed, number)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        drawn = self.space.sample(rng)
        return _labelled(drawn, _unseen(self.space, drawn, seen, rng), "random")


@dataclass
class TPESampler:
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
        rng = _rng(self.seed, number)
        if not feats:
            feats = [self.space.features[int(rng.integers(self.space.n_features))]]
        model = self.space.model or ModelSpec(p["family"], p["n_trees"] if p["family"] != "dt" else 1,
                                              p["tree_depth"])
        deadline = self.space.deadline(p["log_deadline"]) if self.space.deadlines else None
        config = self.space.config(feats, p["depth"], model, deadline)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        return _labelled(config, _unseen(self.space, config, seen, rng), "tpe")


@dataclass
class BoTorchSampler:
    space: SearchSpace
    objectives: tuple[str, ...]
    seed: int = 0
    #: Per-feature inclusion probability from mutual information; None turns the prior off.
    prior: np.ndarray | None = None
    #: Configurations tried first (MI-top-k and RFE-top-k selections), then prior-weighted draws.
    initial: list[Config] = field(default_factory=list)
    #: What the study measured before the search (its baselines): in the model's data and the moves'
    #: anchors from the first BO iteration on.
    known: list[tuple[Config, dict]] = field(default_factory=list)
    n_initial: int = 10
    #: πBO weight β: the front's term is multiplied by (π(x) / π(mode))^(β / t) at BO iteration t.
    prior_strength: float = 2.0
    num_restarts: int = 2
    raw_samples: int = 128
    maxiter_alternating: int = 4
    mc_samples: int = 32
    #: "local" (pool around the front, then hill-climbing) or "alternating" (BoTorch's mixed optimizer).
    acq_optimizer: str = "local"
    pool_per_anchor: int = 96
    pool_prior_draws: int = 512
    hill_climb_starts: int = 4
    hill_climb_steps: int = 3
    #: GP hyperparameters are fitted cold every this many trials and warm-started in between.
    gp_refit_every: int = 5
    warm_maxiter: int = 60
    #: Candidates scored per acquisition call (1024 measured slower than 256).
    score_batch: int = 256
    #: The acquisition's reference F1, as a fraction of the best F1 seen: configurations below it
    #: earn no hypervolume however cheap they are.
    ref_f1_fraction: float = 0.5
    #: The F1 a user wants matched at lower cost: ALL@max's less the report's tolerance, set by the study
    #: from its baselines; None (no baselines): the front's hypervolume alone.
    target_f1: float | None = None
    #: Feature rankings the study computed (MI, RFE); their top-k selections are candidates every
    #: iteration (see ``_ranking_moves``).
    rankings: list[list[str]] = field(default_factory=list)
    name: str = "botorch"
    _cold_fit: tuple = field(default=(None, None), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.acq_optimizer not in ACQ_OPTIMIZERS:
            raise SamplerError(f"acq_optimizer must be one of {', '.join(ACQ_OPTIMIZERS)}, "
                               f"not {self.acq_optimizer!r}")
        for name in ("ref_f1_fraction",):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SamplerError(f"{name} must be in (0, 1], not {getattr(self, name)!r}")
        for name in ("n_initial", "num_restarts", "raw_samples", "maxiter_alternating", "mc_samples",
                     "pool_per_anchor", "hill_climb_starts", "gp_refit_every", "warm_maxiter", "score_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SamplerError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        for name in ("pool_prior_draws", "hill_climb_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise SamplerError(f"{name} must be a non-negative integer, not {getattr(self, name)!r}")
        if self.prior is not None and len(self.prior) != self.space.n_features:
            raise SamplerError(f"the prior has {len(self.prior)} values for {self.space.n_features} features")

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        """The next configuration. Trials still running (``pending``) take their places in the initial
        design, enter qLogNEHVI as ``X_pending`` (the acquisition integrates over their outcomes), and are
        never proposed again."""
        rng = _rng(self.seed, number)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        n = len(history)
        if n < self.n_initial:
            k = n + len(pending)  # the initial design's next place: the running trials hold theirs
            if k < len(self.initial):
                return _labelled(self.initial[k], _unseen(self.space, self.initial[k], seen, rng), "initial design")
            prior = self.prior if self.prior is not None else None
            drawn = self.space.sample(rng, prior, log_depth=True)
            return _labelled(drawn, _unseen(self.space, drawn, seen, rng),
                             "prior draw" if prior is not None else "random draw")
        t0 = time.perf_counter()
        iteration = n - self.n_initial + 1
        # The model and the moves learn from everything measured, the study's baselines too.
        data = [*self.known, *history]
        seen |= {c.key() for c, _ in self.known}
        x, expected, value_of = self._optimize(data, iteration, pending)
        # A depth sweep goes first when even the GP's best candidate expects less hypervolume than the
        # sweep's Lipschitz bound promises: optimism where the GP cannot see (F1 jagged along depth).
        swept, bound_f1 = self._depth_sweep(data)
        if swept is not None and swept.key() not in seen:
            cost = next(v for c, v in data if c.features == swept.features and c.model == swept.model)
            if value_of({**cost, "f1": bound_f1}) > expected:
                return swept, {"source": "depth sweep", "bo_overhead_s": time.perf_counter() - t0}
        proposed = self.space.decode(x)
        config, info = _labelled(proposed, _unseen(self.space, proposed, seen, rng),
                                 "qLogNEHVI" + (" + MI prior" if self.prior is not None else ""))
        return config, {**info, "bo_overhead_s": time.perf_counter() - t0}

    def _depth_sweep(self, history: History) -> tuple[Config | None, float]:
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
        if "latency" in self.objectives:  # with time-to-decision an objective, depth is never free
            return None, 0.0
        y = to_max_space([v for _, v in history], self.objectives)
        front = [c for (c, _), keep in zip(history, pareto_mask(y)) if keep]
        per_packet = dict(zip(self.space.features, self.space.per_packet))
        flat = {c.key(): c for c in front if not any(per_packet[f] for f in c.features)}
        log_depths = np.log(np.arange(1, self.space.max_depth + 1))
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
                best = self.space.config(c.features, i + 1, c.model, c.deadline)
                best_gain, best_f1 = float(bound[i] - f1.max()), min(float(bound[i]), 1.0)
        return best, best_f1

    def _optimize(self, history: History, iteration: int, pending: Sequence[Config] = ()
                  ) -> tuple[np.ndarray, float, Callable[[dict], float]]:
        """The candidate that maximises the acquisition, the hypervolume improvement it is expected to
        bring, and the function that gives the improvement a measured point would bring. ``pending``:
        configurations being evaluated, encoded as the training inputs are (``X_pending``, m x d)."""
        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from botorch.sampling import SobolQMCNormalSampler
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from cato.search._fused_kernel import prepare_botorch_kernel
        prepare_botorch_kernel()  # no JIT compile of BoTorch's C++ kernel, no wait on its lock
        torch.manual_seed(self.seed * 7919 + iteration)
        # Small matrices: threads only contend (3x slower with 2 on this 2-core machine).
        torch.set_num_threads(1)
        space = self.space
        local = self.acq_optimizer != "alternating"
        bounds = torch.tensor(space.bounds(), dtype=torch.double)
        gp_bounds = torch.tensor(self._gp_bounds() if local else _widened(space.bounds()), dtype=torch.double)
        configs = [c for c, _ in history]
        train_x = torch.tensor(self._gp_inputs(configs) if local else np.array([space.encode(c) for c in configs]),
                               dtype=torch.double)
        train_y = torch.tensor(to_max_space([v for _, v in history], self.objectives), dtype=torch.double)
        # One batched GP over all objectives. The model family enters as an ordinal input: a categorical
        # kernel (MixedSingleTaskGP) fits 8x slower here and three families need no more.
        def fit(n: int, start: dict | None):
            model = SingleTaskGP(train_x[:n], train_y[:n],
                                 input_transform=Normalize(train_x.shape[-1], bounds=gp_bounds),
                                 outcome_transform=Standardize(train_y.shape[-1]))
            kwargs = {}
            if start is not None:
                model.load_state_dict(start, strict=False)
                kwargs["optimizer_kwargs"] = {"options": {"maxiter": self.warm_maxiter}}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), **kwargs)
            return model

        # Warm start: a cold fit of ~100 length-scales takes seconds (hundreds of L-BFGS steps); started
        # from the hyperparameters of a fit on fewer trials it converges in tens. The start is a cold
        # fit on the first multiple of ``gp_refit_every`` trials, a function of the history alone, so a
        # resumed study proposes what an uninterrupted one would.
        n = len(history)
        checkpoint = n - n % self.gp_refit_every
        if checkpoint < 2:
            model = fit(n, None)
        else:
            key = tuple(c.key() for c in configs[:checkpoint])
            cold = None
            if self._cold_fit[0] != key:
                torch.manual_seed(self.seed * 7919 + checkpoint)
                cold = fit(checkpoint, None)
                self._cold_fit = (key, {k: v for k, v in cold.state_dict().items()
                                        if not k.startswith(("input_transform", "outcome_transform"))})
                torch.manual_seed(self.seed * 7919 + iteration)
            model = cold if cold is not None and checkpoint == n else fit(n, self._cold_fit[1])
        # Reference points: the worst cost seen, and on F1 one per question the study answers (see
        # _relative_gain): a fraction of the best F1 (configurations too weak to use earn nothing however
        # cheap they are) for the front; the target F1 for "as accurate as every feature, for less".
        span = train_y.max(0).values - train_y.min(0).values
        worst = train_y.min(0).values - 0.1 * span.clamp_min(1e-6)
        f1 = self.objectives.index("f1")
        refs = [self.ref_f1_fraction * float(train_y[:, f1].max())]
        if self.target_f1 is not None:
            refs.append(self.target_f1)
        ref_points = []
        for level in refs:
            ref_point = worst.clone()
            ref_point[f1] = level
            ref_points.append(ref_point)
        y = train_y.numpy()
        # Each question's hypervolume is measured as a fraction of the box it could fill, from its
        # reference to the best seen on every objective: a gain on the narrow accurate end counts as
        # much as the same fraction of the front.
        boxes = [float(np.prod(np.maximum(y.max(0) - r.numpy(), _HV_FLOOR))) for r in ref_points]
        x_pending = None  # configurations being evaluated, encoded as the training inputs (m x d)
        if pending:
            encoded = self._gp_inputs(pending) if local else np.array([space.encode(c) for c in pending])
            x_pending = torch.tensor(encoded, dtype=torch.double)
        ehvis = [qLogNoisyExpectedHypervolumeImprovement(
            model=model, ref_point=r, X_baseline=train_x, prune_baseline=True, X_pending=x_pending,
            sampler=SobolQMCNormalSampler(torch.Size([self.mc_samples]))) for r in ref_points]
        # The MI prior (as in πBO) is a belief about small informative selections: it guides the front,
        # not the climb to every feature's accuracy, which needs the features it ranks low.
        prior = FeaturePrior(self.prior, space.n_features) if self.prior is not None else None
        acqf = gain = _RelativeGain(ehvis, boxes, prior, self.prior_strength / iteration)
        if not local:
            x = self._optimize_alternating(acqf, bounds)
        else:
            x = self._optimize_local(acqf, history, _rng(self.seed, 10_000 + iteration), pending)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = self._gp_inputs([space.decode(x)]) if local else x[None, :]
            expected = float(gain(torch.tensor(inputs, dtype=torch.double).unsqueeze(1)).exp())

        def value_of(values: dict) -> float:
            point = to_max_space([values], self.objectives)[0]
            return sum((dominated_hypervolume(np.vstack([y, point]), r.numpy())
                        - dominated_hypervolume(y, r.numpy())) / box for r, box in zip(ref_points, boxes))

        return x, expected, value_of

    def _weights(self) -> np.ndarray:
        return self.prior if self.prior is not None else np.full(self.space.n_features, 0.5)

    def _gp_inputs(self, configs: Sequence[Config]) -> np.ndarray:
        """The encoding plus three summaries of the mask: how many features, their summed prior, and
        whether any needs per-packet events (the catalog's declaration).

        F1 and cost both follow the size and informativeness of a selection far more than any one of
        ~100 mask bits; with tens of trials a GP learns that from these inputs, not from the bits. Cost
        jumps when a script starts handling packets, whichever per-packet feature it is (on IoT Sentinel
        Zeek's script profiler charges a script without one about 30 µs per connection, any with one
        100 or more): one input says so."""
        x = np.array([self.space.encode(c) for c in configs])
        x[:, self.space.depth_dim] = np.log(x[:, self.space.depth_dim])
        mask = x[:, :self.space.n_features]
        return np.hstack([x, mask.sum(1, keepdims=True), (mask @ self._weights())[:, None],
                          (mask @ self.space.per_packet > 0)[:, None]])

    def _gp_bounds(self) -> np.ndarray:
        lo, hi = self.space.bounds()
        lo[self.space.depth_dim], hi[self.space.depth_dim] = 0.0, np.log(self.space.max_depth)
        return _widened(np.array([[*lo, 0.0, 0.0, 0.0], [*hi, self.space.n_features, self._weights().sum(), 1.0]]))

    def _optimize_alternating(self, acqf, bounds) -> np.ndarray:
        """BoTorch's mixed alternating optimizer over the whole space."""
        from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
        space = self.space
        discrete = {i: [0.0, 1.0] for i in range(space.n_features)}
        lo, hi = space.bounds()
        for d in (space.depth_dim, *space.model_dims[1:]):
            discrete[d] = [float(v) for v in range(int(lo[d]), int(hi[d]) + 1)]
        cats = {} if space.model else {space.family_dim: [float(i) for i in range(len(space.families))]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cand, _ = optimize_acqf_mixed_alternating(
                acqf, bounds=bounds, discrete_dims=discrete, cat_dims=cats or None, q=1,
                num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                options={"maxiter_alternating": self.maxiter_alternating})
        return cand[0].detach().numpy()

    def _optimize_local(self, acqf, history: History, rng: np.random.Generator,
                        pending: Sequence[Config] = ()) -> np.ndarray:
        """Acquisition maximised over a pool of candidates, then hill-climbed by single moves.

        The pool holds neighbours of the current front and of the most accurate trials (a few features
        flipped, depth and model nudged), the whole depth line of each front selection, the rankings'
        top-k selections, and draws from the MI prior. With ~100 binary dimensions and tens of trials,
        gradient restarts over the whole box drift to its corners (one feature, 2-level trees, 10 trees);
        a pool around what is known to be good stays where the GP has data, and costs about a second.
        """
        import torch
        space = self.space
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        y = to_max_space([v for _, v in history], self.objectives)
        front = [history[i][0] for i in np.flatnonzero(pareto_mask(y))]
        f1 = y[:, self.objectives.index("f1")]
        most_accurate = [history[i][0] for i in np.argsort(-f1)[:3]]
        pool: dict[str, Config] = {}
        for anchor in front + most_accurate:
            for _ in range(self.pool_per_anchor):
                c = self._neighbour(anchor, rng, moves=int(rng.integers(1, 4)))
                pool.setdefault(c.key(), c)
        for c in [*self._depth_lines(front), *self._ranking_moves(front + most_accurate)]:
            pool.setdefault(c.key(), c)
        for _ in range(self.pool_prior_draws):
            c = self.space.sample(rng, self.prior, log_depth=True)
            pool.setdefault(c.key(), c)

        def score(configs: list[Config]) -> np.ndarray:
            x = torch.tensor(self._gp_inputs(configs), dtype=torch.double).unsqueeze(1)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.cat([acqf(b) for b in x.split(self.score_batch)]).numpy()

        candidates = [c for k, c in pool.items() if k not in seen]
        values = score(candidates)
        for i in np.argsort(-values)[:self.hill_climb_starts]:
            current, current_value = candidates[i], float(values[i])
            for _ in range(self.hill_climb_steps):
                moves = [m for m in self._single_moves(current) if m.key() not in seen]
                if not moves:
                    break
                mv = score(moves)
                if mv.max() <= current_value:
                    break
                current, current_value = moves[int(np.argmax(mv))], float(mv.max())
            candidates.append(current)
            values = np.append(values, current_value)
        return space.encode(candidates[int(np.argmax(values))])

    def _depth_lines(self, front: Sequence[Config]) -> list[Config]:
        """Each front selection at every depth (and deadline, a factor of 2 apart, or none): when to decide
        moves a script's cost little (one that handles no packets not at all) while F1 along depth is
        jagged, so the GP, not a few local steps, picks it."""
        space = self.space
        out = [space.config(c.features, d, c.model, c.deadline)
               for c in front for d in range(1, space.max_depth + 1) if d != c.depth]
        if space.deadlines:
            lo, hi = space.deadlines
            grid = [None, *(lo * 2.0 ** i for i in range(int(math.log2(hi / lo)) + 1))]
            out += [space.config(c.features, c.depth, c.model, t) for c in front for t in grid]
        return out

    def _ranking_moves(self, anchors: Sequence[Config]) -> list[Config]:
        """Each ranking's top-k selections, k on a geometric grid, at each anchor's depth, model and deadline:
        the moves a feature-selection baseline makes, priced by the GP like any other candidate."""
        ks = sorted({max(1, round(k)) for k in np.geomspace(1, self.space.n_features, 16)})
        selections = {tuple(r[:k]) for r in self.rankings for k in ks}
        settings = {(c.depth, c.model, c.deadline) for c in anchors}
        return [self.space.config(list(feats), *setting) for feats in selections for setting in settings]

    def _neighbour(self, config: Config, rng: np.random.Generator, moves: int) -> Config:
        space = self.space
        feats, depth, model, deadline = set(config.features), config.depth, config.model, config.deadline
        p = self._weights()
        for _ in range(moves):
            kind = rng.random()
            if space.deadlines and rng.random() < 0.2:  # the deadline moved by a factor of 2 or 4, or dropped
                deadline = _moved_deadline(space, deadline, rng)
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

    def _single_moves(self, config: Config) -> list[Config]:
        """Every configuration one move away: one feature flipped, depth
        moved by 1 or by a factor of 1.5, or the deadline by a factor of 2 (or to none, or from none to
        half the span)."""
        space = self.space
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


#: The least side of a hypervolume box (a reference at the best seen would make it empty).
_HV_FLOOR = 1e-9


def _relative_gain_module():
    import torch
    from botorch.acquisition import AcquisitionFunction

    class _RelativeGain(AcquisitionFunction):
        """log Σ_k E[HVI_k(x)] / B_k: the expected gain of each hypervolume indicator as a fraction of
        its box B_k, summed. A study answers two questions, the front (hypervolume above half the best
        F1) and the cheapest configuration as accurate as every feature (hypervolume above the target
        F1); each trial goes where the fractions it promises add up to most, with no iteration counts
        and no schedule. The MI prior, when given, weights the front's term alone."""

        def __init__(self, ehvis: list, boxes: list[float], prior=None, prior_exponent: float = 1.0) -> None:
            super().__init__(model=ehvis[0].model)
            self.ehvis = torch.nn.ModuleList(ehvis)
            self.prior, self.prior_exponent = prior, prior_exponent
            self.register_buffer("log_boxes", torch.tensor(
                [np.log(max(v, _HV_FLOOR)) for v in boxes], dtype=torch.double))

        def forward(self, X):
            logs = [a(X) - self.log_boxes[i] for i, a in enumerate(self.ehvis)]
            if self.prior is not None:  # (π(x) / π(mode))^β on the front's term: 1 at the prior's mode
                logs[0] = logs[0] + self.prior_exponent * (self.prior(X).sum(-1) - self.prior.log_mode)
            return torch.logsumexp(torch.stack(logs), dim=0)

    return _RelativeGain


def _RelativeGain(ehvis: list, boxes: list[float], prior=None,  # noqa: N802 - built lazily (torch import)
                  prior_exponent: float = 1.0):
    return _relative_gain_module()(ehvis, boxes, prior, prior_exponent)


def _feature_prior_module():
    import torch

    class _FeaturePrior(torch.nn.Module):
        """log π(x) = Σ_i x_i log p_i + (1 - x_i) log(1 - p_i) over the feature mask."""

        def __init__(self, inclusion: np.ndarray, n_features: int) -> None:
            super().__init__()
            p = torch.tensor(np.clip(inclusion, 1e-3, 1 - 1e-3), dtype=torch.double)
            self.register_buffer("log_p", p.log())
            self.register_buffer("log_q", (1 - p).log())
            #: log π of the most probable mask: each feature in or out, whichever is likelier.
            self.register_buffer("log_mode", torch.maximum(self.log_p, self.log_q).sum())
            self.n = n_features

        def forward(self, x):
            mask = x[..., :self.n]
            return (mask * self.log_p + (1 - mask) * self.log_q).sum(-1)

    return _FeaturePrior


def FeaturePrior(inclusion: np.ndarray, n_features: int):  # noqa: N802 - a class built lazily (torch import)
    return _feature_prior_module()(inclusion, n_features)


def initial_design(space: SearchSpace, mi_rank: Sequence[str], rfe_rank: Sequence[str], seed: int,
                   ks: Sequence[int] = (5, 10, 20), measured: Sequence[tuple[Config, dict]] = ()) -> list[Config]:
    """MI-top-k and RFE-top-k selections, each at a different depth and model family, and two footholds
    at the ends of the front:

    * the cheap end: the MI-top-k (smallest k) of the features that need no per-packet events, when the
      space mixes both kinds, at the geometric middle of the depths. Such scripts cost a fraction of any
      that handles packets (see ``_gp_inputs``), so the front's cheap end is theirs; a search starting
      from top-k selections, nearly all per-packet, may never try one.
    * the high-F1 end, in a space much larger than the largest k (on IoT Sentinel F1 within 0.01 of
      ALL@50 takes about 60 features, out of reach of a search that starts from 20 and pays for every
      feature it adds): every feature at the middle depth; or, when the study ``measured`` every
      feature already (its ALL baselines), the RFE ranking's top half at the deepest depth measured,
      the first step of a bisection along the ranking.
    """
    rng = _rng(seed, 2**31)
    designs = []
    picks = [(rank, k) for k in ks for rank in (mi_rank, rfe_rank)]
    for i, (rank, k) in enumerate(picks):
        feats = [f for f in rank if f in space.features][:k]
        depth = log_uniform_depth(rng, space.max_depth)
        family = space.families[i % len(space.families)]
        # With a deadline dimension, every other design has one (log-uniform): the baselines have none.
        deadline = space.deadline(rng.uniform(*space.bounds()[:, space.deadline_dim])) \
            if space.deadlines and i % 2 else None
        designs.append(space.config(feats, depth, space.model or _default_model(family), deadline))
    middle = max(round(np.sqrt(space.max_depth)), 1)
    family = next((f for f in space.families if f != "dt"), space.families[0])
    per_packet = dict(zip(space.features, space.per_packet))
    cheap = [f for f in mi_rank if f in per_packet and not per_packet[f]][:min(ks, default=1)]
    if cheap and len(cheap) < space.n_features and any(per_packet.values()):
        designs.insert(min(2, len(designs)), space.config(cheap, middle, space.model or _default_model(family)))
    if space.n_features > 2 * max(ks, default=0):
        model = space.model or _default_model(family)
        if any(len(c.features) == space.n_features for c, _ in measured):
            top_half = [f for f in rfe_rank if f in space.features][:space.n_features // 2]
            high = space.config(top_half, max(c.depth for c, _ in measured), model)
        else:
            high = space.config(list(space.features), middle, model)
        designs.insert(min(2, len(designs)), high)
    return designs


def _widened(bounds: np.ndarray) -> np.ndarray:
    """GP input bounds in which a dimension with one value (one model family, a maximum depth of 1)
    does not normalise to 0/0."""
    return np.array([bounds[0], np.maximum(bounds[1], bounds[0] + 1.0)])


def _moved_deadline(space: SearchSpace, deadline: float | None, rng: np.random.Generator) -> float | None:
    """A deadline a factor of 2 or 4 away (from none: half or a quarter of the span), or none."""
    if deadline is not None and rng.random() < 0.25:
        return None
    start = deadline if deadline is not None else space.deadlines[1]
    factor = float(rng.choice([2.0, 4.0]))
    moved = start * factor if deadline is not None and rng.random() < 0.5 else start / factor
    return space.deadline(math.log(moved))


def _default_model(family: str) -> ModelSpec:
    return ModelSpec(family, 50 if family != "dt" else 1, 16)


@dataclass(frozen=True)
class SearchContext:
    """What a study knows when its search starts; each sampler takes from it what it uses.

    ``mi`` and ``rfe_rank`` are the full-depth rankings of the space's features (in space order)."""
    space: SearchSpace
    objectives: tuple[str, ...]
    seed: int
    mi: Sequence[float]
    rfe_rank: Sequence[int]
    use_prior: bool = True
    n_initial: int = 10
    #: ALL@max's F1, the accuracy a user wants matched at lower cost; None without baselines.
    reference_f1: float | None = None
    #: (config, objective values) the study measured before its search (the baselines), in the space.
    measured: tuple = ()

    @property
    def mi_ranking(self) -> list[str]:
        return top_k(list(self.space.features), self.mi, self.space.n_features)

    @property
    def rfe_ranking(self) -> list[str]:
        return top_k(list(self.space.features), self.rfe_rank, self.space.n_features, higher_is_better=False)


def _random_from_context(ctx: SearchContext, **params) -> RandomSampler:
    return RandomSampler(ctx.space, ctx.seed, **params)


def _tpe_from_context(ctx: SearchContext, **params) -> TPESampler:
    return TPESampler(ctx.space, ctx.objectives, ctx.seed, **params)


def _botorch_from_context(ctx: SearchContext, **params) -> BoTorchSampler:
    """cato's search policy: the MI prior (unless turned off), the ranked initial design, the rankings as
    moves, and what the study measured before the search."""
    return BoTorchSampler(
        ctx.space, ctx.objectives, ctx.seed,
        prior=inclusion_prior(np.asarray(ctx.mi, dtype=float)) if ctx.use_prior else None,
        initial=initial_design(ctx.space, ctx.mi_ranking, ctx.rfe_ranking, ctx.seed, measured=ctx.measured),
        n_initial=ctx.n_initial,
        known=list(ctx.measured), rankings=[ctx.mi_ranking, ctx.rfe_ranking],
        target_f1=ctx.reference_f1 - F1_TOLERANCE if ctx.reference_f1 is not None else None, **params)


_FACTORIES = {"botorch": (BoTorchSampler, _botorch_from_context), "tpe": (TPESampler, _tpe_from_context),
              "random": (RandomSampler, _random_from_context)}
SAMPLERS = tuple(_FACTORIES)
#: Fields a sampler takes from the context, not from its tuning parameters.
_CONTEXT_FIELDS = {"space", "objectives", "seed", "prior", "initial", "n_initial", "name", "known", "rankings",
                   "target_f1"}


def sampler_parameters(name: str) -> list[str]:
    """The tuning parameters ``make_sampler`` accepts for sampler ``name``."""
    cls = _FACTORIES[name][0]
    return [f.name for f in fields(cls) if f.init and not f.name.startswith("_") and f.name not in _CONTEXT_FIELDS]


def make_sampler(name: str, context: SearchContext, **params) -> Sampler:
    """The sampler ``name`` for a study's ``context``, with tuning ``params`` (checked: a misspelt name is
    an error, not a silently ignored setting)."""
    if name not in _FACTORIES:
        raise SamplerError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")
    allowed = sampler_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise SamplerError(f"sampler {name!r} has no parameter {', '.join(unknown)} "
                           f"(it takes: {', '.join(allowed) or 'none'})")
    return _FACTORIES[name][1](context, **params)

"""The acquisition: what a candidate is worth to the study, and the candidate worth most.

Contract: :func:`maximise` takes a :class:`~cato.search.samplers.policy.BoTorchSampler`'s settings,
everything measured (``history``: baselines and search trials), the BO iteration and the running
trials, and returns the encoded candidate that maximises the acquisition, the gain the GP expects of
it, a function that gives the gain a measured point would bring (in the same units), and the GP warm
start to keep for the next call. It reads the settings and never writes them (the caller keeps the
warm start); it decides nothing about which mechanism proposes the trial (see ``policy``).

* :func:`gp_inputs` / :func:`gp_bounds`: the GP's view of a configuration (the local optimizer's).
* :func:`warm_started_gp`: one batched GP over the objectives, refitted cold every few trials.
* :class:`RelativeGain` over :func:`reference_points`: qLogNEHVI on a weighted hypervolume (the front's,
  and the accurate end's counted again), as a fraction of the front's box; the MI prior
  (:class:`FeaturePrior`) weights the front's term.
* :func:`optimize_local` (the pool of ``candidates``, then hill-climbing) or
  :func:`optimize_alternating` (BoTorch's mixed optimizer).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from cato.search.pareto import dominated_hypervolume, pareto_mask, to_max_space
from cato.search.samplers import candidates
from cato.search.samplers.base import History, trial_rng
from cato.search.space import Config, SearchSpace

if TYPE_CHECKING:
    from cato.search.samplers.policy import BoTorchSampler

#: The ways :func:`maximise` can maximise the acquisition (``BoTorchSampler.acq_optimizer``).
ACQ_OPTIMIZERS = ("local", "alternating")

#: The least side of a hypervolume box (a reference at the best seen would make it empty).
HV_FLOOR = 1e-9

#: The GP warm start: the keys of the trials of the last cold fit and its hyperparameters.
WarmStart = tuple


def gp_inputs(space: SearchSpace, weights: np.ndarray, configs: Sequence[Config]) -> np.ndarray:
    """The encoding plus three summaries of the mask: how many features, their summed prior, and
    whether any needs per-packet events (the catalog's declaration).

    F1 and cost both follow the size and informativeness of a selection far more than any one of
    ~100 mask bits; with tens of trials a GP learns that from these inputs, not from the bits. Cost
    jumps when a script starts handling packets, whichever per-packet feature it is (on IoT Sentinel
    Zeek's script profiler charges a script without one about 30 µs per connection, any with one
    100 or more): one input says so."""
    x = np.array([space.encode(c) for c in configs])
    x[:, space.depth_dim] = np.log(x[:, space.depth_dim])
    mask = x[:, :space.n_features]
    return np.hstack([x, mask.sum(1, keepdims=True), (mask @ weights)[:, None],
                      (mask @ space.per_packet > 0)[:, None]])


def gp_bounds(space: SearchSpace, weights: np.ndarray) -> np.ndarray:
    """The bounds of :func:`gp_inputs`."""
    lo, hi = space.bounds()
    lo[space.depth_dim], hi[space.depth_dim] = 0.0, np.log(space.max_depth)
    return widened(np.array([[*lo, 0.0, 0.0, 0.0], [*hi, space.n_features, weights.sum(), 1.0]]))


def widened(bounds: np.ndarray) -> np.ndarray:
    """GP input bounds in which a dimension with one value (one model family, a maximum depth of 1)
    does not normalise to 0/0."""
    return np.array([bounds[0], np.maximum(bounds[1], bounds[0] + 1.0)])


def maximise(s: BoTorchSampler, history: History, iteration: int, pending: Sequence[Config] = (),
             warm: WarmStart = (None, None)) -> tuple[np.ndarray, str, float, Callable[[dict], float], WarmStart]:
    """The candidate that maximises the acquisition, where it came from (a pool mechanism, "+ hill
    climb" when single moves improved it; the optimizer's name with ``alternating``), the hypervolume
    improvement it is expected to bring, the function that gives the improvement a measured point would
    bring, and the warm start for the next call. ``pending``: configurations being evaluated, encoded as
    the training inputs are (``X_pending``, m x d)."""
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.sampling import SobolQMCNormalSampler

    from cato.search._fused_kernel import prepare_botorch_kernel
    prepare_botorch_kernel()  # no JIT compile of BoTorch's C++ kernel, no wait on its lock
    torch.manual_seed(s.seed * 7919 + iteration)
    # Small matrices: threads only contend (3x slower with 2 on this 2-core machine).
    torch.set_num_threads(1)
    space = s.space
    local = s.acq_optimizer != "alternating"
    weights = candidates.feature_weights(space, s.prior)

    def encoded(configs: Sequence[Config]) -> np.ndarray:
        return gp_inputs(space, weights, configs) if local else np.array([space.encode(c) for c in configs])

    bounds = torch.tensor(space.bounds(), dtype=torch.double)
    input_bounds = torch.tensor(gp_bounds(space, weights) if local else widened(space.bounds()),
                                dtype=torch.double)
    configs = [c for c, _ in history]
    train_x = torch.tensor(encoded(configs), dtype=torch.double)
    train_y = torch.tensor(to_max_space([v for _, v in history], s.objectives), dtype=torch.double)
    model, warm = warm_started_gp(train_x, train_y, input_bounds, [c.key() for c in configs], warm,
                                  s.seed, iteration, s.gp_refit_every, s.warm_maxiter,
                                  space.n_features if s.summary_lengthscales else None)
    ref_points, weights_hv, box = reference_points(train_y, s.objectives, s.ref_f1_fraction, s.target_f1,
                                                   s.target_weight)
    x_pending = None  # configurations being evaluated, encoded as the training inputs (m x d)
    if pending:
        x_pending = torch.tensor(encoded(pending), dtype=torch.double)
    # What a trial improves on: every measured point, or (``front_with_baselines`` False) the search's
    # own, the baselines staying in the GP's data.
    baselines = set() if s.front_with_baselines else {c.key() for c, _ in s.known}
    own = torch.tensor([c.key() not in baselines for c in configs])
    ehvis = [qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=r, X_baseline=train_x[own], prune_baseline=True, X_pending=x_pending,
        sampler=SobolQMCNormalSampler(torch.Size([s.mc_samples]))) for r in ref_points]
    # The MI prior (as in πBO) is a belief about small informative selections: it guides the front,
    # not the climb to every feature's accuracy, which needs the features it ranks low.
    prior = FeaturePrior(s.prior, space.n_features) if s.prior is not None else None
    acqf = gain = RelativeGain(ehvis, weights_hv, box, prior, s.prior_strength / iteration)
    if not local:
        x = optimize_alternating(acqf, space, bounds, s.num_restarts, s.raw_samples, s.maxiter_alternating)
        origin = "mixed alternating optimizer"
    else:
        rng = trial_rng(s.seed, 10_000 + iteration)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        pool = candidates.pool(space, history, s.objectives, rng, s.rankings if s.ranking_moves else [],
                               s.prior, s.pool_per_anchor, s.depth_lines)
        x, origin = optimize_local(acqf, space, [made for k, made in pool.items() if k not in seen], seen,
                                   encoded, s.score_batch, s.hill_climb_starts, s.hill_climb_steps)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = encoded([space.decode(x)]) if local else x[None, :]
        expected = float(gain(torch.tensor(inputs, dtype=torch.double).unsqueeze(1)).exp())
    return x, origin, expected, hypervolume_gain(train_y[own].numpy(), s.objectives, ref_points, weights_hv,
                                                 box), warm



def warm_started_gp(train_x, train_y, input_bounds, keys: Sequence[str], warm: WarmStart, seed: int,
                    iteration: int, refit_every: int, warm_maxiter: int, n_mask: int | None = None):
    """One batched GP over all objectives, and the warm start to keep.

    ``n_mask``: the inputs are the feature mask (its first ``n_mask`` columns) and a few summaries
    of the configuration; their length-scales get priors of their own (:func:`split_scale_kernel`).
    None: BoTorch's default kernel, one prior scaled to every input.

    Warm start: a cold fit of ~100 length-scales takes seconds (hundreds of L-BFGS steps); started
    from the hyperparameters of a fit on fewer trials it converges in tens. The start is a cold fit on
    the first multiple of ``refit_every`` trials, a function of the history alone, so a resumed study
    proposes what an uninterrupted one would."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    # The model family enters as an ordinal input: a categorical kernel (MixedSingleTaskGP) fits 8x
    # slower here and three families need no more.
    def fit(n: int, start: dict | None):
        kernel = {} if n_mask is None else {
            "covar_module": split_scale_kernel(train_x.shape[-1], n_mask, train_y.shape[-1])}
        model = SingleTaskGP(train_x[:n], train_y[:n],
                             input_transform=Normalize(train_x.shape[-1], bounds=input_bounds),
                             outcome_transform=Standardize(train_y.shape[-1]), **kernel)
        kwargs = {}
        if start is not None:
            model.load_state_dict(start, strict=False)
            kwargs["optimizer_kwargs"] = {"options": {"maxiter": warm_maxiter}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), **kwargs)
        return model

    n = len(keys)
    checkpoint = n - n % refit_every
    if checkpoint < 2:
        return fit(n, None), warm
    key = tuple(keys[:checkpoint])
    cold = None
    if warm[0] != key:
        torch.manual_seed(seed * 7919 + checkpoint)
        cold = fit(checkpoint, None)
        warm = (key, {k: v for k, v in cold.state_dict().items()
                      if not k.startswith(("input_transform", "outcome_transform"))})
        torch.manual_seed(seed * 7919 + iteration)
    return (cold if cold is not None and checkpoint == n else fit(n, warm[1])), warm


def split_scale_kernel(n_inputs: int, n_mask: int, n_outputs: int):
    """BoTorch's RBF kernel with its dimension-scaled length-scale prior (Hvarfner et al., 2024:
    log-normal, location sqrt(2) + log(d) / 2), the dimension counted apart for the mask's ``n_mask``
    bits (every input) and for the inputs after them (their own number).

    The prior's scaling says that in d dimensions the function varies along few of them; with ~100 mask
    bits it holds every length-scale long, the summaries' (size, summed prior, per-packet, depth,
    model) too, and the GP stays nearly flat in them: on IoT Sentinel it predicted a 1-feature
    selection at F1 0.58 (measured 0.12), and after two such measurements 0.55 for a third. The
    summaries are the few inputs that carry most of the signal, so they get the prior of a space that
    small, and the mask's bits keep the high-dimensional one."""
    from math import log, sqrt

    import torch
    from gpytorch.constraints import GreaterThan
    from gpytorch.kernels import RBFKernel
    from gpytorch.priors import LogNormalPrior

    batch = torch.Size([n_outputs]) if n_outputs > 1 else torch.Size()  # as SingleTaskGP batches outputs
    loc = torch.full((n_inputs,), sqrt(2) + 0.5 * log(n_inputs), dtype=torch.double)
    loc[n_mask:] = sqrt(2) + 0.5 * log(max(n_inputs - n_mask, 1))
    shape = (*batch, 1, n_inputs)
    prior = LogNormalPrior(loc.expand(shape).clone(), torch.full(shape, sqrt(3), dtype=torch.double))
    kernel = RBFKernel(ard_num_dims=n_inputs, batch_shape=batch, lengthscale_prior=prior,
                       lengthscale_constraint=GreaterThan(2.5e-2, transform=None))  # BoTorch's floor
    kernel.lengthscale = prior.mode
    return kernel


def reference_points(train_y, objectives: tuple[str, ...], ref_f1_fraction: float, target_f1: float | None,
                     target_weight: float) -> tuple[list, list[float], float]:
    """The reference points of a weighted hypervolume, each one's weight, and the front's box.

    The front: the worst cost seen (less a tenth of the range), and on F1 a fraction of the best F1
    (configurations too weak to use earn nothing however cheap they are). The accurate end, "as
    accurate as every feature, for less": the same cost, at ``target_f1``, weighted ``target_weight``,
    so the area at or above the target counts 1 + ``target_weight`` times (a weighted hypervolume
    indicator, Zitzler, Brockhoff and Thiele 2007: Pareto-compliant, with a weight fixed in advance). No
    target (no baselines) or a weight of 0: the front's alone. Every gain is measured as a fraction of
    the front's box (from its reference to the best seen on every objective), so that the GP's
    expectation and the depth sweep's promise are in one unit."""
    span = train_y.max(0).values - train_y.min(0).values
    worst = train_y.min(0).values - 0.1 * span.clamp_min(1e-6)
    f1 = objectives.index("f1")
    levels = [(ref_f1_fraction * float(train_y[:, f1].max()), 1.0)]
    if target_f1 is not None and target_weight > 0:
        levels.append((target_f1, target_weight))
    ref_points = []
    for level, _ in levels:
        ref_point = worst.clone()
        ref_point[f1] = level
        ref_points.append(ref_point)
    box = float(np.prod(np.maximum(train_y.numpy().max(0) - ref_points[0].numpy(), HV_FLOOR)))
    return ref_points, [w for _, w in levels], box


def hypervolume_gain(y: np.ndarray, objectives: tuple[str, ...], ref_points: list, weights: list[float],
                     box: float) -> Callable[[dict], float]:
    """The gain a measured point would bring, in :class:`RelativeGain`'s units (the weighted hypervolume
    improvement as a fraction of the front's box), over the measured points ``y`` (max space)."""
    refs = [r.numpy() for r in ref_points]
    front = y[pareto_mask(y)]  # only the front bounds what a new point adds
    base = [dominated_hypervolume(front, r) for r in refs]

    def value_of(values: dict) -> float:
        point = to_max_space([values], objectives)[0]
        if np.any(np.all(front >= point, axis=1)):  # dominated (or equalled): adds nothing
            return 0.0
        grown = np.vstack([front, point])
        return sum(w * (dominated_hypervolume(grown, r) - b) for r, w, b in zip(refs, weights, base)) / box

    return value_of


def measured_gain(s: BoTorchSampler, history: History) -> Callable[[dict], float]:
    """``hypervolume_gain`` over ``history`` with the sampler's reference points, without a GP."""
    import torch
    train_y = torch.tensor(to_max_space([v for _, v in history], s.objectives), dtype=torch.double)
    ref_points, weights, box = reference_points(train_y, s.objectives, s.ref_f1_fraction, s.target_f1,
                                                s.target_weight)
    return hypervolume_gain(train_y.numpy(), s.objectives, ref_points, weights, box)


#: Gauss-Hermite nodes and weights (probabilists'), for expectations over a normal F1.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(16)


def expected_gain(value_of: Callable[[dict], float], values: dict, f1_sd: float) -> float:
    """E[``value_of``(``values``)] when F1 is normal around ``values["f1"]`` with ``f1_sd`` (and within
    [0, 1]), by Gauss-Hermite quadrature: the gain is piecewise linear in F1, zero below the front."""
    f1s = np.clip(values["f1"] + f1_sd * _NODES, 0.0, 1.0)
    return float(sum(w * value_of({**values, "f1": float(f)}) for f, w in zip(f1s, _WEIGHTS))
                 / _WEIGHTS.sum())


def _relative_gain_module():
    import torch
    from botorch.acquisition import AcquisitionFunction

    class _RelativeGain(AcquisitionFunction):
        """log (Σ_k w_k E[HVI_k(x)]) / B: the expected gain of a weighted hypervolume (the front's, w = 1,
        and the accurate end's above the target F1) as a fraction of the front's box B, with no
        iteration counts and no schedule. The MI prior, when given, weights the front's term alone by
        (π(x) / π(mode))^β as in πBO: the prior is a belief about small informative selections, and
        matching every feature's accuracy takes the features it ranks low."""

        def __init__(self, ehvis: list, weights: list[float], box: float, prior=None,
                     prior_exponent: float = 1.0) -> None:
            super().__init__(model=ehvis[0].model)
            self.ehvis = torch.nn.ModuleList(ehvis)
            self.prior, self.prior_exponent = prior, prior_exponent
            self.register_buffer("log_weights", torch.tensor(np.log(weights), dtype=torch.double))
            self.log_box = float(np.log(max(box, HV_FLOOR)))

        def forward(self, X):
            logs = [a(X) + self.log_weights[i] for i, a in enumerate(self.ehvis)]
            if self.prior is not None:  # (π(x) / π(mode))^β on the front's term: 1 at the prior's mode
                logs[0] = logs[0] + self.prior_exponent * (self.prior(X).sum(-1) - self.prior.log_mode)
            return torch.logsumexp(torch.stack(logs), dim=0) - self.log_box

    return _RelativeGain


def RelativeGain(ehvis: list, weights: list[float], box: float, prior=None,  # noqa: N802 - built lazily (torch)
                 prior_exponent: float = 1.0):
    return _relative_gain_module()(ehvis, weights, box, prior, prior_exponent)


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


def optimize_alternating(acqf, space: SearchSpace, bounds, num_restarts: int, raw_samples: int,
                         maxiter_alternating: int) -> np.ndarray:
    """BoTorch's mixed alternating optimizer over the whole space."""
    from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
    discrete = {i: [0.0, 1.0] for i in range(space.n_features)}
    lo, hi = space.bounds()
    for d in (space.depth_dim, *space.model_dims[1:]):
        discrete[d] = [float(v) for v in range(int(lo[d]), int(hi[d]) + 1)]
    cats = {} if space.model else {space.family_dim: [float(i) for i in range(len(space.families))]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cand, _ = optimize_acqf_mixed_alternating(
            acqf, bounds=bounds, discrete_dims=discrete, cat_dims=cats or None, q=1,
            num_restarts=num_restarts, raw_samples=raw_samples,
            options={"maxiter_alternating": maxiter_alternating})
    return cand[0].detach().numpy()


def optimize_local(acqf, space: SearchSpace, pool: list[tuple[Config, str]], seen: set[str],
                   inputs: Callable[[Sequence[Config]], np.ndarray], score_batch: int, starts: int,
                   steps: int) -> tuple[np.ndarray, str]:
    """Acquisition maximised over ``pool`` (unmeasured candidates with where each came from, see
    ``candidates.pool``), then hill-climbed by single moves from the ``starts`` best, at most ``steps``
    moves each. Returns the best and its origin (" + hill climb" when the moves improved it).

    With ~100 binary dimensions and tens of trials, gradient restarts over the whole box drift to its
    corners (one feature, 2-level trees, 10 trees); a pool around what is known to be good stays where
    the GP has data, and costs about a second."""
    import torch

    def score(configs: list[Config]) -> np.ndarray:
        x = torch.tensor(inputs(configs), dtype=torch.double).unsqueeze(1)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.cat([acqf(b) for b in x.split(score_batch)]).numpy()

    found = [c for c, _ in pool]
    origins = [origin for _, origin in pool]
    values = score(found)
    for i in np.argsort(-values)[:starts]:
        current, current_value, climbed = found[i], float(values[i]), False
        for _ in range(steps):
            moves = [m for m in candidates.single_moves(space, current) if m.key() not in seen]
            if not moves:
                break
            mv = score(moves)
            if mv.max() <= current_value:
                break
            current, current_value, climbed = moves[int(np.argmax(mv))], float(mv.max()), True
        found.append(current)
        origins.append(origins[i] + (" + hill climb" if climbed else ""))
        values = np.append(values, current_value)
    best = int(np.argmax(values))
    return space.encode(found[best]), origins[best]

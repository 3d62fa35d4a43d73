"""The proposal policy of cato's search: :class:`BoTorchSampler`, its settings, and which mechanism
proposes each trial.

Contract: ``ask(history, number, pending)`` returns one configuration, never a search trial finished
or running (nor, from the first BO iteration on, a baseline), and ``{"source": label}`` naming the
mechanism that made it
(:data:`LABELS`), with ``bo_overhead_s`` once the BO phase has begun. The precedence of the mechanisms
is written in :meth:`BoTorchSampler.ask` and nowhere else in the code (docs/search.md, "Which mechanism
proposes a trial", repeats it). The mechanisms themselves live in ``design`` (the initial design),
``candidates`` (what the acquisition prices, and the depth sweep) and ``acquisition`` (the GP and the
acquisition's maximiser).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from cato.search.objectives import F1_TOLERANCE
from cato.search.samplers import acquisition, candidates, design
from cato.search.samplers.base import History, SamplerError, labelled, trial_rng, unseen
from cato.search.space import Config, SearchSpace

ACQ_OPTIMIZERS = acquisition.ACQ_OPTIMIZERS

#: A proposal's ``source``, one per mechanism, in order of precedence (see :meth:`BoTorchSampler.ask`).
#: ``ACQUISITION`` gains " + MI prior" when the prior weights it, and any label but ``ACCURATE_END`` and
#: ``DEPTH_SWEEP`` gains :data:`~cato.search.samplers.base.MOVED` when its proposal had been measured and was moved.
INITIAL_DESIGN, PRIOR_DRAW, RANDOM_DRAW, ACCURATE_END, DEPTH_SWEEP, ACQUISITION = (
    "initial design", "prior draw", "random draw", "accurate-end bisection", "depth sweep", "qLogNEHVI")
LABELS = (INITIAL_DESIGN, PRIOR_DRAW, RANDOM_DRAW, ACCURATE_END, DEPTH_SWEEP, ACQUISITION)


@dataclass
class BoTorchSampler:
    """cato's search: an initial design, then multi-objective Bayesian optimization (see :meth:`ask`).

    Settings as ``make_sampler("botorch", context, **settings)`` takes them; the study's context sets
    ``prior``, ``initial``, ``n_initial``, ``known``, ``rankings`` and ``target_f1``."""
    #: The space searched.
    space: SearchSpace
    #: The objectives, ``f1`` among them, as the study's ``objectives``.
    objectives: tuple[str, ...]
    #: Seeds every random stream: trial ``n`` draws from ``(seed, n)``, torch from ``seed * 7919 + t`` at BO
    #: iteration t. Default 0 (``--seed``).
    seed: int = 0
    #: Per-feature inclusion probability from mutual information (``inclusion_prior``); None turns the
    #: prior off: no πBO weight, uniform draws. Default None; the study's context sets it unless ``--no-prior``.
    prior: np.ndarray | None = None
    #: Configurations tried first, in order (``initial_design``: MI-top-k and RFE-top-k selections and the
    #: footholds at both ends of the front); the initial phase continues with prior draws once they run
    #: out. Default: none.
    initial: list[Config] = field(default_factory=list)
    #: What the study measured before the search (its baselines): from the first BO iteration on, in the
    #: model's data and the moves' anchors, and never proposed. Default: none.
    known: list[tuple[Config, dict]] = field(default_factory=list)
    #: Search trials in the initial phase (``initial`` then prior draws) before BO begins; the baselines
    #: do not count. Default 10 (``--initial``).
    n_initial: int = 10
    #: πBO weight β: the front's term is multiplied by (π(x) / π(mode))^(β / t) at BO iteration t.
    #: Default 2.0; 0: no πBO weight (the prior still shapes the draws, the pool and the GP's inputs).
    prior_strength: float = 2.0
    #: ``acq_optimizer="alternating"`` only: restarts of BoTorch's mixed optimizer. Default 2.
    num_restarts: int = 2
    #: ``acq_optimizer="alternating"`` only: raw samples its restarts are picked from. Default 128.
    raw_samples: int = 128
    #: ``acq_optimizer="alternating"`` only: its alternations between discrete and continuous steps. Default 4.
    maxiter_alternating: int = 4
    #: Quasi-Monte-Carlo samples of the GP posterior in qLogNEHVI (each hypervolume). Default 32.
    mc_samples: int = 32
    #: "local" (pool around the front, then hill-climbing) or "alternating" (BoTorch's mixed optimizer).
    #: Default "local": "alternating" drifted to the box's corners with ~100 binary dimensions.
    acq_optimizer: str = "local"
    #: ``acq_optimizer="local"``: random neighbours (1-3 moves) drawn around each front and each of the
    #: three most accurate configurations (0: none). Default 96.
    pool_per_anchor: int = 96
    #: ``acq_optimizer="local"``: the pool's best candidates hill-climbing starts from. Default 4.
    hill_climb_starts: int = 4
    #: ``acq_optimizer="local"``: single moves each climb takes at most (0: the pool's best). Default 3.
    hill_climb_steps: int = 3
    #: GP hyperparameters are fitted cold every this many trials and warm-started in between. Default 5.
    gp_refit_every: int = 5
    #: L-BFGS iterations of a warm-started GP fit. Default 60.
    warm_maxiter: int = 60
    #: The GP's length-scale prior scaled apart for the mask's bits (to every input) and the other inputs
    #: (depth, model, deadline, the mask's summaries: to their own number), ``acquisition.split_scale_kernel``;
    #: False: BoTorch's, one prior scaled to every input. Default True.
    summary_lengthscales: bool = True
    #: Candidates scored per acquisition call (1024 measured slower than 256). Default 256.
    score_batch: int = 256
    #: The acquisition's reference F1, as a fraction of the best F1 seen: configurations below it
    #: earn no hypervolume however cheap they are. In (0, 1]; default 0.5.
    ref_f1_fraction: float = 0.5
    #: The F1 a user wants matched at lower cost: ALL@max's less the report's tolerance, set by the study
    #: from its baselines; None (no baselines, the default): the front's hypervolume alone.
    target_f1: float | None = None
    #: The weighted hypervolume's extra weight at or above ``target_f1``: that area counts 1 +
    #: ``target_weight`` times (``acquisition.reference_points``); 0: the front's hypervolume alone.
    #: Default 1.0.
    target_weight: float = 1.0
    #: Feature rankings the study computed (MI, RFE); their top-k selections are candidates every
    #: iteration (see ``candidates.ranking_moves``). Default: none.
    rankings: list[list[str]] = field(default_factory=list)
    #: Mechanism 3, the footholds' bisection carried on while a baseline ALL lies above every search
    #: trial (``design.accurate_end_step``). Default True.
    accurate_end_bisection: bool = True
    #: Mechanism 4, the depth sweep (``candidates.depth_sweep``). Default True.
    depth_sweep: bool = True
    #: ``acq_optimizer="local"``: each front selection at every depth (and deadline) in the pool
    #: (``candidates.depth_lines``). Default True.
    depth_lines: bool = True
    #: ``acq_optimizer="local"``: the rankings' top-k selections at the anchors' settings in the pool
    #: (``candidates.ranking_moves``). Default True.
    ranking_moves: bool = True
    #: From the first BO iteration, the study's baselines (``known``) are in the GP's data and anchor the
    #: pool; False: they are only never proposed. Default True.
    model_baselines: bool = True
    #: The front a BO trial must improve on (qLogNEHVI's baseline, the sweep's gain) holds the study's
    #: baselines (``known``) too; False: only the search's own trials, so that matching a baseline's
    #: point earns what it covers (the baselines stay in the GP's data). Default True.
    front_with_baselines: bool = True
    #: The initial design's footholds (``design.initial_design``); the study's context reads it
    #: when it builds ``initial``. Default True.
    footholds: bool = True
    #: The F1 by which ALL at a depth must beat ALL at every shallower depth to get a high-F1 foothold
    #: of its own (``design.foothold_depths``), and within which a search trial matches that ALL
    #: (``design.accurate_end_step``). None: the study's own F1 noise (``objectives.f1_noise`` of its
    #: baselines' model seeds), or the report's 0.01 with one model seed. Default None.
    foothold_tolerance: float | None = None
    #: The sampler's name, as ``--sampler`` spells it.
    name: str = "botorch"
    #: The GP warm start (see ``acquisition.warm_started_gp``): a cache, rebuilt from the history when missing.
    _cold_fit: tuple = field(default=(None, None), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.acq_optimizer not in ACQ_OPTIMIZERS:
            raise SamplerError(f"acq_optimizer must be one of {', '.join(ACQ_OPTIMIZERS)}, "
                               f"not {self.acq_optimizer!r}")
        if self.foothold_tolerance is not None and self.foothold_tolerance < 0:
            raise SamplerError(f"foothold_tolerance must be at least 0, not {self.foothold_tolerance!r}")
        for name in ("ref_f1_fraction",):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SamplerError(f"{name} must be in (0, 1], not {getattr(self, name)!r}")
        if not isinstance(self.target_weight, (int, float)) or self.target_weight < 0:
            raise SamplerError(f"target_weight must be a number >= 0, not {self.target_weight!r}")
        for name in ("n_initial", "num_restarts", "raw_samples", "maxiter_alternating", "mc_samples",
                     "hill_climb_starts", "gp_refit_every", "warm_maxiter", "score_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SamplerError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        for name in ("pool_per_anchor", "hill_climb_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise SamplerError(f"{name} must be a non-negative integer, not {getattr(self, name)!r}")
        if self.prior is not None and len(self.prior) != self.space.n_features:
            raise SamplerError(f"the prior has {len(self.prior)} values for {self.space.n_features} features")

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        """The next configuration. Trials still running (``pending``) take their places in the initial
        design, enter qLogNEHVI as ``X_pending`` (the acquisition integrates over their outcomes), and are
        never proposed again.

        Which mechanism proposes the trial, the first that applies (its label in quotes):

        1. "initial design": while fewer than ``n_initial`` search trials have finished, the design's
           next place (finished plus running trials), as long as ``initial`` has one.
        2. "prior draw": in that phase once ``initial`` has run out, a draw from the MI prior with a
           log-uniform depth ("random draw" without a prior: each feature in with probability 1/2).
        3. "accurate-end bisection": from then on (BO iteration t = finished search trials -
           ``n_initial`` + 1), while a baseline ALL at a foothold depth lies above every search trial
           (none within ``foothold_tolerance`` of its F1 at no more cost), the next step of the high-F1
           foothold's bisection along a ranking at that depth, until a trial matches ALL or no step
           can for less (``design.accurate_end_step``; ``accurate_end_bisection``). No model is
           fitted for it.
        4. "depth sweep": otherwise the unmeasured depth of a packet-free front selection whose
           expected hypervolume gain, under the sweep's own model of F1 along depth
           (``candidates.depth_sweep``), is the highest, when it exceeds the gain the GP expects of the
           acquisition's best. Never with ``latency`` an objective (``depth_sweep``).
        5. "qLogNEHVI" (" + MI prior" with a prior): otherwise the acquisition's maximiser, its label
           followed by the candidate mechanism that made it, e.g. "qLogNEHVI + MI prior (ranking move +
           hill climb)" (``candidates``: neighbour, depth line or ranking move).

        Then one repair, not a mechanism: a proposal of 1, 2 or 5 equal to a search trial finished or
        running (in 5, to one of ``known`` too) is moved to an unseen neighbour by random feature flips,
        and its label says so (``base.MOVED``). The steps of 3 and 4 are never one of those.
        """
        rng = trial_rng(self.seed, number)
        seen = {c.key() for c, _ in history} | {c.key() for c in pending}
        n = len(history)
        if n < self.n_initial:
            k = n + len(pending)  # 1. the initial design's next place: the running trials hold theirs
            if k < len(self.initial):
                return labelled(self.initial[k], unseen(self.space, self.initial[k], seen, rng), INITIAL_DESIGN)
            drawn = self.space.sample(rng, self.prior, log_depth=True)  # 2.
            return labelled(drawn, unseen(self.space, drawn, seen, rng),
                            PRIOR_DRAW if self.prior is not None else RANDOM_DRAW)
        t0 = time.perf_counter()
        iteration = n - self.n_initial + 1
        # The model and the moves learn from everything measured, the study's baselines too.
        data = [*self.known, *history] if self.model_baselines else list(history)
        seen |= {c.key() for c, _ in self.known}
        if self.accurate_end_bisection:  # 3.
            step = design.accurate_end_step(self.space, self.objectives, self.rankings, self.known, history,
                                            self._tolerance(), seen)
            if step is not None:
                return step, {"source": ACCURATE_END, "bo_overhead_s": time.perf_counter() - t0}
        x, origin, expected, value_of = self._optimize(data, iteration, pending)
        # 4. A depth sweep goes first when one of its depths expects more hypervolume than the GP's best
        # candidate: F1 along depth is jagged, and the sweep models it where the GP cannot see.
        swept, sweep_gain = self._depth_sweep(data, value_of, seen) if self.depth_sweep else (None, 0.0)
        if swept is not None and sweep_gain > expected:
            return swept, {"source": DEPTH_SWEEP, "bo_overhead_s": time.perf_counter() - t0}
        proposed = self.space.decode(x)  # 5.
        config, info = labelled(proposed, unseen(self.space, proposed, seen, rng),
                                ACQUISITION + (" + MI prior" if self.prior is not None else "") + f" ({origin})")
        return config, {**info, "bo_overhead_s": time.perf_counter() - t0}

    def _tolerance(self) -> float:
        return self.foothold_tolerance if self.foothold_tolerance is not None else F1_TOLERANCE

    def _optimize(self, history: History, iteration: int, pending: Sequence[Config] = ()
                  ) -> tuple[np.ndarray, str, float, Callable[[dict], float]]:
        """``acquisition.maximise`` with this sampler's settings; it keeps the GP warm start."""
        x, origin, expected, value_of, self._cold_fit = acquisition.maximise(self, history, iteration, pending,
                                                                             self._cold_fit)
        return x, origin, expected, value_of

    def _depth_sweep(self, history: History, value_of: Callable[[dict], float] | None = None,
                     seen: set[str] = frozenset()) -> tuple[Config | None, float]:
        """The sweep's candidate of highest expected gain (``value_of``: the acquisition's units; by
        default the hypervolume gain over ``history``), and that gain; (None, 0.0) when there is none."""
        found = candidates.depth_sweep(self.space, self.objectives, history, seen)
        if not found:
            return None, 0.0
        if value_of is None:
            value_of = acquisition.measured_gain(self, history)
        # A packet-free script's cost barely moves with depth: each candidate takes its selection's
        # nearest measured depth's.
        measured: dict[tuple, list[tuple[int, dict]]] = {}
        for c, v in history:
            measured.setdefault((c.features, c.model), []).append((c.depth, v))
        best, best_gain = None, 0.0
        for config, mean, sd in found:
            cost = min(measured[(config.features, config.model)],
                       key=lambda dv, d=config.depth: abs(np.log(dv[0] / d)))[1]
            gain = acquisition.expected_gain(value_of, {**cost, "f1": mean}, sd)
            if gain > best_gain:
                best, best_gain = config, gain
        return best, best_gain

    # The mechanisms with this sampler's space and settings (the tests look at them one by one).
    def _weights(self) -> np.ndarray:
        return candidates.feature_weights(self.space, self.prior)

    def _gp_inputs(self, configs: Sequence[Config]) -> np.ndarray:
        return acquisition.gp_inputs(self.space, self._weights(), configs)

    def _gp_bounds(self) -> np.ndarray:
        return acquisition.gp_bounds(self.space, self._weights())

    def _depth_lines(self, front: Sequence[Config]) -> list[Config]:
        return candidates.depth_lines(self.space, front)

    def _ranking_moves(self, anchors: Sequence[Config]) -> list[Config]:
        return candidates.ranking_moves(self.space, self.rankings, anchors)

    def _neighbour(self, config: Config, rng: np.random.Generator, moves: int) -> Config:
        return candidates.neighbour(self.space, self._weights(), config, rng, moves)

    def _single_moves(self, config: Config) -> list[Config]:
        return candidates.single_moves(self.space, config)

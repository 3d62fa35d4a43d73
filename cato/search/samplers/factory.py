"""The samplers by name, made from what a study knows: :func:`make_sampler`, :class:`SearchContext`.

Contract: ``make_sampler(name, context, **params)`` builds sampler ``name`` from the study's context
and the tuning ``params`` the user set, and refuses an unknown sampler or parameter (a misspelt setting
is an error, never ignored). The context decides the settings a study derives (prior, initial design,
baselines, rankings, target F1); ``sampler_parameters`` lists the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from cato.search.importance import inclusion_prior, top_k
from cato.search.objectives import F1_TOLERANCE
from cato.search.samplers.base import Sampler, SamplerError
from cato.search.samplers.baselines import RandomSampler, TPESampler
from cato.search.samplers.design import initial_design
from cato.search.samplers.policy import BoTorchSampler
from cato.search.space import SearchSpace


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
    #: The F1 difference two of the study's measurements show by chance (``objectives.f1_noise`` of its
    #: baselines); None when they have one model seed each.
    f1_noise: float | None = None

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
    tolerance = _foothold_tolerance(ctx, params.pop("foothold_tolerance", None))
    return BoTorchSampler(
        ctx.space, ctx.objectives, ctx.seed,
        prior=inclusion_prior(np.asarray(ctx.mi, dtype=float)) if ctx.use_prior else None,
        initial=initial_design(ctx.space, ctx.mi_ranking, ctx.rfe_ranking, ctx.seed, measured=ctx.measured,
                               footholds=params.get("footholds", True), tolerance=tolerance),
        n_initial=ctx.n_initial, foothold_tolerance=tolerance,
        known=list(ctx.measured), rankings=[ctx.mi_ranking, ctx.rfe_ranking],
        target_f1=ctx.reference_f1 - F1_TOLERANCE if ctx.reference_f1 is not None else None, **params)


def _foothold_tolerance(ctx: SearchContext, setting: float | None) -> float:
    """The F1 below ALL@max at which the footholds count a depth as reached: the setting when given,
    else the study's own F1 noise, else (one model seed) the report's tolerance."""
    if setting is not None:
        return float(setting)
    return ctx.f1_noise if ctx.f1_noise is not None else F1_TOLERANCE


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


def parse_sampler_params(name: str, assignments: Sequence[str]) -> dict:
    """``NAME=VALUE`` strings as sampler ``name``'s tuning parameters: a value is read as JSON
    (``false``, ``0``, ``0.5``), else kept as a string; an unknown name or a malformed one is an error."""
    allowed = sampler_parameters(name)
    params = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise SamplerError(f"a sampler parameter is NAME=VALUE, not {assignment!r}")
        key = key.strip()
        if key not in allowed:
            raise SamplerError(f"sampler {name!r} has no parameter {key} (it takes: {', '.join(allowed) or 'none'})")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


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

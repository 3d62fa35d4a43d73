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

The modules, each with its contract in its docstring:

* ``base``: the protocol, each trial's random stream, the move to an unseen neighbour and its label.
* ``baselines``: :class:`RandomSampler` and :class:`TPESampler`.
* ``design``: the initial design (:func:`initial_design`).
* ``candidates``: candidate generation (the pool, single moves, the depth sweep).
* ``acquisition``: the GP, the acquisition (:class:`RelativeGain`, :class:`FeaturePrior`) and its
  maximisers.
* ``policy``: :class:`BoTorchSampler`: its settings, and the precedence of the mechanisms in ``ask``.
* ``factory``: :func:`make_sampler` from a study's :class:`SearchContext`.
"""

from cato.search.samplers.acquisition import FeaturePrior, RelativeGain
from cato.search.samplers.base import History, Sampler, SamplerError
from cato.search.samplers.baselines import RandomSampler, TPESampler
from cato.search.samplers.design import initial_design
from cato.search.samplers.factory import (SAMPLERS, SearchContext, make_sampler, parse_sampler_params,
                                          sampler_parameters)
from cato.search.samplers.policy import ACQ_OPTIMIZERS, LABELS, BoTorchSampler

_RelativeGain = RelativeGain  # its name before the split (the tests use it)

__all__ = ["ACQ_OPTIMIZERS", "LABELS", "SAMPLERS", "BoTorchSampler", "FeaturePrior", "History", "RandomSampler",
           "RelativeGain", "Sampler", "SamplerError", "SearchContext", "TPESampler", "initial_design",
           "make_sampler", "parse_sampler_params", "sampler_parameters"]

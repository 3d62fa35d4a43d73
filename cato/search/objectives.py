"""The objectives a study optimises, their directions and units: a leaf that anything may import.

* ``f1``: macro-F1 of out-of-fold predictions (K folds grouped by the corpus ``group``) on the
  cached multi-depth dataset, averaged over ``model_seeds`` fits of a seeded model; maximised.
* ``cpu``: steady-state Zeek CPU per connection (µs): the study's deployment's CPU per connection
  (bare Zeek, or Zeek's default scripts and local.zeek) less its start-ups, plus the marginal CPU of
  the configuration's generated script over the corpus, from ``cato profile`` (cached by script
  hash); minimised. The deployment's part is the same for every configuration of a study, so it
  moves no point on or off the front; the marginal part is kept in each trial's details.
* ``latency``: mean time-to-decision per connection (ms): the network time to the packet that
  completes its vector (``decided_after``), plus the script's measured CPU per connection, plus
  ONNX Runtime inference of the fitted model on one vector; minimised. Recorded for every trial
  (without inference when latency is not an objective).

``cato.search.evaluator`` measures them.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

OBJECTIVES = {"f1": "max", "cpu": "min", "latency": "min"}
#: Macro-F1 differences below this are cross-validation noise: "as accurate as" a reference (the
#: report's point near ALL@max) means within it.
F1_TOLERANCE = 0.01
UNITS = {"f1": "macro-F1", "cpu": "Zeek CPU µs/conn", "latency": "time-to-decision ms"}


def f1_noise(seed_scores: Iterable[Sequence[float]]) -> float | None:
    """The F1 difference two measurements of one study can show by chance: 2√2 standard errors of one
    measured F1 (a difference of two measurements, two standard deviations), the standard error pooled
    over ``seed_scores`` (each measurement's model seeds' F1s; its F1 is their mean). A study's
    measurements share its folds, so the seeds' spread is what separates two of them by chance. None
    when no measurement has two seeds (one model seed, or a family that takes none)."""
    variances = [statistics.variance(s) / len(s) for s in seed_scores if len(s) > 1]
    return 2 * math.sqrt(2) * math.sqrt(statistics.mean(variances)) if variances else None


class ObjectiveError(ValueError):
    pass


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(o.strip() for o in text.split(",") if o.strip())
    bad = [o for o in names if o not in OBJECTIVES]
    if bad or "f1" not in names or len(names) < 2 or len(set(names)) != len(names):
        raise ObjectiveError(f"objectives must be f1 plus one or both of cpu, latency (got {text!r})")
    return names

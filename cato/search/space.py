"""The search space: a feature mask × packet depth (× decision deadline) × model family and size.

A :class:`Config` is one point, hashable and JSON-round-trippable. :class:`SearchSpace` maps configs
to and from the numeric vectors the optimizers work on: one 0/1 dimension per feature, then depth,
model family (categorical index), trees and tree depth (integers), then, when the space has one, the
decision deadline (log seconds; the top of its range is "none").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from cato.features import FEATURES_BY_NAME
from cato.model import FAMILIES, N_TREES_RANGE, TREE_DEPTH_RANGE, ModelSpec


@dataclass(frozen=True)
class Config:
    features: tuple[str, ...]
    depth: int
    model: ModelSpec
    #: Decision deadline in seconds: the vector is made at ``depth`` packets or this long after the
    #: first packet, whichever comes first. None: no deadline.
    deadline: float | None = None

    def to_dict(self) -> dict:
        d = {"features": list(self.features), "depth": self.depth, "model": self.model.to_dict()}
        if self.deadline is not None:  # absent otherwise: keys (and caches) of earlier configs hold
            d["deadline"] = self.deadline
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        deadline = d.get("deadline")
        return cls(tuple(d["features"]), int(d["depth"]), ModelSpec(**d["model"]),
                   float(deadline) if deadline is not None else None)

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_features(self, features: Sequence[str]) -> "Config":
        return replace(self, features=tuple(features))

    def __str__(self) -> str:
        return f"{len(self.features)} features @{self.depth}{format_deadline(self.deadline)} {self.model}"


def format_deadline(deadline: float | None) -> str:
    """`` T=250ms``, or nothing without a deadline."""
    if deadline is None:
        return ""
    return f" T={deadline * 1e3:g}ms" if deadline < 1 else f" T={deadline:g}s"


def round_deadline(seconds: float) -> float:
    """Two significant digits (90 values a decade): trials a few percent apart in T share their
    vectors, scripts and caches."""
    return float(f"{seconds:.2g}")


@dataclass(frozen=True)
class SearchSpace:
    #: Features the search may pick, in catalog order.
    features: tuple[str, ...]
    max_depth: int
    families: tuple[str, ...] = FAMILIES
    #: Pin the model (no model dimensions): the space is then features × depth only.
    model: ModelSpec | None = None
    #: (shortest, longest) decision deadline searched, seconds; None: no deadline dimension. The longest
    #: is the corpus's span (no deadline beyond it changes a vector) and stands for "none".
    deadlines: tuple[float, float] | None = None

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def per_packet(self) -> np.ndarray:
        """1 for each feature whose script handles packets (the catalog's ``packet_header`` need), 0 for
        one read from Zeek's connection record: the two cost classes of generated scripts."""
        return np.array([1.0 if FEATURES_BY_NAME[f].per_packet else 0.0 for f in self.features])

    def handles_packets(self, features) -> bool:
        """Whether a script computing ``features`` handles packets (any of them per-packet)."""
        return any(FEATURES_BY_NAME[f].per_packet for f in features)

    @property
    def model_dims(self) -> tuple[int, ...]:
        return () if self.model else (self.family_dim, self.trees_dim, self.tree_depth_dim)

    @property
    def depth_dim(self) -> int:
        return self.n_features

    @property
    def family_dim(self) -> int:
        return self.n_features + 1

    @property
    def trees_dim(self) -> int:
        return self.n_features + 2

    @property
    def tree_depth_dim(self) -> int:
        return self.n_features + 3

    @property
    def deadline_dim(self) -> int | None:
        return self.n_features + 1 + len(self.model_dims) if self.deadlines else None

    @property
    def dims(self) -> int:
        return self.n_features + 1 + len(self.model_dims) + (1 if self.deadlines else 0)

    def bounds(self) -> np.ndarray:
        lo = [0.0] * self.n_features + [1]
        hi = [1.0] * self.n_features + [self.max_depth]
        if not self.model:
            lo += [0, N_TREES_RANGE[0], TREE_DEPTH_RANGE[0]]
            hi += [len(self.families) - 1, N_TREES_RANGE[1], TREE_DEPTH_RANGE[1]]
        if self.deadlines:
            lo.append(math.log(self.deadlines[0]))
            hi.append(math.log(self.deadlines[1]))
        return np.array([lo, hi], dtype=float)

    def deadline(self, log_seconds: float) -> float | None:
        """The deadline of a point on the deadline dimension: None at the top of the range."""
        lo, hi = self.deadlines
        if log_seconds >= math.log(hi) - 1e-9:
            return None
        return min(max(round_deadline(math.exp(log_seconds)), lo), hi)

    def config(self, features: Sequence[str], depth: int, model: ModelSpec,
               deadline: float | None = None) -> Config:
        """A config with its features in space order (duplicates and order of the input do not matter)."""
        chosen = set(features)
        unknown = chosen - set(self.features)
        if unknown:
            raise ValueError(f"features outside the search space: {', '.join(sorted(unknown))}")
        if not chosen:
            raise ValueError("a configuration needs at least one feature")
        depth = int(min(max(depth, 1), self.max_depth))
        if deadline is not None and self.deadlines:
            deadline = self.deadline(math.log(deadline))
        # At depth 1 every vector is made at the first packet: no deadline binds.
        return Config(tuple(f for f in self.features if f in chosen), depth, model,
                      deadline if self.deadlines and depth > 1 else None)

    def encode(self, config: Config) -> np.ndarray:
        x = np.zeros(self.dims)
        chosen = set(config.features)
        x[:self.n_features] = [1.0 if f in chosen else 0.0 for f in self.features]
        x[self.depth_dim] = config.depth
        if self.deadlines:
            x[self.deadline_dim] = math.log(min(config.deadline or self.deadlines[1], self.deadlines[1]))
        if self.model:
            return x
        x[self.family_dim] = self.families.index(config.model.family)
        # A decision tree has no trees parameter: encode the middle so it carries no signal.
        x[self.trees_dim] = config.model.n_trees if config.model.family != "dt" else sum(N_TREES_RANGE) // 2
        x[self.tree_depth_dim] = config.model.tree_depth
        return x

    def decode(self, x: Sequence[float], fallback_feature: str | None = None) -> Config:
        x = np.asarray(x, dtype=float)
        mask = x[:self.n_features] > 0.5
        if not mask.any():  # an empty mask is no model: keep the single most likely feature
            mask[self.features.index(fallback_feature) if fallback_feature else int(np.argmax(x[:self.n_features]))] = True
        lo, hi = self.bounds()
        r = lambda d: int(np.clip(round(float(x[d])), lo[d], hi[d]))  # noqa: E731
        if self.model:
            model = self.model
        else:
            family = self.families[r(self.family_dim)]
            model = ModelSpec(family, r(self.trees_dim) if family != "dt" else 1, r(self.tree_depth_dim))
        deadline = self.deadline(float(np.clip(x[self.deadline_dim], lo[-1], hi[-1]))) \
            if self.deadlines and r(self.depth_dim) > 1 else None
        return Config(tuple(f for f, m in zip(self.features, mask) if m), r(self.depth_dim), model, deadline)

    def sample(self, rng: np.random.Generator, inclusion: Sequence[float] | None = None,
               log_depth: bool = False) -> Config:
        """A random config; ``inclusion`` gives each feature's probability of being picked. Depth is
        uniform, or log-uniform with ``log_depth`` (as many draws in 1..7 as in 7..50)."""
        p = np.full(self.n_features, 0.5) if inclusion is None else np.asarray(inclusion, dtype=float)
        mask = rng.random(self.n_features) < p
        x = np.zeros(self.dims)
        x[:self.n_features] = mask
        lo, hi = self.bounds()
        for d in (self.depth_dim, *self.model_dims):
            x[d] = rng.integers(int(lo[d]), int(hi[d]) + 1)
        if log_depth:
            x[self.depth_dim] = log_uniform_depth(rng, self.max_depth)
        if self.deadlines:  # log-uniform, "none" as likely as one decade of T
            x[self.deadline_dim] = rng.uniform(lo[-1], hi[-1] + math.log(10))
        fallback = self.features[int(rng.choice(self.n_features, p=p / p.sum()))]
        return self.decode(x, fallback_feature=fallback)


def log_uniform_depth(rng: np.random.Generator, max_depth: int) -> int:
    """A depth drawn log-uniformly from 1..max_depth: what a flow reveals, and what waiting for it
    costs, changes most over its first packets."""
    return int(min(max(round(float(np.exp(rng.uniform(0.0, np.log(max_depth + 0.5))))), 1), max_depth))

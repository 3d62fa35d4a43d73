"""What every sampler shares: the protocol, each trial's random stream, and the one repair.

Contract: a sampler's ``ask(history, number, pending)`` is a function of its seed, ``number``, the
finished trials and the running ones alone. :func:`trial_rng` is trial ``number``'s random stream;
:func:`unseen` moves a proposal that was measured or is running to an unseen neighbour (random feature
flips) and :func:`labelled` records that in the proposal's label. Nothing here proposes or scores a
configuration.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from cato.search.space import Config, SearchSpace

History = Sequence[tuple[Config, dict]]

#: Appended to a proposal's label when :func:`unseen` had to move it.
MOVED = "; moved to an unseen neighbour (random feature flips)"


class SamplerError(ValueError):
    pass


class Sampler(Protocol):
    name: str

    def ask(self, history: History, number: int, pending: Sequence[Config] = ()) -> tuple[Config, dict]:
        """The configuration for trial ``number`` and what the sampler wants recorded about it, while the
        trials of ``pending`` are being evaluated (never proposed again)."""


def trial_rng(seed: int, number: int) -> np.random.Generator:
    """Trial ``number``'s random stream: the same whatever came before, so a resumed study continues."""
    return np.random.default_rng([seed, number])


def labelled(proposed: Config, config: Config, source: str) -> tuple[Config, dict]:
    """``config`` and what made it: ``source``, which proposed ``proposed``, and :func:`unseen` when it
    had to move that proposal (already evaluated) to an unseen neighbour."""
    if config != proposed:
        source += MOVED
    return config, {"source": source}


def unseen(space: SearchSpace, config: Config, seen: set[str], rng: np.random.Generator) -> Config:
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

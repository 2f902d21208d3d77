"""Several seeds trained together: one jitted program over a stacked state (`jax.vmap` of the training step).

Members differ only in their seed (initial parameters and batch draws); the data are shared, not copied. Each
member follows exactly the steps a single-seed run with its seed takes, so a label-free choice among them
(`scmodal_jax.metrics.quality`) can replace rerunning a seed that settled on a wrong cluster matching.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax

from .hparams import Hyperparameters
from .step import Data, Networks, TrainState, init_state, loop_program, run_loop, train_step

__all__ = ["init_ensemble", "member", "EnsembleTrainer"]


def init_ensemble(hp: Hyperparameters, n_features: Sequence[int], seeds: Sequence[int]) -> tuple[Networks, TrainState]:
    """The networks (shared structure) and the states of every seed stacked on a leading axis."""
    if len(seeds) < 1:
        raise ValueError("an ensemble needs at least one seed")
    states = []
    nets = None
    for seed in seeds:
        nets_i, state = init_state(dataclasses.replace(hp, seed=int(seed)), n_features)
        nets = nets if nets is not None else nets_i
        states.append(state)
    stacked = jax.tree_util.tree_map(lambda *leaves: jax.numpy.stack(leaves), *states)
    return nets, stacked


def member(state: TrainState, i: int) -> TrainState:
    """Member `i` of a stacked state, as a single-seed state."""
    return jax.tree_util.tree_map(lambda leaf: leaf[i], state)


class EnsembleTrainer:
    """`run(state, data, n)`: n fused steps of every member (vmapped), like `Trainer.run` for one seed.

    Metrics come back with shape (n_steps, n_members).
    """

    _shared: dict[Any, EnsembleTrainer] = {}

    def __init__(self, nets: Networks):
        self.nets = nets
        self._compiled: dict[int, Any] = {}

    @classmethod
    def for_networks(cls, nets: Networks) -> EnsembleTrainer:
        key = (dataclasses.replace(nets.hp, seed=0, steps=0, steps_per_call=1), nets.n_features)
        if key not in cls._shared:
            cls._shared[key] = cls(nets)
        return cls._shared[key]

    def run(self, state: TrainState, data: Data, n_steps: int) -> tuple[TrainState, dict[str, jax.Array]]:
        nets = self.nets
        step_all = jax.vmap(lambda s, d: train_step(nets, s, d), in_axes=(0, None))
        return run_loop(loop_program(self._compiled, int(n_steps), step_all), state, data, int(n_steps))

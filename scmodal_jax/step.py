"""The training step: D updates + one generator update as one pure function over a plain state.

`make_trainer` returns jitted functions; the state is a dict of arrays (parameters, optimiser states, step
count, base RNG key) that the caller donates on each call. Data live on the device and are passed as arguments
(never closed over, so they are not baked into the compiled program).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from . import losses
from .hparams import Hyperparameters
from .nets import Discriminators, Generators

TrainState = dict[str, Any]
# data = (datasets, links): datasets a tuple of (n_i, p_i) arrays, links a tuple of (L_i, R_i) pairs.
Data = tuple[tuple[jax.Array, ...], tuple[tuple[jax.Array, jax.Array], ...]]

METRIC_NAMES = (
    "loss_d",
    "loss_gan",
    "loss_ae",
    "loss_la",
    "loss_anchor",
    "loss_geo",
    "loss_total",
    "mnn_pairs",
)


def generator_optimizer(hp: Hyperparameters) -> optax.GradientTransformation:
    """clip -> coupled L2 (torch Adam's weight_decay) -> Adam."""
    return optax.chain(
        optax.clip_by_global_norm(hp.clip_norm),
        optax.add_decayed_weights(hp.weight_decay),
        optax.adam(hp.lr),
    )


def discriminator_optimizer(hp: Hyperparameters) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(hp.disc_weight_decay), optax.adam(hp.disc_lr))


@dataclass(frozen=True)
class Networks:
    """The static half of the networks (graph definitions) and the hyperparameters they were built with."""

    hp: Hyperparameters
    n_features: tuple[int, ...]
    gen_graph: Any
    disc_graph: Any

    @property
    def n_datasets(self) -> int:
        return len(self.n_features)


def init_state(hp: Hyperparameters, n_features: Sequence[int]) -> tuple[Networks, TrainState]:
    """Fresh networks and optimiser states from the seed in `hp`."""
    if len(n_features) < 2:
        raise ValueError(f"scMODAL needs at least 2 datasets, got {len(n_features)}")
    key = jax.random.PRNGKey(hp.seed)
    gen_key, disc_key, train_key = jax.random.split(key, 3)
    gens = Generators(n_features, hp.n_latent, hp.hidden, init=hp.init, init_std=hp.init_std, rngs=nnx.Rngs(gen_key))
    discs = Discriminators(
        len(n_features) - 1,
        hp.n_latent,
        hp.disc_hidden,
        logit_clamp=hp.logit_clamp,
        init=hp.init,
        init_std=hp.init_std,
        rngs=nnx.Rngs(disc_key),
    )
    gen_graph, gen_params = nnx.split(gens)
    disc_graph, disc_params = nnx.split(discs)
    state = {
        "gen": gen_params,
        "disc": disc_params,
        "gen_opt": generator_optimizer(hp).init(gen_params),
        "disc_opt": discriminator_optimizer(hp).init(disc_params),
        "step": jnp.zeros((), jnp.int32),
        "key": train_key,
    }
    return Networks(hp, tuple(int(p) for p in n_features), gen_graph, disc_graph), state


def _sample_batch(key: jax.Array, data: Data, batch_size: int):
    """B rows per dataset, with replacement, independently; link rows follow their dataset's rows."""
    datasets, links = data
    keys = jax.random.split(key, len(datasets))
    idx = [jax.random.randint(k, (batch_size,), 0, x.shape[0]) for k, x in zip(keys, datasets, strict=True)]
    xs = [x[i] for x, i in zip(datasets, idx, strict=True)]
    link_rows = [(left[idx[p]], right[idx[p + 1]]) for p, (left, right) in enumerate(links)]
    return xs, link_rows


def _disc_loss(discs: Discriminators, zs: Sequence[jax.Array]) -> jax.Array:
    return sum(losses.discriminator_loss(discs(zs[p], p), discs(zs[p + 1], p)) for p in range(len(zs) - 1))


def _generator_losses(gen_params, disc_params, nets: Networks, xs, mnn, input_kernels):
    hp = nets.hp
    gens = nnx.merge(nets.gen_graph, gen_params)
    discs = nnx.merge(nets.disc_graph, disc_params)
    n = nets.n_datasets
    zs = [gens.encode(xs[i], i) for i in range(n)]
    loss_ae = sum(losses.mean_squared_error(gens.decode(zs[i], i), xs[i]) for i in range(n))
    loss_la = 0.0
    loss_anchor = 0.0
    for p in range(n - 1):
        z_cycled_fwd = gens.encode(gens.decode(zs[p], p + 1), p + 1)
        z_cycled_bwd = gens.encode(gens.decode(zs[p + 1], p), p)
        loss_la += losses.mean_squared_error(zs[p], z_cycled_fwd)
        loss_la += losses.mean_squared_error(zs[p + 1], z_cycled_bwd)
        loss_anchor += losses.anchor_loss(zs[p], zs[p + 1], mnn[p])
    loss_gan = -_disc_loss(discs, zs)
    loss_geo = sum(losses.geometric_loss(input_kernels[i], zs[i], hp.geo_clamp) for i in range(n))
    total = (
        hp.lambda_gan * loss_gan
        + hp.lambda_ae * loss_ae
        + hp.lambda_la * loss_la
        + hp.lambda_anchor * loss_anchor
        + hp.lambda_geo * loss_geo
    )
    parts = {
        "loss_gan": loss_gan,
        "loss_ae": loss_ae,
        "loss_la": jnp.asarray(loss_la),
        "loss_anchor": jnp.asarray(loss_anchor),
        "loss_geo": loss_geo,
        "loss_total": total,
    }
    return total, parts


def train_step(nets: Networks, state: TrainState, data: Data) -> tuple[TrainState, dict[str, jax.Array]]:
    """One scMODAL step: `d_steps` discriminator updates, then one generator update. Pure."""
    hp = nets.hp
    gen_tx = generator_optimizer(hp)
    disc_tx = discriminator_optimizer(hp)
    # Folding the step into a fixed base key makes every step's randomness independent of how steps are
    # grouped into host calls, so a resumed run replays an uninterrupted one exactly.
    step_key = jax.random.fold_in(state["key"], state["step"])
    xs, link_rows = _sample_batch(step_key, data, hp.batch_size)

    mnn = [losses.mnn_matrix(left, right, hp.k_anchor) for left, right in link_rows]
    input_kernels = [losses.gaussian_kernel(x) for x in xs]

    gens = nnx.merge(nets.gen_graph, state["gen"])
    zs_fixed = [lax.stop_gradient(gens.encode(xs[i], i)) for i in range(nets.n_datasets)]

    def disc_objective(disc_params):
        return _disc_loss(nnx.merge(nets.disc_graph, disc_params), zs_fixed)

    def disc_update(_, carry):
        disc_params, disc_opt, _ = carry
        loss_d, grads = jax.value_and_grad(disc_objective)(disc_params)
        updates, disc_opt = disc_tx.update(grads, disc_opt, disc_params)
        return optax.apply_updates(disc_params, updates), disc_opt, loss_d

    disc_params, disc_opt, loss_d = lax.fori_loop(
        0, hp.d_steps, disc_update, (state["disc"], state["disc_opt"], jnp.zeros((), jnp.float32))
    )

    grad_fn = jax.value_and_grad(_generator_losses, has_aux=True)
    (_, parts), grads = grad_fn(state["gen"], disc_params, nets, xs, mnn, input_kernels)
    updates, gen_opt = gen_tx.update(grads, state["gen_opt"], state["gen"])
    new_state = {
        "gen": optax.apply_updates(state["gen"], updates),
        "disc": disc_params,
        "gen_opt": gen_opt,
        "disc_opt": disc_opt,
        "step": state["step"] + 1,
        "key": state["key"],
    }
    metrics = {"loss_d": loss_d, **parts, "mnn_pairs": sum(jnp.sum(s) for s in mnn)}
    return new_state, metrics


class Trainer:
    """Jitted, donated multi-step runner: `run(state, data, n_steps)` fuses n_steps steps in one `lax.scan`.

    Use `Trainer.for_networks` to share compiled programs between models of the same architecture.
    """

    _shared: dict[Any, Trainer] = {}

    def __init__(self, nets: Networks):
        self.nets = nets
        self._compiled: dict[int, Any] = {}

    @classmethod
    def for_networks(cls, nets: Networks) -> Trainer:
        # seed, steps and steps_per_call do not enter the compiled step, so models differing only there share it.
        key = (dataclasses.replace(nets.hp, seed=0, steps=0, steps_per_call=1), nets.n_features)
        if key not in cls._shared:
            cls._shared[key] = cls(nets)
        return cls._shared[key]

    def _runner(self, n_steps: int):
        if n_steps not in self._compiled:
            nets = self.nets

            def run(state, data):
                def body(carry, _):
                    return train_step(nets, carry, data)

                return lax.scan(body, state, None, length=n_steps)

            self._compiled[n_steps] = jax.jit(run, donate_argnums=(0,))
        return self._compiled[n_steps]

    def run(self, state: TrainState, data: Data, n_steps: int) -> tuple[TrainState, dict[str, jax.Array]]:
        """Returns the new state and per-step metrics, each of shape (n_steps,), still on the device."""
        return self._runner(int(n_steps))(state, data)


def encode(nets: Networks, gen_params, x: jax.Array, modality: int) -> jax.Array:
    return nnx.merge(nets.gen_graph, gen_params).encode(x, modality)


def decode(nets: Networks, gen_params, z: jax.Array, modality: int) -> jax.Array:
    return nnx.merge(nets.gen_graph, gen_params).decode(z, modality)

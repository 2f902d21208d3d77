"""The training step: D updates + one generator update as one pure function over a plain state.

`make_trainer` returns jitted functions; the state is a dict of arrays (parameters, optimiser states, step
count, base RNG key) that the caller donates on each call. Data live on the device and are passed as arguments
(never closed over, so they are not baked into the compiled program).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import losses
from .hparams import Hyperparameters
from .nets import Discriminators, Generators, power_of_two_at_least

TrainState = dict[str, Any]
# data = (datasets, links): datasets a tuple of (n_i, p_i) arrays, links a tuple of (L_i, R_i) pairs.
Data = tuple[tuple[jax.Array, ...], tuple[tuple[jax.Array, jax.Array], ...]]
# A batch has the same structure as the data: (per-dataset rows, per-pair link rows).
Batch = Data

METRIC_NAMES = (
    "loss_d",
    "loss_gan",
    "loss_ae",
    "loss_la",
    "loss_anchor",
    "loss_geo",
    "loss_refine",
    "loss_gp",
    "loss_total",
    "mnn_pairs",
    "refine_pairs",
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
    gens = Generators(
        n_features, hp.n_latent, hp.hidden, init=hp.init, init_std=hp.init_std, precision=hp.matmul_precision,
        rngs=nnx.Rngs(gen_key),
    )  # fmt: skip
    discs = Discriminators(
        len(n_features) - 1,
        hp.n_latent,
        hp.disc_hidden,
        logit_clamp=hp.logit_clamp,
        init=hp.init,
        init_std=hp.init_std,
        precision=hp.matmul_precision,
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


def sample_indices(key: jax.Array, step: jax.Array, n_cells: Sequence[int], batch_size: int) -> list[jax.Array]:
    """Row indices of one step's batch: B per dataset, with replacement, independently.

    Folding the step into a fixed base key makes every step's randomness independent of how steps are
    grouped into host calls (a resumed run replays an uninterrupted one) and of where the indices are drawn
    (on the device for in-memory data, on the host for streamed data).
    """
    keys = jax.random.split(jax.random.fold_in(key, step), len(n_cells))
    return [jax.random.randint(k, (batch_size,), 0, n) for k, n in zip(keys, n_cells, strict=True)]


def gather_batch(data: Data, idx: Sequence[jax.Array]) -> Batch:
    """The rows `idx` of every dataset; link rows follow their dataset's rows."""
    datasets, links = data
    xs = tuple(x[i] for x, i in zip(datasets, idx, strict=True))
    link_rows = tuple((left[idx[p]], right[idx[p + 1]]) for p, (left, right) in enumerate(links))
    return xs, link_rows


def _sample_batch(key: jax.Array, data: Data, batch_size: int) -> Batch:
    """Batch of a step whose folded key is `key` (kept for tests that rebuild a step's batch)."""
    keys = jax.random.split(key, len(data[0]))
    idx = [jax.random.randint(k, (batch_size,), 0, x.shape[0]) for k, x in zip(keys, data[0], strict=True)]
    return gather_batch(data, idx)


def _pair_disc_loss(discs: Discriminators, zs: Sequence[jax.Array], p: int, smoothing: float = 0.0) -> jax.Array:
    return losses.discriminator_loss(discs(zs[p], p), discs(zs[p + 1], p), smoothing)


def _disc_loss(discs: Discriminators, zs: Sequence[jax.Array], smoothing: float = 0.0) -> jax.Array:
    return sum(_pair_disc_loss(discs, zs, p, smoothing) for p in range(len(zs) - 1))


def _pair_penalty(discs: Discriminators, zs: Sequence[jax.Array], p: int, rows: int | None = None) -> jax.Array:
    """Discriminator p's input-gradient penalty on both of its datasets' latents (their first `rows` rows: the
    batch rows are drawn at random, so these are a random subsample)."""
    return sum(losses.gradient_penalty(lambda z: discs(z, p), zs[q][:rows]) for q in (p, p + 1))


def _penalty_rows(hp: Hyperparameters, batch_rows: int) -> int | None:
    """Rows the penalty is computed on (`disc_gp_rows`, a fraction of the batch); None = all."""
    if hp.disc_gp_rows >= 1.0:
        return None
    return max(1, int(round(hp.disc_gp_rows * batch_rows)))


def _disc_objective_terms(
    discs: Discriminators, zs: Sequence[jax.Array], hp: Hyperparameters, step=0, with_penalty: bool = True
):
    """(loss_d, penalty), each summed over the dataset pairs; the penalty already carries its scale.

    With `disc_gp_below` = r > 0 a pair's penalty is scaled by `losses.penalty_engagement` of that pair's own
    loss (held constant in the gradient): off while the discriminator is no better than r x the two-class
    equilibrium, full once it separates the pair perfectly (a controller on an early discriminator win).
    With `disc_gp_until` > 0 every penalty also fades linearly from full at step 0 to nothing at that step.
    """
    loss_d = jnp.zeros((), jnp.float32)
    penalty = jnp.zeros((), jnp.float32)
    fade = 1.0 if hp.disc_gp_until <= 0 else _fade(step, hp.disc_gp_until)
    rows = _penalty_rows(hp, zs[0].shape[0])
    for p in range(len(zs) - 1):
        pair_loss = _pair_disc_loss(discs, zs, p, hp.disc_smoothing)
        loss_d = loss_d + pair_loss
        if hp.disc_gp > 0 and with_penalty:
            scale = fade
            if hp.disc_gp_below > 0:
                scale = scale * losses.penalty_engagement(lax.stop_gradient(pair_loss), hp.disc_gp_below)
            penalty = penalty + scale * _pair_penalty(discs, zs, p, rows)
    return loss_d, penalty


def _ramp(step: jax.Array, start: int, length: int) -> jax.Array:
    """0 before `start`, then linear to 1 over `length` steps (a step function when length is 0)."""
    if length <= 0:
        return (step >= start).astype(jnp.float32)
    return jnp.clip((step - start).astype(jnp.float32) / length, 0.0, 1.0)


def _fade(step: jax.Array, until: int) -> jax.Array:
    """1 at step 0, falling linearly to 0 at `until` (and 0 after)."""
    return 1.0 - _ramp(jnp.asarray(step), 0, until)


def anchor_link_rows(link_rows, step: jax.Array, hp: Hyperparameters):
    """The link rows the anchors are searched on at `step`.

    With `link_smoothing_until` > 0 each block holds the smoothed links and then the raw ones side by side
    (`runtime.link_smoothing.smoothed_then_raw`); the smoothing weight falls linearly from `link_smoothing` at
    step 0 to 0 at `link_smoothing_until`: raw + (1 - t / until) * (smoothed - raw). Otherwise the rows as given.
    """
    if hp.link_smoothing_until <= 0 or hp.link_smoothing == 0:
        return link_rows
    keep = _fade(step, hp.link_smoothing_until)

    def mix(block: jax.Array) -> jax.Array:
        width = block.shape[-1] // 2
        smoothed, raw = block[..., :width], block[..., width:]
        return raw + keep * (smoothed - raw)

    return tuple((mix(left), mix(right)) for left, right in link_rows)


def _encode_all(gen_params, nets: Networks, xs) -> list[jax.Array]:
    gens = nnx.merge(nets.gen_graph, gen_params)
    return [gens.encode(xs[i], i) for i in range(nets.n_datasets)]


def _generator_losses(gen_params, disc_params, nets: Networks, xs, mnn, input_kernels, links=None, step=0):
    """Every generator-side term, from the parameters (a convenience for tests)."""
    zs = _encode_all(gen_params, nets, xs)
    return _losses_given_latents(gen_params, zs, disc_params, nets, xs, mnn, input_kernels, links, step)


def _losses_given_latents(gen_params, zs, disc_params, nets: Networks, xs, mnn, input_kernels, links=None, step=0):
    """The generator objective with the batch latents zs = E_i(x_i) as an explicit input.

    Taking zs as an input lets the step reuse the encoder pass it already made for the discriminator and
    back-propagate into the encoders through that pass's VJP, instead of encoding the batch twice.
    `links` (the batch's link rows) and `step` are read only by the mechanisms beyond the paper.
    """
    hp = nets.hp
    gens = nnx.merge(nets.gen_graph, gen_params)
    discs = nnx.merge(nets.disc_graph, disc_params)
    n = nets.n_datasets
    loss_ae = sum(losses.mean_squared_error(gens.decode(zs[i], i), xs[i]) for i in range(n))
    loss_la = 0.0
    loss_anchor = 0.0
    loss_refine = jnp.zeros((), jnp.float32)
    refine_pairs = jnp.zeros((), jnp.float32)
    for p in range(n - 1):
        imputed_fwd = gens.decode(zs[p], p + 1)  # dataset p's cells in dataset p+1's features
        imputed_bwd = gens.decode(zs[p + 1], p)
        loss_la += losses.mean_squared_error(zs[p], gens.encode(imputed_fwd, p + 1))
        loss_la += losses.mean_squared_error(zs[p + 1], gens.encode(imputed_bwd, p))
        loss_anchor += losses.anchor_loss(zs[p], zs[p + 1], mnn[p])
        if hp.lambda_refine > 0:
            pairs = losses.refined_pairs(
                lax.stop_gradient(imputed_fwd), xs[p + 1], xs[p], lax.stop_gradient(imputed_bwd),
                links[p][0], links[p][1], hp.k_anchor, hp.refine_agree_k,
            )  # fmt: skip
            loss_refine += losses.anchor_loss(zs[p], zs[p + 1], pairs)
            refine_pairs += jnp.sum(pairs)
    loss_gan = -_disc_loss(discs, zs)
    loss_geo = sum(losses.geometric_loss(input_kernels[i], zs[i], hp.geo_clamp) for i in range(n))
    gan_weight = hp.lambda_gan if hp.gan_warmup <= 0 else hp.lambda_gan * _ramp(jnp.asarray(step), 0, hp.gan_warmup)
    total = (
        gan_weight * loss_gan
        + hp.lambda_ae * loss_ae
        + hp.lambda_la * loss_la
        + hp.lambda_anchor * loss_anchor
        + hp.lambda_geo * loss_geo
    )
    if hp.lambda_refine > 0:
        total = total + hp.lambda_refine * _ramp(jnp.asarray(step), hp.refine_start, 0) * loss_refine
    parts = {
        "loss_gan": loss_gan,
        "loss_ae": loss_ae,
        "loss_la": jnp.asarray(loss_la),
        "loss_anchor": jnp.asarray(loss_anchor),
        "loss_geo": loss_geo,
        "loss_refine": loss_refine,
        "loss_total": total,
        "refine_pairs": refine_pairs,
    }
    return total, parts


def update_step(
    nets: Networks, state: TrainState, batch: Batch, mesh: Mesh | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One scMODAL update on a given batch: `d_steps` discriminator updates, then one generator update. Pure.

    With a `mesh`, the batch rows are sharded over its "data" axis and the parameters replicated; the MNN
    and kernel terms are still those of the whole combined batch (XLA inserts the collectives).
    """
    hp = nets.hp
    gen_tx = generator_optimizer(hp)
    disc_tx = discriminator_optimizer(hp)
    xs, link_rows = batch
    if mesh is not None:
        rows = NamedSharding(mesh, PartitionSpec("data", None))
        xs, link_rows = jax.lax.with_sharding_constraint((xs, link_rows), rows)

    link_rows = anchor_link_rows(link_rows, state["step"], hp)
    mnn = [losses.mnn_matrix(left, right, hp.k_anchor) for left, right in link_rows]
    input_kernels = [losses.gaussian_kernel(x) for x in xs]

    zs, encoder_vjp = jax.vjp(lambda g: _encode_all(g, nets, xs), state["gen"])
    zs_fixed = [lax.stop_gradient(z) for z in zs]

    def disc_objective(disc_params, with_penalty=True, weight=hp.disc_gp):
        discs = nnx.merge(nets.disc_graph, disc_params)
        loss_d, penalty = _disc_objective_terms(discs, zs_fixed, hp, state["step"], with_penalty)
        return loss_d + weight * penalty, (loss_d, penalty)

    lazy = hp.disc_gp > 0 and hp.disc_gp_every > 1

    def disc_grads(j, disc_params):
        if not lazy:
            return jax.value_and_grad(disc_objective, has_aux=True)(disc_params)
        # Lazy regularisation: the penalty on every disc_gp_every-th discriminator update (counted over the whole
        # run) at disc_gp_every x its weight; the double backward is skipped on the others (lax.cond runs one branch).
        due = (state["step"] * hp.d_steps + j) % hp.disc_gp_every == 0
        with_penalty = partial(disc_objective, weight=hp.disc_gp * hp.disc_gp_every)
        without = partial(disc_objective, with_penalty=False)
        return lax.cond(
            due,
            lambda params: jax.value_and_grad(with_penalty, has_aux=True)(params),
            lambda params: jax.value_and_grad(without, has_aux=True)(params),
            disc_params,
        )

    def disc_update(j, carry):
        disc_params, disc_opt, _ = carry
        (_, aux), grads = disc_grads(j, disc_params)
        updates, disc_opt = disc_tx.update(grads, disc_opt, disc_params)
        return optax.apply_updates(disc_params, updates), disc_opt, aux

    zero = jnp.zeros((), jnp.float32)
    disc_params, disc_opt, (loss_d, loss_gp) = lax.fori_loop(
        0, hp.d_steps, disc_update, (state["disc"], state["disc_opt"], (zero, zero))
    )

    grad_fn = jax.value_and_grad(_losses_given_latents, argnums=(0, 1), has_aux=True)
    (_, parts), (grads_direct, grads_z) = grad_fn(
        state["gen"], zs, disc_params, nets, xs, mnn, input_kernels, link_rows, state["step"]
    )
    (grads_through_z,) = encoder_vjp(grads_z)
    grads = jax.tree_util.tree_map(jnp.add, grads_direct, grads_through_z)
    updates, gen_opt = gen_tx.update(grads, state["gen_opt"], state["gen"])
    new_state = {
        "gen": optax.apply_updates(state["gen"], updates),
        "disc": disc_params,
        "gen_opt": gen_opt,
        "disc_opt": disc_opt,
        "step": state["step"] + 1,
        "key": state["key"],
    }
    metrics = {"loss_d": loss_d, "loss_gp": loss_gp, **parts, "mnn_pairs": sum(jnp.sum(s) for s in mnn)}
    return new_state, metrics


def train_step(
    nets: Networks, state: TrainState, data: Data, mesh: Mesh | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on device-resident data: draw the batch from the state's key, then `update_step`."""
    n_cells = [x.shape[0] for x in data[0]]
    idx = sample_indices(state["key"], state["step"], n_cells, nets.hp.batch_size)
    return update_step(nets, state, gather_batch(data, idx), mesh)


def loop_program(compiled: dict[Any, Any], n_steps: int, step: Callable) -> tuple[int, Any]:
    """(capacity, program) running `step(state, data)` for a call of `n_steps` steps: the smallest program in
    `compiled` that holds them, else a new one for the next power of two.

    The step count is an argument of the program (a `fori_loop` with a dynamic trip count filling a metrics buffer
    of `capacity` rows), so a fit's shorter last chunk, a probe's chunks and later calls of other lengths reuse one
    compilation (about 3 s on a CPU each) instead of compiling one per length; the steps are the same."""
    fitting = [c for c in compiled if isinstance(c, int) and c >= n_steps]
    if fitting:
        return min(fitting), compiled[min(fitting)]
    capacity = power_of_two_at_least(n_steps)

    def run(state, data, n):
        shapes = jax.eval_shape(lambda s: step(s, data)[1], state)
        buffer = jax.tree.map(lambda a: jnp.zeros((capacity, *a.shape), a.dtype), shapes)

        def body(i, carry):
            state, buffer = carry
            state, metrics = step(state, data)
            return state, jax.tree.map(lambda b, m: b.at[i].set(m), buffer, metrics)

        return lax.fori_loop(0, n, body, (state, buffer))

    compiled[capacity] = jax.jit(run, donate_argnums=(0,))
    return capacity, compiled[capacity]


def run_loop(program: tuple[int, Any], state: TrainState, data: Data, n_steps: int) -> tuple[TrainState, Any]:
    """Run a `loop_program` for `n_steps` steps; the metrics cut to their `n_steps` rows."""
    capacity, run = program
    state, buffer = run(state, data, jnp.asarray(n_steps, jnp.int32))
    return state, buffer if capacity == n_steps else jax.tree.map(lambda b: b[:n_steps], buffer)


class Trainer:
    """Jitted, donated multi-step runners that fuse several steps into one device loop per host call.

    `run(state, data, n)` draws each step's batch on the device from device-resident data; `run_batches(state,
    batches)` consumes batches stacked on a leading step axis (streamed from the host). Both give the same
    steps. Use `Trainer.for_networks` to share compiled programs between models of the same architecture.
    """

    _shared: dict[Any, Trainer] = {}

    def __init__(self, nets: Networks, mesh: Mesh | None = None):
        self.nets = nets
        self.mesh = mesh
        self._compiled: dict[Any, Any] = {}

    @classmethod
    def for_networks(cls, nets: Networks, mesh: Mesh | None = None) -> Trainer:
        # seed, steps and steps_per_call do not enter the compiled step, so models differing only there share it.
        hp_key = dataclasses.replace(nets.hp, seed=0, steps=0, steps_per_call=1)
        mesh_key = None if mesh is None else tuple(d.id for d in mesh.devices.flat)
        key = (hp_key, nets.n_features, mesh_key)
        if key not in cls._shared:
            cls._shared[key] = cls(nets, mesh)
        return cls._shared[key]

    def _runner(self, n_steps: int) -> tuple[int, Any]:
        nets, mesh = self.nets, self.mesh
        return loop_program(self._compiled, n_steps, lambda state, data: train_step(nets, state, data, mesh))

    def run(self, state: TrainState, data: Data, n_steps: int) -> tuple[TrainState, dict[str, jax.Array]]:
        """Returns the new state and per-step metrics, each of shape (n_steps,), still on the device."""
        return run_loop(self._runner(int(n_steps)), state, data, int(n_steps))

    def run_batches(self, state: TrainState, batches: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        """Steps over host-streamed batches stacked on a leading axis (one entry per step)."""
        if "batches" not in self._compiled:
            nets, mesh = self.nets, self.mesh

            def run(state, batches):
                return lax.scan(lambda carry, batch: update_step(nets, carry, batch, mesh), state, batches)

            self._compiled["batches"] = jax.jit(run, donate_argnums=(0,))
        return self._compiled["batches"](state, batches)


def encode(nets: Networks, gen_params, x: jax.Array, modality: int) -> jax.Array:
    return nnx.merge(nets.gen_graph, gen_params).encode(x, modality)


def decode(nets: Networks, gen_params, z: jax.Array, modality: int) -> jax.Array:
    return nnx.merge(nets.gen_graph, gen_params).decode(z, modality)

"""Matmul precision: the losses' kernel, distance and cosine matmuls (and, by default, the networks) are pinned
to float32, so a platform whose default float32 matmul is TF32 or bfloat16 computes the same losses.

XLA on the CPU computes float32 matmuls in full precision whatever they ask for, so lower precision cannot be
observed here directly. Two checks stand in for an accelerator: the lowered step (under
`jax.default_matmul_precision("bfloat16")`) is inspected for the precision each matmul requests, and the step is
evaluated by an interpreter that does what a TPU does for an unpinned float32 matmul (operands rounded to
bfloat16, products accumulated in float32).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jex_core

from scmodal_jax.core import losses
from scmodal_jax.core.hparams import Hyperparameters
from scmodal_jax.core.step import decode, encode, gather_batch, init_state, sample_indices, update_step

SMALL = dict(hidden=32, disc_hidden=32, n_latent=8, batch_size=64, k_anchor=10, d_steps=2)


def _pinned(precision) -> bool:
    if precision is None:
        return False
    levels = precision if isinstance(precision, tuple) else (precision, precision)
    return all(p == lax.Precision.HIGHEST for p in levels)


def _bf16(x):
    return x.astype(jnp.bfloat16).astype(x.dtype) if x.dtype == jnp.float32 else x


def emulate_low_precision(jaxpr, consts, *args):
    """Evaluate a jaxpr with every float32 matmul that is not pinned to HIGHEST done as a TPU does by default."""
    env = {}

    def read(v):
        return v.val if isinstance(v, jex_core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name, params = eqn.primitive.name, eqn.params
        if name == "dot_general" and not _pinned(params["precision"]):
            out = eqn.primitive.bind(*[_bf16(x) for x in invals], **params)
        elif name in ("pjit", "jit", "closed_call", "custom_jvp_call"):
            sub = params.get("jaxpr", params.get("call_jaxpr"))
            out = emulate_low_precision(sub.jaxpr, sub.consts, *invals)
        else:
            if any(isinstance(p, jex_core.ClosedJaxpr | jex_core.Jaxpr) for p in params.values()):
                raise NotImplementedError(f"no emulation for {name} with a sub-program")
            out = eqn.primitive.bind(*invals, **params)
        out = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, out, strict=True))
    return [read(v) for v in jaxpr.outvars]


def _step_inputs(hp):
    rng = np.random.default_rng(0)
    data = (
        (jnp.asarray(rng.normal(size=(120, 30)), jnp.float32), jnp.asarray(rng.normal(size=(100, 12)), jnp.float32)),
        ((jnp.asarray(rng.normal(size=(120, 6)), jnp.float32), jnp.asarray(rng.normal(size=(100, 6)), jnp.float32)),),
    )
    nets, state = init_state(hp, (30, 12))
    idx = sample_indices(state["key"], state["step"], (120, 100), hp.batch_size)
    return nets, state, gather_batch(data, idx)


def _batch_losses(nets, gen, batch):
    """The losses of a step's batch through the networks: every pinned matmul of the losses takes part."""
    (x0, x1), ((left, right),) = batch
    z0, z1 = encode(nets, gen, x0, 0), encode(nets, gen, x1, 1)
    mnn = losses.mnn_matrix(left, right, nets.hp.k_anchor)
    return {
        "loss_geo": losses.geometric_loss(losses.gaussian_kernel(x0), z0) + losses.geometric_loss(
            losses.gaussian_kernel(x1), z1),
        "loss_anchor": losses.anchor_loss(z0, z1, mnn),
        "mnn_pairs": jnp.sum(mnn),
        "loss_ae": losses.mean_squared_error(decode(nets, gen, z0, 0), x0),
    }  # fmt: skip


def _losses(hp, emulate: bool) -> dict[str, float]:
    """A batch's losses, exactly or with TPU-like unpinned matmuls (emulated); both compiled the same way."""
    nets, state, batch = _step_inputs(hp)
    fn = lambda gen, b: _batch_losses(nets, gen, b)  # noqa: E731
    if emulate:
        closed = jax.make_jaxpr(fn)(state["gen"], batch)
        tree = jax.tree_util.tree_structure(jax.eval_shape(fn, state["gen"], batch))
        fn = lambda gen, b: jax.tree_util.tree_unflatten(  # noqa: E731
            tree, emulate_low_precision(closed.jaxpr, closed.consts, *jax.tree_util.tree_leaves((gen, b)))
        )
    return {k: float(v) for k, v in jax.jit(fn)(state["gen"], batch).items()}


@pytest.fixture(scope="module")
def exact():
    return _losses(Hyperparameters(**SMALL), emulate=False)


def test_pinned_losses_are_unchanged_by_low_precision_matmuls(exact):
    emulated = _losses(Hyperparameters(**SMALL), emulate=True)
    assert emulated == pytest.approx(exact, rel=1e-6, abs=1e-6)


def test_unpinned_losses_would_differ(exact, monkeypatch):
    # The same losses with their matmuls left to the platform default: the test above can fail.
    monkeypatch.setattr(losses, "MATMUL_PRECISION", None)
    emulated = _losses(Hyperparameters(**SMALL), emulate=True)
    # Measured here: loss_anchor moves by ~4e-4, loss_geo by ~5e-5 (relative) and one MNN pair in 504 changes.
    changes = {k: abs(emulated[k] - exact[k]) / abs(exact[k]) for k in ("loss_geo", "loss_anchor", "mnn_pairs")}
    assert max(changes.values()) > 1e-4, changes


def test_the_option_lowers_the_networks_precision(exact):
    emulated = _losses(Hyperparameters(**SMALL, matmul_precision="bfloat16"), emulate=True)
    # Measured: the anchor loss moves by ~6e-4 (relative) when the networks' matmuls take one bfloat16 pass.
    assert abs(emulated["loss_anchor"] - exact["loss_anchor"]) > 1e-4 * abs(exact["loss_anchor"])


def _dot_precisions(fn, *args) -> list[tuple[str, str]]:
    with jax.default_matmul_precision("bfloat16"):
        text = jax.jit(fn).lower(*args).as_text()
    return re.findall(r"stablehlo\.dot_general.*?precision = \[(\w+), (\w+)\]", text)


def test_every_matmul_of_the_step_requests_float32_under_a_bfloat16_default():
    hp = Hyperparameters(**SMALL)
    nets, state, batch = _step_inputs(hp)
    dots = _dot_precisions(lambda s, b: update_step(nets, s, b), state, batch)
    assert len(dots) > 20 and set(dots) == {("HIGHEST", "HIGHEST")}
    fast_nets, _, _ = _step_inputs(Hyperparameters(**SMALL, matmul_precision="bfloat16"))
    dots = _dot_precisions(lambda s, b: update_step(fast_nets, s, b), state, batch)
    assert {("HIGHEST", "HIGHEST"), ("DEFAULT", "DEFAULT")} == set(dots)  # losses pinned, networks not
    x = jnp.ones((8, 4))
    assert _dot_precisions(lambda a: a @ a.T, x) == [("DEFAULT", "DEFAULT")]  # what an unpinned matmul shows


def test_matmul_precision_is_validated():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        Hyperparameters(matmul_precision="float16")

"""Plain-numpy (float64) reference implementations of the scMODAL semantics, written from the spec, not the code."""

from __future__ import annotations

import numpy as np


def sq_dists(a, b):
    """Direct form: an (n, m, p) difference tensor, fine for the small sizes of tests."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def kernel(x):
    x = np.asarray(x, np.float64)
    return np.exp(-sq_dists(x, x) / (2 * x.shape[1]))


def geometric_loss(x, z, clamp=0.975):
    kx, kz = kernel(x), kernel(z)
    cos = np.array([kx[r] @ kz[r] / (np.linalg.norm(kx[r]) * np.linalg.norm(kz[r])) for r in range(len(x))])
    return -np.mean(np.minimum(cos, clamp))


def mnn(left, right, k):
    """Brute force: loops over every (a, b), neighbours by stable sort (ties to the lower index)."""
    left = np.asarray(left, np.float64)
    right = np.asarray(right, np.float64)
    nl, nr = len(left), len(right)
    norm_l = np.linalg.norm(left, axis=1)
    norm_r = np.linalg.norm(right, axis=1)
    sim = np.zeros((nl, nr))
    for a in range(nl):
        for b in range(nr):
            if norm_l[a] > 1e-12 and norm_r[b] > 1e-12:
                sim[a, b] = left[a] @ right[b] / (norm_l[a] * norm_r[b])
    s = np.zeros((nl, nr))
    for a in range(nl):
        row_best = set(np.argsort(-sim[a], kind="stable")[: min(k, nr)])
        for b in range(nr):
            col_best = set(np.argsort(-sim[:, b], kind="stable")[: min(k, nl)])
            if b in row_best and a in col_best and norm_l[a] > 1e-12 and norm_r[b] > 1e-12:
                s[a, b] = 1.0
    return s


def anchor_loss(za, zb, s):
    d = sq_dists(za, zb) / za.shape[1]
    return 0.0 if s.sum() == 0 else float((s * d).sum() / s.sum())


def softplus(x):
    return np.logaddexp(0.0, x)


def disc_loss(logits_first, logits_second):
    return float(np.mean(softplus(-logits_first) + softplus(logits_second)))


def disc_loss_smoothed(logits_first, logits_second, s):
    first = (1 - s) * softplus(-logits_first) + s * softplus(logits_first)
    second = s * softplus(-logits_second) + (1 - s) * softplus(logits_second)
    return float(np.mean(first + second))


def mlp_input_grad(layers, x, clamp=None):
    """d sum(mlp(x)) / d x for a one-output ReLU MLP, by hand (backward through ReLUs and the clamp)."""
    h = np.asarray(x, np.float64)
    masks = []
    for i, (w, b) in enumerate(layers):
        h = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        if i < len(layers) - 1:
            masks.append(h > 0)
            h = np.maximum(h, 0.0)
    g = np.ones_like(h)
    if clamp is not None:
        g = g * (np.abs(h) < clamp)
    for i in range(len(layers) - 1, -1, -1):
        g = g @ np.asarray(layers[i][0], np.float64).T
        if i > 0:
            g = g * masks[i - 1]
    return g


def gradient_penalty(layers, z, clamp=None):
    g = mlp_input_grad(layers, z, clamp)
    return float(np.mean(np.sum(g * g, axis=1)))


def refined_pairs(imputed_right, x_right, x_left, imputed_left, link_left, link_right, k, agree_k):
    found = np.maximum(mnn(imputed_right, x_right, k), mnn(x_left, imputed_left, k))
    return found * mnn(link_left, link_right, agree_k)


def mlp_jax(layers, x):
    """The same ReLU MLP in jax.numpy (float32), to differentiate with JAX against the hand-written backward."""
    import jax.numpy as jnp

    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ jnp.asarray(w, jnp.float32) + jnp.asarray(b, jnp.float32)
        if i < len(layers) - 1:
            h = jnp.maximum(h, 0.0)
    return h


def mlp(layers, x, clamp=None):
    """layers: list of (kernel, bias); ReLU between layers."""
    h = np.asarray(x, np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h if clamp is None else np.clip(h, -clamp, clamp)


def generator_losses(enc, dec, disc, xs, mnns, hp):
    """All scMODAL generator-side terms; enc/dec/disc are lists of layer lists."""
    n = len(xs)
    zs = [mlp(enc[i], xs[i]) for i in range(n)]
    ae = sum(np.mean((mlp(dec[i], zs[i]) - xs[i]) ** 2) for i in range(n))
    la = anchor = gan_d = 0.0
    for p in range(n - 1):
        la += np.mean((zs[p] - mlp(enc[p + 1], mlp(dec[p + 1], zs[p]))) ** 2)
        la += np.mean((zs[p + 1] - mlp(enc[p], mlp(dec[p], zs[p + 1]))) ** 2)
        anchor += anchor_loss(zs[p], zs[p + 1], mnns[p])
        first = mlp(disc[p], zs[p], hp.logit_clamp)[:, 0]
        second = mlp(disc[p], zs[p + 1], hp.logit_clamp)[:, 0]
        gan_d += disc_loss(first, second)
    geo = sum(geometric_loss(xs[i], zs[i], hp.geo_clamp) for i in range(n))
    total = hp.lambda_gan * -gan_d + hp.lambda_ae * ae + hp.lambda_la * la + hp.lambda_anchor * anchor
    total += hp.lambda_geo * geo
    return {
        "loss_gan": -gan_d,
        "loss_ae": ae,
        "loss_la": la,
        "loss_anchor": anchor,
        "loss_geo": geo,
        "loss_total": total,
    }


class Adam:
    """torch-style Adam with coupled L2 (grad += wd * param) and optional clipping by global norm first."""

    def __init__(self, lr, weight_decay, clip_norm=None, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.wd, self.clip = lr, weight_decay, clip_norm
        self.b1, self.b2, self.eps = b1, b2, eps
        self.m = self.v = None
        self.t = 0

    def step(self, params, grads):
        params = [np.asarray(p, np.float64) for p in params]
        grads = [np.asarray(g, np.float64) for g in grads]
        if self.clip is not None:
            norm = np.sqrt(sum((g**2).sum() for g in grads))
            if norm > self.clip:
                grads = [g * self.clip / norm for g in grads]
        grads = [g + self.wd * p for g, p in zip(grads, params, strict=True)]
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        out = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g**2
            m_hat = self.m[i] / (1 - self.b1**self.t)
            v_hat = self.v[i] / (1 - self.b2**self.t)
            out.append(p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps))
        return out

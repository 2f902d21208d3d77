"""SCMODAL: the user-facing estimator. Validates inputs, owns the host loop (progress, checkpoints), predicts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._rows import as_row_source, iter_dense_blocks
from .core.hparams import Hyperparameters
from .core.step import METRIC_NAMES, Networks, Trainer, TrainState, decode, encode, init_state
from .runtime import checkpoint
from .runtime.devices import choose_data_mode, make_mesh, place, replicated, stacked_rows
from .runtime.inputs import training_inputs
from .runtime.streaming import BatchStream

log = logging.getLogger(__name__)

# Fields that may differ between a checkpoint and the model resuming from it.
_RESUMABLE_CHANGES = {"steps", "steps_per_call"}


class SCMODAL:
    """Integration of N >= 2 unpaired single-cell datasets linked by a few shared features.

    Parameters are the hyperparameters of `scmodal_jax.core.hparams.Hyperparameters` (defaults are the original's),
    plus host-side options that do not change what is computed:
    `progress` (a progress bar), `log_every` (steps between metric syncs to the host; defaults to
    `steps_per_call`), `checkpoint_dir` / `checkpoint_every` (periodic resumable checkpoints),
    `devices` ("auto" = every local device, or N: batch rows sharded over N devices, parameters replicated),
    `data_mode` ("device": data resident on the device; "stream": batches gathered on the host from dense,
    sparse or backed data and prefetched; "auto": device when the dense data take at most half the device's
    memory), `prefetch` (streamed chunks prepared ahead) and `stream_chunk_mb` (size cap of one streamed chunk).
    """

    def __init__(
        self,
        n_latent: int = 20,
        steps: int = 10_000,
        batch_size: int = 500,
        seed: int = 1234,
        *,
        progress: bool = True,
        log_every: int | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        devices: int | str | None = "auto",
        data_mode: str = "auto",
        prefetch: int = 2,
        stream_chunk_mb: float = 256.0,
        **hyperparameters: Any,
    ):
        self.hp = Hyperparameters.from_kwargs(
            n_latent=n_latent, steps=steps, batch_size=batch_size, seed=seed, **hyperparameters
        )
        self.progress = progress
        self.log_every = log_every
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.devices = devices
        self.data_mode = data_mode
        self.prefetch = prefetch
        self.stream_chunk_mb = stream_chunk_mb
        self._mesh = None
        self._nets: Networks | None = None
        self._state: TrainState | None = None
        self.link_widths: tuple[int, ...] | None = None
        self.latent_: list[np.ndarray] | None = None
        self.preprocessing_: dict[str, Any] | None = None
        self.history_: pd.DataFrame = pd.DataFrame(columns=["step", *METRIC_NAMES])
        self._encode_fns: dict[int, Callable] = {}
        self._decode_fns: dict[int, Callable] = {}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        datasets: Sequence[Any] | Any,
        links: Any = None,
        resume_from: str | Path | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> SCMODAL:
        """Train on `datasets` (N matrices or AnnData) linked by `links` (N-1 (L_i, R_i) pairs or first_columns(s)).

        `datasets` may also be a recipe's `Prepared` inputs (`scmodal_jax.data.recipes`): its link matrices are
        used when `links` is None, and its modality names, feature names and scaling statistics are stored with
        the model (so new cells can be mapped and results named later).
        `callback(step, metrics)` is called at each logging point with host-side floats (means over the steps
        since the last one).
        """
        inputs = training_inputs(datasets, links)
        if inputs.preprocessing is not None:
            self.preprocessing_ = preprocessing_record(inputs.preprocessing)
        if resume_from is not None:
            self._resume(resume_from, inputs.n_features, inputs.link_widths)
        else:
            self._nets, self._state = init_state(self.hp, inputs.n_features)
            self.history_ = pd.DataFrame(columns=["step", *METRIC_NAMES])
        self.link_widths = inputs.link_widths
        self._encode_fns, self._decode_fns = {}, {}

        self._mesh = make_mesh(self.devices, self.hp.batch_size)
        self._state = place(self._state, replicated(self._mesh))
        mode = choose_data_mode(self.data_mode, inputs.dense_nbytes)
        if mode == "device":
            self._train_loop(callback, data=place(inputs.dense(), replicated(self._mesh)))
        else:
            self._train_loop(callback, sources=inputs.sources, links=inputs.links)
        self.latent_ = [self.transform(x, modality=i) for i, x in enumerate(inputs.sources)]
        return self

    def _resume(self, path: str | Path, n_features: tuple[int, ...], widths: tuple[int, ...]) -> None:
        meta = checkpoint.read_metadata(path)
        saved = meta["hyperparameters"]
        current = self.hp.to_dict()
        changed = {k: (saved[k], current[k]) for k in saved if k not in _RESUMABLE_CHANGES and saved[k] != current[k]}
        if changed:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(changed.items()))
            raise ValueError(f"cannot resume from {path}: hyperparameters differ ({detail})")
        if tuple(meta["n_features"]) != n_features:
            raise ValueError(
                f"cannot resume from {path}: it was trained on {meta['n_features']} features, data have {n_features}"
            )
        if tuple(meta["link_widths"]) != widths:
            raise ValueError(f"cannot resume from {path}: link widths {meta['link_widths']} vs {widths} now")
        self._nets, template = init_state(self.hp, n_features)
        self._state = checkpoint.restore(path, template)
        self.history_ = pd.DataFrame(meta.get("history", {}), columns=["step", *METRIC_NAMES])

    def _schedule(self, start: int, max_chunk: int) -> list[tuple[int, int]]:
        """(first step, n steps) of each host call: chunks stop at every logging and checkpoint boundary."""
        hp = self.hp
        boundaries = [self.log_every or hp.steps_per_call]
        if self.checkpoint_dir is not None and self.checkpoint_every:
            boundaries.append(self.checkpoint_every)
        chunks, step = [], start
        while step < hp.steps:
            next_stop = min([hp.steps] + [(step // b + 1) * b for b in boundaries])
            n = min(hp.steps_per_call, max_chunk, next_stop - step)
            chunks.append((step, n))
            step += n
        return chunks

    def _train_loop(self, callback, data=None, sources=None, links=None) -> None:
        hp = self.hp
        trainer = Trainer.for_networks(self._nets, self._mesh)
        start = int(self._state["step"])
        log_every = self.log_every or hp.steps_per_call
        log.info(
            "training on %s with %d of %d device(s), %s data, steps %d -> %d",
            jax.default_backend(),
            1 if self._mesh is None else self._mesh.size,
            jax.device_count(),
            "device-resident" if data is not None else "streamed",
            start,
            hp.steps,
        )
        if data is not None:
            schedule = self._schedule(start, hp.steps_per_call)
            chunks = ((n, lambda state, n=n: trainer.run(state, data, n)) for _, n in schedule)
        else:
            row_bytes = 4 * (sum(s.shape[1] for s in sources) + sum(a.shape[1] + b.shape[1] for a, b in links))
            max_chunk = max(1, int(self.stream_chunk_mb * 2**20 // (row_bytes * hp.batch_size)))
            schedule = self._schedule(start, max_chunk)
            key = np.asarray(jax.device_get(self._state["key"]))
            stream = BatchStream(sources, links, hp.batch_size, key, schedule, stacked_rows(self._mesh), self.prefetch)
            chunks = (
                (n, lambda state, batch=batch: trainer.run_batches(state, batch))
                for (_, n), batch in zip(schedule, stream, strict=True)
            )
        pending: list[dict[str, jax.Array]] = []
        step = start
        bar = tqdm(total=hp.steps, initial=start, disable=not self.progress, desc="scMODAL", unit="step")
        for n, run_chunk in chunks:
            self._state, metrics = run_chunk(self._state)
            pending.append(metrics)
            step += n
            if step % log_every == 0 or step == hp.steps:
                summary = self._flush_metrics(pending, step)
                pending = []
                bar.set_postfix({k: f"{summary[k]:.3g}" for k in ("loss_total", "loss_d", "loss_anchor")})
                if callback is not None:
                    callback(step, summary)
            bar.update(n)
            if self.checkpoint_dir is not None and self.checkpoint_every and step % self.checkpoint_every == 0:
                self.save(self.checkpoint_dir)
        bar.close()

    def _flush_metrics(self, pending: list[dict[str, jax.Array]], step: int) -> dict[str, float]:
        host = jax.device_get(pending)
        stacked = {k: np.concatenate([np.asarray(m[k]) for m in host]) for k in METRIC_NAMES}
        n = len(stacked[METRIC_NAMES[0]])
        rows = pd.DataFrame({"step": np.arange(step - n + 1, step + 1), **stacked})
        if not np.isfinite(rows[list(METRIC_NAMES)].to_numpy()).all():
            bad = rows.loc[~np.isfinite(rows[list(METRIC_NAMES)]).all(axis=1), "step"].iloc[0]
            raise FloatingPointError(f"non-finite loss at step {bad}; lower lr or check the input scaling")
        self.history_ = rows if self.history_.empty else pd.concat([self.history_, rows], ignore_index=True)
        return {k: float(np.mean(v)) for k, v in stacked.items()}

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> Networks:
        if self._nets is None or self._state is None:
            raise RuntimeError("this SCMODAL model is not fitted yet; call fit() or SCMODAL.load()")
        return self._nets

    @property
    def modalities(self) -> list[str]:
        """Modality names (from the recipe that prepared the data), else "0", "1", ..."""
        names = (self.preprocessing_ or {}).get("modalities")
        return list(names) if names else [str(i) for i in range(self.n_datasets)]

    def _check_modality(self, modality: int | str, name: str) -> int:
        nets = self._check_fitted()
        if isinstance(modality, str):
            if modality not in self.modalities:
                raise ValueError(f"{name}={modality!r} is not a modality of this model: {self.modalities}")
            return self.modalities.index(modality)
        if not isinstance(modality, (int, np.integer)) or not 0 <= modality < nets.n_datasets:
            raise ValueError(f"{name}={modality!r} is not a modality index in [0, {nets.n_datasets})")
        return int(modality)

    def _encoder(self, modality: int) -> Callable:
        if modality not in self._encode_fns:
            self._encode_fns[modality] = jax.jit(lambda params, x: encode(self._nets, params, x, modality))
        return self._encode_fns[modality]

    def _decoder(self, modality: int) -> Callable:
        if modality not in self._decode_fns:
            self._decode_fns[modality] = jax.jit(lambda params, z: decode(self._nets, params, z, modality))
        return self._decode_fns[modality]

    def _predict_params(self):
        params = self._state["gen"]
        # Prediction runs on one device; replicated training parameters are read from the first.
        return params if self._mesh is None else jax.device_put(params, jax.local_devices()[0])

    def _batched(self, fn: Callable, source: Any, out_dim: int, batch: int, params=None) -> np.ndarray:
        out = np.empty((source.shape[0], out_dim), np.float32)
        params = self._predict_params() if params is None else params
        padded = np.zeros((batch, source.shape[1]), np.float32)
        for start, block in iter_dense_blocks(source, batch):
            # Padding every block to the batch size keeps one compiled shape for all blocks.
            padded[: len(block)] = block
            padded[len(block) :] = 0.0
            out[start : start + len(block)] = np.asarray(fn(params, jnp.asarray(padded)))[: len(block)]
        return out

    def transform(self, X: Any, modality: int | str = 0, batch_size: int = 8192) -> np.ndarray:
        """E_modality(X): the shared latent of cells of one modality (n x n_latent numpy array).

        X may be dense, sparse or backed; it is encoded `batch_size` rows at a time.
        """
        modality = self._check_modality(modality, "modality")
        x = as_row_source(X, "X")
        expected = self._nets.n_features[modality]
        if x.shape[1] != expected:
            raise ValueError(f"X has {x.shape[1]} features but modality {modality} was trained on {expected}")
        return self._batched(self._encoder(modality), x, self.hp.n_latent, min(batch_size, max(x.shape[0], 1)))

    def impute(self, X: Any, source: int | str, target: int | str, batch_size: int = 8192) -> np.ndarray:
        """G_target(E_source(X)): cells of modality `source` in the feature space of modality `target`."""
        source = self._check_modality(source, "source")
        target = self._check_modality(target, "target")
        z = self.transform(X, modality=source, batch_size=batch_size)
        p_target = self._nets.n_features[target]
        return self._batched(self._decoder(target), z, p_target, min(batch_size, max(len(z), 1)))

    @property
    def n_datasets(self) -> int:
        return self._check_fitted().n_datasets

    @property
    def step(self) -> int:
        return 0 if self._state is None else int(self._state["step"])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save everything needed to predict and to resume training (orbax + JSON)."""
        nets = self._check_fitted()
        history = {c: self.history_[c].tolist() for c in self.history_.columns}
        meta = {
            "hyperparameters": self.hp.to_dict(),
            "n_features": list(nets.n_features),
            "link_widths": list(self.link_widths or ()),
            "history": history,
            "preprocessing": self.preprocessing_,
        }
        return checkpoint.save(path, self._state, meta)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> SCMODAL:
        """A model restored from `save`; `options` are host-side options (progress, log_every, ...)."""
        meta = checkpoint.read_metadata(path)
        model = cls(**meta["hyperparameters"], **options)
        n_features = tuple(meta["n_features"])
        model._nets, template = init_state(model.hp, n_features)
        model._state = checkpoint.restore(path, template)
        model.link_widths = tuple(meta["link_widths"])
        model.history_ = pd.DataFrame(meta.get("history", {}), columns=["step", *METRIC_NAMES])
        model.preprocessing_ = meta.get("preprocessing")
        return model


def preprocessing_record(prepared: Any) -> dict[str, Any]:
    """What a recipe did, in JSON-able form: modality and feature names, per-feature scaling, recipe info."""
    scaling = []
    for sc in prepared.scaling:
        if sc is None or sc.mean is None:
            scaling.append(None)
        else:
            scaling.append({"mean": np.asarray(sc.mean).tolist(), "std": np.asarray(sc.std).tolist(),
                            "max_value": sc.max_value})  # fmt: skip
    info = {}
    for key, value in dict(getattr(prepared, "info", {}) or {}).items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        info[key] = value
    return {
        "modalities": [str(m) for m in prepared.modalities],
        "feature_names": [[str(f) for f in names] for names in prepared.feature_names],
        "scaling": scaling,
        "info": info,
    }

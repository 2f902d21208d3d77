"""SCMODAL: the user-facing estimator. fit as a pipeline of named stages (the loop is `runtime.trainer`), predicts."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ._rows import as_row_source, iter_dense_blocks
from .core.ensemble import init_ensemble, member
from .core.hparams import Hyperparameters
from .core.step import METRIC_NAMES, Networks, TrainState, decode, encode, init_state
from .metrics.quality import COLLAPSE_THRESHOLD, integration_quality
from .runtime import checkpoint
from .runtime.devices import choose_data_mode, local_copy, make_mesh, place, replicated
from .runtime.inputs import TrainingInputs, training_inputs
from .runtime.link_smoothing import smooth_links, smoothed_then_raw
from .runtime.penalty_probe import probe_penalty, wants_probe
from .runtime.stopping import STOP_SUBSAMPLE_SEED, StopMonitor
from .runtime.trainer import SIGNAL_COLUMN, History, LoopOptions, ProgressView, TrainingData, train

log = logging.getLogger(__name__)


class SCMODAL:
    """Integration of N >= 2 unpaired single-cell datasets linked by a few shared features.

    Parameters are the hyperparameters of `scmodal_jax.core.hparams.Hyperparameters` (the original's, plus a
    discriminator gradient penalty and smoothed anchor links: see there),
    plus host-side options that do not change what is computed:
    `progress` (a progress bar), `log_every` (steps between metric syncs to the host; defaults to
    `steps_per_call`), `checkpoint_dir` / `checkpoint_every` (periodic resumable checkpoints),
    `devices` ("auto" = every local device whose count divides `batch_size`, logged when some are left out; N:
    the first N devices; or a list of device indices such as [0, 2]: batch rows sharded over them, parameters
    replicated),
    `data_mode` ("device": data resident on the device; "stream": batches gathered on the host from dense,
    sparse or backed data and prefetched; "auto": device when the dense data take at most half the device's
    memory), `prefetch` (streamed chunks prepared ahead) and `stream_chunk_mb` (size cap of one streamed chunk).
    `preset="paper"` starts from the original scMODAL's training (`scmodal_jax.core.hparams.PAPER`: every
    mechanism beyond the paper off) instead of this package's defaults; explicit hyperparameters still win.

    After `fit`, `fit_report_` is a plain dict describing how the last fit ran (later keys may be added):
    "data_mode" ("device" or "stream", the path taken), "streamed_chunks" (batches the stream delivered; 0 on
    the device path), "devices" (size of the device mesh), "platform" (JAX backend) and "quality" (the label-free
    `scmodal_jax.metrics.quality.integration_quality` of the latents: link_consistency, anchor_contrast and a
    `collapsed` flag, also logged as a warning).
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
        devices: int | str | Sequence[int] | None = "auto",
        data_mode: str = "auto",
        prefetch: int = 2,
        n_seeds: int = 1,
        stream_chunk_mb: float = 256.0,
        preset: str = "default",
        **hyperparameters: Any,
    ):
        self.hp = Hyperparameters.from_preset(
            preset, n_latent=n_latent, steps=steps, batch_size=batch_size, seed=seed, **hyperparameters
        )
        # What the user asked for; `fit` resolves it into self.hp (the penalty probe's decision, an ensemble's seed).
        self._requested_hp = self.hp
        self.progress = progress
        self.log_every = log_every
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.devices = devices
        self.data_mode = data_mode
        self.prefetch = prefetch
        if not isinstance(n_seeds, (int, np.integer)) or isinstance(n_seeds, bool) or n_seeds < 1:
            raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
        self.n_seeds = int(n_seeds)
        self.stream_chunk_mb = stream_chunk_mb
        self._mesh = None
        self._nets: Networks | None = None
        self._state: TrainState | None = None
        self.link_widths: tuple[int, ...] | None = None
        self.latent_: list[np.ndarray] | None = None
        self.preprocessing_: dict[str, Any] | None = None
        self.obs_names_: list[pd.Index | None] | None = None  # cells of the fitted datasets (saved with latent_)
        self.history_: pd.DataFrame = pd.DataFrame(columns=["step", *METRIC_NAMES])
        self._history = History(self.history_)
        self.fit_report_: dict[str, Any] = {}
        self._encode_fns: dict[int, Callable] = {}
        self._decode_fns: dict[int, Callable] = {}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        datasets: Sequence[Any] | Any,
        links: Any = None,
        resume_from: str | Path | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
        *,
        modalities: Sequence[str] | None = None,
        layer: str | Mapping[str, str | None] | None = None,
        recipe: str | Any = None,
        recipe_kwargs: dict[str, Any] | None = None,
    ) -> SCMODAL:
        """Train on `datasets` linked by `links`.

        `datasets`: N >= 2 matrices (already scaled), a list or dict of AnnData, a MuData (modalities from
        `mdata.mod`, in `modalities=` order or the MuData's), or a recipe's `Prepared`; `layer=` reads
        `adata.layers[layer]` instead of `.X`: one name for every modality, or a dict by modality name
        (`{"rna": "counts", "prot": None}`, None = `.X`). `recipe=`: a recipe name ("rna_protein", "protein_protein",
        "rna_atac", "generic"; options in `recipe_kwargs`) run on raw AnnData, or a `Prepared` made from them.
        Without a recipe the values are taken as already scaled (raw counts there get a warning).
        `links`: N-1 (L_i, R_i) matrix pairs, `first_columns(s)`, or by feature name: per consecutive pair a
        table of (feature of dataset i, feature of dataset i+1) names (list of pairs, or a two-column DataFrame
        for two datasets) or "protein_gene" / "shared_markers" (built-in tables); a recipe has default links.
        With a recipe, the modality names, feature names and scaling statistics are stored with the model (so
        results can be written back with `add_results` and new cells mapped later); see
        `scmodal_jax.anndata_api`. `callback(step, metrics)` is called at each logging point with host-side
        floats (means over the steps since the last one).

        The stages, in order: inputs (checked once, densified once), the penalty regime (a short probe,
        `disc_gp_auto`), the anchor links (smoothed, `link_smoothing`), training (`runtime.trainer.train`) and the
        label-free score of the result (`fit_report_["quality"]`).
        """
        inputs = self._inputs(datasets, links, modalities, layer, recipe, recipe_kwargs)
        if self.n_seeds > 1:
            self._check_ensemble(resume_from)
        data = self._training_data(inputs)
        progress = ProgressView(self.progress)
        try:
            if resume_from is None:
                self._decide_regime(data, inputs.links, progress)
            anchor_links = self._anchor_links(inputs, progress)
            self._start(inputs, resume_from)
            self._train(data, anchor_links, callback, progress, self._monitor(inputs, resume_from))
        finally:
            progress.close()
        if self.n_seeds > 1:
            self._keep_best_member(inputs)
        self.latent_ = [self.transform(x, modality=i) for i, x in enumerate(inputs.sources)]
        self._score(inputs)
        return self

    def _inputs(self, datasets, links, modalities, layer, recipe, recipe_kwargs) -> TrainingInputs:
        """The user's datasets and links, checked once; the recipe's record and the cells' names are kept."""
        # The AnnData/MuData glue lives above data/ and analysis/; imported here so that model.py imports neither.
        from .anndata_api import fit_inputs

        given = fit_inputs(
            datasets, links, modalities=modalities, layer=layer, recipe=recipe, recipe_kwargs=recipe_kwargs
        )
        inputs = training_inputs(given.datasets, given.links)
        if inputs.preprocessing is not None:
            self.preprocessing_ = inputs.preprocessing.record()
        elif given.record is not None:
            self.preprocessing_ = given.record
        self.obs_names_ = given.obs_names
        self.latent_ = None  # a checkpoint written during this fit must not carry the previous fit's latent
        return inputs

    def _training_data(self, inputs: TrainingInputs) -> TrainingData:
        """The device mesh and the data mode, and the data densified and placed once for every training stage."""
        # Ensemble members run vmapped on one device (several devices would only replicate them).
        self._mesh = None if self.n_seeds > 1 else make_mesh(self.devices, self.hp.batch_size)
        mode = choose_data_mode(self.data_mode, inputs.dense_nbytes)
        if mode == "stream" and self.n_seeds > 1:
            raise ValueError("n_seeds > 1 needs the data on the device, but they would be streamed (too large)")
        self.fit_report_ = {"data_mode": mode, "streamed_chunks": 0, "platform": jax.default_backend(),
                            "devices": 1 if self._mesh is None else int(self._mesh.size)}  # fmt: skip
        return TrainingData(inputs.sources, mode, self._mesh)

    def _loop_options(self) -> LoopOptions:
        return LoopOptions(log_every=self.log_every, checkpoint_every=self.checkpoint_every, prefetch=self.prefetch,
                           stream_chunk_mb=self.stream_chunk_mb)  # fmt: skip

    def _decide_regime(self, data: TrainingData, raw_links: Any, progress: ProgressView) -> None:
        """self.hp from the requested settings: the penalty kept or dropped by a probe where `disc_gp_auto` asks."""
        self.hp = self._requested_hp
        if wants_probe(self.hp):
            progress.stage("penalty probe")
            progress.grow(self.hp.disc_gp_probe_steps)
            self.hp, reading = probe_penalty(self.hp, data, raw_links, self._loop_options(), progress)
            self.fit_report_["disc_gp_probe"] = reading

    def _anchor_links(self, inputs: TrainingInputs, progress: ProgressView) -> list[tuple[np.ndarray, np.ndarray]]:
        """The links the anchors are searched on: smoothed over each dataset's neighbours (`link_smoothing`).
        The quality score keeps the raw ones."""
        hp = self.hp
        if hp.link_smoothing > 0:
            progress.stage("link smoothing")
        smoothing: dict[str, Any] = {}
        anchor_links = smooth_links(
            inputs.sources, inputs.links, hp.link_smoothing, hp.link_smoothing_k, seed=hp.seed,
            auto=hp.link_smoothing_auto, details=smoothing,
        )  # fmt: skip
        if hp.link_smoothing > 0 and hp.link_smoothing_until > 0:
            anchor_links = smoothed_then_raw(anchor_links, inputs.links)
        self.fit_report_["link_smoothing"] = smoothing["weights"]  # per dataset pair
        if smoothing["scores"]:
            self.fit_report_["link_smoothing_scores"] = smoothing["scores"]
        return anchor_links

    def _start(self, inputs: TrainingInputs, resume_from: str | Path | None) -> None:
        """The state training starts from: restored from a checkpoint, or fresh (one seed or a stack of them)."""
        if resume_from is not None:
            self._resume(resume_from, inputs.n_features, inputs.link_widths)
        else:
            if self.n_seeds > 1:
                self._nets, self._state = init_ensemble(self.hp, inputs.n_features, self._member_seeds())
            else:
                self._nets, self._state = init_state(self.hp, inputs.n_features)
            self.history_ = pd.DataFrame(columns=["step", *METRIC_NAMES])
        self._history = History(self.history_)
        self.link_widths = inputs.link_widths
        self._encode_fns, self._decode_fns = {}, {}
        self._state = place(self._state, replicated(self._mesh))

    def _monitor(self, inputs: TrainingInputs, resume_from: str | Path | None) -> StopMonitor | None:
        """The convergence signal and stopping rule (`early_stop`), continuing a resumed run's own record."""
        hp = self.hp
        if not hp.early_stop:
            return None
        monitor = StopMonitor(
            self._nets, inputs.sources, inputs.links, hp.stop_every, hp.stop_window, hp.stop_tol, hp.stop_min_steps,
            hp.stop_cells, STOP_SUBSAMPLE_SEED, members=self.n_seeds,
        )  # fmt: skip
        if resume_from is not None:
            record = (checkpoint.read_metadata(resume_from).get("fit_report") or {}).get("stop")
            if record:
                monitor.restore(record)
        return monitor

    def _train(self, data: TrainingData, anchor_links: Any, callback: Any, progress: ProgressView,
               monitor: StopMonitor | None) -> None:  # fmt: skip
        progress.stage("training")
        start = int(np.asarray(self._state["step"]).reshape(-1)[0])
        progress.grow(max(self.hp.steps - start, 0))
        stopped_members: dict[int, TrainState] = {}

        def checkpoint(state: TrainState) -> None:
            self._state, self.history_ = state, self._history.frame
            if monitor is not None:
                self.fit_report_["stop"] = monitor.record()
            self.save(self.checkpoint_dir)

        def keep_stopped(members: list[int], state: TrainState) -> None:
            # an ensemble member that stops is kept as it is then, as its single-seed run would end
            for m in members:
                stopped_members[m] = member(state, m)

        save = checkpoint if self.checkpoint_dir is not None and self.checkpoint_every else None
        self._state, report = train(
            self._nets, self._state, data, anchor_links, self._history, self._loop_options(),
            ensemble=self.n_seeds > 1, callback=callback, checkpoint=save, progress=progress, monitor=monitor,
            on_member_stop=keep_stopped if self.n_seeds > 1 else None,
            observe=lambda state: setattr(self, "_state", state),  # a callback may encode cells mid-training
        )  # fmt: skip
        if stopped_members:
            members = [stopped_members.get(m, member(self._state, m)) for m in range(self.n_seeds)]
            self._state = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *members)
        self.history_ = self._history.frame
        self.fit_report_["streamed_chunks"] = report["streamed_chunks"]
        if monitor is not None:
            self.fit_report_["stop"] = monitor.record()
            self.fit_report_["stopped_at"] = report["stopped_at"]
        if report["stopped_at"] is not None:
            progress.finish()  # the bar ends where training did, not at the maximum

    def _score(self, inputs: TrainingInputs) -> None:
        """The label-free quality of the latents against the raw links; a collapsed run is logged as a warning."""
        self.fit_report_["quality"] = quality = integration_quality(self.latent_, inputs.links, k=self.hp.k_anchor)
        if quality["collapsed"]:
            log.warning(
                "this run looks collapsed: latent cross-modality neighbours contradict the linked features "
                "(link_consistency %.2f < %.2f on a dataset pair); try other seeds (n_seeds=3) or more anchor "
                "weight (lambda_anchor=5)",
                quality["link_consistency_min"], COLLAPSE_THRESHOLD,
            )  # fmt: skip

    def _member_seeds(self) -> list[int]:
        return [self.hp.seed + i for i in range(self.n_seeds)]

    def _check_ensemble(self, resume_from: Any) -> None:
        if resume_from is not None:
            raise ValueError("n_seeds > 1 cannot resume: resume the chosen seed's checkpoint with n_seeds=1")
        if self.checkpoint_dir is not None and self.checkpoint_every:
            raise ValueError("n_seeds > 1 writes no periodic checkpoints; save() the model after fit instead")
        if self.data_mode == "stream":
            raise ValueError("n_seeds > 1 trains on device-resident data; data_mode='stream' is not supported")

    def _keep_best_member(self, inputs: Any) -> None:
        """Score every member without labels, keep the best one (as if it had been trained alone)."""
        stacked, seeds, members = self._state, self._member_seeds(), []
        for i, seed in enumerate(seeds):
            self._state = member(stacked, i)
            latents = [self.transform(x, modality=m) for m, x in enumerate(inputs.sources)]
            quality = integration_quality(latents, inputs.links, k=self.hp.k_anchor)
            members.append({"seed": seed, **quality})
        scores = [m["link_consistency"] if np.isfinite(m["link_consistency"]) else -np.inf for m in members]
        best = int(np.argmax(scores))
        self._state = member(stacked, best)
        self.hp = dataclasses.replace(self.hp, seed=seeds[best])
        record = self.fit_report_.get("stop")
        signal = {s: v[best] for s, v in zip(record["steps"], record["values"], strict=True)} if record else None
        self._history.keep_member(best, signal)
        stop_step = record["stop_step"][best] if record else None
        if stop_step is not None:
            self._history.truncate(stop_step)
            self.fit_report_["stopped_at"] = stop_step
        self.history_ = self._history.frame
        self.fit_report_["members"] = members
        self.fit_report_["chosen_seed"] = seeds[best]
        log.info("ensemble of %d seeds: kept seed %d (link_consistency %s)", len(seeds), seeds[best],
                 ", ".join(f"{m['link_consistency']:.3f}" for m in members))  # fmt: skip

    def _resume(self, path: str | Path, n_features: tuple[int, ...], widths: tuple[int, ...]) -> None:
        meta = checkpoint.read_metadata(path)
        self.hp = checkpoint.resumable_hyperparameters(path, meta, self._requested_hp, n_features, widths)
        self._nets, template = init_state(self.hp, n_features)
        self._state = checkpoint.restore(path, template)
        self.history_ = _history_frame(meta)

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
        # In a multi-process run the parameters span other processes' devices; every process predicts alone.
        return params if self._mesh is None else local_copy(params)

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

        X is in the model's input space (scaled, the model's columns, as `fit` saw it); dense, sparse or backed,
        encoded `batch_size` rows at a time. Raw counts: `scmodal_jax.analysis.encode` (stored preprocessing).
        """
        modality = self._check_modality(modality, "modality")
        x = as_row_source(X, "X")
        expected = self._nets.n_features[modality]
        if x.shape[1] != expected:
            raise ValueError(f"X has {x.shape[1]} features but modality {modality} was trained on {expected}")
        return self._batched(self._encoder(modality), x, self.hp.n_latent, min(batch_size, max(x.shape[0], 1)))

    def impute(self, X: Any, source: int | str, target: int | str, batch_size: int = 8192) -> np.ndarray:
        """G_target(E_source(X)): cells of modality `source` in the feature space of modality `target`.

        X and the result are in the model's input space; raw counts: `scmodal_jax.analysis.impute(input="counts")`.
        """
        source = self._check_modality(source, "source")
        target = self._check_modality(target, "target")
        z = self.transform(X, modality=source, batch_size=batch_size)
        p_target = self._nets.n_features[target]
        return self._batched(self._decoder(target), z, p_target, min(batch_size, max(len(z), 1)))

    def add_results(
        self,
        data: Any,
        impute: bool | str | Sequence[str] = False,
        *,
        layer: str | Mapping[str, str | None] | None = None,
        input: str | None = None,
        scale: str | None = None,
        modalities: Sequence[str] | None = None,
        key_added: str | None = None,
    ) -> Any:
        """Write the results into the user's own AnnData objects (a list in model order, a dict or a MuData) and
        return them.

        Each object gets `obsm[key_added]` (the shared latent, by default `obsm["X_scmodal"]`): `latent_` for
        the cells the model was fitted on (same obs names), else its cells encoded with the stored
        preprocessing. `impute` (True: every other modality; or target modality names) adds
        `obsm['imputed_<target>']`, DataFrames named by the target's features, on the recipe's log1p scale
        (`scale="scaled"`: the model's z-scored space). `input` is how the objects' values (`.X` or `layer`, by
        default the layer the model was fitted on) relate to the model: "counts" (default after a recipe),
        "normalized" or "scaled" (default otherwise). A dict or MuData may hold a subset of the modalities,
        matched by name. A MuData also gets `mdata.obsm[key_added]` (and `mdata.obsm['imputed_<target>']`): one
        row per cell of `mdata.obs_names`, the mean over the modalities holding that cell (its two latents for a
        CITE-seq cell), NaN where none does.
        """
        self._check_fitted()
        # The AnnData/MuData glue lives above data/ and analysis/; imported here so that model.py imports neither.
        from .anndata_api import add_results

        return add_results(self, data, impute, layer=layer, input=input, scale=scale, modalities=modalities,
                           key_added=key_added)  # fmt: skip

    @property
    def n_datasets(self) -> int:
        return self._check_fitted().n_datasets

    @property
    def step(self) -> int:
        return 0 if self._state is None else int(self._state["step"])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save everything needed to predict and to resume training (orbax + JSON), and the result of the last fit:
        the fitted cells' latent and names (`latent_`, `obs_names_`) and `fit_report_`, so that a loaded model
        writes them back (`add_results`, `to_anndata`) without refitting."""
        nets = self._check_fitted()
        # NaN (the stopping signal between its measurements) is stored as null: model.json stays strict JSON
        history = {c: [None if v != v else v for v in self.history_[c].tolist()] for c in self.history_.columns}
        meta = {
            "hyperparameters": self.hp.to_dict(),
            "n_features": list(nets.n_features),
            "link_widths": list(self.link_widths or ()),
            "history": history,
            "preprocessing": self.preprocessing_,
            "fit_report": self.fit_report_,
        }
        arrays = {}
        if self.latent_ is not None:
            for i, z in enumerate(self.latent_):
                arrays[f"latent_{i}"] = np.asarray(z, np.float32)
                names = None if self.obs_names_ is None else self.obs_names_[i]
                if names is not None:
                    arrays[f"obs_names_{i}"] = np.asarray([str(n) for n in names], dtype=str)
        return checkpoint.save(path, self._state, meta, arrays)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> SCMODAL:
        """A model restored from `save`; `options` are host-side options (progress, log_every, ...).

        A save made after a fit carries the fitted cells' latent and names: `latent_`, `add_results(data)` for
        those cells and `to_anndata` work as in the process that fitted it. A periodic checkpoint (written during
        training) or a save from before 0.2 has none: `latent_` is then None."""
        meta = checkpoint.read_metadata(path)
        model = cls(**meta["hyperparameters"], **options)
        n_features = tuple(meta["n_features"])
        model._nets, template = init_state(model.hp, n_features)
        model._state = checkpoint.restore(path, template)
        model.link_widths = tuple(meta["link_widths"])
        model.history_ = _history_frame(meta)
        model.preprocessing_ = meta.get("preprocessing")
        model.fit_report_ = meta.get("fit_report") or {}
        arrays = checkpoint.read_arrays(path) or {}
        if "latent_0" in arrays:
            model.latent_ = [arrays[f"latent_{i}"] for i in range(len(n_features))]
            model.obs_names_ = [
                pd.Index(arrays[f"obs_names_{i}"].astype(object)) if f"obs_names_{i}" in arrays else None
                for i in range(len(n_features))
            ]
        return model


def _history_frame(meta: dict[str, Any]) -> pd.DataFrame:
    """The per-step history stored in a checkpoint (with the stopping signal where it was measured)."""
    stored = meta.get("history", {})
    columns = ["step", *METRIC_NAMES] + ([SIGNAL_COLUMN] if SIGNAL_COLUMN in stored else [])
    return pd.DataFrame(stored, columns=columns)

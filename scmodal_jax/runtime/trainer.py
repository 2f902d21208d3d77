"""The training loop: run a train state for its steps on prepared data, device-resident or streamed, on a mesh.

One loop serves every training a fit does: the penalty probe, the main run and an ensemble of seeds. It knows
nothing of the estimator; it is handed

* `TrainingData`: the datasets, densified and placed on the device once (device mode) or kept as row sources
  that `BatchStream` gathers batches from (stream mode), with the mesh the batch rows are sharded over;
* the networks (`core.step.Networks`, whose hyperparameters give the steps, batch size and steps per call) and a
  state (fresh, restored from a checkpoint, or a stack of ensemble members);
* the link matrices the anchors are searched on (raw for the probe, smoothed for the main run);
* `LoopOptions` (host-side settings that never change what is computed), a `History` to extend, and optional
  hooks: `callback(step, means)` at each logging point, `checkpoint(state)` at each checkpoint step, a
  `ProgressView` shared by the stages of one fit, and a `runtime.stopping.StopMonitor` that ends training
  once its label-free signal has levelled off (`on_member_stop(members, state)` sees an ensemble's members
  stop one by one).

`train` returns the final state; the history holds one row per step (ensemble: the members' mean, with each
member's own rows kept for the one that is chosen).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._rows import densify
from ..core.ensemble import EnsembleTrainer
from ..core.step import METRIC_NAMES, Data, Networks, Trainer, TrainState
from .devices import place, replicated, stacked_rows
from .streaming import BatchStream

log = logging.getLogger(__name__)

__all__ = ["SIGNAL_COLUMN", "History", "LoopOptions", "ProgressView", "TrainingData", "schedule", "train"]

Links = Sequence[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LoopOptions:
    """Host-side settings of the loop: where it syncs, checkpoints and how it streams (never what it computes)."""

    log_every: int | None = None  # steps between metric syncs to the host; None = the steps per call
    checkpoint_every: int | None = None  # steps between checkpoints; None or 0 = none
    prefetch: int = 2  # streamed chunks prepared ahead
    stream_chunk_mb: float = 256.0  # size cap of one streamed chunk


class TrainingData:
    """The datasets of one fit, ready to train from: densified and placed once ("device") or streamed ("stream").

    Every training of the fit (probe, main run, ensemble) reads them from here; only the links change per run.
    """

    def __init__(self, sources: Sequence[Any], mode: str, mesh: Any = None):
        if mode not in ("device", "stream"):
            raise ValueError(f"mode must be 'device' or 'stream', got {mode!r}")
        self.sources = list(sources)
        self.mode = mode
        self.mesh = mesh
        self._placed = place(tuple(densify(x) for x in self.sources), replicated(mesh)) if mode == "device" else None

    @property
    def n_features(self) -> tuple[int, ...]:
        return tuple(int(x.shape[1]) for x in self.sources)

    def device_data(self, links: Links) -> Data:
        """(datasets, links) on the device, for the device-resident path."""
        if self._placed is None:
            raise ValueError("streamed data have no device-resident copy")
        return self._placed, place(tuple(links), replicated(self.mesh))


SIGNAL_COLUMN = "stop_signal"  # the stopping signal in the history, at the steps it was measured (NaN elsewhere)


class History:
    """Per-step metrics of a fit: `frame` (one row per step), filled chunk by chunk, checked for finite values.

    An ensemble's chunks carry (steps, members) arrays: `frame` shows the members' mean meanwhile and
    `keep_member(i)` replaces it with member i's own rows once the member is chosen.
    """

    def __init__(self, frame: pd.DataFrame | None = None):
        self.frame = pd.DataFrame(columns=["step", *METRIC_NAMES]) if frame is None else frame
        self._members: list[dict[str, np.ndarray]] = []

    def extend(self, pending: Sequence[dict[str, jax.Array]], step: int) -> None:
        """Append the metrics of the chunks that end at `step` (still on the device) as host rows."""
        host = jax.device_get(list(pending))
        stacked = {k: np.concatenate([np.asarray(m[k]) for m in host]) for k in METRIC_NAMES}
        if stacked[METRIC_NAMES[0]].ndim == 2:
            self._members.append(stacked)
            stacked = {k: v.mean(axis=1) for k, v in stacked.items()}
        n = len(stacked[METRIC_NAMES[0]])
        rows = pd.DataFrame({"step": np.arange(step - n + 1, step + 1), **stacked})
        values = rows[list(METRIC_NAMES)]
        if not np.isfinite(values.to_numpy()).all():
            bad = rows.loc[~np.isfinite(values).all(axis=1), "step"].iloc[0]
            raise FloatingPointError(f"non-finite loss at step {bad}; lower lr or check the input scaling")
        self.frame = rows if self.frame.empty else pd.concat([self.frame, rows], ignore_index=True)

    def mark(self, step: int, column: str, value: float) -> None:
        """Set `column` at `step` (a measurement taken at that step only; the column appears with its first value)."""
        if column not in self.frame.columns:
            self.frame[column] = np.nan
        self.frame.loc[self.frame["step"] == step, column] = value

    def truncate(self, last_step: int) -> None:
        """Drop the rows after `last_step` (an ensemble member that stopped before the others)."""
        self.frame = self.frame[self.frame["step"] <= last_step].reset_index(drop=True)

    def means_since(self, last_step: int) -> dict[str, float]:
        rows = self.frame[self.frame["step"] > last_step]
        return {k: float(np.mean(rows[k].to_numpy(np.float32))) for k in METRIC_NAMES}

    def keep_member(self, i: int, signal: dict[int, float] | None = None) -> None:
        """Member `i`'s own rows (and its own stopping signal, by step) in place of the members' mean."""
        if not self._members:
            return
        chosen = {k: np.concatenate([m[k][:, i] for m in self._members]) for k in METRIC_NAMES}
        steps = self.frame["step"].to_numpy()[-len(chosen[METRIC_NAMES[0]]) :]
        self.frame = pd.DataFrame({"step": steps, **chosen})
        for step, value in (signal or {}).items():
            self.mark(step, SIGNAL_COLUMN, value)


class ProgressView:
    """One progress bar for every stage of a fit (probe, link smoothing, training), labelled by stage."""

    def __init__(self, enabled: bool, total: int = 0, initial: int = 0):
        self._bar = tqdm(total=total, initial=initial, disable=not enabled, desc="scMODAL", unit="step")

    def stage(self, label: str) -> None:
        self._bar.set_description(f"scMODAL [{label}]", refresh=True)

    def grow(self, steps: int) -> None:
        """Add `steps` to the total (a stage whose length is known only once the fit has reached it)."""
        self._bar.total = (self._bar.total or 0) + int(steps)
        self._bar.refresh()

    def advance(self, steps: int, postfix: dict[str, float] | None = None) -> None:
        if postfix is not None:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(steps)

    def finish(self) -> None:
        """End the bar where the work ended (training that stopped before its maximum)."""
        self._bar.total = self._bar.n
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def schedule(start: int, steps: int, max_chunk: int, boundaries: Sequence[int]) -> list[tuple[int, int]]:
    """(first step, n steps) of each host call from `start` to `steps`: at most `max_chunk` steps each, and a
    call ends at every multiple of each boundary (logging, checkpoints), so the host sees those steps."""
    chunks, step = [], start
    boundaries = [b for b in boundaries if b]
    while step < steps:
        next_stop = min([steps] + [(step // b + 1) * b for b in boundaries])
        n = min(max_chunk, next_stop - step)
        chunks.append((step, n))
        step += n
    return chunks


def _chunks(nets: Networks, state: TrainState, data: TrainingData, links: Links, ensemble: bool, options: LoopOptions,
            boundaries: Sequence[int], counter: list[int]) -> tuple[list[tuple[int, int]], Iterator]:  # fmt: skip
    """The schedule and an iterator of (n steps, run(state) -> (state, metrics)) per host call."""
    hp = nets.hp
    start = int(np.asarray(state["step"]).reshape(-1)[0])  # ensemble members share the step
    trainer = EnsembleTrainer.for_networks(nets) if ensemble else Trainer.for_networks(nets, data.mesh)
    if data.mode == "device":
        device_data = data.device_data(links)
        plan = schedule(start, hp.steps, hp.steps_per_call, boundaries)
        return plan, ((n, lambda s, n=n: trainer.run(s, device_data, n)) for _, n in plan)
    row_bytes = 4 * (sum(s.shape[1] for s in data.sources) + sum(a.shape[1] + b.shape[1] for a, b in links))
    max_chunk = max(1, int(options.stream_chunk_mb * 2**20 // (row_bytes * hp.batch_size)))
    plan = schedule(start, hp.steps, min(hp.steps_per_call, max_chunk), boundaries)
    key = np.asarray(jax.device_get(state["key"]))
    stream = BatchStream(data.sources, links, hp.batch_size, key, plan, stacked_rows(data.mesh), options.prefetch)

    def counted() -> Iterator:
        for batch in stream:
            counter[0] += 1  # the witness that batches really came from the stream
            yield batch

    runs = ((n, lambda s, b=b: trainer.run_batches(s, b)) for (_, n), b in zip(plan, counted(), strict=True))
    return plan, runs


def train(
    nets: Networks,
    state: TrainState,
    data: TrainingData,
    links: Links,
    history: History,
    options: LoopOptions | None = None,
    *,
    ensemble: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint: Callable[[TrainState], None] | None = None,
    progress: ProgressView | None = None,
    monitor: Any = None,
    on_member_stop: Callable[[list[int], TrainState], None] | None = None,
    observe: Callable[[TrainState], None] | None = None,
) -> tuple[TrainState, dict[str, Any]]:
    """Train `state` to `nets.hp.steps` steps, or until `monitor` stops it; returns the final state and a report
    ({"streamed_chunks": n, "stopped_at": step or None}).

    `history` is extended with every step's metrics, synced to the host every `log_every` steps (and before each
    checkpoint and at each evaluation of the monitor). `callback(step, means)` gets the means over the steps since
    the last sync (with "stop_signal" where the monitor measured it); `checkpoint(state)` is called every
    `checkpoint_every` steps and when training stops early. `observe(state)` sees the current state just before
    each callback (so that a callback may read the model mid-training; the state is donated at the next chunk).
    """
    hp = nets.hp
    options = options or LoopOptions()
    log_every = options.log_every or hp.steps_per_call
    checkpoint_every = options.checkpoint_every if checkpoint is not None else None
    streamed = [0]
    if monitor is not None and monitor.stopped:  # resumed from a run that had already stopped
        return state, {"streamed_chunks": 0, "stopped_at": max(s for s in monitor.stop_step)}
    boundaries = [log_every, checkpoint_every or 0, 0 if monitor is None else monitor.every]
    plan, runs = _chunks(nets, state, data, links, ensemble, options, boundaries, streamed)
    start = plan[0][0] if plan else hp.steps
    log.info(
        "training on %s with %d of %d device(s), %s data, steps %d -> %d", jax.default_backend(),
        1 if data.mesh is None else data.mesh.size, jax.device_count(),
        "device-resident" if data.mode == "device" else "streamed", start, hp.steps,
    )  # fmt: skip
    pending: list[dict[str, jax.Array]] = []  # metrics of chunks not yet in the history
    step = last_log = start
    stopped_at = None
    for n, run_chunk in runs:
        state, metrics = run_chunk(state)
        pending.append(metrics)
        step += n
        signal = None
        if monitor is not None and step % monitor.every == 0:
            newly = monitor.evaluate(state["gen"], step)
            signal = float(np.mean(monitor.values[-1]))
            if newly and on_member_stop is not None:
                on_member_stop(newly, state)
            stopped_at = step if monitor.stopped else None
        checkpoint_due = bool(checkpoint_every) and (step % checkpoint_every == 0 or stopped_at is not None)
        postfix = None
        if step % log_every == 0 or step == hp.steps or signal is not None:
            history.extend(pending, step)
            pending = []
            summary = history.means_since(last_log)
            last_log = step
            postfix = {k: summary[k] for k in ("loss_total", "loss_d", "loss_anchor")}
            if signal is not None:
                history.mark(step, SIGNAL_COLUMN, signal)
                summary[SIGNAL_COLUMN] = postfix["signal"] = signal
            if callback is not None:
                if observe is not None:
                    observe(state)
                callback(step, summary)
        elif checkpoint_due:
            history.extend(pending, step)
            pending = []
        if progress is not None:
            progress.advance(n, postfix)
        if checkpoint_due:
            checkpoint(state)
        if stopped_at is not None:
            log.info("stopped at step %d of at most %d: the stopping signal has levelled off", step, hp.steps)
            break
    return state, {"streamed_chunks": streamed[0], "stopped_at": stopped_at}

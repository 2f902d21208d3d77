"""Streamed training input: batches sampled on the host from dense, CSR or backed data, prefetched to the device.

The row indices of step t are those the device-resident path draws (`step.sample_indices` with the same base
key and step), computed on the host CPU, so both paths train on identical batches. In a multi-process run every
process draws the same indices but gathers only the rows its own devices hold.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np

from .._rows import take_rows
from ..core.step import Batch, sample_indices
from .devices import assemble_rows, process_rows


class BatchStream:
    """Iterates device-resident stacked batches, one per chunk of the schedule, `prefetch` chunks ahead.

    A background thread gathers the rows of the next chunks (and copies them to the device) while the device
    trains on the current one: double buffering with `prefetch=2`.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        links: Sequence[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
        key: np.ndarray,
        schedule: Sequence[tuple[int, int]],
        sharding: Any = None,
        prefetch: int = 2,
    ):
        self.sources = list(sources)
        self.links = list(links)
        self.batch_size = batch_size
        self.schedule = list(schedule)
        self.sharding = sharding
        self.prefetch = max(1, int(prefetch))
        cpu = jax.local_devices(backend="cpu")[0]  # jax.devices() also lists other processes' devices
        n_cells = [int(s.shape[0]) for s in self.sources]
        self._key = jax.device_put(np.asarray(key), cpu)
        self._cpu = cpu
        self._indices = jax.jit(
            jax.vmap(lambda key, step: sample_indices(key, step, n_cells, batch_size), in_axes=(None, 0))
        )

    def host_batch(self, first_step: int, n_steps: int, rows: slice = slice(None)) -> Batch:
        """Stacked numpy batch of steps first_step .. first_step + n_steps - 1: arrays of shape (n_steps, B, ...).

        `rows` selects part of each step's B rows (a process's share of a batch sharded over processes).
        """
        with jax.default_device(self._cpu):
            steps = jax.device_put(np.arange(first_step, first_step + n_steps, dtype=np.int32), self._cpu)
            idx = [np.asarray(i)[:, rows] for i in self._indices(self._key, steps)]  # per dataset (n_steps, b)
        shape = (n_steps, idx[0].shape[1])
        xs = tuple(take_rows(src, i.ravel()).reshape(*shape, -1) for src, i in zip(self.sources, idx, strict=True))
        link_rows = tuple(
            (left[idx[p].ravel()].reshape(*shape, -1), right[idx[p + 1].ravel()].reshape(*shape, -1))
            for p, (left, right) in enumerate(self.links)
        )
        return xs, link_rows

    def _device_batch(self, first: int, n: int) -> Batch:
        if self.sharding is None:
            return jax.device_put(self.host_batch(first, n))
        rows = process_rows(self.sharding, (n, self.batch_size, 1), axis=1)
        local = self.host_batch(first, n, rows)
        return jax.tree_util.tree_map(
            lambda a: assemble_rows(a, self.sharding, (n, self.batch_size, *a.shape[2:])), local
        )

    def _produce(self, out: queue.Queue, stop: threading.Event) -> None:
        try:
            for first, n in self.schedule:
                if stop.is_set():
                    return
                out.put(self._device_batch(first, n))
            out.put(None)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            out.put(err)

    def __iter__(self) -> Iterator[Batch]:
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(out, stop), daemon=True)
        worker.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.1)

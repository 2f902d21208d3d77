"""Device placement: which devices train, the data-parallel mesh, and whether data fit on the device.

Batch rows are sharded over a 1-D mesh axis "data"; parameters, optimiser states and device-resident data are
replicated. One device means no mesh at all (plain single-device jit).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

DATA_MODES = ("auto", "device", "stream")
# Device-resident data may take at most this share of the device's (or, on CPU, the host's free) memory.
DEVICE_DATA_FRACTION = 0.5


def resolve_devices(spec: int | str | None) -> list[Any]:
    """`None`/"auto": every device of the default backend; an int N: the first N of them.

    In a multi-process run (after `jax.distributed.initialize()`) these are the global devices.
    """
    local = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    if spec is None or spec == "auto":
        return local
    try:
        n = int(spec)
    except (TypeError, ValueError):
        raise ValueError(f"devices must be 'auto' or a positive integer, got {spec!r}") from None
    if not 1 <= n <= len(local):
        raise ValueError(f"devices={n} but this process sees {len(local)} {jax.default_backend()} device(s)")
    return local[:n]


def make_mesh(spec: int | str | None, batch_size: int) -> Mesh | None:
    devices = resolve_devices(spec)
    if len(devices) == 1:
        return None
    if batch_size % len(devices):
        raise ValueError(f"batch_size={batch_size} must be divisible by the {len(devices)} devices it is sharded over")
    return Mesh(np.array(devices), ("data",))


def replicated(mesh: Mesh | None) -> NamedSharding | None:
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


def stacked_rows(mesh: Mesh | None) -> NamedSharding | None:
    """Sharding of streamed batches: (steps, rows, features) with rows split over the mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(None, "data", None))


def place(tree: Any, sharding: NamedSharding | None) -> Any:
    return jax.device_put(tree) if sharding is None else jax.device_put(tree, sharding)


def device_capacity_bytes() -> int:
    """Memory available for data on the default device: its allocator limit, or free host memory on CPU."""
    stats = None
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def choose_data_mode(mode: str, dense_bytes: int) -> str:
    """'device' when the densified data fit comfortably on the device, else 'stream'; an explicit mode wins."""
    if mode not in DATA_MODES:
        raise ValueError(f"data_mode must be one of {DATA_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    capacity = device_capacity_bytes()
    chosen = "device" if dense_bytes <= DEVICE_DATA_FRACTION * capacity else "stream"
    log.info(
        "data: %.2f GB dense, %.2f GB available on the device -> %s mode", dense_bytes / 1e9, capacity / 1e9, chosen
    )
    return chosen

"""Device placement: which devices train, the data-parallel mesh, and whether data fit on the device.

Batch rows are sharded over a 1-D mesh axis "data"; parameters, optimiser states and device-resident data are
replicated. One device means no mesh at all (plain single-device jit).

Several processes (one per host, or several on one machine) form one global mesh after
`initialize_distributed()`: every process runs the same program on the same replicated state, and each feeds
only the rows of a streamed batch that its own devices hold (`process_rows`, `assemble_rows`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

DATA_MODES = ("auto", "device", "stream")
# XLA:CPU runs independent collectives of one program concurrently; with several emulated CPU devices on a machine
# of few cores, two devices can enter different collectives first and each wait for the other (seen here: 4 or 5
# emulated devices, batch 500, a 2-core machine, every run stuck in an all-gather and an all-reduce). The scheduler
# switched off below orders them the same way on every device.
CPU_COLLECTIVES_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def serialize_emulated_cpu_collectives() -> bool:
    """Add `CPU_COLLECTIVES_FLAG` to XLA_FLAGS when they emulate several CPU devices and do not set it already.

    Called when the package is imported, before JAX starts its CPU backend (it reads XLA_FLAGS once, then);
    returns whether the flag was added. Real accelerators and a single CPU device are left alone."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags or "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_COLLECTIVES_FLAG}".strip()
    return True


serialize_emulated_cpu_collectives()
# Device-resident data may take at most this share of the device's (or, on CPU, the host's free) memory.
DEVICE_DATA_FRACTION = 0.5


def initialize_distributed(**kwargs: Any) -> tuple[int, int]:
    """`jax.distributed.initialize` from the launcher's environment; returns (process index, process count).

    SLURM (`srun`), Open MPI and other schedulers JAX knows are detected by JAX itself. Elsewhere set
    JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID (scripts/launch_local.sh does).
    A second call in the same process is a no-op.
    """
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    for name, env in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if name not in kwargs and os.environ.get(env):
            try:
                kwargs[name] = int(os.environ[env])
            except ValueError:
                raise ValueError(f"{env}={os.environ[env]!r} is not an integer") from None
    # Processes other than 0 finish first and wait at exit while process 0 evaluates and writes the outputs;
    # JAX's default 5 minutes there would kill a large run's evaluation.
    kwargs.setdefault("shutdown_timeout_seconds", 3600)
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as err:
        raise ValueError(
            f"cannot start multi-process training (train.distributed=true): {err}. Start the processes with srun "
            "(SLURM) or scripts/launch_local.sh N, or set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and "
            "JAX_PROCESS_ID on every process"
        ) from None
    log.info("process %d of %d, devices: %s", jax.process_index(), jax.process_count(), jax.devices())
    return jax.process_index(), jax.process_count()


def is_primary() -> bool:
    """Whether this process writes the run's outputs (process 0; always true in a single-process run)."""
    return jax.process_index() == 0


def broadcast_text(text: str) -> str:
    """Process 0's `text` on every process (e.g. its run directory); `text` itself in a single-process run."""
    if jax.process_count() == 1:
        return text
    from jax.experimental import multihost_utils

    data = text.encode()
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
    buffer = np.zeros(size, np.uint8)
    if jax.process_index() == 0:
        buffer[:] = np.frombuffer(data, np.uint8)
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer), np.uint8)).decode()


def resolve_devices(spec: int | str | Sequence[int] | None) -> list[Any]:
    """`None`/"auto": every device of the default backend; an int N: the first N of them; a list of indices
    (`[0, 2]`, as scvi-tools takes them): those devices.

    In a multi-process run (after `jax.distributed.initialize()`) these are the global devices.
    """
    local = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    if spec is None or spec == "auto":
        return local
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        indices = list(spec)
        bad = [i for i in indices if not isinstance(i, (int, np.integer)) or isinstance(i, bool)]
        if not indices or bad:
            raise ValueError(f"devices as a list must hold device indices (integers), got {spec!r}")
        out_of_range = [int(i) for i in indices if not 0 <= int(i) < len(local)]
        if out_of_range:
            raise ValueError(f"devices={list(spec)}: no device {out_of_range}; this process sees {len(local)}")
        if len(set(int(i) for i in indices)) != len(indices):
            raise ValueError(f"devices={list(spec)} names a device twice")
        return [local[int(i)] for i in indices]
    try:
        n = int(spec)
    except (TypeError, ValueError):
        raise ValueError(f"devices must be 'auto', a positive integer or a list of indices, got {spec!r}") from None
    if not 1 <= n <= len(local):
        raise ValueError(f"devices={n} but this process sees {len(local)} {jax.default_backend()} device(s)")
    return local[:n]


def usable_device_count(n_devices: int, batch_size: int) -> int:
    """The most of `n_devices` that split a batch of `batch_size` rows evenly (each device the same share)."""
    return max(k for k in range(1, n_devices + 1) if batch_size % k == 0)


def make_mesh(spec: int | str | Sequence[int] | None, batch_size: int) -> Mesh | None:
    """The 1-D "data" mesh the batch rows are sharded over, or None for one device.

    With `spec="auto"` every device whose count divides the batch is used: on 8 devices a batch of 500 rows runs
    on 5 (100 rows each; logged, with the batch size that would use all 8). An explicit count or list that does
    not divide the batch is an error.
    """
    devices = resolve_devices(spec)
    if spec is None or spec == "auto":
        usable = usable_device_count(len(devices), batch_size)
        if usable < len(devices):
            whole = -(-batch_size // len(devices)) * len(devices)
            log.warning(
                "using %d of %d devices: batch_size=%d splits evenly over %d, not %d (batch_size=%d would use all)",
                usable, len(devices), batch_size, usable, len(devices), whole,
            )  # fmt: skip
            devices = devices[:usable]
    if len(devices) == 1:
        return None
    if batch_size % len(devices):
        raise ValueError(
            f"batch_size={batch_size} must be divisible by the {len(devices)} devices it is sharded over "
            f"(devices='auto' picks the most that divide it)"
        )
    return Mesh(np.array(devices), ("data",))


def replicated(mesh: Mesh | None) -> NamedSharding | None:
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


def stacked_rows(mesh: Mesh | None) -> NamedSharding | None:
    """Sharding of streamed batches: (steps, rows, features) with rows split over the mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(None, "data", None))


def place(tree: Any, sharding: NamedSharding | None) -> Any:
    if sharding is None:
        return jax.device_put(tree)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    # Arrays on this process's devices cannot be sent to other processes' devices (no cross-host transfers on
    # CPU); from host memory every process places its own copy of the same values.
    return jax.tree_util.tree_map(
        lambda a: a if isinstance(a, jax.Array) and a.sharding == sharding else jax.device_put(np.asarray(a), sharding),
        tree,
    )


def local_copy(tree: Any) -> Any:
    """Replicated arrays as single-device arrays on this process's first device (for prediction)."""
    return jax.tree_util.tree_map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, tree)


def process_rows(sharding: NamedSharding, global_shape: tuple[int, ...], axis: int) -> slice:
    """The contiguous range along `axis` that this process's devices hold under `sharding`."""
    size = global_shape[axis]
    spans = sorted(
        {(index[axis].start or 0, size if index[axis].stop is None else index[axis].stop)
         for index in sharding.addressable_devices_indices_map(global_shape).values()}
    )  # fmt: skip
    for (_, stop), (start, _) in zip(spans[:-1], spans[1:], strict=True):
        if start != stop:
            raise ValueError(f"this process's rows along axis {axis} are not contiguous under {sharding}")
    return slice(spans[0][0], spans[-1][1])


def assemble_rows(local: Any, sharding: NamedSharding, global_shape: tuple[int, ...]) -> jax.Array:
    """The global array whose rows `process_rows(...)` are this process's `local` (each process passes its own)."""
    if sharding.is_fully_addressable:
        return jax.device_put(local, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(local), global_shape)


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

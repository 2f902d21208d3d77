"""Orbax checkpoints of a training state plus a JSON file of everything needed to rebuild the model.

Layout of a checkpoint directory:
  model.json   hyperparameters, feature counts, link widths, training history, user metadata, and the size and
               sha256 of every file under state/ and of results.npz (so a truncated or corrupted file is named,
               not misread)
  state/       orbax checkpoint of the train state's leaves (parameters, optimiser states, step, RNG key)
  results.npz  optional plain arrays saved beside the state (a fitted model's latent and cell names); numpy
               format, read without pickle

Writes are crash-safe: a checkpoint is written whole into a hidden sibling `.NAME.saving/` (model.json last),
then swapped in with two renames (old -> `.NAME.old/`, new -> NAME). A kill at any moment leaves either the old
or the new checkpoint readable: `locate` finds the complete one. In a multi-process run every process calls
`save` (orbax writes each process's shards), process 0 alone writes model.json and swaps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

from . import files

METADATA_FILE = "model.json"
STATE_DIR = "state"
RESULTS_FILE = "results.npz"
FORMAT_VERSION = 1
_MANIFEST = "files"  # model.json key: {relative path under state/: [size, sha256]}
_RESULTS = "results"  # model.json key: [size, sha256] of results.npz


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot be read: truncated, corrupted or incomplete (the message names the file)."""


def _scratch(path: Path) -> Path:
    return path.parent / f".{path.name}.saving"


def _retired(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def _leaf_dict(state: Any) -> dict[str, Any]:
    # Saving flat named leaves keeps the on-disk format independent of how Flax and Optax nest their pytrees;
    # a template state rebuilt from the metadata restores the structure.
    leaves = jax.tree_util.tree_leaves(state)
    return {f"leaf_{i:05d}": leaf for i, leaf in enumerate(leaves)}


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _manifest(state_dir: Path) -> dict[str, list[Any]]:
    return {
        str(f.relative_to(state_dir)): [f.stat().st_size, _digest(f)]
        for f in sorted(state_dir.rglob("*"))
        if f.is_file()
    }


def save(path: str | Path, state: Any, metadata: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write `state` and `metadata` as the checkpoint `path` (a directory, replaced whole if it exists); `arrays`
    (numbers or strings, no objects) go to results.npz beside them (`read_arrays`)."""
    path = Path(path).absolute()
    payload = {"format_version": FORMAT_VERSION, **metadata}
    json.dumps(payload, default=_json_default)  # refuse unstorable metadata before writing anything
    scratch, primary = _scratch(path), jax.process_index() == 0
    if primary:
        shutil.rmtree(scratch, ignore_errors=True)  # what a killed save left behind
        scratch.mkdir(parents=True)
    _barrier(f"scmodal_checkpoint_begin:{path}")
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(scratch / STATE_DIR, _leaf_dict(state), force=True)
    checkpointer.wait_until_finished()
    _barrier(f"scmodal_checkpoint_state:{path}")
    if primary:
        payload[_MANIFEST] = _manifest(scratch / STATE_DIR)
        if arrays:
            np.savez(scratch / RESULTS_FILE, **{k: np.asarray(v) for k, v in arrays.items()})
            payload[_RESULTS] = [(scratch / RESULTS_FILE).stat().st_size, _digest(scratch / RESULTS_FILE)]
        files.write_text(scratch / METADATA_FILE, json.dumps(payload, indent=1, default=_json_default))
        _swap(scratch, path)
    _barrier(f"scmodal_checkpoint_end:{path}")
    return path


def _swap(new: Path, path: Path) -> None:
    retired = _retired(path)
    shutil.rmtree(retired, ignore_errors=True)
    if path.exists():
        os.rename(path, retired)
    os.rename(new, path)  # between the two renames `locate` reads `new` (complete: model.json is in it)
    shutil.rmtree(retired, ignore_errors=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the renames durable
    finally:
        os.close(fd)


def locate(path: str | Path) -> Path | None:
    """The directory holding the complete checkpoint saved as `path`, or None when none was completed.

    Normally `path` itself; after a kill between the two renames of a save, the new checkpoint still under
    its scratch name (or the old one, if the new one was not complete). A scratch directory without model.json
    is an unfinished write and never counts.
    """
    path = Path(path).absolute()
    if (path / METADATA_FILE).exists():
        return path
    if not path.exists():
        for candidate in (_scratch(path), _retired(path)):
            if (candidate / METADATA_FILE).exists():
                return candidate
    return None


def exists(path: str | Path) -> bool:
    """Whether a complete checkpoint was saved as `path`."""
    return locate(path) is not None


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path).absolute()
    where = locate(path)
    if where is None:
        raise FileNotFoundError(f"{path} is not an scmodal_jax checkpoint (no {METADATA_FILE})")
    meta_file = where / METADATA_FILE
    try:
        metadata = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"checkpoint metadata {meta_file} is truncated or corrupt ({err}); restore it from a copy, or remove "
            f"{where} to start training from step 0"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else None
        raise ValueError(f"checkpoint {where} has format {found}, expected {FORMAT_VERSION}")
    return metadata


def verify(path: str | Path) -> Path:
    """Check every state file against the size and sha256 recorded when it was written; returns the directory.

    Checkpoints written before the record existed are accepted as they are (orbax then reports what it finds).
    """
    metadata = read_metadata(path)
    where = locate(path)
    state_dir = where / STATE_DIR
    if not state_dir.is_dir():
        raise CheckpointError(f"checkpoint {where} has {METADATA_FILE} but no {STATE_DIR}/ directory")
    for name, (size, digest) in sorted((metadata.get(_MANIFEST) or {}).items()):
        f = state_dir / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint file {f} is missing")
        actual = f.stat().st_size
        if actual != size:
            raise CheckpointError(f"checkpoint file {f} is truncated or damaged: {actual} bytes, written with {size}")
        if _digest(f) != digest:
            raise CheckpointError(f"checkpoint file {f} is corrupt: its sha256 differs from the one recorded at save")
    return where


def read_arrays(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays saved with the checkpoint (checked against their recorded size and sha256), or None when it
    has none (saved without them, or by a version that did not save them)."""
    metadata = read_metadata(path)
    record = metadata.get(_RESULTS)
    if not record:
        return None
    f = locate(path) / RESULTS_FILE
    if not f.is_file():
        raise CheckpointError(f"checkpoint file {f} is missing")
    if f.stat().st_size != record[0] or _digest(f) != record[1]:
        raise CheckpointError(f"checkpoint file {f} is truncated or corrupt: it differs from the one written")
    with np.load(f, allow_pickle=False) as stored:
        return {k: stored[k] for k in stored.files}


def restore(path: str | Path, template: Any) -> Any:
    """Restore a state saved by `save` into the structure of `template` (same shapes and dtypes).

    Every process reads the whole state onto its first local device (callers place it on their mesh).
    """
    where = verify(path)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    local = SingleDeviceSharding(jax.local_devices()[0])
    abstract = {
        name: jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype, sharding=local)
        for name, leaf in _leaf_dict(template).items()
    }
    try:
        restored = ocp.StandardCheckpointer().restore(where / STATE_DIR, abstract)
    except Exception as err:  # noqa: BLE001 - orbax/tensorstore raise many types; the path is what matters
        raise CheckpointError(f"cannot read the checkpoint state {where / STATE_DIR}: {err}") from err
    if len(restored) != len(leaves):
        raise ValueError(f"checkpoint at {where} holds {len(restored)} arrays, the model expects {len(leaves)}")
    return jax.tree_util.tree_unflatten(treedef, [restored[f"leaf_{i:05d}"] for i in range(len(leaves))])


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


# Fields that may differ between a checkpoint and the model resuming from it.
RESUMABLE_CHANGES = frozenset({"steps", "steps_per_call"})


def resumable_hyperparameters(
    path: Any, meta: dict[str, Any], requested: Any, n_features: tuple[int, ...], widths: tuple[int, ...]
) -> Any:
    """The hyperparameters a run resumed from the checkpoint at `path` (its `meta`) continues with: `requested`,
    with the penalty probe's decision taken from the checkpoint's run. Raises ValueError naming what differs."""
    saved = meta["hyperparameters"]
    hp = requested
    if hp.disc_gp_auto and not saved.get("disc_gp_auto", False) and saved.get("disc_gp") in (0.0, hp.disc_gp):
        # the checkpoint's run already took the penalty probe's decision: continue with it
        hp = dataclasses.replace(hp, disc_gp=float(saved["disc_gp"]), disc_gp_auto=False)
    current = hp.to_dict()
    changed = {k: (saved[k], current[k]) for k in saved if k not in RESUMABLE_CHANGES and saved[k] != current[k]}
    if changed:
        detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(changed.items()))
        raise ValueError(f"cannot resume from {path}: hyperparameters differ ({detail})")
    if tuple(meta["n_features"]) != n_features:
        raise ValueError(
            f"cannot resume from {path}: it was trained on {meta['n_features']} features, data have {n_features}"
        )
    if tuple(meta["link_widths"]) != widths:
        raise ValueError(f"cannot resume from {path}: link widths {meta['link_widths']} vs {widths} now")
    return hp

"""Orbax checkpoints of a training state plus a JSON file of everything needed to rebuild the model.

Layout of a checkpoint directory:
  model.json   hyperparameters, feature counts, link widths, training history, user metadata
  state/       orbax checkpoint of the train state's leaves (parameters, optimiser states, step, RNG key)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

METADATA_FILE = "model.json"
STATE_DIR = "state"
FORMAT_VERSION = 1


def _leaf_dict(state: Any) -> dict[str, Any]:
    # Saving flat named leaves keeps the on-disk format independent of how Flax and Optax nest their pytrees;
    # a template state rebuilt from the metadata restores the structure.
    leaves = jax.tree_util.tree_leaves(state)
    return {f"leaf_{i:05d}": leaf for i, leaf in enumerate(leaves)}


def save(path: str | Path, state: Any, metadata: dict[str, Any]) -> Path:
    """Write `state` and `metadata` under `path` (a directory, overwritten if it exists)."""
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path / STATE_DIR, _leaf_dict(state), force=True)
    checkpointer.wait_until_finished()
    payload = {"format_version": FORMAT_VERSION, **metadata}
    (path / METADATA_FILE).write_text(json.dumps(payload, indent=1, default=_json_default))
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path).absolute()
    meta_file = path / METADATA_FILE
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not an scmodal_jax checkpoint (no {METADATA_FILE})")
    metadata = json.loads(meta_file.read_text())
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format {metadata.get('format_version')}, expected {FORMAT_VERSION}")
    return metadata


def restore(path: str | Path, template: Any) -> Any:
    """Restore a state saved by `save` into the structure of `template` (same shapes and dtypes)."""
    path = Path(path).absolute()
    leaves, treedef = jax.tree_util.tree_flatten(template)
    abstract = {name: jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype) for name, leaf in _leaf_dict(template).items()}
    restored = ocp.StandardCheckpointer().restore(path / STATE_DIR, abstract)
    if len(restored) != len(leaves):
        raise ValueError(f"checkpoint at {path} holds {len(restored)} arrays, the model expects {len(leaves)}")
    return jax.tree_util.tree_unflatten(treedef, [restored[f"leaf_{i:05d}"] for i in range(len(leaves))])


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")

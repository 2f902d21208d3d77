"""Checkpoints: a state and its metadata round-trip exactly; broken checkpoints give clear errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from scmodal_jax.runtime import checkpoint


def _state(seed: int):
    rng = np.random.default_rng(seed)
    return {
        "gen": {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": jnp.asarray(rng.normal(size=4))},
        "opt": [jnp.asarray(rng.normal(size=(2,)), jnp.float32), jnp.asarray(7, jnp.int32)],
        "key": jnp.asarray([1, 2], jnp.uint32),
    }


def test_round_trip_restores_every_leaf_into_the_template(tmp_path):
    state = _state(0)
    meta = {"n_features": [np.int64(3), 4], "lr": np.float32(0.5), "names": np.array([1, 2])}
    checkpoint.save(tmp_path / "ck", state, meta)
    restored = checkpoint.restore(tmp_path / "ck", _state(1))
    np.testing.assert_array_equal(np.asarray(restored["gen"]["w"]), np.asarray(state["gen"]["w"]))
    np.testing.assert_array_equal(np.asarray(restored["gen"]["b"]), np.asarray(state["gen"]["b"]))
    np.testing.assert_array_equal(np.asarray(restored["opt"][0]), np.asarray(state["opt"][0]))
    assert int(restored["opt"][1]) == 7 and restored["opt"][1].dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(restored["key"]), [1, 2])
    read = checkpoint.read_metadata(tmp_path / "ck")
    assert read["n_features"] == [3, 4] and read["lr"] == 0.5 and read["names"] == [1, 2]
    assert read["format_version"] == checkpoint.FORMAT_VERSION


def test_saving_again_overwrites(tmp_path):
    checkpoint.save(tmp_path / "ck", _state(0), {})
    checkpoint.save(tmp_path / "ck", _state(2), {"x": 1})
    restored = checkpoint.restore(tmp_path / "ck", _state(0))
    np.testing.assert_array_equal(np.asarray(restored["gen"]["w"]), np.asarray(_state(2)["gen"]["w"]))


def test_not_a_checkpoint_and_wrong_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an scmodal_jax checkpoint"):
        checkpoint.read_metadata(tmp_path)
    checkpoint.save(tmp_path / "ck", _state(0), {})
    meta_file = tmp_path / "ck" / checkpoint.METADATA_FILE
    meta_file.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format 99"):
        checkpoint.read_metadata(tmp_path / "ck")


def test_metadata_that_cannot_be_stored_is_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot store object"):
        checkpoint.save(tmp_path / "ck", _state(0), {"bad": object()})

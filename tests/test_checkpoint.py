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


def test_a_save_killed_between_its_renames_leaves_a_readable_checkpoint(tmp_path):
    path = tmp_path / "ck"
    checkpoint.save(path, _state(0), {"n": 0})
    # Replay the window of the next save: the new checkpoint complete under its scratch name, the old one
    # moved aside, nothing under the final name yet.
    checkpoint.save(tmp_path / ".ck.saving", _state(2), {"n": 2})
    (tmp_path / "ck").rename(tmp_path / ".ck.old")
    assert checkpoint.locate(path) == (tmp_path / ".ck.saving").absolute()
    assert checkpoint.read_metadata(path)["n"] == 2
    restored = checkpoint.restore(path, _state(1))
    np.testing.assert_array_equal(np.asarray(restored["gen"]["w"]), np.asarray(_state(2)["gen"]["w"]))
    # The scratch copy without its model.json (killed earlier) never counts: the old checkpoint does.
    (tmp_path / ".ck.saving" / checkpoint.METADATA_FILE).unlink()
    assert checkpoint.read_metadata(path)["n"] == 0
    # The next save cleans both up.
    checkpoint.save(path, _state(3), {"n": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert checkpoint.read_metadata(path)["n"] == 3


def test_every_state_file_is_recorded_and_checked(tmp_path):
    checkpoint.save(tmp_path / "ck", _state(0), {})
    record = checkpoint.read_metadata(tmp_path / "ck")["files"]
    on_disk = sorted(str(f.relative_to(tmp_path / "ck" / "state")) for f in (tmp_path / "ck" / "state").rglob("*")
                     if f.is_file())  # fmt: skip
    assert sorted(record) == on_disk and len(on_disk) > 1
    victim = tmp_path / "ck" / "state" / on_disk[0]
    victim.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=f"{victim} is missing"):
        checkpoint.restore(tmp_path / "ck", _state(1))

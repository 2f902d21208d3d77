"""Faults injected: SIGKILL mid-run and mid-checkpoint, damaged checkpoints, outputs killed while written."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from scmodal_jax.cli import config as config_module
from scmodal_jax.cli import train as train_module
from scmodal_jax.core.step import METRIC_NAMES
from scmodal_jax.runtime import checkpoint, files

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "train.steps=60", "train.steps_per_call=5", "train.log_every=5", "train.checkpoint_every=5",
    "train.batch_size=64", "model.hidden=32", "model.disc_hidden=32", "train.k_anchor=10", "train.progress=false",
    "data.synthetic.n_cells=200", "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
    "eval.umap=false", "eval.metrics=false", "logger=none",
]  # fmt: skip
RUN_DEADLINE_S = 300


def _compose(overrides):
    config_module.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, compile_cache):
    """The reference run, through the CLI like the killed ones (it fills their compilation cache)."""
    out = tmp_path_factory.mktemp("straight")
    proc = _start(out, compile_cache)
    _, err = proc.communicate(timeout=RUN_DEADLINE_S)
    assert proc.returncode == 0, err[-3000:]
    return out


def _checkpoint_step(ckpt: Path) -> int:
    try:
        return int(checkpoint.read_metadata(ckpt)["history"]["step"][-1])
    except (FileNotFoundError, ValueError, KeyError, IndexError):
        return 0  # none yet, or caught between writes


def _start(run_dir: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled",
           # Later runs load the compiled step from the first one's cache instead of compiling it again.
           "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # fmt: skip
    cmd = [sys.executable, "-m", "scmodal_jax.train", *TINY, "train.resume=true", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _kill_when(proc: subprocess.Popen, ready) -> bool:
    """SIGKILL `proc` as soon as `ready()` is true; False if it exited (or ran out of time) first."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return False


def test_sigkill_at_random_steps_and_during_a_checkpoint_write_resumes_exactly(uninterrupted, compile_cache, tmp_path):
    run_dir, cache = tmp_path / "run", compile_cache
    ckpt, scratch = run_dir / "checkpoint", run_dir / ".checkpoint.saving"
    rng = random.Random(13)
    kills = []
    for kind in ("mid_write", "random", "random"):
        before = _checkpoint_step(ckpt)
        proc = _start(run_dir, cache)
        if kind == "mid_write":
            # After a first checkpoint exists, the moment the next one starts being written.
            killed = _kill_when(proc, lambda b=before: _checkpoint_step(ckpt) > b and scratch.exists())
        else:
            delay = rng.uniform(0.0, 0.3)
            progressed = {}

            def ready(b=before, delay=delay, progressed=progressed):
                if _checkpoint_step(ckpt) > b and "t" not in progressed:
                    progressed["t"] = time.monotonic()
                return "t" in progressed and time.monotonic() - progressed["t"] >= delay

            killed = _kill_when(proc, ready)
        assert killed, f"the run ended before the {kind} kill: {proc.stderr.read()[-3000:]!r}"
        kills.append((kind, _checkpoint_step(ckpt), scratch.exists()))
    # The first kill hit a checkpoint write: its unfinished scratch copy was left behind.
    assert kills[0][2], kills
    assert not (run_dir / "metrics.json").exists()
    final = _start(run_dir, cache)
    _, err = final.communicate(timeout=RUN_DEADLINE_S)
    assert final.returncode == 0, err[-3000:]
    assert not scratch.exists()

    history = pd.read_csv(run_dir / "loss_history.csv")
    reference = pd.read_csv(uninterrupted / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 61))
    for name in METRIC_NAMES:
        np.testing.assert_allclose(history[name], reference[name], rtol=1e-6, atol=1e-6, err_msg=name)
    latent = ad.read_h5ad(run_dir / "integrated.h5ad").obsm["X_scmodal"]
    np.testing.assert_allclose(latent, ad.read_h5ad(uninterrupted / "integrated.h5ad").obsm["X_scmodal"], atol=1e-6)


def _damaged_copy(uninterrupted: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    checkpoint_dir = run_dir / "checkpoint"
    checkpoint_dir.parent.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(uninterrupted / "checkpoint"), str(checkpoint_dir)], check=True)
    return run_dir


def _largest_state_file(run_dir: Path) -> Path:
    state_files = [f for f in (run_dir / "checkpoint" / "state").rglob("*") if f.is_file()]
    return max(state_files, key=lambda f: f.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "flip", "metadata", "no_metadata"])
def test_a_damaged_checkpoint_is_named_and_never_restarted_from_step_0(uninterrupted, tmp_path, damage):
    run_dir = _damaged_copy(uninterrupted, tmp_path)
    meta_file = run_dir / "checkpoint" / checkpoint.METADATA_FILE
    if damage == "truncate":
        victim = _largest_state_file(run_dir)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        expected = f"{victim}.*truncated"
    elif damage == "flip":
        victim = _largest_state_file(run_dir)
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        expected = f"{victim}.*corrupt"
    elif damage == "metadata":
        meta_file.write_text(meta_file.read_text()[:100])
        expected = f"{meta_file}.*truncated or corrupt"
    else:
        meta_file.unlink()
        expected = f"{run_dir / 'checkpoint'}.*no complete checkpoint"
    with pytest.raises(checkpoint.CheckpointError, match=expected):
        train_module.run(_compose([*TINY, "train.steps=70", "train.resume=true"]), run_dir)
    assert not (run_dir / "loss_history.csv").exists()  # nothing trained: no silent restart from step 0


def test_checkpoints_without_the_file_record_still_load(uninterrupted, tmp_path):
    run_dir = _damaged_copy(uninterrupted, tmp_path)
    meta_file = run_dir / "checkpoint" / checkpoint.METADATA_FILE
    meta = json.loads(meta_file.read_text())
    del meta["files"]  # as written before the record existed
    meta_file.write_text(json.dumps(meta))
    summary = train_module.run(_compose([*TINY, "train.resume=true"]), run_dir)
    assert summary["final_step"] == 60  # restored at step 60, nothing left to train
    np.testing.assert_allclose(
        ad.read_h5ad(run_dir / "integrated.h5ad").obsm["X_scmodal"],
        ad.read_h5ad(uninterrupted / "integrated.h5ad").obsm["X_scmodal"],
        atol=1e-6,
    )


KILLED_WRITER = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    # The module alone, without the package's imports (JAX, AnnData): a second's start instead of many.
    spec = importlib.util.spec_from_file_location("files", sys.argv[2])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)
    with files.atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half of a file")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_writer_killed_mid_write_leaves_the_final_name_untouched(tmp_path):
    target = tmp_path / "metrics.json"
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), files.__file__], timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = list(tmp_path.glob(".metrics.tmp-*.json"))
    assert len(leftovers) == 1 and leftovers[0].read_text() == "half of a file"  # the kill did hit mid-write
    target.write_text('{"complete": true}')
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), files.__file__], timeout=60)
    assert json.loads(target.read_text()) == {"complete": True}


def test_run_outputs_are_never_left_half_written(uninterrupted, tmp_path, monkeypatch):
    def failing_writer(adata, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # the start of an HDF5 file, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(train_module, "write_h5ad", failing_writer)
    with pytest.raises(OSError, match="disk full"):
        train_module.run(_compose([*TINY, "train.resume_from=" + str(uninterrupted / "checkpoint")]), tmp_path)
    assert (tmp_path / "loss_history.csv").exists()  # written before, complete
    assert len(pd.read_csv(tmp_path / "loss_history.csv")) == 60
    assert not (tmp_path / "integrated.h5ad").exists() and not (tmp_path / "metrics.json").exists()
    assert not list(tmp_path.glob(".integrated.tmp-*"))

"""Any device count: the defaults (batch 500, devices="auto") on 1, 3 and 8 emulated CPU devices, in the API and in
the CLI's default job. One device runs in this process; 3 and 8 each in a fresh process (XLA reads the device count
once, at start-up) that runs the API and then the CLI's default job.

With "auto" the batch rows are sharded over the most devices whose count divides the batch: 1 -> 1, 3 -> 2,
8 -> 5 (logged). A list of device indices picks those devices. Networks are small and runs short: these tests
witness where the rows go, not speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from scmodal_jax.runtime.devices import serialize_emulated_cpu_collectives, usable_device_count


def _env(n_devices: int) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"  # the user's flag, nothing else
    env["JAX_PLATFORMS"] = "cpu"
    return env


def test_usable_device_count_is_the_largest_divisor_of_the_batch():
    # brute force over small cases against the definition
    for n in range(1, 17):
        for batch in (1, 7, 12, 100, 500, 512):
            best = max(k for k in range(1, n + 1) if batch % k == 0)
            assert usable_device_count(n, batch) == best
    assert [usable_device_count(n, 500) for n in (1, 3, 8)] == [1, 2, 5]


def test_emulated_cpu_devices_get_the_serialising_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert serialize_emulated_cpu_collectives() is True
    assert "xla_cpu_enable_concurrency_optimized_scheduler=false" in os.environ["XLA_FLAGS"]
    assert serialize_emulated_cpu_collectives() is False  # already there: unchanged
    monkeypatch.setenv("XLA_FLAGS", "")
    assert serialize_emulated_cpu_collectives() is False and os.environ["XLA_FLAGS"] == ""


# One fresh process per device count runs both: the API's defaults, then the CLI's default job (in the same
# process, as `python -m scmodal_jax.train` would run it), so each count pays one interpreter and JAX start-up.
JOBS = textwrap.dedent("""
    import json, logging, sys, jax
    logging.basicConfig(level=logging.WARNING)
    import scmodal_jax as scm
    from scmodal_jax.data.synthetic import make_multimodal
    d = make_multimodal(n_cells=(600, 600), n_features=(40, 12), n_linked=6, n_clusters=3, seed=0)
    out = {"visible": jax.device_count()}
    model = scm.SCMODAL(steps=12, steps_per_call=6, hidden=32, disc_hidden=32, progress=False)  # batch 500, auto
    model.fit(d.datasets, scm.first_columns(d.n_linked))
    out["auto"] = model.fit_report_["devices"]
    chosen = scm.SCMODAL(steps=4, hidden=32, disc_hidden=32, progress=False, devices=[0, 2])
    chosen.fit(d.datasets, scm.first_columns(d.n_linked))
    out["listed"] = [dev.id for dev in chosen._mesh.devices.flat]
    print(json.dumps(out), flush=True)
    from scmodal_jax.cli.train import main  # then the CLI's default job, batch 500, devices auto

    sys.argv = ["scmodal_jax.train", *sys.argv[1:]]
    main()
""")


def test_the_api_defaults_run_on_one_device():
    # one device is this test process's own (no XLA_FLAGS device count): run in place, not in a fresh process
    import jax

    import scmodal_jax as scm
    from scmodal_jax.data.synthetic import make_multimodal

    assert jax.device_count() == 1
    d = make_multimodal(n_cells=(700, 600), n_features=(40, 12), n_linked=6, n_clusters=3, seed=0)
    model = scm.SCMODAL(steps=12, steps_per_call=6, hidden=32, disc_hidden=32, progress=False)  # batch 500, auto
    model.fit(d.datasets, scm.first_columns(d.n_linked))
    assert model.fit_report_["devices"] == 1 and model.hp.batch_size == 500


@pytest.mark.parametrize("n_devices, used", [(3, 2), (8, 5)])
def test_the_api_defaults_and_the_cli_default_job_run_on_any_device_count(tmp_path, n_devices, used):
    run_dir = tmp_path / "run"
    # The default job's batch (500) and devices ("auto"), on data and networks of the API run's shapes, so that the
    # job reuses the programs that run compiled: where the rows go does not depend on the data's size, and the
    # scores of the latent are the CLI tests' business, not this one's.
    cli = ["train.steps=12", "train.steps_per_call=6", "train.progress=false", "eval.umap=false", "eval.metrics=false",
           "model.hidden=32", "model.disc_hidden=32", "data.synthetic.n_cells=600", "data.synthetic.n_features=[40,12]",
           "data.synthetic.n_linked=6", "data.synthetic.n_clusters=3", f"hydra.run.dir={run_dir}"]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", JOBS, *cli], capture_output=True, text=True, env=_env(n_devices),
                         cwd=tmp_path, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = next(json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"visible"'))
    assert result["visible"] == n_devices and result["auto"] == used
    assert f"using {used} of {n_devices} devices" in out.stderr
    assert result["listed"] == [0, 2]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["device_count"] == n_devices and metrics["mesh_devices"] == used

"""A user's install: the sdist and the wheel built from it ship the package, its data and every Hydra config, and
the installed copy runs `python -m scmodal_jax.train` and `python -m scmodal_jax.analyze` from an empty folder.

The build needs no registry (no build isolation: setuptools comes from the test environment, `.[dev]`); the
fresh venv sees the test environment's packages (jax, ...) through a path file, so only scmodal_jax is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import scmodal_jax
from scmodal_jax.data.links import protein_gene_table

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "scmodal_jax"
CONF = REPO / "conf"
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "scmodal_jax", "conf"]
TINY = [
    "train.steps=200", "train.steps_per_call=100", "train.log_every=100", "train.batch_size=64",
    "model.hidden=32", "model.disc_hidden=32", "train.k_anchor=10", "train.progress=false",
    "data.synthetic.n_cells=200", "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
    "logger=none", "eval.umap=false", "hydra.run.dir=run",
]  # fmt: skip


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # PYTHONPATH would put the checkout in front of the installed copy
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JAX_PLATFORMS="cpu", WANDB_MODE="disabled", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _source_files(root: Path) -> list[str]:
    """Files under root (relative, posix), caches left out."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist of a copy of the build inputs, and the wheel pip builds from that sdist (so the sdist is complete)."""
    if int(metadata.version("setuptools").split(".")[0]) < 77:
        pytest.fail("building without build isolation needs setuptools>=77 (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("dist")
    src, out = tmp / "src", tmp / "out"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    sdist = out / _run([sys.executable, "-c", code], cwd=src).stdout.strip().splitlines()[-1]
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
          "-w", str(out), str(sdist)], cwd=tmp)  # fmt: skip
    (wheel,) = out.glob("scmodal_jax-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_sdist_and_wheel_ship_every_module_data_file_and_config(dist):
    package_files = _source_files(PACKAGE)
    config_files = [f for f in _source_files(CONF) if f.endswith((".yaml", ".py"))]
    assert "data/protein_gene.tsv" in package_files and "config.yaml" in config_files
    # one version, written in scmodal_jax/__init__.py and read by pyproject.toml (dynamic)
    assert dist["wheel"].name.startswith(f"scmodal_jax-{scmodal_jax.__version__}-"), dist["wheel"].name
    with zipfile.ZipFile(dist["wheel"]) as whl:
        in_wheel = set(whl.namelist())
    assert not [f for f in package_files if f"scmodal_jax/{f}" not in in_wheel], "package files missing from wheel"
    assert not [f for f in config_files if f"scmodal_jax/conf/{f}" not in in_wheel], "configs missing from wheel"
    assert not [f for f in in_wheel if not f.startswith(("scmodal_jax/", "scmodal_jax-"))], "stray top-level files"
    assert "py.typed" in package_files and "scmodal_jax/py.typed" in in_wheel  # typed package (PEP 561)
    assert [f for f in in_wheel if f.endswith(".dist-info/licenses/LICENSE")], "the MIT licence ships in the wheel"
    with tarfile.open(dist["sdist"]) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for f in config_files:
        assert f"conf/{f}" in in_sdist
    assert {"LICENSE", "scmodal_jax/py.typed"} <= in_sdist


@pytest.mark.slow
def test_installed_wheel_runs_both_clis_from_an_empty_folder(dist, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    # The venv's own site-packages comes first on its sys.path, so the installed copy wins over the checkout's
    # editable install; the test environment's dependencies follow through this path file.
    site_dir = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         cwd=tmp_path).stdout.strip())  # fmt: skip
    parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site_dir / "_test_env.pth").write_text("\n".join(parents) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--no-cache-dir",
          str(dist["wheel"])], cwd=tmp_path)  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    probe = (
        "import json, importlib.resources as r, scmodal_jax, scmodal_jax.cli.train as t;"
        "from scmodal_jax.data.links import protein_gene_table as p;"
        "print(json.dumps({'package': scmodal_jax.__file__, 'conf_path': t.CONF_PATH,"
        "'conf': str(r.files('scmodal_jax.conf')), 'proteins': len(p().frame)}))"
    )
    where = json.loads(_run([str(python), "-c", probe], cwd=empty).stdout.strip().splitlines()[-1])
    assert Path(where["package"]).is_relative_to(site_dir), where
    assert Path(where["conf"]).is_relative_to(site_dir) and where["conf_path"] == "pkg://scmodal_jax.conf"
    assert where["proteins"] == len(protein_gene_table().frame)  # the shipped table is the checkout's

    _run([str(python), "-m", "scmodal_jax.train", *TINY], cwd=empty)
    run = empty / "run"
    hydra_cfg = (run / ".hydra" / "hydra.yaml").read_text()
    assert "path: scmodal_jax.conf\n      schema: pkg\n      provider: main" in hydra_cfg  # configs from the wheel
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final_step"] == 200
    # 200 small steps on 6 synthetic clusters: better than random pairing (FOSCTTM 0.5) and chance labels (1/6)
    assert metrics["foscttm"] < 0.4 and metrics["label_transfer_accuracy"] > 0.3, metrics
    integrated = ad.read_h5ad(run / "integrated.h5ad")
    assert integrated.obsm["X_scmodal"].shape == (400, 20) and np.isfinite(integrated.obsm["X_scmodal"]).all()

    usage = _run([str(python), "-m", "scmodal_jax.analyze", "--help"], cwd=empty).stdout
    assert "transfer-labels" in usage and "impute" in usage
    out = _run([str(python), "-m", "scmodal_jax.analyze", "transfer-labels", "run", "--from", "mod0",
                "--out", "labelled.h5ad"], cwd=empty).stdout  # fmt: skip
    report = json.loads(out.strip().splitlines()[-1])
    assert report["mod1"]["n_cells"] == 200 and report["mod1"]["accuracy"] > 0.3, report
    assert "predicted_cell_type" in ad.read_h5ad(empty / "labelled.h5ad").obs

"""The documentation site: it builds with warnings as errors, its API reference lists every public name of the
four public packages, the tutorial page shows the notebook's stored outputs, and the tutorial notebook runs
(short: SCMODAL_TUTORIAL_STEPS=30) in a fresh kernel, its label transfer cell printing an accuracy.

The build reads no data (the notebook is rendered as stored, never executed by Sphinx); running the notebook needs
the shared PBMC5k CITE-seq file (skipped without it, a failure under CI=true).
"""

from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require, shared_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.ipynb"
PUBLIC_PACKAGES = ["scmodal_jax", "scmodal_jax.analysis", "scmodal_jax.metrics", "scmodal_jax.data"]
ACCURACY = re.compile(r"label transfer accuracy \(rna -> prot\): ([0-9.]+)")


def _needs(module: str) -> None:
    """Skip without the docs extra (pip install -e ".[docs]"), except in CI where `dev` installs it."""
    require(module, reason=f"{module} not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _needs("sphinx")
    _needs("myst_nb")
    out = tmp_path_factory.mktemp("docs_html")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return out


def test_docs_build_without_warnings_and_list_the_public_api(site):
    api = (site / "api.html").read_text()
    for name in ("scmodal_jax.SCMODAL", "scmodal_jax.metrics.foscttm", "scmodal_jax.transfer_labels"):
        assert f'href="generated/{name}.html"' in api, name
    missing = [
        f"{package}.{name}"
        for package in PUBLIC_PACKAGES
        for name in importlib.import_module(package).__all__
        if f'href="generated/{package}.{name}.html"' not in api
    ]
    assert not missing, f"public names missing from docs/api.md: {missing}"
    estimator = (site / "generated" / "scmodal_jax.SCMODAL.html").read_text()
    assert "add_results" in estimator and "load" in estimator  # the methods are documented
    # the README's guide is in the site: pages, the data table, the moved measurements, the architecture
    for page, text in [("install.html", "cuda12"), ("data.html", "pbmc5k_cite"), ("quickstart.html", "0.917"),
                       ("experiments.html", "MaxFuse 0.0.2"), ("cluster.html", "launch_local.sh"),
                       ("architecture.html", "Layers"), ("changelog.html", "0.1.0")]:  # fmt: skip
        assert text in (site / page).read_text(), (page, text)


def test_tutorial_page_shows_the_stored_outputs(site):
    import nbformat

    nb = nbformat.read(TUTORIAL, as_version=4)
    stored = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert stored, "docs/tutorial.ipynb is stored without outputs: execute it once (see docs/development.md)"
    page = (site / "tutorial.html").read_text()
    assert ACCURACY.search(html.unescape(page)), "the label transfer accuracy is shown on the tutorial page"
    assert "<img" in page, "the UMAP plots are shown on the tutorial page"


@pytest.mark.slow
def test_tutorial_runs_in_a_fresh_kernel(tmp_path, monkeypatch):
    data = shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    _needs("nbclient")
    _needs("ipykernel")
    _needs("mudata")
    _needs("scanpy")
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from nbclient import NotebookClient

    # A kernel of this interpreter (first on JUPYTER_PATH), whatever other "python3" kernels the machine has.
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "scmodal_tutorial")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SCMODAL_TUTORIAL_STEPS", "30")
    monkeypatch.setenv("SCMODAL_DATA_DIR", str(data.parent))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(TUTORIAL, as_version=4)
    client = NotebookClient(
        nb, kernel_name="scmodal_tutorial", timeout=900, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    (cell,) = [
        c for c in nb.cells if c.cell_type == "code" and 'transfer_labels(mdata, "cell_type", "rna")' in c.source
    ]
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    found = ACCURACY.search(text)
    assert found, f"the label transfer cell printed no accuracy: {text!r}"
    accuracy = float(found.group(1))
    print(f"tutorial at 30 steps: label transfer accuracy {accuracy:.3f}")
    # 30 steps do not align the modalities (0.058 measured here; 0.961 at the stored 2,000): only the printout counts
    assert 0.0 <= accuracy <= 1.0
    (saved,) = [c for c in nb.cells if c.cell_type == "code" and "SCMODAL.load(" in c.source]
    text = "".join(o.get("text", "") for o in saved.outputs if o.output_type == "stream")
    assert "same latent_: True" in text and "same latent written: True" in text, text  # kept through save / load

"""The dataset registry (scmodal_jax.data.registry): one index of the shared and the downloaded datasets."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import DATA_DIR, shared_file

from scmodal_jax.data import download, loaders, registry
from scmodal_jax.data.loaders import shared

ENTRIES = list(registry.DATASETS.values())


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_entry_is_complete(entry):
    assert registry.DATASETS[entry.name] is entry and registry.dataset_info(entry.name) is entry
    assert callable(entry.loader) and getattr(loaders, entry.loader.__name__) is entry.loader
    assert entry.description and entry.source and entry.licence and isinstance(entry.labels, bool)
    assert entry.url is None or re.match(r"https?://", entry.url)
    assert entry.kind in ("cells", "table")
    assert bool(entry.shared_files) != bool(entry.download_keys)  # exactly one kind of source
    assert entry.files == (entry.shared_files or entry.download_keys)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.origin == "download"], ids=lambda e: e.name)
def test_paper_entries_name_registered_files(entry):
    assert entry.download_keys and all(key in download.REGISTRY for key in entry.download_keys)
    assert "cache_dir" in inspect.signature(entry.loader).parameters
    assert entry.loader.__module__ == "scmodal_jax.data.loaders.paper"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.origin == "shared"], ids=lambda e: e.name)
def test_shared_entries_name_files_of_the_shared_folder(entry):
    assert set(entry.shared_files) <= set(shared.SHARED_FILES.values())
    assert "data_dir" in inspect.signature(entry.loader).parameters
    assert entry.loader.__module__ == "scmodal_jax.data.loaders.shared"
    text = shared_file("README.md").read_text()
    for name in entry.shared_files:
        # the README abbreviates the second file of the multiome pair as `..._atac600peaks.h5ad`
        assert name in text or f"`..._{name.split('_')[-1]}`" in text, name


def test_every_loader_is_registered_and_origins_split():
    names = registry.list_datasets()
    assert names == list(registry.DATASETS)
    assert set(registry.list_datasets("shared")) | set(registry.list_datasets("download")) == set(names)
    assert set(registry.list_datasets("shared")).isdisjoint(registry.list_datasets("download"))
    loader_names = [n for n in loaders.__all__ if callable(getattr(loaders, n)) and n[0].islower()]
    registered = {e.loader for e in ENTRIES}
    helpers = {"get_data_dir", "shared_data_available", "check_pinned"}
    assert {n for n in loader_names if getattr(loaders, n) not in registered} == helpers
    with pytest.raises(ValueError, match="origin"):
        registry.list_datasets("nope")


def test_licences_are_only_what_the_sources_state():
    by_name = registry.DATASETS
    for name in ("pbmc5k_cite", "pbmc_adt", "mouse_brain_atac", "mouse_brain_multiome"):  # 10x Genomics
        assert by_name[name].licence == "CC BY 4.0", name
    assert by_name["hg38_gene_annotation"].licence == "GPL-2"
    assert by_name["hao2021_pbmc_cite"].licence == registry.NOT_STATED == "not stated"


def test_unknown_names_raise_a_clear_key_error():
    for call in (registry.dataset_info, registry.load_dataset):
        with pytest.raises(KeyError, match=r"Unknown dataset 'nope'.*bmmc_cite.*tonsil_codex_rna"):
            call("nope")


def test_load_dataset_returns_what_the_loader_returns():
    shared_file("cite_adt_pbmc5k_mario_5107c_29adt.h5ad")
    got = registry.load_dataset("pbmc_adt", data_dir=DATA_DIR, obs_suffix="-adt")
    want = shared.pbmc_adt(data_dir=DATA_DIR, obs_suffix="-adt")
    assert got.shape == want.shape == (5107, 29)
    assert list(got.obs_names) == list(want.obs_names) and got.obs_names[0].endswith("-adt")
    np.testing.assert_array_equal(_dense(got.X), _dense(want.X))
    assert got.obs.equals(want.obs) and got.var.equals(want.var)


# ------------------------------------------------------------------------------------------------------
# Experiments' sources, the original releases and the data table of docs/data.md
# ------------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import data_table  # noqa: E402


def _experiment_data(path: Path) -> str | None:
    found = re.search(r"override /data: (\w+)", path.read_text())
    return found.group(1) if found else None


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "experiment").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_experiment_names_its_public_source(path):
    (line,) = [s for s in path.read_text().splitlines() if s.startswith("# source:")]
    data_name = _experiment_data(path)
    if data_name is None:  # an ablation, combined with an experiment that names the data
        assert "combined with" in line
        return
    names = [n.strip() for n in line.removeprefix("# source:").split(";")[0].split(",")]
    assert tuple(names) == registry.DATA_SOURCES[data_name]
    assert f"python scripts/data_table.py {data_name}" in path.read_text()
    text = registry.sources(data_name)
    for name in names:
        entry = registry.DATASETS[name]
        assert f"{name}: {entry.source}" in text and f"licence {entry.licence}" in text


def test_data_sources_cover_every_builder_and_name_registered_datasets():
    from scmodal_jax.data.builders import BUILDERS

    assert set(registry.DATA_SOURCES) == set(BUILDERS) - {"synthetic"}
    assert {n for names in registry.DATA_SOURCES.values() for n in names} <= set(registry.DATASETS)
    with pytest.raises(KeyError, match="Unknown data config 'nope'"):
        registry.sources("nope")


def test_shared_datasets_name_their_original_release_unless_none_is_known():
    shared_only = {e.name for e in ENTRIES if e.origin == "shared" and not e.release_keys}
    assert shared_only == {"pbmc_cytof"}
    for entry in ENTRIES:
        assert set(entry.release_keys) <= set(download.REGISTRY)
        if entry.origin == "shared":
            assert entry.size == sum(shared.SHARED_PINS[f][0] for f in entry.shared_files)
    # what our files add, where the release lacks it (the 10x release has no labels)
    assert "cell-type labels" in registry.DATASETS["pbmc5k_cite"].release_adds
    assert registry.DATASETS["hg38_gene_annotation"].release_adds == ""
    assert "not pinned" in registry.sources("pbmc5k_cite") and "46.7 MB, pinned" in registry.sources("bmmc_multiome")


def test_docs_data_table_is_the_registry_table():
    table = registry.markdown_table()
    assert data_table.readme_table((ROOT / "docs" / "data.md").read_text()) == table, (
        "docs/data.md data table is stale: run python scripts/data_table.py --write docs/data.md"
    )
    rows = table.splitlines()[2:]
    assert len(rows) == len(registry.DATASETS)
    assert "| `pbmc_cytof` |" in table and "590.6 kB" in table  # the pinned size of the CyTOF file
    assert data_table.replace_table(f"a\n{data_table.BEGIN}\nold\n{data_table.END}\nb", "new") == (
        f"a\n{data_table.BEGIN}\nnew\n{data_table.END}\nb"
    )
    with pytest.raises(ValueError, match="markers"):
        data_table.readme_table("no table here")

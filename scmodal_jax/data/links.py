"""Feature links between modalities: marker-name normalisation and protein <-> gene matching.

scMODAL needs a few *linked* features: columns of two datasets that measure (roughly) the same biology,
e.g. the ADT count of CD14 and the RNA count of the ``CD14`` gene, or the CD3 marker in a CITE-seq panel
and in a CyTOF panel. This module finds those pairs:

* :func:`normalize_marker` (from :mod:`.marker_names`) puts an antibody name in a canonical form (case, ``-``,
  ``.``, ``_``, spaces, Greek letters, common suffixes such as ``_TotalSeqB`` or ``-ADT``, CyTOF metal tags);
* :func:`protein_gene_table` loads the curated human protein -> gene table shipped with the package
  (``protein_gene.tsv``) or a user table;
* :func:`protein_gene_pairs` links protein names to gene names of an RNA dataset;
* :func:`shared_markers` links two antibody panels (e.g. CITE-seq ADT vs CyTOF).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path

import pandas as pd

from .marker_names import CLONE_RE, normalize_marker, strip_marker_decorations

__all__ = [
    "ProteinGeneTable",
    "normalize_marker",
    "strip_marker_decorations",
    "protein_gene_table",
    "protein_gene_pairs",
    "shared_markers",
]


# ----------------------------------------------------------------------------------------------------------
# protein -> gene table
# ----------------------------------------------------------------------------------------------------------


def _split_list(value: object, sep: str) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(sep) if v.strip()]


@dataclass
class ProteinGeneTable:
    """A protein -> gene table with a name index.

    Attributes:
        frame: one row per protein with columns ``protein`` (str), ``genes`` (list of HGNC symbols) and
            ``aliases`` (list of other names of the same protein).
    """

    frame: pd.DataFrame
    _primary: dict[str, int] = field(init=False, repr=False)
    _alias: dict[str, list[int]] = field(init=False, repr=False)
    _group: dict[str, str] = field(init=False, repr=False)
    _symbols: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        self._primary = {}
        self._alias = {}
        for i, row in self.frame.iterrows():
            key = normalize_marker(row["protein"])
            if key and key not in self._primary:
                self._primary[key] = int(i)
        for i, row in self.frame.iterrows():
            for a in row["aliases"]:
                key = normalize_marker(a)
                if key and key not in self._primary:
                    self._alias.setdefault(key, [])
                    if int(i) not in self._alias[key]:
                        self._alias[key].append(int(i))
        self._group = self._build_groups()
        self._symbols = {}
        for genes in self.frame["genes"]:
            for g in genes:
                self._symbols.setdefault(normalize_marker(g), g)

    # -- marker synonym groups (for panel <-> panel matching) ---------------------------------------------
    def _build_groups(self) -> dict[str, str]:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: str, b: str) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        # A gene symbol encoding exactly one single-gene row is an implicit alias of that row
        # (e.g. CCR7 ~ CD197), which helps panels named by gene.
        single: dict[str, list[int]] = {}
        for i, genes in enumerate(self.frame["genes"]):
            if len(genes) == 1:
                single.setdefault(normalize_marker(genes[0]), []).append(i)
        for i, row in self.frame.iterrows():
            p = normalize_marker(row["protein"])
            find(p)
            for a in row["aliases"]:
                if normalize_marker(a):
                    union(p, normalize_marker(a))
            if len(row["genes"]) == 1:
                g = normalize_marker(row["genes"][0])
                if len(single.get(g, [])) == 1 and (g not in self._primary or self._primary[g] == i):
                    union(p, g)
        return {k: find(k) for k in parent}

    def clone_base(self, name: str) -> str | None:
        """``X`` for an antibody-clone name ``X-<digit>`` whose base ``X`` the table knows, else None.

        Panels with two clones of a marker name them ``CD3-1``/``CD3-2`` (Hao et al. 2021); dropping the
        hyphen would read ``CD3-1`` as ``CD31`` (PECAM1). ``PD-1`` stays ``PD-1``: its base is unknown.
        """
        m = CLONE_RE.match(str(name).strip())
        if m is None:
            return None
        base = normalize_marker(m.group("base"))
        return m.group("base") if base in self._primary or base in self._alias else None

    def marker_key(self, name: str) -> str:
        """Key shared by all names of the same marker (``CD279``, ``PD-1``, ``PD.1`` -> one key)."""
        base = self.clone_base(name)
        key = normalize_marker(name if base is None else base)
        return self._group.get(key, key)

    # -- lookup --------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> list[str] | None:
        """Genes encoding protein ``name`` (table order), or ``None`` when the table does not know it.

        An exact (normalised) protein name wins over an alias; a name that is only one of the table's gene
        symbols (a panel naming markers by gene, e.g. ``CCR7``) maps to that gene; a clone name ``CD4-2``
        maps as its base marker (see :meth:`clone_base`).
        """
        base = self.clone_base(name)
        key = normalize_marker(name if base is None else base)
        if key in self._primary:
            return list(self.frame.at[self._primary[key], "genes"])
        rows = self._alias.get(key)
        if not rows:
            return [self._symbols[key]] if key in self._symbols else None
        genes: list[str] = []
        for r in rows:
            for g in self.frame.at[r, "genes"]:
                if g not in genes:
                    genes.append(g)
        return genes

    def __len__(self) -> int:
        return len(self.frame)


def _default_table_path() -> Path:
    return Path(str(resources.files("scmodal_jax.data").joinpath("protein_gene.tsv")))


def _read_table_file(path: str | PathLike[str]) -> pd.DataFrame:
    path = Path(path)
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} or path.name.endswith(".tsv.gz") else ","
    return pd.read_csv(path, sep=sep, comment="#", dtype=str, encoding="utf-8-sig", keep_default_na=False)


def _standardize_frame(df: pd.DataFrame) -> pd.DataFrame:
    cols = {str(c).strip().lower().replace(" ", "_"): c for c in df.columns}
    pcol = next((cols[c] for c in ("protein", "protein_name", "marker", "antibody") if c in cols), None)
    gcol = next((cols[c] for c in ("genes", "gene", "rna_name", "gene_name", "rna") if c in cols), None)
    if pcol is None or gcol is None:
        if df.shape[1] < 2:
            raise ValueError(
                "a protein -> gene table needs a protein column and a gene column "
                f"(e.g. 'protein', 'genes'); got columns {list(df.columns)}"
            )
        pcol, gcol = df.columns[0], df.columns[1]
    acol = cols.get("aliases", cols.get("alias"))
    rows = []
    for _, r in df.iterrows():
        protein = str(r[pcol]).strip()
        genes = [g for g in _split_list(r[gcol], "/") if g.lower() not in {"ignore", "na", "nan", "none"}]
        if not protein or not genes:
            continue
        aliases = _split_list(r[acol], ",") if acol is not None else []
        rows.append({"protein": protein, "genes": genes, "aliases": aliases})
    return pd.DataFrame(rows, columns=["protein", "genes", "aliases"])


_DEFAULT_TABLE: ProteinGeneTable | None = None


def protein_gene_table(
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
) -> ProteinGeneTable:
    """Load a protein -> gene table.

    Args:
        table: ``None`` for the curated human table shipped with the package (``protein_gene.tsv``:
            several hundred CITE-seq / CyTOF / CODEX markers), a path to a TSV/CSV file, or a DataFrame.
            Files and frames need a protein column (``protein``, ``Protein name``, ...) and a gene column
            (``genes``, ``RNA name``, ...) where several genes are separated by ``/``; an optional
            ``aliases`` column holds ``,``-separated other names. Gene entries ``Ignore`` are skipped. When
            no known column name is found the first two columns are used.

    Returns:
        A :class:`ProteinGeneTable`.
    """
    global _DEFAULT_TABLE
    if isinstance(table, ProteinGeneTable):
        return table
    if table is None:
        if _DEFAULT_TABLE is None:
            _DEFAULT_TABLE = ProteinGeneTable(_standardize_frame(_read_table_file(_default_table_path())))
        return _DEFAULT_TABLE
    if isinstance(table, pd.DataFrame):
        return ProteinGeneTable(_standardize_frame(table))
    return ProteinGeneTable(_standardize_frame(_read_table_file(table)))


# ----------------------------------------------------------------------------------------------------------
# pairs
# ----------------------------------------------------------------------------------------------------------


def _preview(names: Sequence[str], k: int = 12) -> str:
    names = list(names)
    s = ", ".join(map(str, names[:k]))
    return s + (f", ... ({len(names)} in all)" if len(names) > k else "")


def protein_gene_pairs(
    protein_names: Iterable[str],
    gene_names: Iterable[str],
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
    match_gene_symbols: bool = True,
) -> list[tuple[str, str]]:
    """Link proteins (antibody panel) to genes (RNA features).

    A protein may map to several genes (``CD3`` -> ``CD3D``, ``CD3E``, ``CD3G``: one pair each) and a gene
    may be linked to several proteins (``PTPRC`` <- ``CD45RA``, ``CD45RO``). Only pairs whose gene is in
    ``gene_names`` are kept. Names are returned as they appear in the data.

    Args:
        protein_names: protein/marker names of the protein dataset, e.g. ``["CD3", "PD.1", "HLA.DR"]``.
        gene_names: gene symbols of the RNA dataset (exact match first, then case-insensitive).
        table: protein -> gene table, see :func:`protein_gene_table`.
        match_gene_symbols: for proteins that the table does not know, link them to a gene of the same
            name (case-insensitive, decorations stripped), e.g. a panel that names markers by gene.

    Returns:
        ``[(protein_name, gene_name), ...]`` in protein order, then table gene order.

    Raises:
        ValueError: when no pair is found; the message lists what was tried.
    """
    proteins = [str(p) for p in protein_names]
    genes = [str(g) for g in gene_names]
    tab = protein_gene_table(table)
    exact = {g: g for g in genes}
    upper: dict[str, str] = {}
    for g in genes:
        upper.setdefault(g.upper(), g)

    def find_gene(symbol: str) -> str | None:
        return exact.get(symbol) or upper.get(symbol.upper())

    pairs: list[tuple[str, str]] = []
    unknown: list[str] = []
    absent: list[str] = []
    for p in proteins:
        wanted = tab.lookup(p)
        if wanted is None:
            unknown.append(p)
            if match_gene_symbols:
                hit = find_gene(strip_marker_decorations(p))
                if hit is not None and (p, hit) not in pairs:
                    pairs.append((p, hit))
            continue
        found = False
        for sym in wanted:
            hit = find_gene(sym)
            if hit is not None and (p, hit) not in pairs:
                pairs.append((p, hit))
                found = True
        if not found:
            absent.append(f"{p}->{'/'.join(wanted)}")
    if not pairs:
        raise ValueError(
            "no protein <-> gene link found. "
            f"Tried {len(proteins)} protein(s) against {len(genes)} gene(s) with a table of {len(tab)} "
            f"proteins. Proteins known to the table whose genes are absent from the RNA: "
            f"[{_preview(absent)}]; proteins unknown to the table"
            f"{' (also tried as gene symbols)' if match_gene_symbols else ''}: [{_preview(unknown)}]; "
            f"first genes of the RNA: [{_preview(genes, 8)}]. Pass table=... with your own protein -> gene "
            "table, or check that the RNA features are gene symbols."
        )
    return pairs


def shared_markers(
    panel_a: Iterable[str],
    panel_b: Iterable[str],
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
) -> list[tuple[str, str]]:
    """Markers measured by two antibody panels (e.g. CITE-seq ADT vs CyTOF).

    Names are matched after :func:`normalize_marker` (``PD.1`` = ``PD-1``) and through the synonyms of the
    protein table (``CD279`` = ``PD-1``, ``CD8`` = ``CD8a``, ``CD197`` = ``CCR7``). Matching is one-to-one;
    an identical normalised name wins over a synonym.

    Returns:
        ``[(name_in_a, name_in_b), ...]`` in the order of ``panel_a``, with the original names.

    Raises:
        ValueError: when the panels share no marker; the message lists both panels' keys.
    """
    a = [str(x) for x in panel_a]
    b = [str(x) for x in panel_b]
    tab = protein_gene_table(table)
    used: set[int] = set()
    match: dict[int, int] = {}
    b_norm = [normalize_marker(x) for x in b]
    b_key = [tab.marker_key(x) for x in b]
    # pass 1: identical normalised names; pass 2: same synonym group
    for i, x in enumerate(a):
        n = normalize_marker(x)
        for j, m in enumerate(b_norm):
            if j not in used and m == n and n:
                match[i] = j
                used.add(j)
                break
    for i, x in enumerate(a):
        if i in match:
            continue
        k = tab.marker_key(x)
        for j, m in enumerate(b_key):
            if j not in used and m == k and k:
                match[i] = j
                used.add(j)
                break
    if not match:
        raise ValueError(
            "the two panels share no marker after name normalisation. "
            f"Panel A keys: [{_preview([normalize_marker(x) for x in a])}]; "
            f"panel B keys: [{_preview(b_norm)}]. Rename the markers or pass pairs explicitly."
        )
    return [(a[i], b[match[i]]) for i in sorted(match)]

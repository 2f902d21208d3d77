"""Marker-name normalisation, the curated protein -> gene table, protein/gene and panel links."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from conftest import require, shared_file

from scmodal_jax.data.links import (
    normalize_marker,
    protein_gene_pairs,
    protein_gene_table,
    shared_markers,
    strip_marker_decorations,
)

_data = shared_file


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "names,key",
    [
        (["HLA-DR", "HLA.DR", "HLA_DR", "hla dr", "HLADR"], "hladr"),
        (["PD-1", "PD.1", "pd_1", "PD1"], "pd1"),
        (["CD3", "CD3_TotalSeqB", "CD3-TotalSeq-A", "CD3-ADT", "ADT_CD3", "CD3_prot", "cd3"], "cd3"),
        (["CD45(Sm154)Di", "154Sm_CD45", "CD45_Sm154Di", "CD45"], "cd45"),
        (["Yb176Di_CD8a", "CD8a(Yb176)Dd", "CD8a_TotalSeqB", "CD8α"], "cd8a"),
        (["Ki67", "Ki67_TotalSeqB", "Ki-67", "Ki67(Er168)Di"], "ki67"),
        (["TCRγδ", "TCRgd", "TCR-g-d"], "tcrgd"),
        (["HLA-A-B-C", "HLA-A/B/C", "HLA.A.B.C"], "hlaabc"),
    ],
)
def test_normalize_marker(names, key):
    assert {normalize_marker(n) for n in names} == {key}


def test_strip_keeps_plain_names():
    for n in ["CD8a", "HLA-DR", "PD.1", "CD45RA", "TCRVa7.2", "IgD", "CD158e1", "LOX-1", "Ki67", "TCR-ab", "Nd145"]:
        assert strip_marker_decorations(n) == n
    assert strip_marker_decorations("CD8a_TotalSeqB") == "CD8a"


# ---------------------------------------------------------------------------------------------- table


def test_table_contents():
    t = protein_gene_table()
    assert len(t) >= 300
    expected = {
        "CD3": ["CD3D", "CD3E", "CD3G"],
        "CD4": ["CD4"],
        "CD8": ["CD8A", "CD8B"],
        "CD11b": ["ITGAM"],
        "CD11c": ["ITGAX"],
        "CD14": ["CD14"],
        "CD19": ["CD19"],
        "CD20": ["MS4A1"],
        "CD25": ["IL2RA"],
        "CD45RA": ["PTPRC"],
        "CD45RO": ["PTPRC"],
        "CD56": ["NCAM1"],
        "CD127": ["IL7R"],
        "CD197": ["CCR7"],
        "CCR7": ["CCR7"],
        "PD-1": ["PDCD1"],
        "PD.1": ["PDCD1"],
        "CD279": ["PDCD1"],
        "CD161": ["KLRB1"],
        "CD123": ["IL3RA"],
        "CD141": ["THBD"],
        "CD1c": ["CD1C"],
        "CD303": ["CLEC4C"],
        "IgD": ["IGHD"],
        "IgM": ["IGHM"],
        "CD62L": ["SELL"],
        "CD57": ["B3GAT1"],
        "CD71": ["TFRC"],
        "PD-L1": ["CD274"],
        "TIM-3": ["HAVCR2"],
        "Ki67": ["MKI67"],
    }
    for protein, genes in expected.items():
        assert t.lookup(protein) == genes, protein
    assert set(t.lookup("CD16")) >= {"FCGR3A"}
    assert t.lookup("HLA-DR")[0] == "HLA-DRA" and "HLA-DRB1" in t.lookup("HLA.DR")
    assert set(t.lookup("CD8a")) >= {"CD8A"}
    assert t.lookup("not-a-marker") is None
    # decorations do not matter
    assert t.lookup("CD20_TotalSeqB") == ["MS4A1"]


def test_table_is_clean():
    t = protein_gene_table()
    f = t.frame
    assert f["protein"].is_unique
    for genes in f["genes"]:
        assert genes and all(g == g.strip() and " " not in g for g in genes)
    # a normalised name belongs to one row, except deliberate synonyms (CD8 = CD8a) whose genes overlap
    owners: dict[str, list[int]] = {}
    for i, row in f.iterrows():
        for k in {normalize_marker(row["protein"])} | {normalize_marker(a) for a in row["aliases"]}:
            owners.setdefault(k, []).append(i)
    for k, rows in owners.items():
        if len(rows) > 1:
            gene_sets = [set(f.at[r, "genes"]) for r in rows]
            assert set.intersection(*gene_sets), (k, rows)


def test_marker_synonyms():
    t = protein_gene_table()
    assert t.marker_key("PD-1") == t.marker_key("CD279") == t.marker_key("PD.1")
    assert t.marker_key("CD8") == t.marker_key("CD8a")
    assert t.marker_key("CD197") == t.marker_key("CCR7")
    assert t.marker_key("HLA.DR") == t.marker_key("HLA-DR")
    assert t.marker_key("CD45RA") != t.marker_key("CD45RO") != t.marker_key("CD45")
    assert t.marker_key("CD16") != t.marker_key("CD16b")


def test_user_table_frame_and_path(tmp_path):
    df = pd.DataFrame({"Protein name": ["Foo", "Bar", "Baz"], "RNA name": ["GENE1/GENE2", "GENE3", "Ignore"]})
    t = protein_gene_table(df)
    assert t.lookup("foo") == ["GENE1", "GENE2"] and t.lookup("Baz") is None
    path = tmp_path / "tab.tsv"
    path.write_text("protein\tgenes\taliases\nFoo\tGENE1/GENE2\tFOO-1,fooey\n")
    t2 = protein_gene_table(path)
    assert t2.lookup("FOO.1") == ["GENE1", "GENE2"]
    pairs = protein_gene_pairs(["Foo"], ["GENE2", "GENE1"], table=path)
    assert pairs == [("Foo", "GENE1"), ("Foo", "GENE2")]


# ---------------------------------------------------------------------------------------------- pairs


def test_protein_gene_pairs_many_to_many():
    genes = ["CD3E", "CD3D", "CD3G", "PTPRC", "Cd14", "TIGIT", "MS4A1", "XIST"]
    proteins = ["CD3_TotalSeqB", "CD45RA", "CD45RO", "CD14", "TIGIT", "CD20", "CD999"]
    pairs = protein_gene_pairs(proteins, genes)
    assert pairs == [
        ("CD3_TotalSeqB", "CD3D"),
        ("CD3_TotalSeqB", "CD3E"),
        ("CD3_TotalSeqB", "CD3G"),
        ("CD45RA", "PTPRC"),
        ("CD45RO", "PTPRC"),
        ("CD14", "Cd14"),  # original data names are kept
        ("TIGIT", "TIGIT"),
        ("CD20", "MS4A1"),
    ]


def test_protein_gene_pairs_gene_symbol_fallback():
    assert protein_gene_pairs(["MYPROT"], ["MYPROT", "A"]) == [("MYPROT", "MYPROT")]
    with pytest.raises(ValueError):
        protein_gene_pairs(["MYPROT"], ["MYPROT"], match_gene_symbols=False)


def test_protein_gene_pairs_error_lists_what_was_tried():
    with pytest.raises(ValueError) as err:
        protein_gene_pairs(["CD3", "Unknown1"], ["ACTB", "GAPDH"])
    msg = str(err.value)
    assert "CD3->CD3D/CD3E/CD3G" in msg and "Unknown1" in msg and "ACTB" in msg


def test_shared_markers():
    a = ["CD3", "CD8", "PD-1", "HLA.DR", "CD45RA", "CD45", "Foo"]
    b = ["HLA-DR", "cd3", "CD8a", "CD279", "CD45RA", "CD45RO", "Bar"]
    assert shared_markers(a, b) == [
        ("CD3", "cd3"),
        ("CD8", "CD8a"),
        ("PD-1", "CD279"),
        ("HLA.DR", "HLA-DR"),
        ("CD45RA", "CD45RA"),
    ]
    # identical names win over synonyms, and matching is one-to-one
    assert shared_markers(["CD8a", "CD8"], ["CD8", "CD8a"]) == [("CD8a", "CD8a"), ("CD8", "CD8")]
    with pytest.raises(ValueError, match="share no marker"):
        shared_markers(["CD3"], ["CD19"])


# ---------------------------------------------------------------------------------------------- real data


def _oracle() -> dict[str, set[str]]:
    df = pd.read_csv(_data("maxfuse_protein_gene_conversion.csv"), dtype=str, encoding="utf-8-sig")
    out: dict[str, set[str]] = {}
    for protein, rna in zip(df.iloc[:, 0], df.iloc[:, 1], strict=True):
        if not isinstance(rna, str) or rna.strip().startswith("Ignore"):
            continue
        out.setdefault(normalize_marker(protein), set()).update(g.strip() for g in rna.split("/") if g.strip())
    return out


def test_table_covers_oracle_on_shared_panels():
    """Every protein of the shared data panels that the public oracle table resolves is resolved by our
    table to the same genes, restricted to the genes of that file's RNA (for protein-only files: the genes of
    any RNA file of the shared data)."""
    ad = require("anndata")
    oracle = _oracle()
    cite = {}
    for name in ["bmmc_cite_starter_600c_1000g_134adt.h5ad", "pbmc5k_cite_4000g_29adt_labeled.h5ad"]:
        a = ad.read_h5ad(_data(name))
        cite[name] = (list(a.obsm["protein_counts"].columns), set(a.var_names))
    rna_genes = set().union(*(g for _, g in cite.values()))
    rna_genes |= set(ad.read_h5ad(_data("bmmc_multiome_starter_500c_rna600g.h5ad"), backed="r").var_names)
    panels = dict(cite)
    for name in ["cite_adt_pbmc5k_mario_5107c_29adt.h5ad", "cytof_pbmc_mario_4606c_30markers.h5ad"]:
        panels[name] = (list(ad.read_h5ad(_data(name), backed="r").var_names), rna_genes)

    table = protein_gene_table()
    checked, mismatches = 0, []
    for name, (proteins, genes) in panels.items():
        for p in proteins:
            want = oracle.get(normalize_marker(p))
            if want is None:
                continue
            checked += 1
            got = set(table.lookup(p) or [])
            if not got:
                mismatches.append((name, p, "unresolved"))
            elif want & genes != got & genes:
                mismatches.append((name, p, sorted(want & genes), sorted(got & genes)))
            # the pairs built for the RNA-bearing files are exactly the oracle's pairs
            if name in cite and want & genes:
                pairs = protein_gene_pairs([p], sorted(genes), table=table)
                assert {g for _, g in pairs} == want & genes, (name, p)
    assert checked >= 200
    assert not mismatches, mismatches


def test_real_links():
    ad = require("anndata")
    a = ad.read_h5ad(_data("pbmc5k_cite_4000g_29adt_labeled.h5ad"), backed="r")
    prots = list(a.obsm["protein_counts"].columns)
    genes = list(a.var_names)
    pairs = protein_gene_pairs(prots, genes)
    assert ("CD14", "CD14") in pairs and ("PD.1", "PDCD1") in pairs and ("CD20", "MS4A1") in pairs
    cd3 = [g for p, g in pairs if p == "CD3"]
    assert cd3 == [g for g in ["CD3D", "CD3E", "CD3G"] if g in genes] and len(cd3) >= 2
    assert all(p in prots and g in genes for p, g in pairs)

    adt = ad.read_h5ad(_data("cite_adt_pbmc5k_mario_5107c_29adt.h5ad"), backed="r")
    cytof = ad.read_h5ad(_data("cytof_pbmc_mario_4606c_30markers.h5ad"), backed="r")
    shared = shared_markers(adt.var_names, cytof.var_names)
    assert len(shared) == 17  # the README's 16 identical names + CD274 = PD-L1
    assert ("CD274", "PD.L1") in shared and ("HLA.DR", "HLA.DR") in shared and ("CD8a", "CD8a") in shared
    assert len({b for _, b in shared}) == len(shared)
    assert Counter(a for a, _ in shared).most_common(1)[0][1] == 1

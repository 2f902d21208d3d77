"""Links by feature name: per consecutive pair of datasets, (feature of i, feature of i+1) name pairs.

A link spec is a table of name pairs (a list of pairs, or a two-column DataFrame) or the name of a built-in
table (:data:`LINK_TABLES`): ``"protein_gene"`` (the protein -> gene table of :mod:`.links`; of the two
datasets, the one with more features is the RNA) or ``"shared_markers"`` (markers of two antibody panels).
One spec serves a two-dataset fit (a string serves every pair); N datasets take a list of N-1 specs.
:func:`resolve_name_links` checks every name against the datasets' features (exact, else a unique
case-insensitive match) and lists the names it cannot find.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .links import protein_gene_pairs, shared_markers

__all__ = ["LINK_TABLES", "is_name_links", "resolve_name_links"]

LINK_TABLES = ("protein_gene", "shared_markers")


def _is_pair(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(v, str) for v in x)


def _is_table(x: Any) -> bool:
    if isinstance(x, (str, pd.DataFrame)):
        return True
    return isinstance(x, Sequence) and all(_is_pair(p) for p in x)


def is_name_links(links: Any) -> bool:
    """Links given by feature names (a table, a list of tables, a built-in table's name), not by matrices."""
    if isinstance(links, (str, pd.DataFrame)):
        return True
    if not isinstance(links, Sequence) or len(links) == 0:
        return False
    return all(_is_pair(p) for p in links) or all(_is_table(t) and not isinstance(t, tuple) for t in links)


def _builtin(spec: str, a: list[str], b: list[str], i: int) -> list[tuple[str, str]]:
    if spec == "shared_markers":
        return shared_markers(a, b)
    if spec == "protein_gene":
        if len(a) >= len(b):  # dataset i is the RNA
            return [(g, p) for p, g in protein_gene_pairs(b, a)]
        return protein_gene_pairs(a, b)
    raise ValueError(f"links[{i}]={spec!r} is not a built-in link table; use one of {LINK_TABLES} or name pairs")


def _lookup(name: str, exact: dict[str, str], upper: dict[str, list[str]]) -> str | None:
    if name in exact:
        return exact[name]
    hits = upper.get(name.upper(), [])
    return hits[0] if len(hits) == 1 else None


def _match(pairs: list[tuple[str, str]], a: list[str], b: list[str], la: str, lb: str, i: int):
    """Pairs with every name resolved against the datasets' features (exact, else unique case-insensitive)."""
    index = []
    for names in (a, b):
        upper: dict[str, list[str]] = {}
        for n in names:
            upper.setdefault(n.upper(), []).append(n)
        index.append(({n: n for n in names}, upper))
    out, miss_a, miss_b = [], [], []
    for x, y in pairs:
        rx, ry = _lookup(str(x), *index[0]), _lookup(str(y), *index[1])
        if rx is None:
            miss_a.append(str(x))
        if ry is None:
            miss_b.append(str(y))
        out.append((rx, ry))
    if miss_a or miss_b:
        parts = [f"{len(m)} not in {lab} ({len(f)} features): {m[:20]}" for m, lab, f in
                 ((miss_a, la, a), (miss_b, lb, b)) if m]  # fmt: skip
        raise ValueError(f"links[{i}] names not found: " + "; ".join(parts))
    return out


def resolve_name_links(links: Any, feature_names: list[list[str]], labels: list[str]) -> list[list[tuple[str, str]]]:
    """Per consecutive pair, the (feature of i, feature of i+1) names, checked against the datasets' features.

    Raises:
        ValueError: wrong number of tables, a malformed or empty table, an unknown built-in table, or names
            not found (listed per dataset).
    """
    n_pairs = len(feature_names) - 1
    single = isinstance(links, (str, pd.DataFrame)) or all(_is_pair(p) for p in links)
    if single and not isinstance(links, str) and n_pairs != 1:
        raise ValueError(
            f"one table of name pairs links two datasets; {n_pairs + 1} datasets need a list of {n_pairs} tables "
            "(one per consecutive pair)"
        )
    specs = [links] * n_pairs if isinstance(links, str) else [links] if single else list(links)
    if len(specs) != n_pairs:
        raise ValueError(
            f"{n_pairs + 1} datasets need {n_pairs} link tables (one per consecutive pair), got {len(specs)}"
        )
    out = []
    for i, spec in enumerate(specs):
        a, b = feature_names[i], feature_names[i + 1]
        if isinstance(spec, str):
            pairs = _builtin(spec, a, b, i)
        elif isinstance(spec, pd.DataFrame):
            if spec.shape[1] != 2:
                raise ValueError(
                    f"links[{i}]: a link table has two columns (dataset {i}, dataset {i + 1}), got {spec.shape[1]}"
                )
            pairs = list(zip(spec.iloc[:, 0].astype(str), spec.iloc[:, 1].astype(str), strict=True))
        else:
            pairs = [(str(x), str(y)) for x, y in spec]
        if not pairs:
            raise ValueError(f"links[{i}] is empty: datasets {i} and {i + 1} need at least one linked feature pair")
        out.append(_match(pairs, a, b, labels[i], labels[i + 1], i))
    return out

"""Genomic anchors of features (gene TSS, peak centre) and the feature pairs within a distance window.

Used to restrict gene-peak relationship tests to nearby pairs (:func:`scmodal_jax.analysis.feature_correlations`
with coordinates and a ``window``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_WINDOW", "genomic_coordinates", "window_pairs"]

DEFAULT_WINDOW = 10_000
_REGION = re.compile(r"^(?P<chrom>[^:_\-\s]+)[:_\-](?P<start>\d+)[:_\-](?P<end>\d+)$")


def genomic_coordinates(source: Any, anchor: str = "auto", errors: str = "raise") -> pd.DataFrame:
    """Anchor position of each feature: a DataFrame indexed by feature name with ``chrom`` and ``position``.

    Args:
        source: a DataFrame (names in a ``name``/``gene_name``/``feature`` column or the index; ``chrom`` and
            ``position``, or ``start``/``end`` with an optional ``strand``), or feature names like
            ``chr1-100-600``, ``chr1:100-600`` or ``chr1_100_600`` (peaks).
        anchor: ``"tss"`` (``start`` on ``+``, ``end`` on ``-`` strands), ``"centre"`` (``(start + end) / 2``),
            ``"start"``, or ``"auto"``: ``position`` when given, else TSS when there is a ``strand`` column,
            else the centre. Repeated names keep their first row.
        errors: ``"raise"`` on names that are not regions, or ``"ignore"`` to leave them out.

    Raises:
        ValueError: unparseable region names or missing columns.
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        for col in ("name", "gene_name", "feature"):
            if col in df.columns:
                df = df.set_index(col)
                break
        if "chrom" not in df.columns:
            raise ValueError(f"coordinates need a 'chrom' column; got {list(df.columns)}")
    else:
        names = [str(s) for s in source]
        rows, bad = [], []
        for nm in names:
            m = _REGION.match(nm)
            if m is None:
                bad.append(nm)
                continue
            rows.append((nm, m["chrom"], int(m["start"]), int(m["end"])))
        if bad and errors == "raise":
            raise ValueError(f"cannot parse genomic regions (chrN-start-end) from {len(bad)} names, e.g. {bad[:5]}")
        df = pd.DataFrame(rows, columns=["name", "chrom", "start", "end"]).set_index("name")
    if anchor == "auto":
        anchor = "position" if "position" in df.columns else ("tss" if "strand" in df.columns else "centre")
    if anchor == "position":
        pos = df["position"].to_numpy(np.float64)
    else:
        for col in ("start", "end"):
            if col not in df.columns:
                raise ValueError(f"anchor={anchor!r} needs 'start' and 'end' columns; got {list(df.columns)}")
        start, end = df["start"].to_numpy(np.float64), df["end"].to_numpy(np.float64)
        if anchor == "tss":
            strand = df["strand"].astype(str).to_numpy() if "strand" in df.columns else np.full(len(df), "+")
            pos = np.where(strand == "-", end, start)
        elif anchor == "centre":
            pos = (start + end) / 2
        elif anchor == "start":
            pos = start
        else:
            raise ValueError(f"anchor must be 'auto', 'tss', 'centre', 'start' or 'position', got {anchor!r}")
    out = pd.DataFrame({"chrom": df["chrom"].astype(str).to_numpy(), "position": pos}, index=df.index.astype(str))
    return out[~out.index.duplicated(keep="first")]


def window_pairs(
    names_a: Sequence[str],
    names_b: Sequence[str],
    coords_a: Any,
    coords_b: Any,
    window: float = DEFAULT_WINDOW,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``(ia, ib)`` of features on the same chromosome with ``|pos_a - pos_b| <= window``.

    ``coords_*`` are :func:`genomic_coordinates` inputs (or outputs); features without coordinates are left
    out. Returns ``(ia, ib, distance)`` sorted by ``(ia, ib)``, ``distance = |pos_b - pos_a|``.
    """
    if window is None or window < 0:
        raise ValueError(f"window must be a non-negative distance in bp, got {window!r}")
    ca = _as_coords(coords_a)
    cb = _as_coords(coords_b)
    ia_all, ib_all, dist_all = [], [], []
    pa = _positions(names_a, ca)
    pb = _positions(names_b, cb)
    for chrom in set(pa[0][pa[2]]) & set(pb[0][pb[2]]):
        a_idx = np.flatnonzero(pa[2] & (pa[0] == chrom))
        b_idx = np.flatnonzero(pb[2] & (pb[0] == chrom))
        order = np.argsort(pb[1][b_idx], kind="stable")
        b_idx = b_idx[order]
        b_pos = pb[1][b_idx]
        lo = np.searchsorted(b_pos, pa[1][a_idx] - window, side="left")
        hi = np.searchsorted(b_pos, pa[1][a_idx] + window, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            continue
        ia = np.repeat(a_idx, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ib = b_idx[np.repeat(lo, counts) + offsets]
        ia_all.append(ia)
        ib_all.append(ib)
        dist_all.append(np.abs(pb[1][ib] - pa[1][ia]))
    if not ia_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    ia, ib, dist = np.concatenate(ia_all), np.concatenate(ib_all), np.concatenate(dist_all)
    order = np.lexsort((ib, ia))
    return ia[order].astype(np.int64), ib[order].astype(np.int64), dist[order]


def _as_coords(coords: Any) -> pd.DataFrame:
    if isinstance(coords, pd.DataFrame) and {"chrom", "position"} <= set(coords.columns):
        return coords
    return genomic_coordinates(coords)


def _positions(names: Sequence[str], coords: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = coords.index.get_indexer(pd.Index([str(n) for n in names]))
    found = idx >= 0
    chrom = np.where(found, coords["chrom"].to_numpy(dtype=object)[idx], "")
    pos = np.where(found, coords["position"].to_numpy(np.float64)[idx], np.nan)
    return chrom.astype(str), pos, found


# ----------------------------------------------------------------------------------------------------------
# correlations
# ----------------------------------------------------------------------------------------------------------

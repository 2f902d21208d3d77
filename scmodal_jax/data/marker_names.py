"""Canonical forms of marker / antibody names, so that panels from different pipelines can be matched.

``HLA-DR``, ``HLA.DR``, ``ADT_HLA-DR_TotalSeqB`` and the CyTOF channel ``HLA-DR(Yb174)Di`` all name the same
antibody target; :func:`normalize_marker` maps them to one key (``hladr``).
"""

from __future__ import annotations

import re

__all__ = ["CLONE_RE", "normalize_marker", "strip_marker_decorations"]


_GREEK = {
    "α": "a",
    "β": "b",
    "γ": "g",
    "δ": "d",
    "ε": "e",
    "κ": "k",
    "λ": "l",
    "µ": "u",
    "μ": "u",
    "ζ": "z",
}
# Decorations that some pipelines add to antibody names.
_PREFIX_RE = re.compile(r"^(?:adt|cite|prot|protein|ab|anti)[_\-.: ]+", re.IGNORECASE)
_SUFFIX_RE = re.compile(
    r"[_\-.: ]+(?:totalseq[_\-.]?[a-d]?|adt|prot|protein|antibody|cite)$|(?<=[a-z0-9])(?:_?totalseq[a-d])$",
    re.IGNORECASE,
)
# CyTOF channel names: "CD45(Sm154)Di", "CD3_Cd110Di", "154Sm_CD45", "Yb176Di_CD8a" (metals used as tags).
_METALS = "La|Ce|Pr|Nd|Sm|Eu|Gd|Tb|Dy|Ho|Er|Tm|Yb|Lu|In|Y|Pt|Bi|Cd|Ir|Rh|Ba|Cs|Pd|Hf|Ta|Au|Ag|Sn|Ru|I"
_METAL_SUFFIX_RE = re.compile(rf"[_\-. ]*\(?(?:{_METALS})\d{{2,3}}\)?D[di]$")
_METAL_PREFIX_RE = re.compile(rf"^(?:\d{{2,3}}(?:{_METALS})|(?:{_METALS})\d{{2,3}})(?:D[di])?[_\-. ]+")
_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")


def strip_marker_decorations(name: str) -> str:
    """Remove pipeline decorations from a marker name, keeping its case and punctuation.

    Strips prefixes/suffixes such as ``ADT_``, ``_TotalSeqB``, ``-ADT``, ``_prot`` and CyTOF metal tags
    (``CD45(Sm154)Di``, ``154Sm_CD45``).
    """
    s = str(name).strip()
    for _ in range(3):
        before = s
        s = _METAL_SUFFIX_RE.sub("", s) or s
        s = _METAL_PREFIX_RE.sub("", s) or s
        s = _SUFFIX_RE.sub("", s) or s
        s = _PREFIX_RE.sub("", s) or s
        s = s.strip()
        if s == before:
            break
    return s


CLONE_RE = re.compile(r"^(?P<base>.+?)-(?P<clone>\d)$")


def normalize_marker(name: str) -> str:
    """Canonical key of a marker/antibody name.

    Lower-cases, maps Greek letters to Latin (``TCRγδ`` -> ``tcrgd``), strips decorations (see
    :func:`strip_marker_decorations`) and drops every character that is not a letter or digit, so that
    ``HLA-DR``, ``HLA.DR``, ``HLA_DR`` and ``hla dr`` all give ``hladr``.
    """
    s = strip_marker_decorations(name)
    s = "".join(_GREEK.get(c, c) for c in s).lower()
    return _NON_ALNUM_RE.sub("", s)

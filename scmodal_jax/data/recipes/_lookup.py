"""Name lookups shared by the recipes (internal API): feature name -> column index, ``obs`` label columns."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def labels_of(adatas_obs: Sequence[pd.DataFrame], label_key: str | None, names: Sequence[str]):
    if label_key is None:
        return None
    out = []
    for obs, name in zip(adatas_obs, names, strict=True):
        if label_key not in obs.columns:
            raise KeyError(
                f"label_key '{label_key}' is not a column of the {name} dataset's obs; available columns: "
                f"{list(obs.columns)}"
            )
        out.append(obs[label_key].to_numpy())
    return out


def index_of(names: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
    exact: dict[str, int] = {}
    upper: dict[str, int] = {}
    for i, n in enumerate(names):
        exact.setdefault(str(n), i)
        upper.setdefault(str(n).upper(), i)
    return exact, upper

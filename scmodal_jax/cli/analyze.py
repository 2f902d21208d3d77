"""`python -m scmodal_jax.analyze SUBCOMMAND RUN_DIR ...`: analyses of a finished run (`python -m scmodal_jax.train`).

A run directory holds config.yaml, checkpoint/ (the saved model with its preprocessing) and integrated.h5ad.
Subcommands:

  impute           imputed TARGET features for the run's SOURCE cells (or new cells from --input), streamed
                   to .h5ad / .h5 / .npy / .csv
  relationships    correlations between imputed features of one modality and measured features of another
  transfer-labels  k-NN label transfer in the latent from one modality to the others (integrated.h5ad)
  map              encode new cells of a trained modality with the saved model (+ label transfer)

The run's own cells are rebuilt from config.yaml with the same data builder as training (deterministic).
`python -m scmodal_jax.analyze SUBCOMMAND --help` lists each subcommand's options. Examples:

  python -m scmodal_jax.analyze impute RUN --source rna --target protein --out protein_from_rna.h5ad
  python -m scmodal_jax.analyze relationships RUN --measured protein --imputed rna --features-b CD14 --out r.csv
  python -m scmodal_jax.analyze relationships RUN --measured atac --imputed rna --coords-a genes.tsv.gz
      --coords-b names --window 10000 --out gene_peak_links.csv       (one command; peaks named chrN-start-end)
  python -m scmodal_jax.analyze transfer-labels RUN --key cell_type --from rna --out labelled.h5ad
  python -m scmodal_jax.analyze map RUN --modality rna --input new.h5ad --out mapped.h5ad
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("scmodal_jax.analyze")

CHECKPOINT_DIR = "checkpoint"
INTEGRATED = "integrated.h5ad"


# ----------------------------------------------------------------------------------------------------------
# run directories
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """A finished run: its directory, the saved model, its config (None when config.yaml is absent)."""

    path: Path
    model: Any
    cfg: Any = None
    _prepared: Any = field(default=None, repr=False)

    @property
    def modalities(self) -> list[str]:
        return list(self.model.modalities)

    @property
    def prepared(self) -> Any:
        """The run's model inputs, rebuilt from config.yaml (checked against the model's stored features)."""
        if self._prepared is None:
            if self.cfg is None:
                raise FileNotFoundError(f"{self.path / 'config.yaml'} is missing: cannot rebuild the run's cells")
            from ..data.builders import build

            prep = build(self.cfg.data).prepared
            stored = (self.model.preprocessing_ or {}).get("feature_names")
            rebuilt = [[str(f) for f in names] for names in prep.feature_names]
            if stored is not None and [list(map(str, s)) for s in stored] != rebuilt:
                raise ValueError(
                    f"the data rebuilt from {self.path / 'config.yaml'} do not have the features the model was "
                    "trained on (the data files or the code changed since training)"
                )
            self._prepared = prep
        return self._prepared

    def cells(self, modality: int | str) -> tuple[np.ndarray, pd.DataFrame]:
        """(model input matrix, obs) of the run's cells of ``modality``."""
        from ..analysis.normalization import resolve_modality

        i = resolve_modality(self.model, modality)
        prep = self.prepared
        return prep.datasets[i], prep.obs[i]

    def integrated(self) -> Any:
        import anndata as ad

        path = self.path / INTEGRATED
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: not a finished run directory")
        return ad.read_h5ad(path)

    @property
    def label_key(self) -> str | None:
        return None if self.cfg is None else self.cfg.data.get("label_key")


def load_run(run_dir: str | Path) -> Run:
    """The model (and config) of a finished run directory."""
    from omegaconf import OmegaConf

    from ..model import SCMODAL

    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist")
    ckpt = path / CHECKPOINT_DIR
    if not (ckpt / "model.json").exists():
        raise FileNotFoundError(f"{path} holds no saved model ({ckpt}/model.json): not a finished run directory")
    logging.getLogger("absl").setLevel(logging.WARNING)
    model = SCMODAL.load(ckpt, progress=False)
    cfg_path = path / "config.yaml"
    cfg = OmegaConf.load(cfg_path) if cfg_path.exists() else None
    return Run(path=path, model=model, cfg=cfg)


def _read_input(path: str) -> Any:
    import anndata as ad

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input file {p} does not exist")
    if p.suffix != ".h5ad":
        raise ValueError(f"--input must be an .h5ad file, got {p.name}")
    return ad.read_h5ad(p, backed="r")


def _split(values: str | None) -> list[str] | None:
    if values is None:
        return None
    out = [v.strip() for v in values.split(",") if v.strip()]
    return out or None


def _coords(spec: str | None, names: Sequence[str]) -> Any:
    if spec is None:
        return None
    if spec == "names":
        from ..analysis.genomic import genomic_coordinates

        return genomic_coordinates(list(names), errors="ignore")
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"coordinate file {p} does not exist (or pass 'names' to parse chrN-start-end)")
    sep = "\t" if ".tsv" in p.suffixes or ".txt" in p.suffixes else ","
    return pd.read_csv(p, sep=sep)


# ----------------------------------------------------------------------------------------------------------
# subcommands
# ----------------------------------------------------------------------------------------------------------


def _check_modalities(run: Run, **named: str) -> None:
    from ..analysis.normalization import resolve_modality

    for flag, value in named.items():
        resolve_modality(run.model, value, f"--{flag.replace('_', '-')}")


def cmd_impute(args: argparse.Namespace) -> dict[str, Any]:
    from ..analysis.imputation import write_imputed

    run = load_run(args.run_dir)
    _check_modalities(run, source=args.source, target=args.target)
    opts: dict[str, Any] = {}
    if args.input is not None:
        X = _read_input(args.input)
        obs = X.obs.copy()
        opts = {"input": args.input_kind, "layer": args.layer}
    else:
        X, obs = run.cells(args.source)
    path = write_imputed(
        args.out, run.model, X, args.source, args.target, obs=obs, scale=args.scale,
        average_duplicates=not args.keep_duplicates, block_size=args.block_size, compression=args.compression,
        **opts,
    )  # fmt: skip
    return {"out": str(path), "n_cells": int(X.shape[0]), "source": args.source, "target": args.target}


def cmd_relationships(args: argparse.Namespace) -> dict[str, Any]:
    from ..analysis.imputation import imputed_feature_names
    from ..analysis.relationships import infer_relationships

    run = load_run(args.run_dir)
    _check_modalities(run, measured=args.measured, imputed=args.imputed)
    opts: dict[str, Any] = {}
    if args.input is not None:
        X = _read_input(args.input)
        opts = {"input": args.input_kind, "layer": args.layer}
    else:
        X, _ = run.cells(args.measured)
    coords_a = _coords(args.coords_a, imputed_feature_names(run.model, args.imputed))
    coords_b = _coords(args.coords_b, imputed_feature_names(run.model, args.measured))
    df = infer_relationships(
        run.model, X, args.measured, args.imputed, features_a=_split(args.features_a),
        features_b=_split(args.features_b), coords_a=coords_a, coords_b=coords_b, window=args.window,
        n_permutations=args.permutations, pvalue=None if args.pvalue == "none" else args.pvalue, seed=args.seed,
        top=args.top, block_size=args.block_size, **opts,
    )  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, sep="\t" if ".tsv" in out.suffixes else ",", index=False)
    return {"out": str(out), "n_pairs": len(df)}


def cmd_transfer_labels(args: argparse.Namespace) -> dict[str, Any]:
    from ..analysis.label_transfer import transfer_labels
    from ..data.io import write_h5ad

    run = load_run(args.run_dir)
    key = args.key or run.label_key
    if key is None:
        raise ValueError("--key is required (the run's config has no data.label_key)")
    adata = run.integrated()
    adata, summary = transfer_labels(adata, key, args.source, args.targets, k=args.k)
    adata.uns["scmodal_label_transfer"] = json.dumps(summary)
    write_h5ad(adata, args.out)
    return {"out": str(args.out), **summary}


def cmd_map(args: argparse.Namespace) -> dict[str, Any]:
    from ..analysis.mapping import map_cells
    from ..data.io import write_h5ad

    run = load_run(args.run_dir)
    _check_modalities(run, modality=args.modality)
    data = _read_input(args.input)
    key = None if args.no_labels else (args.label_key or run.label_key)
    reference = None
    if key is not None:
        reference = run.integrated()
        if key not in reference.obs.columns:
            if args.label_key is not None:
                raise ValueError(f"--label-key {key!r} is not a column of {run.path / INTEGRATED}")
            key, reference = None, None
    mapped = map_cells(
        run.model, data, args.modality, reference=reference, label_key=key,
        reference_modality=_split(args.reference_modality), k=args.k, input=args.input_kind, layer=args.layer,
        library_size=args.library_size_key, block_size=args.block_size,
    )  # fmt: skip
    write_h5ad(mapped, args.out)
    summary: dict[str, Any] = {"out": str(args.out), "n_cells": int(mapped.n_obs), "modality": args.modality}
    if key is not None:
        summary["label_key"] = key
        summary["mean_confidence"] = float(mapped.obs[f"predicted_{key}_confidence"].mean())
    return summary


# ----------------------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------------------


def _input_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--input", help=f".h5ad of new {what} cells instead of the run's own cells")
    p.add_argument(
        "--input-kind", choices=("counts", "normalized", "scaled"), default="counts",
        help="what --input holds: raw counts (normalised as the recipe did), normalised (log1p) values, or "
        "values already in the model's scaled space (default: counts)",
    )  # fmt: skip
    p.add_argument("--layer", help="layer of --input to read instead of X")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scmodal_jax.analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser(
        "impute", help="imputed target features for source cells",
        description="Impute TARGET features for SOURCE cells through the shared latent (any pair), in the "
        "target's feature names (names repeated by links averaged), streamed block by block into --out "
        "(.h5ad, .h5, .npy, .csv/.tsv[.gz]).",
    )  # fmt: skip
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--source", required=True, help="modality of the cells")
    p.add_argument("--target", required=True, help="modality whose features are imputed")
    p.add_argument("--out", required=True, help="output file (.h5ad, .h5, .npy, .csv, .tsv, optionally .gz)")
    p.add_argument(
        "--scale", choices=("log1p", "scaled"), default="log1p",
        help="log1p: the recipe's normalised scale (z-score undone; default); scaled: the model's space",
    )  # fmt: skip
    p.add_argument("--keep-duplicates", action="store_true", help="keep one column per model feature")
    p.add_argument("--block-size", type=int, default=4096, help="cells per block (memory knob)")
    p.add_argument("--compression", choices=("gzip", "lzf"), default=None, help="h5 compression of X")
    _input_options(p, "SOURCE")
    p.set_defaults(func=cmd_impute)

    p = sub.add_parser(
        "relationships", help="feature links: imputed features vs measured features",
        description="Pearson correlations across the MEASURED modality's cells between the IMPUTED modality's "
        "imputed features (feature_a) and the measured features (feature_b), with permutation p-values; "
        "optionally only pairs within --window bp given coordinates. Writes a CSV/TSV table.",
    )  # fmt: skip
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--measured", required=True, help="modality whose cells and measured features are used")
    p.add_argument("--imputed", required=True, help="modality whose features are imputed for those cells")
    p.add_argument("--out", required=True, help="output table (.csv or .tsv)")
    p.add_argument("--features-a", help="comma-separated imputed features to test (default: all)")
    p.add_argument("--features-b", help="comma-separated measured features to test (default: all)")
    p.add_argument("--coords-a", help="coordinates of the imputed features: a CSV/TSV (name or gene_name, chrom, "
                   "start, end[, strand] or position) or 'names' to parse chrN-start-end names")  # fmt: skip
    p.add_argument("--coords-b", help="coordinates of the measured features (as --coords-a)")
    p.add_argument("--window", type=float, default=None, help="max distance in bp with coordinates (default 10000)")
    p.add_argument("--permutations", type=int, default=100, help="cell permutations for the null (default 100)")
    p.add_argument("--pvalue", choices=("permutation", "empirical", "none"), default="permutation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=None, help="keep the TOP strongest pairs per measured feature")
    p.add_argument("--block-size", type=int, default=4096, help="cells per block (memory knob)")
    _input_options(p, "MEASURED")
    p.set_defaults(func=cmd_relationships)

    p = sub.add_parser(
        "transfer-labels", help="k-NN label transfer in the latent",
        description="Transfer obs[KEY] from the cells of one modality to the others by a k-NN majority vote in "
        "the latent of the run's integrated.h5ad; writes it with obs['predicted_KEY'] and "
        "obs['predicted_KEY_confidence'] to --out and prints accuracy where the targets carry labels.",
    )  # fmt: skip
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--key", help="obs column with the labels (default: the run's data.label_key)")
    p.add_argument("--from", dest="source", required=True, help="labelled modality")
    p.add_argument("--to", dest="targets", nargs="+", default=None, help="target modalities (default: all others)")
    p.add_argument("--k", type=int, default=15, help="neighbours voting (default 15)")
    p.add_argument("--out", required=True, help="output .h5ad")
    p.set_defaults(func=cmd_transfer_labels)

    p = sub.add_parser(
        "map", help="encode new cells with the saved model",
        description="Encode new cells of a trained modality with the saved model (no retraining): features "
        "selected by name, normalised as the training recipe did, z-scored with the stored statistics; labels "
        "transferred from the run's cells by k-NN in the latent. Writes obs + obsm['X_scmodal'] to --out.",
    )  # fmt: skip
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--modality", required=True, help="modality of the new cells")
    p.add_argument("--input", required=True, help=".h5ad of the new cells")
    p.add_argument("--input-kind", choices=("counts", "normalized", "scaled"), default="counts",
                   help="raw counts (default), normalised (log1p) values, or model-space values")  # fmt: skip
    p.add_argument("--layer", help="layer of --input to read instead of X")
    p.add_argument("--library-size-key", help="obs column of per-cell totals (when the panel differs)")
    p.add_argument("--out", required=True, help="output .h5ad")
    p.add_argument("--label-key", help="reference label column (default: the run's data.label_key)")
    p.add_argument("--reference-modality", help="comma-separated modalities of the reference cells (default: all)")
    p.add_argument("--no-labels", action="store_true", help="only encode, no label transfer")
    p.add_argument("--k", type=int, default=15, help="neighbours voting (default 15)")
    p.add_argument("--block-size", type=int, default=4096, help="cells per block (memory knob)")
    p.set_defaults(func=cmd_map)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "block_size", 1) is not None and getattr(args, "block_size", 1) < 1:
        parser.error("--block-size must be positive")
    try:
        summary = args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collect a sweep's runs into summary.csv and summary.md: python scripts/collect_sweep.py multirun/NAME/DATE"""

import argparse

from scmodal_jax.cli.sweeps import write_tables

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="a Hydra multirun directory (or any folder of run directories)")
    parser.add_argument("--out", default=None, help="output path stem (default ROOT/summary)")
    args = parser.parse_args()
    for path in write_tables(args.root, args.out):
        print(path)

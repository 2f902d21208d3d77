"""CPU seconds per test, subprocesses included: where the suite's time goes on a machine whose two cores it fills.

    PYTHONPATH=scripts python -m pytest -p pytest_cpu_profile      # one JSON per xdist worker in .pytest_cpu/
    python scripts/pytest_cpu_profile.py [.pytest_cpu] [--top 40]   # totals per file and the costliest tests
    python scripts/pytest_cpu_profile.py --save-costs tests/file_costs.json   # the order the suite's files start in

Wall time per test misleads under xdist (two workers share two cores, and a test's subprocesses run beside other
tests); user + system CPU of the worker and of the children it waited for adds up to the suite's cost. Set
PYTEST_CPU_DIR to write elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections import Counter
from pathlib import Path

import pytest

_rows: list[dict] = []


def _out_dir() -> Path:
    return Path(os.environ.get("PYTEST_CPU_DIR", ".pytest_cpu"))


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    own, children = _cpu()
    began, start = time.time(), time.perf_counter()
    yield
    own_after, children_after = _cpu()
    _rows.append({"id": item.nodeid, "self": own_after - own, "children": children_after - children,
                  "wall": time.perf_counter() - start, "began": began})  # fmt: skip


def pytest_sessionfinish(session):
    if not _rows:  # the xdist controller runs no test
        return
    out = _out_dir()
    out.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (out / f"cpu_{worker}.json").write_text(json.dumps({"rows": _rows}))


def _rows(folder: Path) -> list[dict]:
    rows = [r for f in sorted(folder.glob("cpu_*.json")) for r in json.loads(f.read_text())["rows"]]
    if not rows:
        raise SystemExit(f"no cpu_*.json in {folder}: run the suite with -p pytest_cpu_profile first")
    return rows


def file_costs(rows: list[dict]) -> Counter:
    """CPU seconds per test file (`tests/name.py`)."""
    per_file = Counter()
    for r in rows:
        per_file[r["id"].split("::")[0]] += r["self"] + r["children"]
    return per_file


def save_costs(folder: Path, path: Path) -> None:
    """Per-file CPU seconds as JSON, costliest first: tests/conftest.py starts the files in this order."""
    costs = {name: round(s, 1) for name, s in file_costs(_rows(folder)).most_common()}
    path.write_text(json.dumps(costs, indent=1) + "\n")


def summary(folder: Path, top: int) -> str:
    rows = _rows(folder)
    cost = {r["id"]: r["self"] + r["children"] for r in rows}
    per_file = file_costs(rows)
    lines = [f"{len(rows)} tests, {sum(cost.values()):.0f} CPU s", "", "per file:"]
    lines += [f"{s:8.1f}  {name}" for name, s in per_file.most_common()]
    lines += ["", f"costliest {top} tests:"]
    lines += [f"{s:8.1f}  {name}" for name, s in sorted(cost.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(_out_dir()))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save-costs", metavar="JSON", help="write the per-file CPU seconds here instead")
    args = parser.parse_args()
    if args.save_costs:
        save_costs(Path(args.folder), Path(args.save_costs))
    else:
        print(summary(Path(args.folder), args.top))

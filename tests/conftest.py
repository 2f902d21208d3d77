import atexit
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
# One XLA compilation cache for the whole test run, shared by the xdist workers and by every process they start
# (CLI runs, launchers, installed-wheel runs): many tests compile the same small programs in fresh processes.
# The first process (the xdist controller) makes it; the workers and subprocesses inherit the variable. It is new
# for each run and removed at its end, so a run never reuses programs compiled by an earlier one.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="scmodal_jax_test_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
# XLA's LLVM back end at optimisation level 1 instead of its default 2, for this process and every one it starts
# (xdist workers, CLI runs, launchers): the suite compiles a few hundred small programs and runs each briefly
# (level 1 took test_step.py and the CD14 relationship test from 137 to 112 CPU s). The programs compute the same
# values: the golden fits of test_trainer.py, recorded at the default level, hold to their 1e-5. Users' runs keep
# XLA's default.
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=1"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()
sys.path.insert(0, str(Path(__file__).parent))  # the numpy reference implementations

DATA_DIR = Path(os.environ.get("SCMODAL_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(module: str, reason: str | None = None):
    """`pytest.importorskip(module)`, except under CI=true, where every dev dependency is installed: there a missing
    one fails the test (naming it) instead of skipping it silently."""
    if in_ci():
        try:
            return importlib.import_module(module)
        except ImportError as err:
            pytest.fail(
                f"{module} is missing but CI=true installs every dev dependency (pip install -e '.[dev]'): {err}"
            )
    return pytest.importorskip(module, reason=reason)


def skip_without_shared_data(available: bool) -> pytest.MarkDecorator:
    """A skip mark for tests of the whole shared folder: skipped where it is absent, except in CI (they then fail)."""
    return pytest.mark.skipif(not available and not in_ci(), reason="shared data folder not available")


def shared_file(name: str) -> Path:
    """Path of a file of the shared real datasets. Where it is absent the test is skipped, except in CI
    (CI=true), where the shared data are always present: there a missing file is a failure, not a silent skip."""
    path = DATA_DIR / name
    if not path.exists():
        if in_ci():
            pytest.fail(f"shared data file {path} is missing (CI=true: the shared data must be present)")
        pytest.skip(f"shared data file {path} not available")
    return path


FILE_COSTS = Path(__file__).with_name("file_costs.json")


def costliest_files_first(nodeids: list[str], costs: dict[str, float]) -> list[str]:
    """Test ids reordered so whole files run costliest first (CPU seconds in `costs`, files not in it last, in
    their own order); the tests of a file keep theirs."""
    return sorted(nodeids, key=lambda nodeid: -costs.get(nodeid.split("::")[0], 0.0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the costliest files first (`--no-loadscope-reorder` in pyproject.toml makes xdist hand out files in
    this order): the last files to start are then short and the workers finish together. xdist's own order, by
    number of tests, started the quickstart and the tutorial last; the three workers then ended 41 s apart (on
    the 2-core CI machine the total did not change measurably, the cores being busy throughout). The costs come
    from `scripts/pytest_cpu_profile.py --save-costs tests/file_costs.json`."""
    costs = json.loads(FILE_COSTS.read_text()) if FILE_COSTS.exists() else {}
    rank = {nodeid: i for i, nodeid in enumerate(costliest_files_first([it.nodeid for it in items], costs))}
    items.sort(key=lambda it: rank[it.nodeid])


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than the cores this process may use (pyproject.toml caps it at 4).

    A worker is not always busy: it waits for the processes its tests start, for files, for a second process to
    meet it. On the 2-core CI machine a third worker fills those gaps: the suite took 604 s with 3 workers against
    845 s with 2 (the first also with faster model start-up, docs/development.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1

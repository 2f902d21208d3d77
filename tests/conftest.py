import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))  # the numpy reference implementations

DATA_DIR = Path(os.environ.get("SCMODAL_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


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

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))  # the numpy reference implementations

DATA_DIR = Path(os.environ.get("SCMODAL_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def shared_file(name: str) -> Path:
    """Path of a file of the shared real datasets, or skip the test when the folder is absent."""
    path = DATA_DIR / name
    if not path.exists():
        pytest.skip(f"shared data file {path} not available")
    return path

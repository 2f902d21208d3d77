"""Builders for the scMODAL paper's public datasets (downloaded on first use by `scmodal_jax.data.paper`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .builders import Integration

PAPER_BUILDERS: dict[str, Callable[[Any], Integration]] = {}

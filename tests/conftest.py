"""Shared fixtures: the real captures in ../shared/datasets and small prepared datasets built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("NTG_DATA_ROOT", REPO.parent / "shared" / "datasets")).resolve()

torch.set_num_threads(1)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The folder of real captures (``NTG_DATA_ROOT`` or ``../shared/datasets``)."""
    if not DATASETS.is_dir():
        pytest.fail(f"real datasets not found at {DATASETS}; set NTG_DATA_ROOT")
    return DATASETS

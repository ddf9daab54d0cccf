"""Shared fixtures: the real captures in ../shared/datasets and small prepared datasets built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from ray_cluster import ray_cluster  # noqa: F401  (one real local Ray head for the whole session)

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


IOT_SMALL_DEVICES = (
    "Aria",
    "D-LinkCam",
    "EdimaxPlug1101W",
    "HueBridge",
    "SmarterCoffee",
    "TP-LinkPlugHS110",
    "WeMoSwitch",
    "Withings",
)


def iot_sentinel_dir(root: Path) -> Path:
    return root / "iot-sentinel" / "captures_IoT_Sentinel" / "captures_IoT-Sentinel"


@pytest.fixture(scope="session")
def iot_small_captures(datasets_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of symlinks to eight iot-sentinel device folders (real captures, ground-truth labels)."""
    folder = tmp_path_factory.mktemp("iot_small_captures")
    for device in IOT_SMALL_DEVICES:
        (folder / device).symlink_to(iot_sentinel_dir(datasets_root) / device, target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def iot_small(iot_small_captures: Path, tmp_path_factory: pytest.TempPathFactory):
    """A small real PreparedDataset: eight iot-sentinel device types, device-only biflows, split seed 0."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset

    out = tmp_path_factory.mktemp("iot_small") / "data"
    options = PrepareOptions(labels="dir", device_only=True, min_flows_per_class=10)
    return prepare_dataset(str(iot_small_captures), out, options, jobs=2, progress=False, log=lambda m: None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test run first, in their usual order otherwise: ``make test``'s xdist workers take
    whole files from the front of this order, so the long files start at once and the short ones fill the end
    instead of one long file running alone after the rest."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process with pytest's own exit status once every report is written, skipping the C++ static
    destructors of a Ray driver: after 541 passed tests, the process that had been a Ray driver once segfaulted at
    interpreter exit (``[ray_log_sink] std::bad_alloc``, make test rc 2, 2026-12-06). Ray's own fatal path uses
    ``std::_Exit`` for the same reason (ray-project/ray#16280). Without Ray loaded the process exits as usual."""
    import sys

    if "ray" in sys.modules and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])

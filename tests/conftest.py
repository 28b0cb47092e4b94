"""Shared test set-up: offline hub and the reference fixtures' location."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_USE_OLD_CACHE", "0")
# As main.py does (common/threads.py): OpenMP threads that spin against other processes slow a run several-fold.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AD_SHARED_DIR", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES} (set AD_SHARED_DIR)")
    return FIXTURES


# --- CUDA: tests marked ``cuda`` run where a GPU is present and skip cleanly without one -------------------------
def pytest_addoption(parser):
    parser.addoption("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="cuda-marked tests: auto = run if a GPU is present, else skip; cpu = always skip; "
                          "cuda = require a GPU (fail, not skip, if there is none)")


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: runs on a CUDA device; skipped when none is present (see --device)")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    choice = config.getoption("--device")
    if choice == "cuda":
        return  # the cuda_device fixture fails loudly if there is no GPU
    reason = "--device cpu" if choice == "cpu" else "no CUDA device present"
    if choice == "cpu" or not _cuda_available():
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def cuda_device(request):
    import torch

    if not torch.cuda.is_available():
        pytest.fail("--device cuda: no CUDA device is available")
    return torch.device("cuda:0")

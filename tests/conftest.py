"""Shared pytest fixtures and the `slow` / `gpu` markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DREAMBENCH = REPO.parent / "shared" / "data" / "dreambench"
EXAMPLE_PHOTOS = REPO / "examples" / "backpack"

# Never try the network from tests: the Hub is unreachable here and in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    skip_gpu = pytest.mark.skip(reason="gpu: needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One packshot cache for the whole session, so tiny models are built once."""
    path = tmp_path_factory.mktemp("packshot-cache")
    os.environ["PACKSHOT_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def dreambench() -> Path:
    if not DREAMBENCH.is_dir():
        pytest.skip(f"DreamBench photos not found at {DREAMBENCH}")
    return DREAMBENCH

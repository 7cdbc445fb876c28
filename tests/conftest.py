"""Shared fixtures."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """One prepared-corpus cache for the whole session: tests sharing a config prepare it once."""
    return tmp_path_factory.mktemp("corpus-cache")


def pytest_configure(config):
    """Under pytest-xdist each worker gets one thread: two workers on two cores, not four threads fighting."""
    import os
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        torch.set_num_threads(1)

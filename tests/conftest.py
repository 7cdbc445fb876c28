"""Shared fixtures."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """One prepared-corpus cache for the whole session: tests sharing a config prepare it once."""
    return tmp_path_factory.mktemp("corpus-cache")

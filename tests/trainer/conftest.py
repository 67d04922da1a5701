"""Session fixtures for trainer tests (data builders live in tiny_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import tiny_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("run"))

"""The tiny data file shared by the engine tests (one per module)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_dataset


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny.pkl")

"""The MoveNet pose model and the sample video, shared by the pose tests (one model per module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelact.pose.movenet import MODEL_FILENAME


@pytest.fixture(scope="module")
def model_path(models_root: Path) -> Path:
    return models_root / MODEL_FILENAME


@pytest.fixture(scope="module")
def model(model_path: Path):
    pytest.importorskip("ai_edge_litert")
    from skelact.pose import MoveNet

    return MoveNet(model_path, num_threads=2, download=False)


@pytest.fixture(scope="module")
def sample_video(data_root: Path) -> Path:
    return data_root / "videos" / "ntu_sample.avi"

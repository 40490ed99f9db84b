"""Shared fixtures. Real data is read from ``$SKELACT_SHARED/data`` (default ``../shared``).

When the data is absent the real-data tests skip, unless ``SKELACT_REQUIRE_DATA=1`` (set by
``.ci/run``) turns the absence into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests run on a 2-core machine; two threads per process keeps timings and memory predictable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def shared_root() -> Path:
    return Path(os.environ.get("SKELACT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_root() / "data"
    if not root.is_dir():
        msg = f"real data not found at {root} (set SKELACT_SHARED)"
        if os.environ.get("SKELACT_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def models_root() -> Path:
    root = shared_root() / "models"
    if not root.is_dir():
        msg = f"pose model folder not found at {root} (set SKELACT_SHARED)"
        if os.environ.get("SKELACT_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture
def one_thread() -> object:
    """One torch thread: tiny models gain nothing from threads, and OpenMP threads stall badly on a
    busy 2-core machine. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def labelled_videos(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/{forward,reversed}/clip_{0..3}.avi``: 18-frame 640x360 pieces of the real NTU video, the
    second class played backwards (see ``synthetic.labelled_video_folder``). Shared: do not modify it."""
    pytest.importorskip("cv2")
    from synthetic import labelled_video_folder

    root = tmp_path_factory.mktemp("labelled") / "videos"
    return labelled_video_folder(root, data_root / "videos" / "ntu_sample.avi")


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished 2-epoch training of the tiny model (``synthetic.recipe``): its data, recipe file, work
    dir and ``last.pt``. Shared by the modules that hand it to commands: copy it before changing it."""
    import yaml
    from synthetic import make_dataset, recipe

    from skelact.config import config_from_dict
    from skelact.engine.train import train

    root = tmp_path_factory.mktemp("run")
    data = make_dataset(root / "tiny.pkl")
    raw = recipe(data)
    cfg_file = root / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    work = root / "work"
    train(config_from_dict(raw), work)
    return {"data": data, "recipe": cfg_file, "work": work, "ckpt": work / "last.pt"}

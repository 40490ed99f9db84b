"""Skeleton videos (skelact.viz.video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_video_errors_name_the_users_path_not_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skelact.viz import video as video_module

    def no_codec(path: Path, fps: float, size: tuple[int, int]) -> None:
        raise video_module.VideoWriteError(f"{path}: OpenCV cannot write .mp4 videos here (tried avc1)")

    monkeypatch.setattr(video_module, "open_video_writer", no_codec)
    out = tmp_path / "out.mp4"
    with pytest.raises(video_module.VideoWriteError) as e:
        video_module.write_skeleton_video(out, np.ones((1, 3, 13, 2), np.float32), layout="penn13", img_shape=(64, 64))
    assert str(e.value).startswith(f"{out}: ") and ".tmp" not in str(e.value)
    assert list(tmp_path.iterdir()) == []

"""Skeleton videos (skelact.viz.video): the canvas mapping, writing over black or over frames, failures
that leave nothing, the codec choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import figure_joints

cv2 = pytest.importorskip("cv2")

from skelact.viz.video import open_video_writer, to_canvas, write_skeleton_video  # noqa: E402


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


def test_to_canvas_2d_3d_and_missing() -> None:
    kp3 = np.zeros((1, 2, 3, 3), np.float32)  # [M, T, V, 3], metres
    kp3[0, :, 0] = [0.0, 1.5, 3.0]  # head, high
    kp3[0, :, 1] = [0.1, 0.2, 3.0]  # foot, low
    kp3[0, 1, 2] = [0.3, 1.0, 3.0]  # joint 2 missing in frame 0
    out = to_canvas(kp3, size=(480, 640))
    assert out.shape == (1, 2, 3, 2) and out.dtype == np.float32
    assert out[0, 0, 0, 1] < out[0, 0, 1, 1]  # up is up: the head is above the foot
    assert (out[0, 0, 2] == 0).all()
    valid = out[0].reshape(-1, 2)[[0, 1, 3, 4, 5]]
    assert ((valid > 0) & (valid < [640, 480])).all()
    assert np.isclose(valid[:, 1].max() - valid[:, 1].min(), 480 * (1 - 2 * 0.08), atol=1)  # height fills the canvas

    kp2 = np.array([[[[960.0, 540.0], [1920.0, 1080.0]]]], np.float32)  # pixels in a 1080p frame
    out2 = to_canvas(kp2, img_shape=(1080, 1920), size=(480, 640))
    np.testing.assert_allclose(out2[0, 0, 0], [320, 240], atol=1e-3)  # the frame centre is the canvas centre


def _read_back(path: Path) -> tuple[int, int, int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    size = (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = frame.shape[:2]
    cap.release()
    return n, size[0], size[1]


def _clip(t: int = 9) -> tuple[np.ndarray, np.ndarray]:
    kp = np.stack([np.stack([figure_joints(60 + 4 * i, 60) for i in range(t)]),
                   np.stack([figure_joints(100, 60) for _ in range(t)])])  # [2, T, 17, 2]
    return kp, np.ones(kp.shape[:3], np.float32)


def test_write_skeleton_video_black_background(tmp_path: Path) -> None:
    kp, score = _clip(9)
    out = write_skeleton_video(tmp_path / "clip.mp4", kp, score, "coco17", img_shape=(120, 160),
                               topk=[("a", 0.6), ("b", 0.4)], true_label="a", panel_width=100)
    assert out == tmp_path / "clip.mp4"
    assert _read_back(out) == (9, 120, 260)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left


def test_write_skeleton_video_over_frames_downscaled(tmp_path: Path) -> None:
    kp, score = _clip(6)
    kp = kp * 8  # in a 960×1280 frame
    frames = (np.full((960, 1280, 3), 90, np.uint8) for _ in range(6))
    out = write_skeleton_video(tmp_path / "over.avi", kp, score, "coco17", frames=frames, max_side=320)
    assert _read_back(out) == (6, 240, 320)


def test_write_skeleton_video_error_leaves_nothing(tmp_path: Path) -> None:
    kp, score = _clip(8)

    def frames():
        for i in range(8):
            if i == 4:
                raise RuntimeError("decoder died")
            yield np.zeros((120, 160, 3), np.uint8)

    with pytest.raises(RuntimeError, match="decoder died"):
        write_skeleton_video(tmp_path / "bad.mp4", kp, score, "coco17", frames=frames())
    assert list(tmp_path.iterdir()) == []
    # An existing output is kept as it was when the rewrite fails.
    (tmp_path / "bad.mp4").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_skeleton_video(tmp_path / "bad.mp4", kp, score, "coco17", frames=frames())
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mp4"] and (tmp_path / "bad.mp4").read_bytes() == b"old"
    with pytest.raises(ValueError, match="to_canvas"):
        write_skeleton_video(tmp_path / "x.mp4", np.zeros((1, 3, 17, 3)), None, img_shape=(10, 10))
    with pytest.raises(FileExistsError):
        write_skeleton_video(tmp_path / "bad.mp4", kp, score, img_shape=(120, 160), force=False)


def test_open_video_writer(tmp_path: Path) -> None:
    writer, fourcc = open_video_writer(tmp_path / "w.mp4", 30, (64, 48))
    writer.release()
    assert fourcc in ("avc1", "H264", "mp4v")
    with pytest.raises(ValueError, match="extension"):
        open_video_writer(tmp_path / "w.gif", 30, (64, 48))

"""Skeleton drawing, prediction panel, canvas mapping and skeleton video writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from skelact.viz.draw import PALETTE, draw_panel, draw_skeletons  # noqa: E402
from skelact.viz.video import open_video_writer, to_canvas, write_skeleton_video  # noqa: E402


def _person(cx: float, cy: float) -> np.ndarray:
    """coco17 joints [17, 2] of a small upright figure centred at (cx, cy)."""
    rel = np.array([
        [0, -40], [-4, -44], [4, -44], [-8, -42], [8, -42],  # face
        [-14, -28], [14, -28], [-20, -12], [20, -12], [-24, 2], [24, 2],  # arms
        [-8, 2], [8, 2], [-9, 22], [9, 22], [-10, 42], [10, 42],  # legs
    ], np.float32)
    return rel + np.array([cx, cy], np.float32)


def _is(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


def test_draw_skeletons_colours_joints_and_keeps_background() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    kp = np.stack([_person(70, 100), _person(220, 100)])  # [2, 17, 2]
    score = np.ones((2, 17), np.float32)
    score[1, 9] = 0.05  # left wrist below the threshold: not drawn
    out = draw_skeletons(frame, kp, score, "coco17", thickness=2)
    assert out.shape == frame.shape and not frame.any()  # the input is untouched
    for v in (0, 5, 12, 16):
        x, y = np.round(kp[0, v]).astype(int)
        assert _is(out[y, x], PALETTE[0])
        x, y = np.round(kp[1, v]).astype(int)
        assert _is(out[y, x], PALETTE[1])
    x, y = np.round(kp[1, 9]).astype(int)
    assert not out[y, x].any()
    # Far from both people the background is untouched.
    assert not out[:, 140:150].any() and not out[:40].any() and not out[160:].any()
    assert out.any(-1).mean() < 0.2


def test_draw_skips_missing_joints_and_draws_inplace() -> None:
    frame = np.zeros((120, 120, 3), np.uint8)
    kp = _person(60, 60)[None].copy()
    kp[0, 0] = 0.0  # missing nose: neither the joint nor its bones are drawn
    out = draw_skeletons(frame, kp, None, "coco17", inplace=True)
    assert out is frame and frame.any()
    assert not frame[:3, :3].any()
    x, y = np.round(_person(60, 60)[0]).astype(int)
    assert not frame[y, x].any()
    with pytest.raises(ValueError, match="to_canvas"):
        draw_skeletons(frame, np.zeros((1, 17, 3)), None)
    with pytest.raises(ValueError, match="17 joints"):
        draw_skeletons(frame, np.zeros((1, 13, 2)), None, "coco17")


def test_draw_panel_highlights_right_and_wrong() -> None:
    frame = np.zeros((300, 400, 3), np.uint8)
    topk = [("drink water", 0.7), ("eat meal", 0.2), ("brush teeth", 0.1)]
    right = draw_panel(frame, topk, "drink water", width=200)
    assert right.shape == (300, 600, 3) and not right[:, :400].any()
    wrong = draw_panel(frame, topk, "eat meal", width=200)

    def has(img: np.ndarray, color: tuple[int, int, int]) -> bool:
        return bool((np.abs(img[:, 400:].astype(int) - color).max(-1) <= 10).any())

    green, red = (60, 200, 60), (60, 60, 230)
    assert has(right, green) and not has(right, red)
    assert has(wrong, green) and has(wrong, red)  # the true label's row is green, the wrong top-1 red
    assert draw_panel(frame, [], None).shape[1] > 400


def test_long_class_names_wrap_onto_two_lines() -> None:
    import cv2

    from skelact.viz.draw import _wrap_text

    def px(text: str) -> int:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]

    name = "1. put on a hat or a cap"
    assert _wrap_text(cv2, name, 1000, 0.5, 1) == [name]
    lines = _wrap_text(cv2, name, px("1. put on a hat"), 0.5, 1)
    assert lines == ["1. put on a hat", "or a cap"]
    cut = _wrap_text(cv2, "1. " + "very " * 20 + "long", px("1. very very"), 0.5, 1)
    assert len(cut) == 2 and cut[0] == "1. very very" and cut[1].endswith("...")
    assert all(px(line) <= px("1. very very") for line in cut)
    frame = np.zeros((300, 400, 3), np.uint8)
    one = draw_panel(frame, [("kick", 0.9)], None, width=200)
    two = draw_panel(frame, [("kick something or somebody over there", 0.9)], None, width=200)
    rows = lambda img: int((img[:, 400:] != img[0, -1]).any(axis=(1, 2)).sum())  # noqa: E731 - drawn rows
    assert rows(two) > rows(one)  # the second line is drawn, not cut away


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
    kp = np.stack([np.stack([_person(60 + 4 * i, 60) for i in range(t)]),
                   np.stack([_person(100, 60) for _ in range(t)])])  # [2, T, 17, 2]
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

"""Skeleton drawing and the prediction panel (skelact.viz.draw)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import figure_joints

cv2 = pytest.importorskip("cv2")

from skelact.viz.draw import PALETTE, draw_panel, draw_skeletons  # noqa: E402


def _is(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


def test_draw_skeletons_colours_joints_and_keeps_background() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    kp = np.stack([figure_joints(70, 100), figure_joints(220, 100)])  # [2, 17, 2]
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
    kp = figure_joints(60, 60)[None].copy()
    kp[0, 0] = 0.0  # missing nose: neither the joint nor its bones are drawn
    out = draw_skeletons(frame, kp, None, "coco17", inplace=True)
    assert out is frame and frame.any()
    assert not frame[:3, :3].any()
    x, y = np.round(figure_joints(60, 60)[0]).astype(int)
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



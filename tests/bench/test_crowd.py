"""The crowd benchmark's geometry and scoring (benchmarks/crowd.py) on synthetic points."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "crowd.py"
_spec = importlib.util.spec_from_file_location("bench_crowd", _PATH)
crowd = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = crowd  # dataclasses look their module up there
_spec.loader.exec_module(crowd)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_tiles_cover_the_frame_once(k: int) -> None:
    covered = np.zeros((720, 1280), np.int32)
    for i in range(k * k):
        x0, y0, x1, y1 = crowd.tile_box(i, k)
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    assert crowd.tile_box(k * k - 1, k)[2:] == (1280, 720)


def test_letterbox_maps_clip_corners_onto_the_placed_rectangle() -> None:
    # A 1920x1080 clip fills a 320x180 tile exactly; a square clip is centred with side bars.
    p = crowd.place(1920, 1080, crowd.tile_box(5, 4))  # row 1, column 1: (320, 180)-(640, 360)
    assert (p.x, p.y, p.width, p.height) == (320, 180, 320, 180) and p.scale == pytest.approx(1 / 6)
    q = crowd.place(300, 300, (0, 0, 320, 180))
    assert (q.x, q.y, q.width, q.height) == (70, 0, 180, 180) and q.scale == pytest.approx(0.6)
    corners = np.array([[0, 0], [300, 300], [150, 0]], np.float32)
    np.testing.assert_allclose(crowd.to_frame(corners, q), [[70, 0], [250, 180], [160, 0]])


def _person(x: float, y: float, height: float = 100.0) -> np.ndarray:
    """17 joints spread over a ``height``-tall column at (x, y)."""
    return np.stack([np.full(17, x), y + np.linspace(0, height, 17)], -1).astype(np.float32)


def test_pck_counts_joints_within_a_fifth_of_the_height_over_seen_joints() -> None:
    ref = _person(100, 50)
    seen = np.ones(17, bool)
    seen[:2] = False  # unseen joints do not count, however far off
    det = ref.copy()
    det[:2, 0] += 500
    det[2:7, 0] += 30  # 0.3 h: misses
    det[7:, 0] += 10  # 0.1 h: hits
    assert crowd.person_height(ref, seen) == pytest.approx(100 * 14 / 16)
    h = 100.0
    assert crowd.pck(det, ref, seen, h) == pytest.approx(10 / 15)
    assert crowd.pck(ref, ref, seen, h) == 1.0


def test_match_pairs_by_distance_and_refuses_far_detections() -> None:
    seen = np.ones(17, bool)
    refs = [(_person(100, 0), seen, 100.0), (_person(400, 0), seen, 100.0), (_person(700, 0), seen, 100.0)]
    det = np.stack([_person(405, 5), _person(98, 0), _person(900, 0)])  # the third is 2 heights from any reference
    assert sorted(crowd.match(det, refs)) == [(0, 1), (1, 0)]
    assert crowd.match(det[:0], refs) == [] and crowd.match(det, []) == []


def test_identity_stats_counts_tracks_and_switches() -> None:
    assert crowd.identity_stats([3, 3, 5, 5, 3]) == (2, 2)
    assert crowd.identity_stats([7] * 10) == (1, 0)


def test_reference_input_never_enlarges_a_small_clip() -> None:
    assert crowd.reference_input(1920, 1080, 512) == 512
    assert crowd.reference_input(220, 300, 512) == 288  # the clip's longer side, down to a multiple of 32
    assert crowd.reference_input(120, 90, 512) == 256  # the model's own size at the least

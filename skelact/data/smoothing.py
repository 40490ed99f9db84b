"""Cleaning tracked keypoints over time: short gaps filled, jitter smoothed (a One Euro filter).

Both work on a PYSKL clip's arrays, ``keypoint`` [M, T, V, C] and ``keypoint_score`` [M, T, V], where
a person absent from a frame has all scores 0 (as the tracker writes them).

- :func:`fill_gaps`: a person missing for at most ``max_gap`` frames between two frames where they
  were seen gets the straight line between those two poses (scores: the smaller of the two ends).
- :func:`one_euro`: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012), a low-pass filter whose
  cut-off rises with speed, so still joints stop jittering while fast ones do not lag. It runs
  forward in time only (usable live) and restarts after each gap. Speeds are measured in person
  heights per second, so one setting suits every resolution.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fill_gaps", "one_euro"]


def _present(score: np.ndarray) -> np.ndarray:
    """[M, T] whether the person is in the frame (any joint scored)."""
    return (score > 0).any(-1)


def fill_gaps(keypoint: np.ndarray, score: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill gaps of at most ``max_gap`` frames inside each person's track by linear interpolation.

    Args:
        keypoint: [M, T, V, C]; score: [M, T, V] (0 where the person is absent).
        max_gap: Longest gap filled, in frames (0: nothing is filled).

    Returns:
        New (keypoint, score) arrays; gaps at the start or end of a track are left empty.

    Example:
        >>> kp = np.zeros((1, 5, 1, 2), np.float32); sc = np.zeros((1, 5, 1), np.float32)
        >>> kp[0, [0, 4], 0] = [[0, 0], [4, 8]]; sc[0, [0, 4], 0] = [0.75, 0.5]
        >>> k, s = fill_gaps(kp, sc, 3)
        >>> k[0, :, 0, 1].tolist(), s[0, :, 0].tolist()
        ([0.0, 2.0, 4.0, 6.0, 8.0], [0.75, 0.5, 0.5, 0.5, 0.5])
    """
    keypoint, score = keypoint.copy(), score.copy()
    if max_gap <= 0:
        return keypoint, score
    present = _present(score)
    for m in range(keypoint.shape[0]):
        seen = np.flatnonzero(present[m])
        for a, b in zip(seen[:-1], seen[1:], strict=True):
            gap = b - a - 1
            if 0 < gap <= max_gap:
                w = (np.arange(1, gap + 1, dtype=np.float32) / (gap + 1))[:, None, None]  # [gap, 1, 1]
                keypoint[m, a + 1:b] = (1 - w) * keypoint[m, a] + w * keypoint[m, b]
                score[m, a + 1:b] = np.minimum(score[m, a], score[m, b])
    return keypoint, score


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(keypoint: np.ndarray, score: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 1.0,
             d_cutoff: float = 1.0) -> np.ndarray:
    """Smooth each person's joints over time with the One Euro filter (causal).

    Args:
        keypoint: [M, T, V, C] in pixels (or any unit); score: [M, T, V], 0 where the person is absent.
        fps: Frames per second of the clip.
        min_cutoff: Cut-off frequency (Hz) of a still joint: lower smooths more.
        beta: How fast the cut-off rises with speed, per (person height / s): higher lags less.
        d_cutoff: Cut-off (Hz) of the speed estimate.

    Returns:
        The smoothed keypoints [M, T, V, C] (float32); absent frames are left as they were.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    out = keypoint.astype(np.float32, copy=True)
    present = _present(score)
    dt = 1.0 / fps
    a_d = _alpha(d_cutoff, dt)
    for m in range(keypoint.shape[0]):
        prev: np.ndarray | None = None  # [V, C] filtered position of the frame before
        dprev = np.zeros(keypoint.shape[2:], np.float32)
        for t in range(keypoint.shape[1]):
            if not present[m, t]:
                prev = None  # restart after a gap: no speed across it
                continue
            x = keypoint[m, t].astype(np.float32)
            if prev is None:
                prev, dprev = x, np.zeros_like(x)
                continue
            seen = score[m, t] > 0
            ys = x[seen, 1] if x.shape[-1] >= 2 else x[seen, 0]
            height = max(float(ys.max() - ys.min()), 1.0) if len(ys) else 1.0
            dx = (x - prev) / dt / height  # [V, C] speed in person heights per second
            dprev = a_d * dx + (1 - a_d) * dprev
            cutoff = min_cutoff + beta * np.linalg.norm(dprev, axis=-1, keepdims=True)  # [V, 1]
            a = _alpha(cutoff, dt)
            prev = a * x + (1 - a) * prev
            out[m, t] = prev
    return out

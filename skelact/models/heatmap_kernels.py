"""Compiled CPU kernels for :mod:`skelact.models.heatmap` (the ``fast`` extra: numba).

The torch path in ``heatmap.py`` evaluates every window pixel as a tensor element and merges
them with ``scatter_reduce``; on a CPU that costs several passes over memory per pixel, about
3x (joints) and 9x (limbs) the time of merely writing the output. These loops draw one
``(H, W)`` map at a time: zero it, draw each person's joint (or limb) into it with a maximum,
move on, so every map is written once while it sits in the cache.

Same formula, same cut-offs as the torch path (``_cutoff``): a joint window is the ``2R+1``
square around the rounded centre (an outer product of two 1D Gaussians); a limb draws the pixels
whose distance ``d`` to the segment is within the cut-off. Results agree with the torch path
within float32 rounding (tests/test_heatmap.py runs both against the float64 formula).

Importing this module imports numba (compiles on first use, cached on disk afterwards).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import heatmap

__all__ = ["draw_joints", "draw_limbs"]

_FAR = np.float32(heatmap._FAR)  # coordinates are clamped to +-_FAR before any arithmetic, as there


@njit(cache=True, nogil=True)
def _usable(x: float, y: float, s: float) -> bool:
    return s > 0 and math.isfinite(s) and math.isfinite(x) and math.isfinite(y)


@njit(cache=True, nogil=True)
def _clamp(x: float) -> float:
    return min(max(x, -_FAR), _FAR)


@njit(cache=True, nogil=True)
def draw_joints(kp: np.ndarray, score: np.ndarray, out: np.ndarray, sigma: float, radius: int,
                single: bool) -> None:  # pragma: no cover - compiled
    """Joint heatmaps into ``out (N, C, T, H, W)`` (C = V, or 1 when ``single``), overwritten.

    ``kp (N, M, T, V, 2)`` and ``score (N, M, T, V)`` float32, C-contiguous; ``radius`` is R.
    """
    n_clips, n_persons, n_frames, n_joints, _ = kp.shape
    n_maps, h, w = out.shape[1], out.shape[3], out.shape[4]
    gx = np.empty(2 * radius + 1, np.float32)
    a = np.float32(-0.5 / sigma**2)
    for n in range(n_clips):
        for c in range(n_maps):
            first, last = (0, n_joints) if single else (c, c + 1)
            for t in range(n_frames):
                hm = out[n, c, t]
                hm[:] = 0
                for m in range(n_persons):
                    for v in range(first, last):
                        s = score[n, m, t, v]
                        x, y = kp[n, m, t, v, 0], kp[n, m, t, v, 1]
                        if not _usable(x, y, s):
                            continue
                        x, y = _clamp(x), _clamp(y)
                        cx, cy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
                        x0, x1 = max(cx - radius, 0), min(cx + radius, w - 1)
                        y0, y1 = max(cy - radius, 0), min(cy + radius, h - 1)
                        if x0 > x1 or y0 > y1:
                            continue
                        for j in range(x0, x1 + 1):
                            d = np.float32(j) - x
                            gx[j - x0] = math.exp(d * d * a)
                        for i in range(y0, y1 + 1):
                            d = np.float32(i) - y
                            gy = np.float32(math.exp(d * d * a)) * s
                            row = hm[i]
                            for j in range(x0, x1 + 1):
                                val = gy * gx[j - x0]
                                if val > row[j]:
                                    row[j] = val


@njit(cache=True, nogil=True)
def draw_limbs(kp: np.ndarray, score: np.ndarray, limbs: np.ndarray, out: np.ndarray, sigma: float,
               cutoff: float) -> None:  # pragma: no cover - compiled
    """Limb heatmaps into ``out (N, L, T, H, W)``, overwritten; ``limbs (L, 2)`` int64 joint pairs.

    A pixel draws ``min(s_a, s_b) * exp(-d^2 / 2 sigma^2)`` when ``d <= cutoff``; only the
    segment's bounding box grown by the cut-off is visited.
    """
    n_clips, n_persons, n_frames, _, _ = kp.shape
    h, w = out.shape[3], out.shape[4]
    a = np.float32(-0.5 / sigma**2)
    r2 = np.float32(cutoff * cutoff)
    for n in range(n_clips):
        for li in range(limbs.shape[0]):
            ja, jb = limbs[li, 0], limbs[li, 1]
            for t in range(n_frames):
                hm = out[n, li, t]
                hm[:] = 0
                for m in range(n_persons):
                    sa, sb = score[n, m, t, ja], score[n, m, t, jb]
                    ax, ay = kp[n, m, t, ja, 0], kp[n, m, t, ja, 1]
                    bx, by = kp[n, m, t, jb, 0], kp[n, m, t, jb, 1]
                    # Each end checked on its own: min() with a NaN score may return the other one.
                    if not (_usable(ax, ay, sa) and _usable(bx, by, sb)):
                        continue
                    s = min(sa, sb)
                    ax, ay, bx, by = _clamp(ax), _clamp(ay), _clamp(bx), _clamp(by)
                    dx, dy = bx - ax, by - ay
                    len2 = dx * dx + dy * dy
                    inv = np.float32(1.0) / len2 if len2 > 0 else np.float32(0.0)  # a point: frac 0
                    x0, x1 = max(math.ceil(min(ax, bx) - cutoff), 0), min(math.floor(max(ax, bx) + cutoff), w - 1)
                    y0, y1 = max(math.ceil(min(ay, by) - cutoff), 0), min(math.floor(max(ay, by) + cutoff), h - 1)
                    for i in range(y0, y1 + 1):
                        py = np.float32(i) - ay
                        row = hm[i]
                        for j in range(x0, x1 + 1):
                            px = np.float32(j) - ax
                            # Nearest segment point a + frac * (b - a), frac clamped to [0, 1].
                            frac = min(max((px * dx + py * dy) * inv, np.float32(0.0)), np.float32(1.0))
                            ex, ey = px - frac * dx, py - frac * dy
                            d2 = ex * ex + ey * ey
                            if d2 <= r2:
                                val = np.float32(math.exp(d2 * a)) * s
                                if val > row[j]:
                                    row[j] = val

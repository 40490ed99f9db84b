"""Heatmap references: the published formula, and PYSKL's algorithm as PYSKL runs it (numpy).

PoseConv3D's pseudo-heatmaps (Duan et al., CVPR 2022) are, per frame and person:

* joint ``v``: ``s_v * exp(-|p - k_v|^2 / (2 sigma^2))`` on every pixel ``p``;
* limb ``(a, b)``: ``min(s_a, s_b) * exp(-d(p, [k_a, k_b])^2 / (2 sigma^2))`` with ``d`` the distance
  to the segment (to the nearer end past either end; a zero-length segment is a point);

persons merged by a maximum, joints with score <= 0 (or non-finite values) drawing nothing, pixel
``(row i, column j)`` centred at ``(x=j, y=i)``. :func:`formula_joint_heatmaps` and
:func:`formula_limb_heatmaps` evaluate that on every pixel in float64: the ground truth that
``skelact.models.heatmap`` and the references below are tested against.

:func:`pyskl_joint_heatmaps` and :func:`pyskl_limb_heatmaps` compute the same maps the way PYSKL's
``GeneratePoseTarget`` does: float32 numpy, a Python loop over frames, joints (or limbs) and
persons, each drawing one patch around its keypoint (or segment) and merging it into the map by
a maximum. That is the cost the benchmark compares with. PYSKL's own code cuts each patch at 3
sigma (values up to ``exp(-4.5)``, 1.1 % of the peak, are dropped), skips scores below 1e-3 and
draws limbs shorter than 1 px as a point at the first joint; these references instead cut where
the Gaussian falls below ``eps`` of its peak, so that they equal the formula (to ``eps``) and
skelact's maps at equal output. ``skelact bench --pyskl`` times PYSKL's own code beside them and
reports how far its output is from the formula.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["formula_joint_heatmaps", "formula_limb_heatmaps", "pyskl_joint_heatmaps", "pyskl_limb_heatmaps",
           "patch_radius"]

Limbs = list[tuple[int, int]] | tuple[tuple[int, int], ...]


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _valid(kp: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``(..., V)`` bool: joints that draw (score > 0, finite coordinates and score)."""
    with np.errstate(invalid="ignore"):
        return (score > 0) & np.isfinite(score) & np.isfinite(kp).all(-1)


def formula_joint_heatmaps(kp: np.ndarray, score: np.ndarray, size: int | tuple[int, int],
                           sigma: float = 0.6) -> np.ndarray:
    """The joint formula on every pixel (float64), max over persons.

    Args:
        kp: ``(N, M, T, V, 2)`` keypoints in output pixels (x, y).
        score: ``(N, M, T, V)``.
        size: ``(H, W)`` or one int.
        sigma: Gaussian standard deviation in pixels.

    Returns:
        ``(N, V, T, H, W)``.
    """
    h, w = _hw(size)
    valid = _valid(kp, score)
    kp = np.where(valid[..., None], kp, 0.0).astype(np.float64)
    s = np.where(valid, score, 0.0).astype(np.float64)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    dx2 = (xs - kp[..., 0, None]) ** 2  # (N, M, T, V, W)
    dy2 = (ys - kp[..., 1, None]) ** 2  # (N, M, T, V, H)
    g = s[..., None, None] * np.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 * sigma**2))
    return g.max(axis=1).transpose(0, 2, 1, 3, 4)


def formula_limb_heatmaps(kp: np.ndarray, score: np.ndarray, limbs: Limbs, size: int | tuple[int, int],
                          sigma: float = 0.6) -> np.ndarray:
    """The limb formula (distance to the segment) on every pixel (float64), max over persons.

    Returns:
        ``(N, L, T, H, W)``.
    """
    h, w = _hw(size)
    valid = _valid(kp, score)
    kp = np.where(valid[..., None], kp, 0.0).astype(np.float64)
    s = np.where(valid, score, 0.0).astype(np.float64)
    ia = np.array([a for a, _ in limbs], dtype=np.int64)
    ib = np.array([b for _, b in limbs], dtype=np.int64)
    a, b = kp[..., ia, :], kp[..., ib, :]  # (N, M, T, L, 2)
    gain = np.minimum(s[..., ia], s[..., ib])[..., None, None]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    ab = b - a
    len2 = (ab**2).sum(-1)[..., None, None]
    px, py = xs - a[..., 0, None, None], ys - a[..., 1, None, None]
    proj = px * ab[..., 0, None, None] + py * ab[..., 1, None, None]
    frac = np.clip(np.divide(proj, len2, out=np.zeros_like(proj), where=len2 > 0), 0, 1)
    d2 = (px - frac * ab[..., 0, None, None]) ** 2 + (py - frac * ab[..., 1, None, None]) ** 2
    g = gain * np.exp(-d2 / (2 * sigma**2))
    return g.max(axis=1).transpose(0, 2, 1, 3, 4)


def patch_radius(sigma: float, eps: float) -> float:
    """Distance in pixels beyond which ``exp(-d^2 / 2 sigma^2) < eps``."""
    return sigma * math.sqrt(2.0 * math.log(1.0 / eps))


def _window(lo: float, hi: float, radius: float, n: int) -> tuple[int, int]:
    """Pixel range ``[start, stop)`` within ``radius`` of ``[lo, hi]``, clipped to ``[0, n)``."""
    return max(math.ceil(lo - radius), 0), min(math.floor(hi + radius) + 1, n)


def pyskl_joint_heatmaps(kp: np.ndarray, score: np.ndarray, size: int | tuple[int, int], sigma: float = 0.6,
                         eps: float = 1e-6) -> np.ndarray:
    """Joint heatmaps by PYSKL's algorithm: one numpy patch per keypoint, frame and person.

    Args:
        kp: ``(N, M, T, V, 2)`` keypoints in output pixels.
        score: ``(N, M, T, V)``.
        size: ``(H, W)`` or one int.
        sigma: Gaussian standard deviation in pixels.
        eps: Patches cover the pixels where the Gaussian is at least ``eps`` of its peak.

    Returns:
        ``(N, V, T, H, W)`` float32.
    """
    h, w = _hw(size)
    n, m, t, v, _ = kp.shape
    radius = patch_radius(sigma, eps)
    valid = _valid(kp, score)
    out = np.zeros((n, v, t, h, w), dtype=np.float32)
    for i in range(n):
        for f in range(t):
            for j in range(v):
                arr = out[i, j, f]
                for p in range(m):
                    if not valid[i, p, f, j]:
                        continue
                    mx, my = float(kp[i, p, f, j, 0]), float(kp[i, p, f, j, 1])
                    x0, x1 = _window(mx, mx, radius, w)
                    y0, y1 = _window(my, my, radius, h)
                    if x0 >= x1 or y0 >= y1:
                        continue
                    x = np.arange(x0, x1, dtype=np.float32) - np.float32(mx)
                    y = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(my)
                    patch = np.exp(-(x**2 + y**2) / np.float32(2 * sigma**2)) * np.float32(score[i, p, f, j])
                    np.maximum(arr[y0:y1, x0:x1], patch, out=arr[y0:y1, x0:x1])
    return out


def pyskl_limb_heatmaps(kp: np.ndarray, score: np.ndarray, limbs: Limbs, size: int | tuple[int, int],
                        sigma: float = 0.6, eps: float = 1e-6) -> np.ndarray:
    """Limb heatmaps by PYSKL's algorithm: one numpy patch (the segment's box) per limb, frame and person.

    Each patch holds ``min(s_a, s_b) * exp(-d^2 / 2 sigma^2)``, ``d`` the distance to the segment:
    to the line through it where the pixel projects inside it, else to the nearer end.

    Returns:
        ``(N, L, T, H, W)`` float32.
    """
    h, w = _hw(size)
    n, m, t, _, _ = kp.shape
    radius = patch_radius(sigma, eps)
    valid = _valid(kp, score)
    out = np.zeros((n, len(limbs), t, h, w), dtype=np.float32)
    for i in range(n):
        for f in range(t):
            for k, (ja, jb) in enumerate(limbs):
                arr = out[i, k, f]
                for p in range(m):
                    if not (valid[i, p, f, ja] and valid[i, p, f, jb]):
                        continue
                    a = kp[i, p, f, ja].astype(np.float32)
                    b = kp[i, p, f, jb].astype(np.float32)
                    x0, x1 = _window(min(a[0], b[0]), max(a[0], b[0]), radius, w)
                    y0, y1 = _window(min(a[1], b[1]), max(a[1], b[1]), radius, h)
                    if x0 >= x1 or y0 >= y1:
                        continue
                    x = np.arange(x0, x1, dtype=np.float32)
                    y = np.arange(y0, y1, dtype=np.float32)[:, None]
                    d2_a = (x - a[0]) ** 2 + (y - a[1]) ** 2  # (h', w') squared distances to each end
                    d2_b = (x - b[0]) ** 2 + (y - b[1]) ** 2
                    ab = b - a
                    len2 = float(ab @ ab)
                    if len2 > 0:
                        # Projection fraction along a->b; past an end, the distance is to that end.
                        frac = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / np.float32(len2)
                        cross = ((x - a[0]) * ab[1] - (y - a[1]) * ab[0]) ** 2 / np.float32(len2)
                        d2 = np.where(frac <= 0, d2_a, np.where(frac >= 1, d2_b, cross))
                    else:
                        d2 = d2_a
                    gain = np.float32(min(score[i, p, f, ja], score[i, p, f, jb]))
                    patch = np.exp(-d2 / np.float32(2 * sigma**2)) * gain
                    np.maximum(arr[y0:y1, x0:x1], patch, out=arr[y0:y1, x0:x1])
    return out

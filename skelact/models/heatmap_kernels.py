"""Compiled CPU kernels for :mod:`skelact.models.heatmap` (the ``fast`` extra: numba).

The torch path in ``heatmap.py`` evaluates every window pixel as a tensor element and merges
them with ``scatter_reduce``; on a CPU that costs several passes over memory per pixel, about
3x (joints) and 9x (limbs) the time of merely writing the output. These loops draw one
``(H, W)`` map at a time: zero it, draw each person's joint (or limb) into it with a maximum,
move on, so every map is written once while it sits in the cache. The limb loop, where most
pixels are, runs in SIMD blocks of 16 pixels with its own float32 ``exp`` (``_exp``): numba
cannot vectorize a loop that calls libm.

Same formula, same cut-offs as the torch path (``_cutoff``): a joint window is the ``2R+1``
square around the rounded centre (an outer product of two 1D Gaussians); a limb draws the pixels
whose distance ``d`` to the segment is within the cut-off. Results agree with the torch path
within float32 rounding (tests/models/test_heatmap.py runs both against the float64 formula).

Importing this module imports numba (compiles on first use, cached on disk afterwards).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["draw_joints", "draw_limbs"]

_FUSE = {"contract"}  # the one fast-math flag: a * b + c may become one FMA (rounded once, not twice)
_LANES = 16  # pixels per block of a limb row: one AVX-512 or two AVX2 float32 vectors
_ZERO, _HALF, _ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
_LOWEST = np.float32(-20.0)  # _exp's argument floor; the cut-off is at ln(1e-6) = -13.8
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 = HI + LO, HI exact in 9 bits
_C3, _C4, _C5, _C6 = (np.float32(1 / math.factorial(k)) for k in (3, 4, 5, 6))


@njit(cache=True, nogil=True)
def _usable(x: float, y: float, s: float) -> bool:
    return s > 0 and math.isfinite(s) and math.isfinite(x) and math.isfinite(y)


@njit(cache=True, nogil=True)
def _clamp(x: float, far: float) -> float:
    return min(max(x, -far), far)


@njit(cache=True, nogil=True)
def draw_joints(kp: np.ndarray, score: np.ndarray, out: np.ndarray, sigma: float, radius: int,
                single: bool, far: float) -> None:  # pragma: no cover - compiled
    """Joint heatmaps into ``out (N, C, T, H, W)`` (C = V, or 1 when ``single``), overwritten.

    ``kp (N, M, T, V, 2)`` and ``score (N, M, T, V)`` float32, C-contiguous; ``radius`` is R;
    coordinates are clamped to ``+-far`` before any arithmetic, as on the torch path.
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
                        x, y = _clamp(x, far), _clamp(y, far)
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


@intrinsic
def _float32_from_bits(typingctx, bits):  # type: ignore[no-untyped-def]
    """The float32 whose IEEE bits are the int32 ``bits`` (a bitcast, so loops stay vectorizable)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, nogil=True, inline="always", fastmath=_FUSE)
def _exp(x: float) -> float:  # pragma: no cover - compiled
    """``exp(x)`` in float32 for ``x`` in [-20, 0], within 3e-7 relative, in plain arithmetic.

    ``math.exp`` is a libm call that keeps LLVM from vectorizing the limb loop; this is
    ``2^k * exp(r)`` with ``k`` the nearest integer to ``x / ln 2`` (built from its exponent
    bits), ``|r| <= ln 2 / 2`` (ln 2 split in two for an exact ``k * ln 2``) and a degree-6
    Taylor polynomial (truncation < 1.7e-7 relative).
    """
    k = -np.int32(_HALF - x * _LOG2E)  # round(x / ln 2): the truncated operand is positive
    fk = np.float32(k)
    r = (x - fk * _LN2_HI) - fk * _LN2_LO
    p = _ONE + r * (_ONE + r * (_HALF + r * (_C3 + r * (_C4 + r * (_C5 + r * _C6)))))
    return p * _float32_from_bits((k + np.int32(127)) << np.int32(23))


@njit(cache=True, nogil=True, inline="always", fastmath=_FUSE)
def _limb_pixel(px: float, py: float, dx: float, dy: float, inv: float, a: float, r2: float,
                s: float) -> float:  # pragma: no cover - compiled
    """One pixel's value at offset ``(px, py)`` from end a of the segment ``(dx, dy)``, ``inv = 1/len^2``."""
    q = (px * dx + py * dy) * inv  # nearest segment point a + frac * (b - a), frac clamped to [0, 1]
    q = q if q > _ZERO else _ZERO
    frac = q if q < _ONE else _ONE
    ex, ey = px - frac * dx, py - frac * dy
    d2 = ex * ex + ey * ey
    x = d2 * a
    x = x if x > _LOWEST else _LOWEST  # far pixels (cut below) keep _exp in its range
    return _exp(x) * s if d2 <= r2 else _ZERO


@njit(cache=True, nogil=True)
def _clip_axis(t0: float, t1: float, a: float, d: float, lo: float, hi: float) -> tuple[float, float]:
    """Narrow ``[t0, t1]`` to the ``t`` where ``a + t * d`` lies in ``[lo, hi]`` (empty: t0 > t1)."""
    if d == 0:
        return (t0, t1) if lo <= a <= hi else (1.0, 0.0)
    ta, tb = (lo - a) / d, (hi - a) / d
    return max(t0, min(ta, tb)), min(t1, max(ta, tb))


@njit(cache=True, nogil=True)
def _clip_segment(ax: float, ay: float, bx: float, by: float, w: int, h: int,
                  reach: float) -> tuple[bool, float, float, float, float]:
    """Segment a-b cut to the map grown by ``reach``, in float64 (heatmap._clip_segments, scalar)."""
    x, y = np.float64(ax), np.float64(ay)  # new names: numba would keep a reassigned argument float32
    dx, dy = np.float64(bx) - x, np.float64(by) - y
    t0, t1 = _clip_axis(0.0, 1.0, x, dx, -reach, w - 1 + reach)
    t0, t1 = _clip_axis(t0, t1, y, dy, -reach, h - 1 + reach)
    return t0 <= t1, x + t0 * dx, y + t0 * dy, x + t1 * dx, y + t1 * dy


@njit(cache=True, nogil=True, fastmath=_FUSE)
def draw_limbs(kp: np.ndarray, score: np.ndarray, limbs: np.ndarray, out: np.ndarray, sigma: float,
               cutoff: float, reach: float, far: float) -> None:  # pragma: no cover - compiled
    """Limb heatmaps into ``out (N, L, T, H, W)`` (C-contiguous), overwritten; ``limbs (L, 2)`` int64.

    ``kp`` is float32 or float64 (kept until the segments are cut to the map grown by ``reach``);
    ``score`` float32; coordinates are clamped to ``+-far`` first, as on the torch path.

    A pixel draws ``min(s_a, s_b) * exp(-d^2 / 2 sigma^2)`` when ``d <= cutoff``. Each segment is
    first cut to the map's surroundings (``_clip_segment``), and only that part's bounding box,
    grown by the cut-off, is visited. Rows are drawn in fixed blocks of ``_LANES`` pixels (the
    last block of a row shifted left to end inside the map), which LLVM turns into SIMD code; a
    pixel outside the box just computes its own exact value, often 0.
    """
    n_clips, n_persons, n_frames, _, _ = kp.shape
    n_limbs, h, w = limbs.shape[0], out.shape[3], out.shape[4]
    flat = out.reshape(out.size)
    a = np.float32(-0.5 / sigma**2)
    r2 = np.float32(cutoff * cutoff)
    blocks = w >= _LANES
    for n in range(n_clips):
        for li in range(n_limbs):
            ja, jb = limbs[li, 0], limbs[li, 1]
            for t in range(n_frames):
                start = ((n * n_limbs + li) * n_frames + t) * h * w
                flat[start:start + h * w] = 0
                for m in range(n_persons):
                    sa, sb = score[n, m, t, ja], score[n, m, t, jb]
                    xa, ya = kp[n, m, t, ja, 0], kp[n, m, t, ja, 1]
                    xb, yb = kp[n, m, t, jb, 0], kp[n, m, t, jb, 1]
                    # Each end checked on its own: min() with a NaN score may return the other one.
                    if not (_usable(xa, ya, sa) and _usable(xb, yb, sb)):
                        continue
                    s = min(sa, sb)
                    near, xa, ya, xb, yb = _clip_segment(_clamp(xa, far), _clamp(ya, far), _clamp(xb, far),
                                                       _clamp(yb, far), w, h, reach)
                    if not near:
                        continue
                    # Drawn in float32, under new names (a float64 kp must not widen the pixel loop).
                    ax, ay, bx, by = np.float32(xa), np.float32(ya), np.float32(xb), np.float32(yb)
                    dx, dy = bx - ax, by - ay
                    len2 = dx * dx + dy * dy
                    inv = _ONE / len2 if len2 > 0 else _ZERO  # a point: frac 0
                    x0, x1 = max(math.ceil(min(ax, bx) - cutoff), 0), min(math.floor(max(ax, bx) + cutoff), w - 1)
                    y0, y1 = max(math.ceil(min(ay, by) - cutoff), 0), min(math.floor(max(ay, by) + cutoff), h - 1)
                    for i in range(y0, y1 + 1):
                        py = np.float32(i) - ay
                        if blocks:
                            for c in range(x0, x1 + 1, _LANES):
                                c0 = min(c, w - _LANES)
                                px0 = np.float32(c0) - ax
                                # Unsigned indices: numba adds no negative-index wraparound, LLVM vectorizes.
                                base = np.uint64(start + i * w + c0)
                                for k in range(_LANES):
                                    val = _limb_pixel(px0 + np.float32(k), py, dx, dy, inv, a, r2, s)
                                    old = flat[base + np.uint64(k)]
                                    flat[base + np.uint64(k)] = val if val > old else old
                        else:  # a map narrower than one block
                            for j in range(x0, x1 + 1):
                                val = _limb_pixel(np.float32(j) - ax, py, dx, dy, inv, a, r2, s)
                                idx = start + i * w + j
                                flat[idx] = max(flat[idx], val)

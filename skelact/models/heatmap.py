"""Gaussian pseudo-heatmaps from keypoints, in batched torch (CPU or CUDA).

PoseConv3D (Duan et al., CVPR 2022) turns each joint of each frame into a Gaussian blob whose
peak is the keypoint score, and each limb into a Gaussian "tube" around the segment between two
joints. This module draws those volumes for a whole batch at once, on the input's device:

* :func:`joint_heatmaps` ``(N, V, T, H, W)``, :func:`single_heatmaps` ``(N, 1, T, H, W)``,
  :func:`limb_heatmaps` ``(N, L, T, H, W)``; persons are merged by a maximum.
* :func:`compact_boxes`, :func:`random_resized_boxes`, :func:`crop_to_boxes`,
  :func:`flip_keypoints`: the PoseCompact / RandomResizedCrop / Flip geometry on keypoints.
* :class:`PoseHeatmap`: the module a heatmap model runs first in ``forward``.

Coordinates: output pixel ``(row i, column j)`` has its centre at ``(x=j, y=i)``, so a keypoint at
``(3.0, 5.0)`` peaks exactly at ``heatmap[..., 5, 3]``.

Speed: a Gaussian of width ``sigma`` is below ``eps * score`` (``eps = 1e-6``) farther than
``r = sigma * sqrt(2 ln(1/eps))`` (3.2 px at sigma 0.6), so only a small window around each
joint, or a narrow band along each limb, is evaluated and scattered (maximum) into a zeroed
volume. Pixels outside it are exactly 0 instead of below ``1e-6 * score``. A joint window is the
outer product of two 1D Gaussians (the 2D Gaussian is separable); a limb band holds, for every
row along the limb's major axis, the ``2J+1`` pixels nearest the segment.

On a CPU with the ``fast`` extra (numba) installed, the same windows are drawn by compiled loops
(:mod:`skelact.models.heatmap_kernels`), one map at a time, at a few times the speed; CUDA tensors
and installs without numba take the torch path. Neither path is differentiable (no gradient
flows to the keypoints).
"""

from __future__ import annotations

import functools
import math
from types import ModuleType

import numpy as np
import torch
from torch import Tensor, nn

from ..skeleton import Layout, get_layout

__all__ = [
    "joint_heatmaps",
    "single_heatmaps",
    "limb_heatmaps",
    "compact_boxes",
    "random_resized_boxes",
    "crop_to_boxes",
    "flip_keypoints",
    "PoseHeatmap",
]

_EPS = 1e-6  # relative value below which a Gaussian tail is cut to exactly 0
_FAR = 1e6  # pixels; coordinates are clamped to +-_FAR
_CLIP_MARGIN = 1.0  # pixels beyond the cut-off that limb segments keep around the map (rounding slack)
_MAX_EXPONENT = 60.0  # exp(-x) for x > ~88 underflows and takes a slow path on CPU; clamp first


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _cutoff(sigma: float) -> float:
    """Distance beyond which ``exp(-d^2 / 2 sigma^2) < _EPS``."""
    return sigma * math.sqrt(2.0 * math.log(1.0 / _EPS))


def _sanitize(kp: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
    """Zero the score of missing (score <= 0) or non-finite joints and park them at 0."""
    valid = (score > 0) & torch.isfinite(kp).all(-1) & torch.isfinite(score)
    kp = torch.where(valid.unsqueeze(-1), kp, torch.zeros((), dtype=kp.dtype, device=kp.device))
    # Far-off-map outliers: bounded so that squared lengths cannot overflow float32.
    kp = kp.clamp(-_FAR, _FAR)
    score = torch.where(valid, score, torch.zeros((), dtype=score.dtype, device=score.device))
    return kp, score


def _check(kp: Tensor, score: Tensor) -> None:
    if kp.dim() != 5 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be (N, M, T, V, 2), got {tuple(kp.shape)}")
    if score.shape != kp.shape[:-1]:
        raise ValueError(f"scores must be {tuple(kp.shape[:-1])}, got {tuple(score.shape)}")


def _gauss_windows(centre: Tensor, n_pix: Tensor, radius: int, sigma: float) -> tuple[Tensor, Tensor]:
    """1D Gaussians on the ``K = 2R+1`` integer pixels nearest each centre, for x and y at once.

    Points are the innermost axis throughout: with a short K axis innermost, CPU kernels
    broadcast element by element and run several times slower.

    Args:
        centre: ``(2, P)`` coordinates (x; y), bounded by ``_FAR``.
        n_pix: ``(2, 1)`` map width and height.
        radius: ``R``, e.g. ``floor(cutoff + 0.5)``: the pixels that can be above the cutoff.

    Returns:
        Values ``(K, 2, P)`` (0 off the map) and pixel indices ``(K, 2, P)`` clamped into the map.
    """
    off = torch.arange(-radius, radius + 1, dtype=centre.dtype, device=centre.device).view(-1, 1, 1)
    pos = centre.round() + off
    values = (pos - centre).square_().mul_(-0.5 / sigma**2).exp_()
    pix = torch.minimum(pos.clamp(min=0), n_pix - 1)
    return values.mul_(pix == pos), pix.long()


@functools.cache
def _kernels() -> ModuleType | None:
    try:
        from . import heatmap_kernels
    except ImportError:  # the `fast` extra (numba) is not installed
        return None
    return heatmap_kernels


def _compiled(*tensors: Tensor) -> ModuleType | None:
    """The compiled kernels when they are installed and every input is a CPU tensor.

    Never while tracing (ONNX export, ``torch.jit.trace``, ``torch.compile``): a tracer cannot see
    into the loops and would record their output as a constant (dynamo fails on them), so the
    traceable torch path draws instead.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return None
    return _kernels() if all(t.device.type == "cpu" for t in tensors) else None


def _buffer(out: Tensor | None, numel: int, device: torch.device) -> Tensor:
    """A flat float32 buffer of ``numel`` elements, not zeroed; reusing ``out`` skips the page faults."""
    if out is None:
        return torch.empty(numel, dtype=torch.float32, device=device)
    if out.numel() != numel or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous float32 tensor of {numel} elements")
    return out.view(-1)


def _zeroed(out: Tensor | None, numel: int, device: torch.device) -> Tensor:
    """A zeroed flat float32 buffer (``out`` reused when given)."""
    return _buffer(out, numel, device).zero_()


def _float32(x: Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy view (or copy) of a CPU tensor, for the compiled kernels."""
    return np.ascontiguousarray(x.detach().float().numpy())


def _coordinates(kp: Tensor) -> Tensor:
    """Limb keypoints as float32, or float64 when given so: limbs are cut to the map in float64
    (:func:`_clip_segments`) before drawing in float32, and far-off ends need their digits until then."""
    return kp if kp.dtype == torch.float64 else kp.float()


def _joint_scatter(
    kp: Tensor, score: Tensor, size: tuple[int, int], sigma: float, single: bool, out: Tensor | None,
    use_kernels: bool = True,
) -> Tensor:
    """:func:`joint_heatmaps` / :func:`single_heatmaps`; ``use_kernels=False``: the torch path on a CPU too."""
    _check(kp, score)
    n, m, t, v, _ = kp.shape
    h, w = size
    dev = kp.device
    c = 1 if single else v
    # Pixels within the cutoff of the centre lie at most floor(cutoff + 0.5) from its rounding.
    rad = max(1, math.floor(_cutoff(sigma) + 0.5))
    kernels = _compiled(kp, score) if use_kernels else None
    if kernels is not None:
        hm = _buffer(out, n * c * t * h * w, dev).view(n, c, t, h, w)
        kernels.draw_joints(_float32(kp), _float32(score), hm.numpy(), sigma, rad, single, np.float32(_FAR))
        return hm
    flat = _zeroed(out, n * c * t * h * w, dev)
    # Points in output memory order (N, V, T, M); only joints that draw something (a missing
    # second person costs nothing).
    kp = kp.float().permute(4, 0, 3, 2, 1).reshape(2, -1)  # (2, N*V*T*M)
    score = score.float().permute(0, 3, 2, 1).reshape(-1)
    keep = ((score > 0) & torch.isfinite(score) & torch.isfinite(kp).all(0)).nonzero().squeeze(1)
    if keep.numel() == 0:
        return flat.view(n, c, t, h, w)
    pts = kp[:, keep].clamp_(-_FAR, _FAR)  # (2, P); far-off outliers bounded so squares stay finite
    # Point p = ((n * V + v) * T + t) * M + m draws into map (n, v, t) = p // M, or (n, 0, t).
    maps = keep // (v * t * m) * t + keep // m % t if single else keep // m
    g, pix = _gauss_windows(pts, torch.tensor([[w], [h]], dtype=pts.dtype, device=dev), rad, sigma)  # (K, 2, P)
    rows = maps * (h * w) + pix[:, 1] * w  # (K, P)
    index = rows.unsqueeze(1) + pix[:, 0].unsqueeze(0)  # (Ky, Kx, P)
    values = (g[:, 1] * score[keep]).unsqueeze(1) * g[:, 0].unsqueeze(0)  # separable: outer product
    flat.scatter_reduce_(0, index.reshape(-1), values.reshape(-1), reduce="amax")
    return flat.view(n, c, t, h, w)


def joint_heatmaps(
    kp: Tensor, score: Tensor, size: int | tuple[int, int], sigma: float = 0.6, out: Tensor | None = None
) -> Tensor:
    """One Gaussian per joint: ``score * exp(-((x - mx)^2 + (y - my)^2) / (2 sigma^2))``.

    Args:
        kp: ``(N, M, T, V, 2)`` keypoints in output pixel coordinates (x, y).
        score: ``(N, M, T, V)`` keypoint scores; joints with score <= 0 draw nothing.
        size: Output ``(H, W)`` (or one int for a square).
        sigma: Gaussian standard deviation in output pixels.
        out: Optional float32 buffer of the output's size to reuse (it is zeroed first).

    Returns:
        ``(N, V, T, H, W)`` float32 heatmaps, the maximum over persons.
    """
    return _joint_scatter(kp, score, _size2(size), sigma, False, out)


def single_heatmaps(
    kp: Tensor, score: Tensor, size: int | tuple[int, int], sigma: float = 0.6, out: Tensor | None = None
) -> Tensor:
    """All joints drawn into one channel: the maximum over joints of :func:`joint_heatmaps`.

    Returns:
        ``(N, 1, T, H, W)`` heatmaps.
    """
    return _joint_scatter(kp, score, _size2(size), sigma, True, out)


def _limb_dense(a: Tensor, b: Tensor, s: Tensor, size: tuple[int, int], sigma: float) -> Tensor:
    """Full-grid limb heatmaps for maps narrower than the band; ``a, b (N, M, T, L, 2)``."""
    h, w = size
    xs = torch.arange(w, dtype=a.dtype, device=a.device)
    ys = torch.arange(h, dtype=a.dtype, device=a.device)
    ab = b - a
    len2 = ab.square().sum(-1)
    px = xs - a[..., 0:1]  # (N, M, T, L, W)
    py = ys - a[..., 1:2]  # (N, M, T, L, H)
    proj = py.unsqueeze(-1) * ab[..., 1, None, None] + px.unsqueeze(-2) * ab[..., 0, None, None]
    frac = (proj / len2.clamp(min=1e-12)[..., None, None]).clamp(0, 1)
    frac = torch.where(len2[..., None, None] > 0, frac, torch.zeros_like(frac))
    dx = px.unsqueeze(-2) - frac * ab[..., 0, None, None]
    dy = py.unsqueeze(-1) - frac * ab[..., 1, None, None]
    expo = (dx.square() + dy.square()).mul_(-0.5 / sigma**2).clamp_(min=-_MAX_EXPONENT)
    hm = expo.exp_().mul_(s[..., None, None]).amax(1)  # (N, T, L, H, W)
    return hm.transpose(1, 2).contiguous()


def limb_heatmaps(
    kp: Tensor,
    score: Tensor,
    limbs: Tensor | list[tuple[int, int]] | tuple[tuple[int, int], ...],
    size: int | tuple[int, int],
    sigma: float = 0.6,
    out: Tensor | None = None,
) -> Tensor:
    """One Gaussian tube per limb: ``min(s_a, s_b) * exp(-d^2 / (2 sigma^2))``.

    ``d`` is the distance from the pixel to the segment a-b (to the nearer endpoint past either
    end; a zero-length segment is a point).

    Args:
        kp: ``(N, M, T, V, 2)`` keypoints in output pixel coordinates.
        score: ``(N, M, T, V)`` scores; a limb with either score <= 0 draws nothing.
        limbs: ``(L, 2)`` joint index pairs.
        size: Output ``(H, W)``.
        sigma: Gaussian standard deviation in output pixels.
        out: Optional float32 buffer of the output's size to reuse (it is zeroed first).

    Returns:
        ``(N, L, T, H, W)`` heatmaps, the maximum over persons.
    """
    return _limbs(kp, score, limbs, _size2(size), sigma, out)


def _limbs(
    kp: Tensor, score: Tensor, limbs: Tensor | list[tuple[int, int]] | tuple[tuple[int, int], ...],
    size: tuple[int, int], sigma: float, out: Tensor | None, use_kernels: bool = True,
) -> Tensor:
    """:func:`limb_heatmaps`; ``use_kernels=False`` takes the torch path on a CPU too (benchmarks)."""
    _check(kp, score)
    h, w = size
    limbs = torch.as_tensor(limbs, dtype=torch.long).view(-1, 2)
    if limbs.device.type == "cpu":  # free on the host; pairs already on a GPU are left to torch's own check
        bad = limbs[(limbs < 0) | (limbs >= kp.shape[3])]
        if bad.numel():
            raise ValueError(f"limbs must join joints 0..{kp.shape[3] - 1}, got joint {int(bad[0])}")
    kernels = _compiled(kp, score, limbs) if use_kernels else None
    if kernels is not None:  # the loops do not check indices; CPU pairs were checked above
        pairs = np.ascontiguousarray(limbs.numpy())
        n, _, t, _, _ = kp.shape
        hm = _buffer(out, n * len(pairs) * t * h * w, kp.device).view(n, len(pairs), t, h, w)
        kernels.draw_limbs(np.ascontiguousarray(_coordinates(kp.detach()).numpy()), _float32(score), pairs,
                           hm.numpy(), sigma, _cutoff(sigma), _cutoff(sigma) + _CLIP_MARGIN, _FAR)
        return hm
    kp, score = _sanitize(_coordinates(kp), score.float())
    dev = kp.device
    limbs = limbs.to(dev)
    n, m, t, _, _ = kp.shape
    nl = limbs.shape[0]
    a, b = kp[..., limbs[:, 0], :], kp[..., limbs[:, 1], :]  # (N, M, T, L, 2)
    s = torch.minimum(score[..., limbs[:, 0]], score[..., limbs[:, 1]])  # (N, M, T, L)
    a, b, near = _clip_segments(a, b, (h, w), _cutoff(sigma) + _CLIP_MARGIN)
    s = s * near
    half = max(1, math.floor(_cutoff(sigma) * math.sqrt(2.0) + 0.5))  # band half-width, see _limb_band
    if min(h, w) < 2 * half + 1 and m > 0:  # no persons: the band path below returns zeros
        hm = _limb_dense(a, b, s, (h, w), sigma)
        return hm if out is None else out.view_as(hm).copy_(hm)

    flat = _zeroed(out, n * nl * t * h * w, dev)
    # Limbs that draw something, in output memory order (N, L, T, M) as for joints.
    a, b, s = a.permute(0, 3, 2, 1, 4), b.permute(0, 3, 2, 1, 4), s.permute(0, 3, 2, 1)
    keep = (s > 0).flatten().nonzero().squeeze(1)
    if keep.numel() == 0:
        return flat.view(n, nl, t, h, w)
    a, b, s = a.reshape(-1, 2)[keep], b.reshape(-1, 2)[keep], s.flatten()[keep]
    offset = keep // m * (h * w)  # limb p = ((n * L + l) * T + t) * M + m draws into map p // M

    # Rows along each limb's major axis within reach of the segment. The band length is data
    # dependent (one host sync); two groups, split to minimise padded rows, save ~1/3 of the work.
    steep = (b[:, 1] - a[:, 1]).abs() >= (b[:, 0] - a[:, 0]).abs()
    ap = torch.where(steep, a[:, 1], a[:, 0])
    bp = torch.where(steep, b[:, 1], b[:, 0])
    n_p = torch.where(steep, h, w).to(a.dtype)
    r = _cutoff(sigma)
    p0 = (torch.minimum(ap, bp) - r).ceil().clamp(min=0)
    rows = (torch.minimum((torch.maximum(ap, bp) + r).floor(), n_p - 1) - p0 + 1).clamp(min=0)
    order = rows.argsort()
    sorted_rows = rows[order]
    total = sorted_rows.numel()
    # Cost of splitting after position i: (i + 1) * rows[i] + (P - i - 1) * rows[-1].
    cost = (torch.arange(1, total + 1, device=dev) * sorted_rows
            + torch.arange(total - 1, -1, -1, device=dev) * sorted_rows[-1])
    split = int(cost.argmin()) + 1
    k_small, k_big = int(sorted_rows[split - 1]), int(sorted_rows[-1])
    for sel, k_rows in ((order[:split], k_small), (order[split:], k_big)):
        if sel.numel() == 0 or k_rows == 0:
            continue
        sel = sel.sort().values  # back to memory order
        index, values = _limb_band(a[sel], b[sel], s[sel], offset[sel], steep[sel], p0[sel], rows[sel],
                                   k_rows, half, (h, w), sigma)
        flat.scatter_reduce_(0, index.reshape(-1), values.reshape(-1), reduce="amax")
    return flat.view(n, nl, t, h, w)


def _clip_segments(a: Tensor, b: Tensor, size: tuple[int, int], reach: float) -> tuple[Tensor, Tensor, Tensor]:
    """Segments ``a-b (..., 2)`` cut to the map grown by ``reach`` (Liang-Barsky, in float64).

    Exact for drawing when ``reach >= cutoff``: a pixel within the cut-off of the segment has its
    nearest segment point within the cut-off of the map, so on the kept part. It keeps every
    coordinate near the map: a limb to a joint 1e5 px away would otherwise lose float32 digits
    (up to 1e-2 of the peak) in the pixels it does draw. Returns the new ends in float32
    and whether anything is left. The dense path for narrow maps has no cut-off; there, cutting
    only drops tails below ``1e-6`` of the peak.
    """
    h, w = size
    a64, b64 = a.double(), b.double()
    d = b64 - a64
    lo = torch.tensor([-reach, -reach], dtype=torch.float64, device=a.device)
    hi = torch.tensor([w - 1 + reach, h - 1 + reach], dtype=torch.float64, device=a.device)
    moving = d != 0
    step = torch.where(moving, d, torch.ones_like(d))
    t_lo, t_hi = (lo - a64) / step, (hi - a64) / step  # where each axis crosses the box's sides
    inside = (a64 >= lo) & (a64 <= hi)  # a still end on an axis: all of t, or none of it
    big = torch.full_like(d, math.inf)
    enter = torch.where(moving, torch.minimum(t_lo, t_hi), torch.where(inside, -big, big))
    leave = torch.where(moving, torch.maximum(t_lo, t_hi), torch.where(inside, big, -big))
    t0 = enter.amax(-1).clamp(min=0.0)
    t1 = leave.amin(-1).clamp(max=1.0)
    near = t0 <= t1
    t0, t1 = torch.where(near, t0, 0.0).unsqueeze(-1), torch.where(near, t1, 1.0).unsqueeze(-1)
    return (a64 + t0 * d).float(), (a64 + t1 * d).float(), near


def _limb_band(
    a: Tensor, b: Tensor, s: Tensor, offset: Tensor, steep: Tensor, p0: Tensor, rows: Tensor,
    k_rows: int, half: int, size: tuple[int, int], sigma: float,
) -> tuple[Tensor, Tensor]:
    """Flat indices and values ``(J, K, P)`` of the band of ``P`` limbs (``a, b (P, 2)``).

    Works in (p, q) = (major, minor) axis coordinates of each limb, so every row p meets the
    pixels within r of the segment in one run of ``J = 2 * half + 1`` columns around the segment
    point ``qc(p)`` (row p clamped to the segment). Why ``|q - qc(p)| <= r * sqrt(2)``: let c be
    the segment point nearest a pixel within r; the slope ``|dq/dp| <= 1``, so
    ``|c_q - qc(p)| <= |c_p - p|``, and ``|q - c_q| + |p - c_p| <= r * sqrt(2)``.
    """
    h, w = size
    dev, dt = a.device, a.dtype
    width = 2 * half + 1
    # Shapes: per limb (P,), per band row (K, P), per band pixel (J, K, P); limbs innermost, as in
    # _gauss_windows, so that every elementwise kernel runs over long contiguous rows.
    ap = torch.where(steep, a[:, 1], a[:, 0])
    aq = torch.where(steep, a[:, 0], a[:, 1])
    dp = torch.where(steep, b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])
    dq = torch.where(steep, b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
    n_p = torch.where(steep, h, w).to(dt)
    n_q = torch.where(steep, w, h).to(dt)
    stride_p = torch.where(steep, w, 1)  # flat-index steps within one (H, W) map
    stride_q = torch.where(steep, 1, w)

    k = torch.arange(k_rows, dtype=dt, device=dev).unsqueeze(1)  # (K, 1)
    gain = s * (k < rows)  # (K, P): padded rows draw nothing
    p = torch.minimum(p0 + k, n_p - 1)
    # First band column: around the segment point of row p, shifted to stay on the map (the
    # shifted band still covers every on-map pixel of the centred one).
    moving = dp.abs() > 0
    frac = ((p - ap) / torch.where(moving, dp, torch.ones_like(dp))).clamp_(0, 1)
    qc = frac.mul_(dq * moving).add_(aq)
    q0 = torch.minimum((qc.round_() - half).clamp_(min=0), n_q - width)

    # d^2 = w^2 + max(|u| - len/2, 0)^2: u along the limb from its midpoint, w across it. Scaled
    # by 1 / (sqrt(2) sigma) so that the value is exp(-(u'^2 + w'^2)).
    length = torch.sqrt(dp.square() + dq.square())
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    line = length > 1e-12  # shorter: a point (dividing by a clamped length would shrink the direction)
    ep = torch.where(line, dp / length.clamp(min=1e-12), torch.ones_like(dp)) * scale
    eq = torch.where(line, dq / length.clamp(min=1e-12), torch.zeros_like(dq)) * scale
    half_len = length * (scale / 2)
    rel_p = p - ap
    rel_q = q0 - aq
    u0 = rel_p * ep + rel_q * eq - half_len  # (K, P)
    w0 = rel_q * ep - rel_p * eq
    j = torch.arange(width, dtype=dt, device=dev).view(-1, 1, 1)  # (J, 1, 1)
    u = u0 + j * eq  # (J, K, P)
    wv = w0 + j * ep
    u.abs_().sub_(half_len).clamp_(min=0)
    d2 = u.square_().addcmul_(wv, wv).clamp_(max=_MAX_EXPONENT)
    values = d2.neg_().exp_().mul_(gain)
    row_index = offset + p.long() * stride_p + q0.long() * stride_q  # (K, P)
    index = row_index + j.long() * stride_q  # (J, K, P)
    return index, values


# ----------------------------------------------------------------------------- geometry


def compact_boxes(kp: Tensor, score: Tensor, padding: float = 0.25, min_size: float = 10.0) -> Tensor:
    """PoseCompact: one square box per clip around every valid joint of every person and frame.

    Args:
        kp: ``(N, M, T, V, 2)`` raw pixel keypoints.
        score: ``(N, M, T, V)``; joints with score <= 0 are ignored.
        padding: The square's side is the tight box's longer side times ``1 + padding``.
        min_size: Smallest box side in pixels (tiny or empty clips get this box).

    Returns:
        ``(N, 4)`` boxes ``x0, y0, x1, y1`` (may extend past the image, as with image padding).
    """
    _check(kp, score)
    valid = ((score > 0) & torch.isfinite(kp).all(-1)).flatten(1)  # (N, P)
    pts = kp.flatten(1, 3)  # (N, P, 2)
    inf = torch.tensor(float("inf"), dtype=kp.dtype, device=kp.device)
    lo = torch.where(valid.unsqueeze(-1), pts, inf).amin(1)
    hi = torch.where(valid.unsqueeze(-1), pts, -inf).amax(1)
    any_valid = valid.any(1, keepdim=True)
    centre = torch.where(any_valid, (lo + hi) / 2, torch.zeros_like(lo))
    side = torch.where(any_valid, (hi - lo).amax(1, keepdim=True), torch.zeros_like(lo[:, :1]))
    half = (side * (1 + padding)).clamp(min=min_size) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def random_resized_boxes(
    boxes: Tensor,
    area: tuple[float, float] = (0.56, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """RandomResizedCrop inside each box: a random sub-box covering ``area`` of it, aspect ``ratio``.

    Randomness comes from ``torch.rand`` on the boxes' device (seeded by ``torch.manual_seed``).

    Args:
        boxes: ``(N, 4)`` boxes ``x0, y0, x1, y1``.

    Returns:
        ``(N, 4)`` sub-boxes.
    """
    n = boxes.shape[0]
    r = torch.rand(n, 4, dtype=boxes.dtype, device=boxes.device)
    frac = area[0] + (area[1] - area[0]) * r[:, 0]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * r[:, 1]
    aspect = log_ratio.exp()
    cw = (frac * aspect).sqrt().clamp(max=1.0)  # fractions of the box width / height
    ch = (frac / aspect).sqrt().clamp(max=1.0)
    wh = boxes[:, 2:] - boxes[:, :2]
    start = boxes[:, :2] + torch.stack([(1 - cw) * r[:, 2], (1 - ch) * r[:, 3]], 1) * wh
    return torch.cat([start, start + torch.stack([cw, ch], 1) * wh], dim=1)


def crop_to_boxes(kp: Tensor, boxes: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Map raw pixel keypoints into output pixel coordinates of each clip's box resized to ``size``.

    The box's left edge maps to the left edge of pixel 0 (coordinate -0.5).

    Args:
        kp: ``(N, M, T, V, 2)`` raw pixel keypoints.
        boxes: ``(N, 4)`` boxes ``x0, y0, x1, y1``.
        size: Output ``(H, W)``.

    Returns:
        ``(N, M, T, V, 2)`` keypoints in output pixels.
    """
    h, w = _size2(size)
    origin = boxes[:, None, None, None, :2]
    scale = torch.tensor([w, h], dtype=kp.dtype, device=kp.device) / (boxes[:, 2:] - boxes[:, :2])
    return (kp - origin) * scale[:, None, None, None, :] - 0.5


def flip_keypoints(
    kp: Tensor, score: Tensor, flip_index: Tensor, width: int, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Horizontal flip in output pixels (``x -> width - 1 - x``) with left/right joints swapped.

    Args:
        kp: ``(N, M, T, V, 2)`` keypoints in output pixels.
        score: ``(N, M, T, V)``.
        flip_index: ``(V,)`` permutation swapping left/right joints (``Layout.flip_index``).
        width: Output width in pixels.
        mask: ``(N,)`` bool, which clips to flip (all when None).

    Returns:
        Flipped ``(kp, score)``.
    """
    idx = torch.as_tensor(flip_index, dtype=torch.long, device=kp.device)
    fkp = kp[..., idx, :].clone()
    fkp[..., 0] = (width - 1) - fkp[..., 0]
    fscore = score[..., idx]
    if mask is None:
        return fkp, fscore
    m = mask.view(-1, 1, 1, 1)
    return torch.where(m.unsqueeze(-1), fkp, kp), torch.where(m, fscore, score)


class PoseHeatmap(nn.Module):
    """Keypoints ``(N, M, T, V, 3)`` (pixel x, y, score) -> heatmap volume ``(N, C, T, S, S)``.

    Training: PoseCompact box, RandomResizedCrop inside it, resize to ``size``, horizontal flip
    (p = ``flip_prob``) with left/right joints swapped before drawing. Eval: the compact box
    resized to ``test_size``. ``C`` is V (``'joint'``), L (``'limb'``) or 1 (``'single'``).
    Coordinates must be raw pixels (boxes are at least ``min_size`` = 10 px, as PoseCompact's
    threshold); joints with score <= 0 are missing.
    """

    def __init__(
        self,
        layout: str | Layout = "coco17",
        kind: str = "joint",
        sigma: float = 0.6,
        size: int = 56,
        test_size: int = 64,
        padding: float = 0.25,
        area: tuple[float, float] = (0.56, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        min_size: float = 10.0,
    ) -> None:
        super().__init__()
        if kind not in ("joint", "limb", "single"):
            raise ValueError(f"heatmap kind must be 'joint', 'limb' or 'single', got {kind!r}")
        self.layout = get_layout(layout)
        self.kind, self.sigma, self.size, self.test_size = kind, sigma, size, test_size
        self.padding, self.area, self.ratio, self.flip_prob = padding, area, ratio, flip_prob
        self.min_size = min_size
        self.register_buffer("flip_index", torch.as_tensor(self.layout.flip_index), persistent=False)
        self.register_buffer("limbs", torch.as_tensor(self.layout.limbs, dtype=torch.long).view(-1, 2),
                             persistent=False)

    @property
    def out_channels(self) -> int:
        return {"joint": self.layout.num_joints, "limb": len(self.layout.limbs), "single": 1}[self.kind]

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[-1] != 3:
            raise ValueError(f"heatmap input must be (N, M, T, V, 3) = pixel x, y, score; got {tuple(x.shape)}")
        if x.shape[3] != self.layout.num_joints:
            raise ValueError(f"input has {x.shape[3]} joints, layout {self.layout.name!r} has "
                             f"{self.layout.num_joints}")
        x = x.float()
        kp, score = x[..., :2], x[..., 2]
        boxes = compact_boxes(kp, score, self.padding, self.min_size)
        size = self.test_size
        if self.training:
            boxes = random_resized_boxes(boxes, self.area, self.ratio)
            size = self.size
        kp = crop_to_boxes(kp, boxes, size)
        if self.training and self.flip_prob > 0:
            mask = torch.rand(x.shape[0], device=x.device) < self.flip_prob
            kp, score = flip_keypoints(kp, score, self.flip_index, size, mask)
        if self.kind == "joint":
            return joint_heatmaps(kp, score, size, self.sigma)
        if self.kind == "single":
            return single_heatmaps(kp, score, size, self.sigma)
        return limb_heatmaps(kp, score, self.limbs, size, self.sigma)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, sigma={self.sigma}, size={self.size}, test_size={self.test_size}"

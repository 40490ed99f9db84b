"""Keypoint transforms: pure typed functions on numpy arrays, and thin dict→dict wrappers.

Arrays follow the PYSKL layout: ``kp`` [M, T, V, C] (persons, frames, joints, coordinates; C=2
pixel x, y or C=3 for 3D) and ``score`` [M, T, V]. A joint whose coordinates are all zero is
*missing* (converters write zeros for undetected joints); spatial transforms keep it at zero so
that it never turns into a plausible-looking position. Every function returns new arrays and
never writes to its inputs, which may be read-only views of a memory-mapped dataset.

The wrappers (:class:`UniformSample`, :class:`RandomFlip`, ...) take a sample dict with keys
``keypoint``, optional ``keypoint_score``, optional ``img_shape`` (h, w), ``label``,
``frame_dir`` and ``total_frames``, and a ``numpy.random.Generator``; :class:`Compose` chains
them. A typical keypoint-model pipeline::

    Compose([UniformSample(100), PadPersons(2), NormalizeImage(), RandomFlip("coco17"),
             FormatFeatures("coco17", ("joint", "bone"))])

The last step writes ``inputs`` float32 [K, M, clip_len, V, C_out], what the model receives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from skelact.config import FEATURES
from skelact.data.sampling import pad_persons, uniform_sample_indices
from skelact.skeleton import Layout, get_layout, joint_present

__all__ = [
    "FEATURES",
    "normalize_by_image",
    "normalize_by_bbox",
    "normalize_axes",
    "center_3d",
    "ALIGN_JOINTS",
    "align_3d",
    "joint_to_bone",
    "motion",
    "partner_index",
    "partner_offset",
    "hflip",
    "affine_2d",
    "rotate_3d",
    "format_features",
    "Transform",
    "Compose",
    "UniformSample",
    "PadPersons",
    "NormalizeImage",
    "NormalizeBBox",
    "NormalizeAxes",
    "Center3D",
    "Align3D",
    "RandomFlip",
    "RandomAffine2D",
    "RandomRotate3D",
    "FormatFeatures",
]

def _as_float(x: np.ndarray) -> np.ndarray:
    """A float copy (float32 unless the input is already a wider float)."""
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize >= 4 else np.float32
    return np.array(x, dtype=dtype, copy=True)


def _check_kp(kp: np.ndarray, min_channels: int = 1) -> None:
    if kp.ndim != 4 or kp.shape[-1] < min_channels:
        raise ValueError(f"keypoint must be [M, T, V, C] with C >= {min_channels}, got shape {kp.shape}")


# ----------------------------------------------------------------------------- pure functions


def normalize_by_image(kp: np.ndarray, img_shape: Sequence[int]) -> np.ndarray:
    """Map pixel x, y to [-1, 1] by the image size: ``(x - w/2) / (w/2)``, ``(y - h/2) / (h/2)``.

    Args:
        kp: [M, T, V, C] with pixel x, y in the first two channels (others are kept).
        img_shape: Image ``(h, w)``.

    Returns:
        Normalised copy; missing joints stay zero.
    """
    _check_kp(kp, 2)
    h, w = float(img_shape[0]), float(img_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"img_shape must be positive (h, w), got {tuple(img_shape)}")
    out = _as_float(kp)
    present = joint_present(kp)[..., None]
    half = np.array([w / 2, h / 2], dtype=out.dtype)
    out[..., :2] = np.where(present, (out[..., :2] - half) / half, 0)
    return out


def normalize_by_bbox(kp: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
    """Centre on the clip's joint bounding box and scale by half its longer side.

    The box spans every present joint (:func:`skelact.skeleton.joint_present`, with the score when
    given), so the longer side maps onto [-1, 1] and the aspect ratio is
    kept. Works for any C (the box is taken over all coordinate channels).

    Args:
        kp: [M, T, V, C].
        score: Optional [M, T, V].

    Returns:
        Normalised copy; invalid joints are zero.
    """
    _check_kp(kp)
    return _fit_box(kp, joint_present(kp, score), per_axis=False)


def normalize_axes(kp: np.ndarray) -> np.ndarray:
    """Map each coordinate axis of the clip to [-1, 1] by its own min and max.

    Unlike :func:`normalize_by_bbox` the scale differs per axis, so the clip's aspect ratio is
    lost along with its position and size (NW-UCLA results are often reported on clips scaled this
    way; BENCHMARKS.md compares it with the recipe's normalisation). The range spans
    every present (non-zero) joint of every person and frame; an axis with no extent maps to 0.

    Args:
        kp: [M, T, V, C].

    Returns:
        Normalised copy; missing joints stay zero.
    """
    _check_kp(kp)
    return _fit_box(kp, joint_present(kp), per_axis=True)


def _fit_box(kp: np.ndarray, valid: np.ndarray, per_axis: bool) -> np.ndarray:
    """Centre the box of the ``valid`` [M, T, V] joints and scale it into [-1, 1]: by half its
    longer side, or by half of each side on its own (``per_axis``); invalid joints become zero."""
    out = _as_float(kp)
    if not valid.any():
        return np.zeros_like(out)
    pts = out[valid]  # [N_valid, C]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if per_axis:
        half = (hi - lo) / 2
        half[half <= 0] = np.inf  # a flat axis: every joint sits at 0
    else:
        half = float((hi - lo).max()) / 2
        if half <= 0:  # a single point: centre it and leave the scale alone
            half = 1.0
    return np.where(valid[..., None], (out - (lo + hi) / 2) / half, 0).astype(out.dtype, copy=False)


def center_3d(kp: np.ndarray, root: int) -> np.ndarray:
    """Subtract person 0's ``root`` joint at the first frame where it is present.

    Args:
        kp: [M, T, V, C] (usually C=3, metres).
        root: Joint index of the centring joint (``Layout.root``).

    Returns:
        Centred copy; missing joints stay zero. Unchanged copy if the root is never present.
    """
    _check_kp(kp)
    out = _as_float(kp)
    if kp.shape[0] == 0:
        return out
    frames = np.flatnonzero(joint_present(kp[0, :, root : root + 1])[:, 0])
    if frames.size == 0:
        return out
    origin = out[0, frames[0], root].copy()  # [C]
    return np.where(joint_present(kp)[..., None], out - origin, 0).astype(out.dtype, copy=False)


#: Joints :func:`align_3d` needs, by name: a layout that has them all can be aligned.
ALIGN_JOINTS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def align_3d(kp: np.ndarray, root: int, joints: Sequence[int]) -> np.ndarray:
    """:func:`center_3d`, then rotate the clip into the body's own frame (view-invariant 3D).

    At the first frame where person 0's shoulders and hips are all present: y runs from the hips'
    midpoint to the shoulders' midpoint, x from the right to the left shoulder (made orthogonal to
    y), z = x × y (a proper rotation: left and right stay apart). Every person and frame gets that
    one rotation, so turning within the clip and the people's relative places are kept. This is
    the alignment of PYSKL's ``PreNormalize3D`` (spine and shoulders to fixed axes): a camera
    placed elsewhere (a cross-view test) sees the same clip.

    Args:
        kp: [M, T, V, 3] metres.
        root: Joint index of the centring joint.
        joints: Indices of :data:`ALIGN_JOINTS` (left shoulder, right shoulder, left hip, right hip).

    Returns:
        The aligned copy; missing joints stay zero. Only centred when no frame has all four joints
        (or they are degenerate: shoulders on top of each other, hips on the shoulders).
    """
    out = center_3d(kp, root)
    if kp.shape[0] == 0 or kp.shape[-1] != 3:
        return out
    idx = list(joints)
    frames = np.flatnonzero(joint_present(kp[0][:, idx]).all(axis=1))
    if frames.size == 0:
        return out
    ls, rs, lh, rh = out[0, frames[0], idx].astype(np.float64)
    up = (ls + rs) / 2 - (lh + rh) / 2
    if np.linalg.norm(up) < 1e-6:
        return out
    y = up / np.linalg.norm(up)
    across = (ls - rs) - np.dot(ls - rs, y) * y
    if np.linalg.norm(across) < 1e-6:
        return out
    x = across / np.linalg.norm(across)
    rot = np.stack([x, y, np.cross(x, y)])  # rows: the body's axes in camera coordinates
    aligned = (out.astype(np.float64) @ rot.T).astype(out.dtype)
    return np.where(joint_present(kp)[..., None], aligned, 0).astype(out.dtype, copy=False)


def joint_to_bone(kp: np.ndarray, parents: np.ndarray | Sequence[int]) -> np.ndarray:
    """Bone vectors ``kp[..., v, :] - kp[..., parents[v], :]``; the root (its own parent) is zero.

    Args:
        kp: [..., V, C].
        parents: [V] parent index of each joint (``Layout.parents``).

    Returns:
        [..., V, C] bone vectors.
    """
    parents = np.asarray(parents, dtype=np.int64)
    if parents.shape != (kp.shape[-2],):
        raise ValueError(f"parents has {parents.shape} entries for {kp.shape[-2]} joints")
    x = _as_float(kp)
    return x - x[..., parents, :]


def motion(x: np.ndarray) -> np.ndarray:
    """Temporal difference along axis 1 (T): ``x[:, t+1] - x[:, t]``, the last frame zero.

    Args:
        x: [M, T, ...] joints or bones.

    Returns:
        [M, T, ...] motion.
    """
    if x.ndim < 2:
        raise ValueError(f"motion needs [M, T, ...], got shape {x.shape}")
    x = _as_float(x)
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    return out


def partner_index(kp: np.ndarray) -> np.ndarray:
    """Each person's partner: the other person whose centre is nearest over the frames both are seen.

    The centre is the mean of a person's present joints in a frame (a joint is present when its
    coordinates are not all zero). A person never seen in a frame beside another has no partner (-1).
    Ties go to the lower index.

    Args:
        kp: [M, T, V, C].

    Returns:
        int64 [M], the partner of each person or -1.
    """
    present = (kp != 0).any(-1)  # [M, T, V]
    count = present.sum(-1)  # [M, T]
    center = (kp * present[..., None]).sum(-2) / np.maximum(count, 1)[..., None]  # [M, T, C]
    seen = count > 0
    both = seen[:, None] & seen[None]  # [M, M, T]
    dist = np.linalg.norm(center[:, None] - center[None], axis=-1)  # [M, M, T]
    frames = both.sum(-1)
    mean = np.where(both, dist, 0).sum(-1) / np.maximum(frames, 1)
    mean = np.where((frames > 0) & ~np.eye(len(kp), dtype=bool), mean, np.inf)
    best = mean.argmin(-1) if len(kp) else np.zeros(0, np.int64)
    return np.where(np.isfinite(mean.min(-1, initial=np.inf)), best, -1).astype(np.int64)


def partner_offset(kp: np.ndarray) -> np.ndarray:
    """Each joint's offset from the same joint of the person's partner (:func:`partner_index`).

    What two-person actions turn on (a hand reaching the other's hand, face or chest) is a relation
    between two people that a network reading each person alone cannot see. The offset is zero
    where either joint is missing and for a person without a partner.

    Args:
        kp: [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    _check_kp(kp)
    x = _as_float(kp)
    idx = partner_index(x)
    present = (x != 0).any(-1)
    safe = np.maximum(idx, 0)
    both = present & present[safe] & (idx >= 0)[:, None, None]
    return np.where(both[..., None], x - x[safe], 0).astype(np.float32, copy=False)


def hflip(
    kp: np.ndarray,
    score: np.ndarray | None,
    flip_index: np.ndarray | Sequence[int],
    center_x: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror horizontally about ``x = center_x`` and swap left/right joints.

    Args:
        kp: [M, T, V, C] (x in channel 0).
        score: Optional [M, T, V], permuted like the joints.
        flip_index: [V] permutation (``Layout.flip_index``).
        center_x: Mirror line: 0 for normalised coordinates, ``w / 2`` for pixels.

    Returns:
        ``(kp, score)`` flipped copies; missing joints stay zero. Flipping twice is the identity.
    """
    _check_kp(kp)
    flip_index = np.asarray(flip_index, dtype=np.int64)
    if flip_index.shape != (kp.shape[2],):
        raise ValueError(f"flip_index has {flip_index.shape} entries for {kp.shape[2]} joints")
    out = _as_float(kp)
    out[..., 0] = np.where(joint_present(kp), 2 * center_x - out[..., 0], 0)
    out = out[:, :, flip_index]
    return out, None if score is None else score[:, :, flip_index].copy()


def affine_2d(
    kp: np.ndarray,
    angle: float = 0.0,
    scale: float | Sequence[float] = 1.0,
    shift: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """Rotate x, y by ``angle`` radians about the origin, then scale, then translate.

    Args:
        kp: [M, T, V, C] with x, y in the first two channels (others are kept).
        angle: Counter-clockwise rotation in radians (in x-right, y-up axes).
        scale: One factor, or ``(sx, sy)``.
        shift: ``(dx, dy)`` added after scaling.

    Returns:
        Transformed copy; missing joints stay zero.
    """
    _check_kp(kp, 2)
    out = _as_float(kp)
    c, s = math.cos(angle), math.sin(angle)
    sx, sy = (scale, scale) if np.isscalar(scale) else tuple(scale)  # type: ignore[misc]
    # Row-vector form: xy' = xy @ (S R)^T + shift, with R = [[c, -s], [s, c]], S = diag(sx, sy).
    mat = np.array([[sx * c, -sx * s], [sy * s, sy * c]], dtype=out.dtype)
    moved = out[..., :2] @ mat.T + np.asarray(shift, dtype=out.dtype)
    out[..., :2] = np.where(joint_present(kp)[..., None], moved, 0)
    return out


def rotate_3d(kp: np.ndarray, angle_x: float = 0.0, angle_y: float = 0.0) -> np.ndarray:
    """Rotate 3D points about the x axis by ``angle_x``, then about the y axis by ``angle_y``.

    Args:
        kp: [M, T, V, 3].
        angle_x: Radians about x.
        angle_y: Radians about y.

    Returns:
        Rotated copy ``p' = R_y R_x p``; missing joints stay zero (rotation fixes the origin).
    """
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise ValueError(f"rotate_3d needs [M, T, V, 3], got shape {kp.shape}")
    out = _as_float(kp)
    cx, sx = math.cos(angle_x), math.sin(angle_x)
    cy, sy = math.cos(angle_y), math.sin(angle_y)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return (out @ (ry @ rx).T.astype(out.dtype)).astype(out.dtype, copy=False)


def format_features(
    kp: np.ndarray,
    score: np.ndarray | None,
    layout: str | Path | Layout,
    features: Sequence[str] = ("joint",),
    with_score: bool = True,
) -> np.ndarray:
    """Stack the requested feature streams on the channel axis: the model's per-clip input.

    Args:
        kp: [M, T, V, C].
        score: Optional [M, T, V]; appended as one last channel when ``with_score``.
        layout: Skeleton layout (for bone parents).
        features: Streams among ``joint``, ``bone``, ``joint_motion``, ``bone_motion`` and
            ``partner`` (:func:`partner_offset`), in the order they are concatenated (C channels each).
        with_score: Append the score channel (ignored when ``score`` is None).

    Returns:
        float32 [M, T, V, len(features) * C + (1 if a score is appended)].
    """
    _check_kp(kp)
    if not features:
        raise ValueError("features must name at least one stream")
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature streams {unknown}; choose from {list(FEATURES)}")
    lay = get_layout(layout)
    if lay.num_joints != kp.shape[2]:
        raise ValueError(f"layout {lay.name!r} has {lay.num_joints} joints, keypoints have {kp.shape[2]}")
    joint = kp.astype(np.float32, copy=False)
    bone = joint_to_bone(joint, lay.parents) if any(f.startswith("bone") for f in features) else None
    streams = {
        "joint": lambda: joint,
        "bone": lambda: bone,
        "joint_motion": lambda: motion(joint),
        "bone_motion": lambda: motion(bone),  # type: ignore[arg-type]
        "partner": lambda: partner_offset(joint),
    }
    parts = [streams[f]() for f in features]
    if with_score and score is not None:
        parts.append(score.astype(np.float32, copy=False)[..., None])
    return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- dict wrappers

#: A pipeline step: ``step(sample, rng) -> sample``.
Transform = Callable[[dict, np.random.Generator], dict]


def _name(sample: dict) -> str:
    return str(sample.get("frame_dir", "<unnamed clip>"))


class Compose:
    """Apply transforms in order, threading one generator through all of them."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class _Step:
    """Base of the wrappers: a readable repr from the constructor arguments."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class UniformSample(_Step):
    """Gather ``num_clips`` views of ``clip_len`` frames: ``keypoint`` becomes [M, K*L, V, C].

    Also records ``frame_inds``, ``clip_len`` and ``num_clips`` in the sample.
    """

    def __init__(self, clip_len: int, num_clips: int = 1, train: bool = True, seed: int = 255) -> None:
        self.clip_len, self.num_clips, self.train, self.seed = clip_len, num_clips, train, seed

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        out = dict(sample)
        kp = sample["keypoint"]
        inds = uniform_sample_indices(kp.shape[1], self.clip_len, self.num_clips, self.train, rng, self.seed)
        out["keypoint"] = kp[:, inds]
        if sample.get("keypoint_score") is not None:
            out["keypoint_score"] = sample["keypoint_score"][:, inds]
        out.update(frame_inds=inds, clip_len=self.clip_len, num_clips=self.num_clips)
        return out


class PadPersons(_Step):
    """Truncate or zero-pad to exactly ``max_persons`` persons."""

    def __init__(self, max_persons: int) -> None:
        self.max_persons = max_persons

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        out = dict(sample)
        out["keypoint"], out["keypoint_score"] = pad_persons(
            sample["keypoint"], sample.get("keypoint_score"), self.max_persons
        )
        return out


class NormalizeImage(_Step):
    """:func:`normalize_by_image` with the sample's ``img_shape``."""

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        shape = sample.get("img_shape")
        if shape is None or min(shape) <= 0:
            raise ValueError(f"clip {_name(sample)!r}: NormalizeImage needs 'img_shape' (h, w); "
                             "use NormalizeBBox for data without image sizes")
        return {**sample, "keypoint": normalize_by_image(sample["keypoint"], shape)}


class NormalizeBBox(_Step):
    """:func:`normalize_by_bbox`, using the score for validity when ``use_score``."""

    def __init__(self, use_score: bool = True) -> None:
        self.use_score = use_score

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        score = sample.get("keypoint_score") if self.use_score else None
        return {**sample, "keypoint": normalize_by_bbox(sample["keypoint"], score)}


class NormalizeAxes(_Step):
    """:func:`normalize_axes`."""

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        return {**sample, "keypoint": normalize_axes(sample["keypoint"])}


class Center3D(_Step):
    """:func:`center_3d` on joint ``root``."""

    def __init__(self, root: int) -> None:
        self.root = root

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        return {**sample, "keypoint": center_3d(sample["keypoint"], self.root)}


class Align3D(_Step):
    """:func:`align_3d` on joint ``root`` and the :data:`ALIGN_JOINTS` at ``joints``."""

    def __init__(self, root: int, joints: Sequence[int]) -> None:
        self.root, self.joints = root, tuple(joints)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        return {**sample, "keypoint": align_3d(sample["keypoint"], self.root, self.joints)}


class RandomFlip(_Step):
    """:func:`hflip` with probability ``p``.

    ``center_x`` is the mirror line: 0 for normalised coordinates; None to use the image centre
    ``w / 2`` from ``img_shape`` (pixel coordinates, e.g. before heatmaps).
    """

    def __init__(self, layout: str | Path | Layout, p: float = 0.5, center_x: float | None = 0.0) -> None:
        self.layout, self.p, self.center_x = get_layout(layout).name, p, center_x
        self._flip_index = get_layout(layout).flip_index

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if rng.random() >= self.p:
            return sample
        cx = self.center_x
        if cx is None:
            shape = sample.get("img_shape")
            if shape is None or shape[1] <= 0:
                raise ValueError(f"clip {_name(sample)!r}: RandomFlip(center_x=None) needs 'img_shape'")
            cx = shape[1] / 2
        kp, score = hflip(sample["keypoint"], sample.get("keypoint_score"), self._flip_index, cx)
        return {**sample, "keypoint": kp, "keypoint_score": score}


class RandomAffine2D(_Step):
    """:func:`affine_2d` with angle ~ U(±max_angle) radians, scale ~ U(scale_range) and shift
    ~ U(±max_shift) per axis; meant for normalised coordinates (origin at the centre)."""

    def __init__(
        self, max_angle: float = 0.0, scale_range: tuple[float, float] = (1.0, 1.0), max_shift: float = 0.0
    ) -> None:
        self.max_angle, self.scale_range, self.max_shift = max_angle, tuple(scale_range), max_shift

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        angle = float(rng.uniform(-self.max_angle, self.max_angle))
        scale = float(rng.uniform(*self.scale_range))
        shift = rng.uniform(-self.max_shift, self.max_shift, size=2)
        return {**sample, "keypoint": affine_2d(sample["keypoint"], angle, scale, shift)}


class RandomRotate3D(_Step):
    """A random viewpoint for 3D clips: :func:`rotate_3d` with both angles ~ U(±max_angle) radians,
    then an isotropic scale ~ U(scale_range) about the origin (the centred root)."""

    def __init__(self, max_angle: float, scale_range: tuple[float, float] = (1.0, 1.0)) -> None:
        self.max_angle, self.scale_range = max_angle, tuple(scale_range)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        ax, ay = rng.uniform(-self.max_angle, self.max_angle, size=2)
        kp = rotate_3d(sample["keypoint"], float(ax), float(ay))
        if self.scale_range != (1.0, 1.0):
            kp *= kp.dtype.type(rng.uniform(*self.scale_range))  # missing joints stay zero
        return {**sample, "keypoint": kp}


class FormatFeatures(_Step):
    """:func:`format_features` per view: writes ``inputs`` float32 [K, M, clip_len, V, C_out].

    K is the sample's ``num_clips`` (1 if :class:`UniformSample` did not run). Features are
    computed inside each view.
    """

    def __init__(
        self, layout: str | Path | Layout, features: Sequence[str] = ("joint",), with_score: bool = True
    ) -> None:
        self.layout, self.features, self.with_score = get_layout(layout).name, tuple(features), with_score
        self._layout = get_layout(layout)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        kp = sample["keypoint"]
        score = sample.get("keypoint_score")
        t = kp.shape[1]
        k = int(sample.get("num_clips", 1))
        if t % k:
            raise ValueError(f"clip {_name(sample)!r}: {t} frames do not split into {k} views")
        ln = t // k
        # One view at a time: motion never crosses from one view into the next, nor does the choice
        # of each person's partner.
        views = [format_features(kp[:, i * ln:(i + 1) * ln], None if score is None else score[:, i * ln:(i + 1) * ln],
                                 self._layout, self.features, self.with_score) for i in range(k)]
        return {**sample, "inputs": np.ascontiguousarray(np.stack(views))}

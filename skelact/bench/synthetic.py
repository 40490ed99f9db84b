"""Synthetic inputs: moving COCO-17 people in image pixels, clip stores, model inputs and pickles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IMAGE", "NTU60_CLIPS", "synthetic_poses", "heatmap_clip", "synthetic_annotations", "synthetic_store",
           "model_inputs", "write_pickle"]

NTU60_CLIPS = 56_578
IMAGE = (1080, 1920)  # NTU colour frames (h, w)

# A standing person, COCO-17 order, x right / y down in units of the person's height, origin at
# the top of the head's centre line.
_TEMPLATE = np.array([
    [0.00, 0.06], [0.03, 0.04], [-0.03, 0.04], [0.06, 0.06], [-0.06, 0.06],  # nose, eyes, ears
    [0.12, 0.20], [-0.12, 0.20], [0.16, 0.37], [-0.16, 0.37], [0.18, 0.52], [-0.18, 0.52],  # arms
    [0.08, 0.53], [-0.08, 0.53], [0.09, 0.76], [-0.09, 0.76], [0.10, 0.98], [-0.10, 0.98],  # legs
], dtype=np.float64)
# Horizontal swing of each joint (fraction of height): arms and legs in opposite phase.
_SWING = np.array([0, 0, 0, 0, 0, 0, 0, 0.06, -0.06, 0.14, -0.14, 0, 0, -0.05, 0.05, -0.12, 0.12])


def synthetic_poses(
    num_clips: int,
    persons: int,
    frames: int,
    rng: np.random.Generator,
    image: tuple[int, int] = IMAGE,
    missing: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Moving COCO-17 skeletons in image pixels, side by side, as a pose estimator would give them.

    Each person has a random height (35-60 % of the image), position, drift and limb swing, plus
    1 % pixel noise; scores are U[0.3, 1] and ``missing`` of the joints have score 0 at (0, 0).

    Returns:
        ``keypoint`` float32 ``(N, M, T, 17, 2)`` and ``score`` float32 ``(N, M, T, 17)``.
    """
    h_img, w_img = image
    shape = (num_clips, persons, 1, 1)
    height = rng.uniform(0.35, 0.6, shape) * h_img
    slot = (np.arange(persons).reshape(1, persons, 1, 1) + 0.5) / persons
    cx = (0.25 + 0.5 * slot + rng.uniform(-0.05, 0.05, shape)) * w_img
    top = rng.uniform(0.05, 0.35, shape) * h_img
    t = np.arange(frames).reshape(1, 1, frames, 1)
    swing = np.sin(rng.uniform(0.1, 0.4, shape) * t + rng.uniform(0, 2 * np.pi, shape))
    x = cx + rng.uniform(-2, 2, shape) * t + height * (_TEMPLATE[:, 0] + _SWING * swing)
    y = top + height * (_TEMPLATE[:, 1] + 0.02 * swing)
    kp = np.stack([x, y], axis=-1) + rng.normal(0, 0.01, (num_clips, persons, frames, 17, 2)) * height[..., None]
    score = rng.uniform(0.3, 1.0, (num_clips, persons, frames, 17))
    gone = rng.random(score.shape) < missing
    score[gone] = 0
    kp[gone] = 0
    return kp.astype(np.float32), score.astype(np.float32)


def heatmap_clip(num_clips: int, frames: int, size: int, seed: int) -> tuple[Any, Any]:
    """Synthetic 2-person clips mapped into ``size``² output pixels the way PoseConv3D does (PoseCompact).

    Returns:
        torch ``(N, 2, T, 17, 2)`` keypoints in output pixels and ``(N, 2, T, 17)`` scores.
    """
    import torch

    from skelact.models.heatmap import compact_boxes, crop_to_boxes

    kp, score = synthetic_poses(num_clips, 2, frames, np.random.default_rng(seed))
    kp_t, score_t = torch.from_numpy(kp), torch.from_numpy(score)
    return crop_to_boxes(kp_t, compact_boxes(kp_t, score_t), size), score_t


def synthetic_annotations(num_clips: int, seed: int = 0, frames: tuple[int, int] = (40, 110)) -> list[dict[str, Any]]:
    """NTU60-like PYSKL annotations: 2 persons, ``T ~ U[frames]``, COCO-17 pixels, labels ``i % 60``."""
    rng = np.random.default_rng(seed)
    anns = []
    for i, t in enumerate(rng.integers(frames[0], frames[1] + 1, size=num_clips).tolist()):
        kp, score = synthetic_poses(1, 2, t, rng)
        anns.append({"frame_dir": f"clip{i:06d}", "total_frames": t, "img_shape": IMAGE, "original_shape": IMAGE,
                     "label": i % 60, "keypoint": kp[0], "keypoint_score": score[0]})
    return anns


def synthetic_store(num_clips: int, seed: int = 0) -> Any:
    """:func:`synthetic_annotations` packed as a :class:`~skelact.data.dataset.PackedClips` (split ``train``)."""
    from skelact.data.dataset import PackedClips

    anns = synthetic_annotations(num_clips, seed)
    names = [a["frame_dir"] for a in anns]
    return PackedClips.from_annotations({"split": {"train": names}, "annotations": anns, "layout": "coco17"})


def model_inputs(kind: str, batch: int, frames: int, seed: int) -> Any:
    """``(N, 2, T, 17, 3)``: image-normalised (x, y, score) for keypoint models, raw pixels for heatmap models."""
    import torch

    kp, score = synthetic_poses(batch, 2, frames, np.random.default_rng(seed))
    if kind == "keypoint":
        h, w = IMAGE
        kp = np.where(score[..., None] > 0, kp / np.array([w, h], np.float32) * 2 - 1, 0).astype(np.float32)
    return torch.from_numpy(np.concatenate([kp, score[..., None]], axis=-1))


def write_pickle(path: Path, clips: int, seed: int = 0) -> int:
    """A synthetic NTU60-shaped pickle (2 persons, T ~ U[40, 110], 17 joints); returns its array bytes.

    Random coordinates (not people): for the memory stage, where only sizes matter.
    """
    from skelact.data.io import save_annotations

    rng = np.random.default_rng(seed)
    anns, total = [], 0
    for i, t in enumerate(rng.integers(40, 111, size=clips).tolist()):
        kp = rng.random((2, t, 17, 2), dtype=np.float32) * 1000
        score = rng.random((2, t, 17), dtype=np.float32)
        total += kp.nbytes + score.nbytes
        anns.append({"frame_dir": f"S001C001P001R001A{i:06d}", "total_frames": t, "img_shape": IMAGE,
                     "original_shape": IMAGE, "label": i % 60, "keypoint": kp, "keypoint_score": score})
    names = [a["frame_dir"] for a in anns]
    split = clips * 2 // 3
    save_annotations({"split": {"xsub_train": names[:split], "xsub_val": names[split:]}, "annotations": anns},
                     path, force=True)
    return total

"""Temporal sampling and person padding: pure functions on numpy arrays.

:func:`uniform_sample_indices` cuts the clip into ``clip_len`` equal segments and takes one frame
from each, so every part of the action is seen whatever the clip's length; clips shorter than
``clip_len`` are looped. (The sampling the published skeleton recipes were measured with, so that
their numbers can be compared.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["uniform_sample_indices", "pad_persons"]


def _segment_draw(num_frames: int, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    """One random view of ``clip_len`` increasing frame indices for ``num_frames >= clip_len``."""
    if num_frames < 2 * clip_len:
        # Fewer than two frames per segment: keep consecutive runs in order and spread the
        # ``num_frames - clip_len`` surplus frames as single skips over the clip_len + 1 gaps
        # (before, between and after the chosen frames).
        skips = np.zeros(clip_len + 1, dtype=np.int64)
        skips[rng.choice(clip_len + 1, size=num_frames - clip_len, replace=False)] = 1
        return np.arange(clip_len, dtype=np.int64) + np.cumsum(skips)[:-1]
    # Segment i covers [i*T//L, (i+1)*T//L); draw one frame uniformly inside each.
    bounds = np.arange(clip_len + 1, dtype=np.int64) * num_frames // clip_len
    return bounds[:-1] + rng.integers(0, np.diff(bounds))


def _centres(num_frames: int, clip_len: int) -> np.ndarray:
    """Segment centres floor((i + 0.5) * T / L), in exact integer arithmetic."""
    return (2 * np.arange(clip_len, dtype=np.int64) + 1) * num_frames // (2 * clip_len)


def uniform_sample_indices(
    num_frames: int,
    clip_len: int,
    num_clips: int = 1,
    train: bool = True,
    rng: np.random.Generator | None = None,
    seed: int = 255,
) -> np.ndarray:
    """Frame indices for ``num_clips`` views of ``clip_len`` frames each.

    Training draws one random frame per segment (``rng``; a fresh generator if None). Test mode
    is deterministic: view 0 takes the segment centres (or starts at frame 0 for a short clip);
    view ``k >= 1`` draws with ``np.random.default_rng(seed + k)`` (a short clip starts at
    ``k * T // num_clips``), so the K test views differ but are the same on every call.

    Args:
        num_frames: Frames in the clip (T), at least 1.
        clip_len: Frames per view (L).
        num_clips: Views (K), concatenated in the output.
        train: Random training views, or the deterministic test views.
        rng: Generator for training draws; ignored in test mode.
        seed: Base seed of the test views.

    Returns:
        int64 array [K * L] of indices in [0, T); non-decreasing within a view when T >= L.
    """
    if num_frames < 1:
        raise ValueError(f"cannot sample from a clip with {num_frames} frames")
    if clip_len < 1 or num_clips < 1:
        raise ValueError(f"clip_len and num_clips must be >= 1, got {clip_len} and {num_clips}")
    if train and rng is None:
        rng = np.random.default_rng()
    views = []
    for k in range(num_clips):
        if train:
            assert rng is not None
            view_rng = rng
        else:
            view_rng = np.random.default_rng(seed + k)
        if num_frames < clip_len:
            # Loop the short clip from a start frame.
            if train:
                start = int(view_rng.integers(0, num_frames))
            else:
                start = k * num_frames // num_clips
            view = (start + np.arange(clip_len, dtype=np.int64)) % num_frames
        elif not train and k == 0:
            view = _centres(num_frames, clip_len)
        else:
            view = _segment_draw(num_frames, clip_len, view_rng)
        views.append(view)
    return np.concatenate(views).astype(np.int64, copy=False)


def pad_persons(
    keypoint: np.ndarray, score: np.ndarray | None, max_persons: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep the first ``max_persons`` persons and zero-pad up to ``max_persons``.

    Converters order persons by importance, so truncation keeps the leading ones.

    Args:
        keypoint: [M, T, V, C].
        score: [M, T, V] or None.
        max_persons: Persons in the output (P).

    Returns:
        ``(keypoint [P, T, V, C], score [P, T, V] or None)``; new arrays when padded, views of
        the inputs when only truncated.
    """
    if max_persons < 1:
        raise ValueError(f"max_persons must be >= 1, got {max_persons}")
    if keypoint.ndim != 4:
        raise ValueError(f"keypoint must be [M, T, V, C], got shape {keypoint.shape}")
    m = keypoint.shape[0]
    if score is not None and score.shape != keypoint.shape[:3]:
        raise ValueError(f"score shape {score.shape} does not match keypoint {keypoint.shape}")
    if m >= max_persons:
        return keypoint[:max_persons], None if score is None else score[:max_persons]
    kp = np.zeros((max_persons, *keypoint.shape[1:]), dtype=keypoint.dtype)
    kp[:m] = keypoint
    sc = None
    if score is not None:
        sc = np.zeros((max_persons, *score.shape[1:]), dtype=score.dtype)
        sc[:m] = score
    return kp, sc

"""Penn Action ``labels/NNNN.mat`` files -> PYSKL annotations (13 joints, 2D pixels)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from skelact.data.convert._common import ConvertError, ConvertSummary, find_files, split_counts

__all__ = ["convert_penn", "read_penn_mat"]

_NUM_JOINTS = 13


def _scalar(m: dict[str, Any], key: str, path: Path) -> Any:
    if key not in m or np.size(m[key]) != 1:
        raise ConvertError(f"{path}: Penn Action field {key!r} is missing or not a single value")
    return np.asarray(m[key]).reshape(-1)[0]


def read_penn_mat(path: str | Path) -> tuple[dict[str, Any], str, int, str | None]:
    """Read one Penn Action label file.

    Args:
        path: A ``NNNN.mat`` file.

    Returns:
        ``(ann, action, train_flag, note)``: ``ann`` without ``label`` (keypoint [1, T, 13, 2]
        float32 pixels, keypoint_score [1, T, 13] float32 visibility, img_shape (H, W)); the class
        name; 1 for train, -1 for test; a note when the stored frame counts disagree with ``x``.

    Raises:
        ConvertError: The file cannot be read or lacks consistent fields; the message names it.
    """
    path = Path(path)
    try:
        m = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types (ValueError, MatReadError, OSError, ...)
        raise ConvertError(f"{path}: cannot read MATLAB file ({type(e).__name__}: {e})") from None
    arrays = {}
    for key in ("x", "y", "visibility"):
        a = m.get(key)
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != _NUM_JOINTS or a.dtype.kind not in "fiu":
            shape = list(a.shape) if isinstance(a, np.ndarray) else None
            raise ConvertError(f"{path}: Penn Action field {key!r} must be numeric [T, 13], got {shape}")
        arrays[key] = a
    x, y, vis = arrays["x"], arrays["y"], arrays["visibility"]
    if not x.shape == y.shape == vis.shape:
        raise ConvertError(
            f"{path}: x, y and visibility shapes differ ({list(x.shape)}, {list(y.shape)}, {list(vis.shape)})"
        )
    t = x.shape[0]
    if t == 0:
        raise ConvertError(f"{path}: clip has 0 frames")
    action = str(_scalar(m, "action", path))
    flag = int(_scalar(m, "train", path))
    if flag not in (1, -1):
        raise ConvertError(f"{path}: Penn Action 'train' flag is {flag}, expected 1 or -1")
    dimensions = np.asarray(m.get("dimensions", [])).reshape(-1)
    if dimensions.size != 3:
        raise ConvertError(f"{path}: Penn Action field 'dimensions' must be [H W T]")
    h, w, dim_t = (int(d) for d in dimensions)
    if h <= 0 or w <= 0:
        raise ConvertError(f"{path}: bad image size {h}x{w} in 'dimensions'")
    # 'nframes' is stored as uint8 in most files, so it is only compared modulo 256 where it is.
    nframes_arr = np.asarray(m.get("nframes", t))
    nframes = int(nframes_arr.reshape(-1)[0]) if nframes_arr.size == 1 else t
    wrap = 256 if nframes_arr.dtype == np.uint8 else None
    note = None
    if dim_t != t or (nframes != (t % wrap if wrap else t)):
        note = "clips whose 'dimensions'/'nframes' frame count differs from x's rows (used x's rows)"
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConvertError(f"{path}: non-finite joint coordinates")

    kp = np.stack([x, y], axis=-1).astype(np.float32)[None]  # [1, T, 13, 2] pixels
    ann = {
        "frame_dir": path.stem,
        "total_frames": t,
        "img_shape": (h, w),
        "original_shape": (h, w),
        "keypoint": kp,
        "keypoint_score": vis.astype(np.float32)[None],  # [1, T, 13], 1 visible / 0 not
    }
    return ann, action, flag, note


def convert_penn(src: str | Path) -> tuple[dict[str, Any], ConvertSummary]:
    """Convert Penn Action to PYSKL annotations with its official train/test split.

    Args:
        src: The Penn Action folder (holding ``labels/``) or the ``labels`` folder itself.

    Returns:
        ``(data, summary)``: ``data`` has splits ``train``/``test``, ``classes`` = the sorted action
        names (labels index them) and ``layout`` ``'penn13'``.

    Raises:
        ConvertError: ``src`` is missing or has no ``.mat`` file, or a file cannot be read.
    """
    t0 = time.perf_counter()
    root, files = find_files(src, "*.mat", subdir="labels")
    summary = ConvertSummary(dataset="penn_action", src=str(root), files=len(files))
    rows = []
    for p in files:
        ann, action, flag, note = read_penn_mat(p)
        if note:
            summary.notes[note] += 1
        rows.append((ann, action, flag))

    classes = sorted({action for _, action, _ in rows})
    label_of = {name: i for i, name in enumerate(classes)}
    split: dict[str, list[str]] = {"train": [], "test": []}
    annotations = []
    for ann, action, flag in rows:
        ann["label"] = label_of[action]
        annotations.append(ann)
        split["train" if flag == 1 else "test"].append(ann["frame_dir"])

    data = {"split": split, "annotations": annotations, "classes": classes, "layout": "penn13"}
    summary.converted = len(annotations)
    summary.splits = split_counts(split)
    summary.seconds = time.perf_counter() - t0
    return data, summary

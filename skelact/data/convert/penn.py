"""Penn Action ``labels/NNNN.mat`` files -> PYSKL annotations (13 joints, 2D pixels)."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from skelact.data.convert._common import ConvertError, ConvertSummary, find_files, split_counts
from skelact.errors import one_line

__all__ = ["convert_penn", "read_penn_mat"]

_NUM_JOINTS = 13
_FIELDS = ["action", "train", "x", "y", "visibility", "dimensions", "nframes"]  # what is read of a file
# A label file's variables, once read (a real one: under 200 KB). A zlib-compressed element can
# expand a thousandfold, so a 1 MB file could otherwise become a gigabyte of arrays.
_MAX_MAT_BYTES = 64 * 2**20
_MAX_SIDE = 2**31 - 1  # image height / width (skelact.data.io's bound)
_MI_COMPRESSED = 15


def _check_mat_size(path: Path) -> None:
    """Refuse a file that is not MATLAB v5 or whose elements hold more than :data:`_MAX_MAT_BYTES`
    once decompressed, before scipy reads any of it."""
    try:
        size = path.stat().st_size
        if size > _MAX_MAT_BYTES:
            raise ConvertError(f"{path}: {size:,} bytes is too large for a Penn Action label file")
        data = path.read_bytes()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read MATLAB file ({e.strerror or type(e).__name__})") from None
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise ConvertError(f"{path}: not a MATLAB v5 file (Penn Action label files are)")
    order = "<" if data[126:128] == b"IM" else ">"
    pos, total = 128, 0
    while pos + 8 <= len(data) and total <= _MAX_MAT_BYTES:
        mdtype, nbytes = struct.unpack_from(order + "II", data, pos)
        if mdtype >> 16:  # a small element: type and size in the tag, 4 bytes of data
            total, pos = total + (mdtype >> 16), pos + 8
            continue
        if mdtype == _MI_COMPRESSED:
            stream, chunk = zlib.decompressobj(), data[pos + 8:pos + 8 + nbytes]
            try:
                while chunk and total <= _MAX_MAT_BYTES:  # at most 1 MiB out per step
                    total += len(stream.decompress(chunk, 2**20))
                    chunk = stream.unconsumed_tail
            except zlib.error:
                raise ConvertError(f"{path}: cannot read MATLAB file (corrupt compressed data)") from None
            pos += 8 + nbytes
        else:
            total, pos = total + nbytes, pos + 8 + nbytes + (-nbytes) % 8
    if total > _MAX_MAT_BYTES:
        raise ConvertError(f"{path}: its variables take more than {_MAX_MAT_BYTES // 2**20} MiB once decompressed; "
                           "not a Penn Action label file")


def _scalar(m: dict[str, Any], key: str, path: Path) -> Any:
    if key not in m or np.size(m[key]) != 1:
        raise ConvertError(f"{path}: Penn Action field {key!r} is missing or not a single value")
    return np.asarray(m[key]).reshape(-1)[0]


def _number(m: dict[str, Any], key: str, path: Path) -> float:
    value = _scalar(m, key, path)
    if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ConvertError(f"{path}: Penn Action field {key!r} must be a finite number")
    return float(value)


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
    _check_mat_size(path)
    try:
        m = scipy.io.loadmat(path, variable_names=_FIELDS)
    except Exception as e:  # scipy raises several types (ValueError, MatReadError, OSError, ...)
        raise ConvertError(f"{path}: cannot read MATLAB file ({type(e).__name__}: {one_line(e)})") from None
    arrays = {}
    for key in ("x", "y", "visibility"):
        a = m.get(key)
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != _NUM_JOINTS or a.dtype.kind not in "biuf":
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
    action = str(_scalar(m, "action", path))[:200]
    flag = _number(m, "train", path)
    if flag not in (1, -1):
        raise ConvertError(f"{path}: Penn Action 'train' flag is {flag:g}, expected 1 or -1")
    dimensions = np.asarray(m.get("dimensions", [])).reshape(-1)
    if dimensions.size != 3 or dimensions.dtype.kind not in "iuf" or not np.isfinite(dimensions).all():
        raise ConvertError(f"{path}: Penn Action field 'dimensions' must be three numbers [H W T]")
    h, w, dim_t = dimensions.tolist()
    if not (0 < h <= _MAX_SIDE and 0 < w <= _MAX_SIDE):
        raise ConvertError(f"{path}: bad image size {h:g}x{w:g} in 'dimensions'")
    # 'nframes' is stored as uint8 in most files, so it is only compared modulo 256 where it is.
    nframes = _number(m, "nframes", path) if "nframes" in m else t
    wrap = 256 if "nframes" in m and np.asarray(m["nframes"]).dtype == np.uint8 else None
    note = None
    if dim_t != t or (nframes != (t % wrap if wrap else t)):
        note = "clips whose 'dimensions'/'nframes' frame count differs from x's rows (used x's rows)"

    with np.errstate(over="ignore", invalid="ignore"):  # checked below: 1e300 becomes inf in float32
        kp = np.stack([x, y], axis=-1).astype(np.float32)[None]  # [1, T, 13, 2] pixels
        score = vis.astype(np.float32)[None]  # [1, T, 13], 1 visible / 0 not
    if not (np.isfinite(kp).all() and np.isfinite(score).all()):
        raise ConvertError(f"{path}: non-finite joint coordinates or visibility")
    ann = {
        "frame_dir": path.stem,
        "total_frames": t,
        "img_shape": (int(h), int(w)),
        "original_shape": (int(h), int(w)),
        "keypoint": kp,
        "keypoint_score": score,
    }
    return ann, action, int(flag), note


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

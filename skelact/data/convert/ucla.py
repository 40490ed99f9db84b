"""NW-UCLA ``all_sqe/*.json`` (as released with CTR-GCN) -> PYSKL annotations (20 joints, 3D)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.convert._common import ConvertError, ConvertSummary, find_files, split_counts
from skelact.errors import one_line

__all__ = ["UCLA_ACTIONS", "UCLA_CLASSES", "convert_ucla", "read_ucla_json"]

# Action ids present in NW-UCLA, in label order (a01 -> 0, ..., a12 -> 9), and their names.
UCLA_ACTIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
UCLA_CLASSES: tuple[str, ...] = (
    "pick up with one hand",
    "pick up with two hands",
    "drop trash",
    "walk around",
    "sit down",
    "stand up",
    "donning",
    "doffing",
    "throw",
    "carry",
)
_TRAIN_VIEWS = (1, 2)  # standard cross-view protocol: views 1, 2 train; view 3 test
_NAME_RE = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")
_NUM_JOINTS = 20


def read_ucla_json(path: str | Path) -> tuple[str, np.ndarray, int | None]:
    """Read one NW-UCLA clip.

    Args:
        path: An ``aNN_sNN_eNN_vNN.json`` file.

    Returns:
        ``(name, skeletons, label)``: the ``file_name`` (the file stem if absent), joints
        [T, 20, 3] float32 metres, and the stored 1-based ``label`` (None if absent).

    Raises:
        ConvertError: The file is not valid JSON or ``skeletons`` is not a finite [T, 20, 3]
            array; the message names the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            d = json.load(f)
    except OSError as e:
        raise ConvertError(f"{path}: cannot read NW-UCLA JSON ({e.strerror or type(e).__name__})") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError (and too long integers)
        raise ConvertError(f"{path}: not valid NW-UCLA JSON ({one_line(e)})") from None
    except RecursionError:  # the C decoder recurses once per nested array or object
        raise ConvertError(f"{path}: not valid NW-UCLA JSON (nested too deeply)") from None
    if not isinstance(d, dict) or "skeletons" not in d:
        raise ConvertError(f"{path}: NW-UCLA JSON without a 'skeletons' field")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 becomes inf, refused below without a warning
            sk = np.asarray(d["skeletons"], dtype=np.float32)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise ConvertError(f"{path}: 'skeletons' is not a numeric [T, 20, 3] array") from None
    if sk.ndim != 3 or sk.shape[1:] != (_NUM_JOINTS, 3) or sk.shape[0] == 0:
        raise ConvertError(f"{path}: 'skeletons' has shape {list(sk.shape)}, expected [T, 20, 3] with T > 0")
    if not np.isfinite(sk).all():
        raise ConvertError(f"{path}: 'skeletons' has non-finite values")
    name = d.get("file_name")
    label = d.get("label")
    return (name if isinstance(name, str) else path.stem), sk, label if type(label) is int else None


def convert_ucla(src: str | Path) -> tuple[dict[str, Any], ConvertSummary]:
    """Convert NW-UCLA to PYSKL annotations with the cross-view split.

    Labels come from the action id in the file name (a01, a02, a03, a04, a05, a06, a08, a09, a11,
    a12 -> 0..9); the split from the view (v01, v02 -> ``train``, v03 -> ``test``).

    Args:
        src: The NW-UCLA folder (holding ``all_sqe/``) or the ``all_sqe`` folder itself.

    Returns:
        ``(data, summary)``: keypoint [1, T, 20, 3] metres, no scores or image shape;
        ``classes`` as in :data:`UCLA_CLASSES`; ``layout`` ``'ucla20'``.

    Raises:
        ConvertError: ``src`` is missing or has no ``.json`` file, or a file cannot be read.
    """
    t0 = time.perf_counter()
    root, files = find_files(src, "*.json", subdir="all_sqe")
    summary = ConvertSummary(dataset="nwucla", src=str(root), files=len(files))
    label_of = {a: i for i, a in enumerate(UCLA_ACTIONS)}
    split: dict[str, list[str]] = {"train": [], "test": []}
    annotations = []
    for p in files:
        m = _NAME_RE.fullmatch(p.stem)
        if m is None:
            summary.skipped["file name not aNN_sNN_eNN_vNN"] += 1
            continue
        action, view = int(m.group(1)), int(m.group(4))
        if action not in label_of:
            summary.skipped["action id not one of NW-UCLA's 10"] += 1
            continue
        if view not in (1, 2, 3):
            summary.skipped["view not 1, 2 or 3"] += 1
            continue
        name, sk, stored = read_ucla_json(p)
        label = label_of[action]
        if stored is not None and stored != label + 1:
            summary.notes["clips whose stored 'label' disagrees with the file name (used the name)"] += 1
        if name != p.stem:
            summary.notes["clips whose 'file_name' differs from the file stem (used the stem)"] += 1
        annotations.append(
            {"frame_dir": p.stem, "total_frames": int(sk.shape[0]), "label": label, "keypoint": sk[None]}
        )
        split["train" if view in _TRAIN_VIEWS else "test"].append(p.stem)

    if not annotations:
        raise ConvertError(f"{root}: no clip converted ({summary.skipped_text()})")
    data = {"split": split, "annotations": annotations, "classes": list(UCLA_CLASSES), "layout": "ucla20"}
    summary.converted = len(annotations)
    summary.splits = split_counts(split)
    summary.seconds = time.perf_counter() - t0
    return data, summary

"""OpenPose ``--write_json`` folders -> PYSKL annotations (BODY_25 or COCO-18, people tracked).

OpenPose writes one JSON file per frame, ``<video>_<frame:012d>_keypoints.json``, holding
``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}, ...]}`` with 0, 0, 0 for
an undetected joint. One folder of such files is one clip. People carry no identity across
frames, so they are linked into tracks with :class:`skelact.data.tracking.PoseTracker` (as for
``skelact extract``), and the most confident tracks become the clip's persons.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.convert._common import ConvertError, ConvertSummary, assign_labels, pack_converted
from skelact.data.tracking import PoseResult, PoseTracker
from skelact.errors import one_line, short_repr
from skelact.skeleton import Layout, get_layout, joint_present

__all__ = ["OpenPoseClip", "find_openpose_clips", "read_openpose_frame", "convert_openpose"]

#: A frame file larger than this is refused (a frame of 100 people with face and hands is ~0.5 MB).
MAX_JSON_BYTES = 16 << 20
#: People kept per frame, the most confident (bounds the tracker's matching cost).
MAX_PEOPLE = 64
#: Above this many tracks in a clip, fragments are not joined: its memory is bounded (a sweep over
#: time), but its time grows with the pairs of tracks within the join's gap, up to 64 people a frame.
MAX_JOIN_TRACKS = 2000
#: Keypoint sets recognised from the array length, for ``layout="auto"``.
AUTO_LAYOUTS = {25: "body25", 18: "openpose18"}
#: Largest keypoint coordinate taken (an image side a data file may store, skelact.data.io); beyond
#: it, box areas and distances of the tracker overflow float32.
MAX_COORDINATE = 2**31 - 1

_FRAME_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class OpenPoseClip:
    """One clip: a folder of per-frame JSON files.

    Attributes:
        name: The clip name (``frame_dir``): the folder's name.
        rel: The folder relative to the converted folder (``video`` or ``class/video``).
        folder: The folder.
        files: Its frame files in frame order.
        class_name: The class folder's name, or None.
        numbered: Whether the order comes from frame numbers in the file names (else by name).
    """

    name: str
    rel: str
    folder: Path
    files: tuple[Path, ...]
    class_name: str | None
    numbered: bool


def _json_files(folder: Path) -> list[Path]:
    """The frame files of a folder: its ``*_keypoints.json`` files, else all ``*.json`` files."""
    try:
        files = [p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()]
    except OSError as e:
        raise ConvertError(f"{folder}: cannot list the folder ({e.strerror or type(e).__name__})") from None
    keypoints = [p for p in files if p.name.lower().endswith("_keypoints.json")]
    return keypoints or files


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError as e:
        raise ConvertError(f"{folder}: cannot list the folder ({e.strerror or type(e).__name__})") from None


def _frame_order(folder: Path, files: list[Path]) -> tuple[tuple[Path, ...], bool]:
    """Files by the frame number ending their stem (``..._000000000012_keypoints``), else by name."""
    numbers: dict[int, Path] = {}
    for p in files:
        stem = p.name[: -len("_keypoints.json")] if p.name.lower().endswith("_keypoints.json") else p.stem
        m = _FRAME_NUMBER.search(stem)
        if m is None:
            return tuple(sorted(files)), False
        n = int(m.group(1))
        if n in numbers:
            raise ConvertError(f"{folder}: {numbers[n].name} and {p.name} are both frame {n}; a clip folder must "
                               "hold the JSON files of one video")
        numbers[n] = p
    return tuple(numbers[n] for n in sorted(numbers)), True


def find_openpose_clips(src: str | Path, summary: ConvertSummary | None = None) -> tuple[Path, list[OpenPoseClip]]:
    """The clip folders under ``src``: ``src/<video>/*.json``, ``src/<class>/<video>/*.json``, or
    ``src`` itself when it holds the JSON files of one video.

    Folders without JSON files are skipped (counted in ``summary``).

    Raises:
        ConvertError: ``src`` is missing, empty or holds no JSON files; it mixes video folders
            with class folders; two clip folders have the same name.
    """
    root = Path(src).expanduser()
    if not root.exists():
        raise ConvertError(f"{root}: source folder not found")
    if not root.is_dir():
        raise ConvertError(f"{root}: not a folder; give the folder of OpenPose JSON files")
    here = _json_files(root)
    subs = _subfolders(root)
    if here:
        if any(_json_files(d) for d in subs):
            raise ConvertError(f"{root}: holds both JSON files and folders of JSON files; give one video's folder "
                               "or a folder of video folders")
        files, numbered = _frame_order(root, here)
        return root, [OpenPoseClip(root.name, ".", root, files, None, numbered)]
    try:
        empty = next(root.iterdir(), None) is None
    except OSError as e:
        raise ConvertError(f"{root}: cannot list the folder ({e.strerror or type(e).__name__})") from None
    if empty:
        raise ConvertError(f"{root}: empty folder; expected one folder of OpenPose JSON files per video")
    found: list[tuple[Path, str | None]] = []
    kinds: dict[str, Path] = {}
    for d in subs:
        if _json_files(d):
            found.append((d, None))
            kinds.setdefault("video", d)
            continue
        videos = [v for v in _subfolders(d) if _json_files(v)]
        if videos:
            found += [(v, d.name) for v in videos]
            kinds.setdefault("class", d)
        elif summary is not None:
            summary.skip("folders without JSON files", d.name)
    if not found:
        raise ConvertError(f"{root}: no OpenPose JSON files in it or in its sub-folders (expected "
                           "<video>/*_keypoints.json or <class>/<video>/*_keypoints.json)")
    if len(kinds) > 1:
        raise ConvertError(f"{root}: mixes video folders ({kinds['video'].name}) with class folders "
                           f"({kinds['class'].name}); use one layout")
    clips, seen = [], {}
    for folder, cls in found:
        if folder.name in seen:
            raise ConvertError(f"{folder}: clip name {short_repr(folder.name)} is also used by {seen[folder.name]}; "
                               "clip folders need distinct names")
        seen[folder.name] = folder
        files, numbered = _frame_order(folder, _json_files(folder))
        clips.append(OpenPoseClip(folder.name, folder.relative_to(root).as_posix(), folder, files, cls, numbered))
    return root, clips


def _is_number(x: object) -> bool:
    return type(x) is float or type(x) is int  # not bool, not strings that numpy would parse


def read_openpose_frame(path: str | Path, num_joints: int | None = None,
                        context: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The people of one OpenPose frame file.

    Args:
        path: A ``*_keypoints.json`` file.
        num_joints: Joints V each person must have; None accepts any V that is the same for all.
        context: Where ``num_joints`` comes from, for the message (e.g. ``"layout body25"``).

    Returns:
        keypoints float32 [P, V, 2] (pixels, or whatever ``--keypoint_scale`` OpenPose used) and
        scores float32 [P, V]; people with an empty ``pose_keypoints_2d`` are left out. With no
        people V is ``num_joints`` (0 when that is None).

    Raises:
        ConvertError: Unreadable, too large, nested too deeply, not OpenPose JSON, keypoint arrays
            whose length is not 3 x V, non-numeric or non-finite values; the message names the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ConvertError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MB, not an OpenPose frame file")
    try:
        doc: Any = json.loads(raw)
    except RecursionError:
        raise ConvertError(f"{path}: JSON nested too deeply, not an OpenPose frame file") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ConvertError(f"{path}: not valid JSON ({one_line(e)})") from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise ConvertError(f"{path}: not OpenPose JSON (expected an object with a 'people' list)")
    rows = []
    for k, person in enumerate(people):
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(values, list):
            raise ConvertError(f"{path}: person #{k} has no 'pose_keypoints_2d' list")
        if not values:
            continue  # OpenPose run without the body model (--body 0)
        if len(values) % 3:
            raise ConvertError(f"{path}: person #{k}: 'pose_keypoints_2d' has {len(values)} values, not x, y, c "
                               "triples")
        v = len(values) // 3
        expected = num_joints if num_joints is not None else (rows[0].shape[0] if rows else v)
        if v != expected:
            raise ConvertError(f"{path}: person #{k} has {v} joints ({len(values)} values), expected {expected} "
                               f"({3 * expected} values{', ' + context if context else ''})")
        if not all(map(_is_number, values)):
            bad = next(x for x in values if not _is_number(x))
            raise ConvertError(f"{path}: person #{k}: 'pose_keypoints_2d' holds {short_repr(bad)}, not a number")
        with np.errstate(over="ignore"):
            try:
                row = np.asarray(values, dtype=np.float64).astype(np.float32).reshape(v, 3)
            except OverflowError:  # an integer beyond float64
                row = np.full((v, 3), np.inf, np.float32)
        if not np.isfinite(row).all():
            raise ConvertError(f"{path}: person #{k} has non-finite keypoint values (NaN, Infinity or too large)")
        if (np.abs(row[:, :2]) > MAX_COORDINATE).any():  # finite, but boxes and distances would overflow
            worst = float(row[:, :2].flat[np.abs(row[:, :2]).argmax()])
            raise ConvertError(f"{path}: person #{k} has a keypoint coordinate of {worst:g}, beyond the "
                               f"+-{MAX_COORDINATE} pixels an image can have")
        rows.append(row)
    v = rows[0].shape[0] if rows else (num_joints or 0)
    arr = np.stack(rows) if rows else np.zeros((0, v, 3), np.float32)  # [P, V, 3]
    return np.ascontiguousarray(arr[..., :2]), np.ascontiguousarray(arr[..., 2])


def _detections(kp: np.ndarray, sc: np.ndarray, summary: ConvertSummary) -> PoseResult:
    """Frame people [P, V, 2] / [P, V] as tracker input: a box around the present joints and a person
    score (the mean joint confidence); people with no present joint are dropped."""
    present = joint_present(kp, sc)  # [P, V]
    keep = present.any(1)
    kp, sc, present = kp[keep], sc[keep], present[keep]
    person = (sc * present).sum(1) / max(sc.shape[1], 1)  # [P]
    if len(person) > MAX_PEOPLE:
        summary.notes[f"frames with more than {MAX_PEOPLE} people (kept the {MAX_PEOPLE} most confident)"] += 1
        top = np.argsort(-person, kind="stable")[:MAX_PEOPLE]
        kp, sc, present, person = kp[top], sc[top], present[top], person[top]
    big = np.float32(np.finfo(np.float32).max)
    x, y = kp[..., 0], kp[..., 1]
    boxes = np.stack([np.where(present, x, big).min(1), np.where(present, y, big).min(1),
                      np.where(present, x, -big).max(1), np.where(present, y, -big).max(1)], -1)  # [P, 4]
    return PoseResult(kp, sc, boxes.astype(np.float32), person.astype(np.float32))


def _auto_layout(path: Path, num_values: int) -> Layout:
    v = num_values // 3
    if num_values % 3 == 0 and v in AUTO_LAYOUTS:
        return get_layout(AUTO_LAYOUTS[v])
    raise ConvertError(f"{path}: 'pose_keypoints_2d' has {num_values} values; expected 3 x 25 (BODY_25) or "
                       "3 x 18 (COCO-18); pass --layout for another keypoint set")


def _first_layout(clips: list[OpenPoseClip], layout: str | Path | Layout | None) -> tuple[Layout | None, str]:
    """The given layout, or (auto) the one of the first person found in any frame; and where it
    comes from, for messages."""
    if layout is not None and str(layout) != "auto":
        lay = get_layout(layout)
        return lay, f"layout {lay.name}"
    for clip in clips:
        for path in clip.files:
            kp, _ = read_openpose_frame(path)
            if len(kp):
                lay = _auto_layout(path, 3 * kp.shape[1])
                return lay, f"{lay.name} as in {path}"
    return None, ""


def _read_clip(clip: OpenPoseClip, layout: Layout, context: str, max_persons: int,
               summary: ConvertSummary) -> tuple[np.ndarray, np.ndarray]:
    """Track one clip's people: keypoint [M, T, V, 2], keypoint_score [M, T, V] (M = 0: nobody)."""
    tracker = PoseTracker(num_joints=layout.num_joints)
    for t, path in enumerate(clip.files):
        kp, sc = read_openpose_frame(path, layout.num_joints, context)
        tracker.update(t, _detections(kp, sc, summary))
    if len(tracker.tracks) > MAX_JOIN_TRACKS:
        summary.notes[f"clips with more than {MAX_JOIN_TRACKS} tracks (track fragments not joined)"] += 1
        tracker.join_gap = 0
    return tracker.arrays(len(clip.files), max_persons)


def convert_openpose(src: str | Path, labels: str | Path | None = None, classes: str | Path | None = None,
                     layout: str | Path | Layout | None = None, max_persons: int = 2,
                     img_shape: tuple[int, int] | None = None) -> tuple[dict[str, Any], ConvertSummary]:
    """Convert folders of OpenPose per-frame JSON files, one folder per clip.

    Args:
        src: ``src/<video>/*.json`` or ``src/<class>/<video>/*.json`` (labels from the class
            folders), or one video's folder.
        labels: A labels CSV (``name,label[,split]``, see
            :func:`skelact.data.convert._common.read_labels_csv`); it overrides class folders.
        classes: A file of class names in label order, one a line (default: sorted names).
        layout: ``None`` / ``"auto"`` (BODY_25 or COCO-18 from the array length), a layout name,
            YAML path or object whose joint count the arrays have.
        max_persons: Tracks kept per clip, the most confident (summed person score) first.
        img_shape: (height, width) of the videos; OpenPose does not store it. Without it clips
            have no ``img_shape`` and must be normalised by their box (``normalize: bbox``).

    Returns:
        ``(data, summary)``: keypoint [M, T, V, 2] and keypoint_score [M, T, V] as OpenPose wrote
        them (a missing joint 0 with score 0), labels (-1 when unlabeled), splits from the labels
        file, ``classes`` when any, ``layout`` (a whole layout for a YAML one).

    Raises:
        ConvertError: Bad folders, frame files or labels (see :func:`find_openpose_clips`,
            :func:`read_openpose_frame`, :func:`~skelact.data.convert._common.assign_labels`), or no
            clip with anybody in it; the message names the file.
        LayoutError: An unknown layout.
    """
    t0 = time.perf_counter()
    if max_persons < 1:
        raise ConvertError(f"max_persons must be at least 1, got {max_persons}")
    summary = ConvertSummary(dataset="openpose", src=str(Path(src)))
    root, clips = find_openpose_clips(src, summary)
    summary.src, summary.files = str(root), sum(len(c.files) for c in clips)
    folder_labels = {c.name: c.class_name for c in clips if c.class_name is not None}
    labelling = assign_labels({c.name: (c.rel,) for c in clips}, labels, classes, folder_labels, str(root))
    summary.notes.update(labelling.notes)
    lay, context = _first_layout(clips, layout)
    if lay is None:
        raise ConvertError(f"{root}: no clip converted: nobody in any frame of its {len(clips)} clip(s)")
    summary.dataset = f"openpose ({lay.name})"

    annotations = []
    for clip in clips:
        if not clip.numbered and len(clip.files) > 1:
            summary.notes["clips whose file names hold no frame numbers (frames ordered by name)"] += 1
        keypoint, score = _read_clip(clip, lay, context, max_persons, summary)
        if len(keypoint) == 0:
            summary.skip("clips with no people in any frame", clip.name)
            continue
        ann: dict[str, Any] = {"frame_dir": clip.name, "total_frames": len(clip.files),
                               "label": labelling.label(clip.name), "keypoint": keypoint, "keypoint_score": score}
        if img_shape is not None:
            h, w = int(img_shape[0]), int(img_shape[1])
            ann["img_shape"] = ann["original_shape"] = (h, w)
            present = joint_present(keypoint, score)
            if (keypoint[..., 0][present] > w).any() or (keypoint[..., 1][present] > h).any():
                summary.notes["clips with keypoints outside the given image size (is it H W?)"] += 1
        annotations.append(ann)
    if not annotations:
        raise ConvertError(f"{root}: no clip converted ({summary.skipped_text()})")
    if img_shape is None:
        summary.notes["clips without img_shape (give --img-shape H W, or train with normalize: bbox)"] += len(
            annotations)
    return pack_converted(annotations, labelling, lay, summary, t0)


"""NTU RGB+D 60 / 120 raw ``.skeleton`` files -> PYSKL annotations (2D colour pixels or 3D metres).

A raw file is whitespace-separated text: the frame count, then per frame the body count and per
body one header line of 10 values (bodyID, clippedEdges, hand states, isRestricted, leanX, leanY,
trackingState), the joint count (25) and 25 joint lines of 12 values: ``x y z depthX depthY colorX
colorY orientationW orientationX orientationY orientationZ trackingState``.

Parsing splits the whole file into tokens once, walks the counts in Python (one step per body per
frame, not per value), gathers the six joint columns it needs with list slices and converts them
in one pass (about 6 ms for a 2-body, 74-frame file).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skelact.data.convert._common import ConvertError, ConvertSummary, find_files, split_counts

__all__ = [
    "NTU120_CLASSES",
    "NTU60_CLASSES",
    "NTU60_XSUB_TRAIN",
    "NTU120_XSUB_TRAIN",
    "convert_ntu",
    "parse_ntu_name",
    "read_skeleton_file",
    "read_missing_list",
]

# Class names in label order (A001 -> label 0); the first 60 are NTU60's classes.
NTU120_CLASSES: tuple[str, ...] = (
    "drink water",
    "eat meal/snack",
    "brushing teeth",
    "brushing hair",
    "drop",
    "pickup",
    "throw",
    "sitting down",
    "standing up (from sitting position)",
    "clapping",
    "reading",
    "writing",
    "tear up paper",
    "wear jacket",
    "take off jacket",
    "wear a shoe",
    "take off a shoe",
    "wear on glasses",
    "take off glasses",
    "put on a hat/cap",
    "take off a hat/cap",
    "cheer up",
    "hand waving",
    "kicking something",
    "reach into pocket",
    "hopping (one foot jumping)",
    "jump up",
    "make a phone call/answer phone",
    "playing with phone/tablet",
    "typing on a keyboard",
    "pointing to something with finger",
    "taking a selfie",
    "check time (from watch)",
    "rub two hands together",
    "nod head/bow",
    "shake head",
    "wipe face",
    "salute",
    "put the palms together",
    "cross hands in front (say stop)",
    "sneeze/cough",
    "staggering",
    "falling",
    "touch head (headache)",
    "touch chest (stomachache/heart pain)",
    "touch back (backache)",
    "touch neck (neckache)",
    "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person",
    "kicking other person",
    "pushing other person",
    "pat on back of other person",
    "point finger at the other person",
    "hugging other person",
    "giving something to other person",
    "touch other person's pocket",
    "handshaking",
    "walking towards each other",
    "walking apart from each other",
    "put on headphone",
    "take off headphone",
    "shoot at the basket",
    "bounce ball",
    "tennis bat swing",
    "juggling table tennis balls",
    "hush (quite)",
    "flick hair",
    "thumb up",
    "thumb down",
    "make ok sign",
    "make victory sign",
    "staple book",
    "counting money",
    "cutting nails",
    "cutting paper (using scissors)",
    "snapping fingers",
    "open bottle",
    "sniff (smell)",
    "squat down",
    "toss a coin",
    "fold paper",
    "ball up paper",
    "play magic cube",
    "apply cream on face",
    "apply cream on hand back",
    "put on bag",
    "take off bag",
    "put something into a bag",
    "take something out of a bag",
    "open a box",
    "move heavy objects",
    "shake fist",
    "throw up cap/hat",
    "hands up (both hands)",
    "cross arms",
    "arm circles",
    "arm swings",
    "running on the spot",
    "butt kicks (kick backward)",
    "cross toe touch",
    "side kick",
    "yawn",
    "stretch oneself",
    "blow nose",
    "hit other person with something",
    "wield knife towards other person",
    "knock over other person (hit with body)",
    "grab other person’s stuff",
    "shoot at other person with a gun",
    "step on foot",
    "high-five",
    "cheers and drink",
    "carry something with other person",
    "take a photo of other person",
    "follow other person",
    "whisper in other person’s ear",
    "exchange things with other person",
    "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)
NTU60_CLASSES: tuple[str, ...] = NTU120_CLASSES[:60]

# Cross-subject training performers (the official protocol); every other performer is validation.
NTU60_XSUB_TRAIN: frozenset[int] = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
NTU120_XSUB_TRAIN: frozenset[int] = NTU60_XSUB_TRAIN | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89)
    + (91, 92, 93, 94, 95, 97, 98, 100, 103)
)

Benchmark = Literal["auto", "ntu60", "ntu120"]

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_NUM_JOINTS = 25
_JOINT_VALUES = 12  # x y z depthX depthY colorX colorY orientation(4) trackingState
_BODY_HEADER = 10  # bodyID ... trackingState, before the joint count
# Columns kept from a joint line, in this order: x y z (metres), colorX colorY (pixels), trackingState.
_KEEP = (0, 1, 2, 5, 6, 11)
_IMG_SHAPE = (1080, 1920)  # Kinect v2 colour frame (h, w); colorX/colorY are pixels in it
# Kinect trackingState -> keypoint score: 2 tracked, 1 inferred, 0 not tracked.
_SCORE_OF_STATE = np.array([0.0, 0.5, 1.0], dtype=np.float32)
# A converted clip may take this many times its file's size (a real one takes a tenth), or
# _MIN_CLIP_BUDGET bytes, whichever is more.
_MAX_GROWTH = 8
_MIN_CLIP_BUDGET = 64 * 2**20


def parse_ntu_name(name: str) -> dict[str, int] | None:
    """Setup, camera, performer, replication and action numbers (1-based) of a sample name.

    Args:
        name: A sample name or file name containing ``SsssCcccPpppRrrrAaaa``.

    Returns:
        ``{'setup', 'camera', 'performer', 'replication', 'action'}``, or None if the name has no
        such pattern.
    """
    m = _NAME_RE.search(name)
    if m is None:
        return None
    s, c, p, r, a = (int(g) for g in m.groups())
    return {"setup": s, "camera": c, "performer": p, "replication": r, "action": a}


def read_missing_list(path: str | Path) -> set[str]:
    """Sample names listed in an NTU "samples with missing skeletons" file (one name a line).

    Blank lines and ``#`` comments are ignored; a ``.skeleton`` suffix is dropped.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConvertError(f"{p}: cannot read missing-skeleton list ({e.strerror or e})") from None
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line.removesuffix(".skeleton"))
    return names


def read_skeleton_file(path: str | Path) -> tuple[int, list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Parse one raw ``.skeleton`` file.

    Args:
        path: The file.

    Returns:
        ``(num_frames, body_ids, frame_idx, body_idx, joints)``: body IDs in order of first
        appearance, and one record per (frame, body) seen: ``frame_idx`` [R] int64, ``body_idx`` [R]
        int64 (index into ``body_ids``), ``joints`` [R, 25, 6] float64 holding, per joint,
        ``x, y, z`` (metres), ``colorX, colorY`` (pixels) and ``trackingState``.
        A body listed twice in one frame keeps its first record.

    Raises:
        ConvertError: The file cannot be read or is truncated/garbled; the message names it.
    """
    path = Path(path)
    try:
        toks = path.read_bytes().split()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e.strerror or e})") from None
    n = len(toks)

    def bad(why: str) -> ConvertError:
        return ConvertError(f"{path}: not a valid NTU .skeleton file: {why}")

    def count(i: int, what: str) -> int:
        if i >= n:
            raise bad(f"file ends where the {what} should be")
        try:
            v = int(toks[i])
        except ValueError:
            raise bad(f"{what} is {toks[i][:20].decode(errors='replace')!r}, not an integer") from None
        if v < 0:
            raise bad(f"negative {what} {v}")
        return v

    num_frames = count(0, "frame count")
    i = 1
    ids: dict[bytes, int] = {}
    starts: list[int] = []  # token index of each record's first joint value
    frames: list[int] = []
    bodies: list[int] = []
    seen: set[tuple[int, int]] = set()
    block = _NUM_JOINTS * _JOINT_VALUES
    for t in range(num_frames):
        nb = count(i, f"body count of frame {t + 1}")
        i += 1
        for _ in range(nb):
            nj = count(i + _BODY_HEADER, f"joint count in frame {t + 1}")
            if nj != _NUM_JOINTS:
                raise bad(f"frame {t + 1} has a body with {nj} joints, expected {_NUM_JOINTS}")
            bid = toks[i]
            start = i + _BODY_HEADER + 1
            i = start + block
            if i > n:
                raise bad(f"file ends inside frame {t + 1} of {num_frames}")
            b = ids.setdefault(bid, len(ids))
            if (t, b) in seen:
                continue
            seen.add((t, b))
            starts.append(start)
            frames.append(t)
            bodies.append(b)
    if i != n:
        raise bad(f"{n - i} unexpected values after the last of {num_frames} frames")

    # Column c of a record's 25 joint lines is the slice toks[start + c : start + 300 : 12];
    # gathered record-major, column-major -> [R, 6, 25] after parsing.
    picked: list[bytes] = []
    for start in starts:
        for c in _KEEP:
            picked.extend(toks[start + c : start + block : _JOINT_VALUES])
    try:
        flat = np.fromiter(map(float, picked), dtype=np.float64, count=len(picked))
    except ValueError as e:
        raise bad(f"non-numeric joint value ({e})") from None
    joints = flat.reshape(len(starts), len(_KEEP), _NUM_JOINTS).transpose(0, 2, 1)  # [R, 25, 6]
    body_ids = [b.decode(errors="replace") for b in ids]
    return num_frames, body_ids, np.asarray(frames, np.int64), np.asarray(bodies, np.int64), joints


def body_activity(xyz: np.ndarray, frame_idx: np.ndarray, body_idx: np.ndarray, num_bodies: int) -> np.ndarray:
    """Activity of each body: its total 3D path length, averaged over joints.

    For each pair of consecutive frames in which the body is present, the mean over joints of the
    Euclidean joint displacement (metres) is added up. A still or one-frame body scores 0; a body
    that moves more, or for longer, scores higher.

    Args:
        xyz: [R, V, 3] joint positions in metres, one record per (frame, body) seen, as
            :func:`read_skeleton_file` returns them (each body's records in frame order).
        frame_idx: [R] frame of each record.
        body_idx: [R] body of each record, in ``[0, num_bodies)``.
        num_bodies: B.

    Returns:
        [B] float64 activity.
    """
    order = np.argsort(body_idx, kind="stable")  # records grouped by body, still in frame order
    body, frame, pos = body_idx[order], frame_idx[order], xyz[order]
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean(axis=-1)  # between neighbours
    consecutive = (body[1:] == body[:-1]) & (frame[1:] == frame[:-1] + 1)
    return np.bincount(body[1:][consecutive], weights=step[consecutive], minlength=num_bodies).astype(np.float64)


def _convert_file(path: Path, dims: int, max_bodies: int) -> tuple[dict[str, Any] | None, str | None, Counter]:
    """One file -> (annotation without label, None, notes) or (None, skip reason, notes)."""
    notes: Counter[str] = Counter()
    num_frames, body_ids, frame_idx, body_idx, joints = read_skeleton_file(path)
    if num_frames == 0:
        return None, "file has 0 frames", notes
    if len(body_ids) == 0:
        return None, "no body in any frame", notes
    bad = ~np.isfinite(joints)
    if bad.any():
        # Kinect occasionally writes NaN/inf; such joints become untracked zeros.
        joints[bad.any(axis=-1)] = 0.0
        notes["clips with non-finite joint values (set to 0, score 0)"] += 1

    nb, t = len(body_ids), num_frames
    m = min(nb, max_bodies)
    # The clip is [M, T, V, C] whatever the file holds; a frame without bodies costs 2 bytes of
    # text but 100-300 bytes of clip, so a small file claiming millions of empty frames is refused
    # before anything that size is allocated.
    clip_bytes = m * t * _NUM_JOINTS * (dims + (dims == 2)) * 4
    limit = max(_MAX_GROWTH * path.stat().st_size, _MIN_CLIP_BUDGET)
    if clip_bytes > limit:
        raise ConvertError(f"{path}: not a valid NTU .skeleton file: its {t:,} frames of {m} bodies would take "
                           f"{clip_bytes / 2**20:,.0f} MiB, more than {_MAX_GROWTH}x the file's size "
                           f"({len(np.unique(frame_idx)):,} frames hold a body)")
    if nb > max_bodies:
        notes[f"clips with more than {max_bodies} bodies (kept the most active)"] += 1
    # Most active first; a stable sort keeps first-appearance order among equals.
    order = np.argsort(-body_activity(joints[..., 0:3], frame_idx, body_idx, nb), kind="stable")[:max_bodies]
    slot = np.full(nb, -1, dtype=np.int64)
    slot[order] = np.arange(m)  # body -> its place in the clip, -1 if dropped
    kept = slot[body_idx] >= 0
    person, frame, rec = slot[body_idx[kept]], frame_idx[kept], joints[kept]  # [R'], [R'], [R', V, 6]
    if len(np.unique(frame_idx)) < t:
        notes["clips with frames without any body (kept as zeros)"] += 1

    ann: dict[str, Any] = {"frame_dir": path.name.removesuffix(".skeleton"), "total_frames": t}
    kp = np.zeros((m, t, _NUM_JOINTS, dims), dtype=np.float32)  # zeros where a body is absent
    if dims == 2:
        kp[person, frame] = rec[..., 3:5]  # colorX, colorY pixels
        score = np.zeros((m, t, _NUM_JOINTS), dtype=np.float32)
        score[person, frame] = _SCORE_OF_STATE[np.clip(np.rint(rec[..., 5]), 0, 2).astype(np.int64)]
        ann["img_shape"] = _IMG_SHAPE
        ann["original_shape"] = _IMG_SHAPE
        ann["keypoint"] = kp  # [M, T, V, 2]
        ann["keypoint_score"] = score  # [M, T, V]
    else:
        kp[person, frame] = rec[..., 0:3]  # x, y, z metres
        ann["keypoint"] = kp  # [M, T, V, 3]
    return ann, None, notes


def convert_ntu(
    src: str | Path,
    dims: int = 2,
    max_bodies: int = 2,
    missing: str | Path | Iterable[str] | None = None,
    benchmark: Benchmark = "auto",
    workers: int = 1,
) -> tuple[dict[str, Any], ConvertSummary]:
    """Convert a folder of raw NTU ``.skeleton`` files to PYSKL annotations.

    Args:
        src: Folder holding ``SsssCcccPpppRrrrAaaa.skeleton`` files (a ``nturgb+d_skeletons``
            subfolder is looked into too).
        dims: 2 for ``colorX, colorY`` pixels in the 1920x1080 frame with ``keypoint_score`` from
            the joint trackingState (tracked 1.0, inferred 0.5, not tracked 0.0); 3 for ``x, y, z``
            metres without scores.
        max_bodies: Bodies kept per clip; the most active (see :func:`body_activity`) come first.
        missing: Path of a "samples with missing skeletons" list, or the names themselves; listed
            samples are skipped.
        benchmark: ``'ntu60'`` (splits ``xsub_*``/``xview_*``, 60 classes; files from setups > 17
            or actions > 60 are skipped), ``'ntu120'`` (``xsub_*``/``xset_*``, 120 classes) or
            ``'auto'`` (ntu120 if any file has setup > 17 or action > 60, else ntu60).
        workers: Processes parsing files in parallel (1: in this process).

    Returns:
        ``(data, summary)``: ``data`` is ``{'split', 'annotations', 'classes', 'layout': 'ntu25'}``.

    Raises:
        ConvertError: ``src`` is missing or has no ``.skeleton`` file, or a file cannot be parsed.
        ValueError: A bad argument.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be >= 1, got {max_bodies}")
    if benchmark not in ("auto", "ntu60", "ntu120"):
        raise ValueError(f"benchmark must be 'auto', 'ntu60' or 'ntu120', got {benchmark!r}")
    t0 = time.perf_counter()
    root, files = find_files(src, "*.skeleton", subdir="nturgb+d_skeletons")
    if missing is None:
        missing_names: set[str] = set()
    elif isinstance(missing, (str, Path)):
        missing_names = read_missing_list(missing)
    else:
        missing_names = {str(m).removesuffix(".skeleton") for m in missing}

    summary = ConvertSummary(dataset="ntu", src=str(root), files=len(files))
    named: list[tuple[Path, dict[str, int]]] = []
    for p in files:
        info = parse_ntu_name(p.name)
        if info is None:
            summary.skipped["file name without SsssCcccPpppRrrrAaaa"] += 1
        elif p.name.removesuffix(".skeleton") in missing_names:
            summary.skipped["listed as a sample with missing skeletons"] += 1
        else:
            named.append((p, info))

    if benchmark == "auto":
        ntu120 = any(i["setup"] > 17 or i["action"] > 60 for _, i in named)
        benchmark = "ntu120" if ntu120 else "ntu60"
    summary.dataset = benchmark
    if benchmark == "ntu60":
        keep = [(p, i) for p, i in named if i["setup"] <= 17 and i["action"] <= 60]
        if len(keep) < len(named):
            summary.skipped["not an NTU60 sample (setup > 17 or action > 60)"] += len(named) - len(keep)
        named = keep
        classes, view = NTU60_CLASSES, "xview"
    else:
        classes, view = NTU120_CLASSES, "xset"

    paths = [p for p, _ in named]
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, min(256, len(paths) // (workers * 8)))
            results = list(
                pool.map(_convert_file, paths, [dims] * len(paths), [max_bodies] * len(paths), chunksize=chunk)
            )
    else:
        results = [_convert_file(p, dims, max_bodies) for p in paths]

    xsub_train = NTU60_XSUB_TRAIN if benchmark == "ntu60" else NTU120_XSUB_TRAIN
    split: dict[str, list[str]] = {"xsub_train": [], "xsub_val": [], f"{view}_train": [], f"{view}_val": []}
    annotations = []
    for (_, info), (ann, reason, notes) in zip(named, results, strict=True):
        summary.notes.update(notes)
        if ann is None:
            summary.skipped[reason or "unknown"] += 1
            continue
        ann["label"] = info["action"] - 1
        annotations.append(ann)
        name = ann["frame_dir"]
        split["xsub_train" if info["performer"] in xsub_train else "xsub_val"].append(name)
        if benchmark == "ntu60":
            split["xview_train" if info["camera"] in (2, 3) else "xview_val"].append(name)
        else:
            split["xset_train" if info["setup"] % 2 == 0 else "xset_val"].append(name)

    if not annotations:
        raise ConvertError(f"{root}: no clip converted ({summary.skipped_text()})")
    data = {"split": split, "annotations": annotations, "classes": list(classes), "layout": "ntu25"}
    summary.converted = len(annotations)
    summary.splits = split_counts(split)
    summary.seconds = time.perf_counter() - t0
    return data, summary

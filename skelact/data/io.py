"""Safe reading, validation and atomic writing of PYSKL-format annotation pickles.

The format (DESIGN.md §2)::

    {'split': {name: [frame_dir, ...]},
     'annotations': [{'frame_dir': str, 'total_frames': int, 'img_shape': (h, w),
                      'original_shape': (h, w), 'label': int,
                      'keypoint': float [M, T, V, C], 'keypoint_score': float [M, T, V]}, ...],
     'classes': [name, ...],   # optional, skelact's addition
     'layout': 'coco17'}       # optional, skelact's addition: a built-in name, or a whole layout
                               # {name, joints, edges, root, flip_pairs, limbs} (Layout.to_dict)

A pickle can run arbitrary code when loaded, so :func:`load_annotations` goes through a
restricted unpickler that only admits builtin containers, strings, numbers and plain numeric
numpy arrays (see :func:`safe_unpickle`).
"""

from __future__ import annotations

import errno
import gc
import io
import os
import pickle
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skelact.data.safe_pickle import PickleRefused, restricted_load
from skelact.errors import SkelactError, short_repr
from skelact.files import NotRegularFileError, open_regular

if TYPE_CHECKING:
    from skelact.skeleton import Layout

__all__ = [
    "AnnotationError",
    "load_annotations",
    "validate_annotations",
    "save_annotations",
    "atomic_path",
    "atomic_write",
    "summarize",
    "WORK_DTYPE",
    "OutsideDataError",
    "load_outside",
    "check_outside_dims",
]

#: Keypoints and scores are held in this dtype whatever the file used (float16/32/64).
WORK_DTYPE = np.float32

REQUIRED_KEYS = ("frame_dir", "total_frames", "label", "keypoint")


class AnnotationError(SkelactError, ValueError):
    """An annotation file or clip is malformed; the message names the file and clip."""


def safe_unpickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only builtin containers, str/numbers and plain numpy arrays/dtypes.

    The stream is checked before it is loaded (:mod:`skelact.data.safe_pickle`), so a hostile
    file is refused in time and memory proportional to its size, without running any of it.

    Raises:
        AnnotationError: The file is missing, not a pickle, or refused; the message names it.
    """
    path = Path(path)
    # Loading creates ~10 container objects per clip; the cyclic GC would rescan the growing
    # graph many times over (a third of the load time at NTU60's 56k clips) for no garbage.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open_regular(path) as f:  # a FIFO is refused, not waited on
            return restricted_load(f)
    except IsADirectoryError:
        raise AnnotationError(f"{path}: is a directory, expected a .pkl file") from None
    except NotRegularFileError as e:
        raise AnnotationError(f"{path}: {e.strerror}, expected a .pkl file") from None
    except PickleRefused as e:
        raise AnnotationError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except RecursionError:
        raise AnnotationError(f"{path}: not a valid annotation pickle (nested too deeply)") from None
    finally:
        if gc_was_enabled:
            gc.enable()


# Arrays the pickle's memo shares between clips cost once in the file but once per clip after
# the cast and in the packed store; beyond this many shared bytes (past the distinct ones) a
# file is refused, so a few kilobytes can never stand for gigabytes of clips.
_SHARED_SLACK = 64 * 2**20
# Splits may name each clip this many times in all (a real file: 1 to 4 times).
_MAX_LISTINGS = 64
# Image sides are stored as int64 and divided by: anything larger is not an image.
_MAX_SIDE = 2**31 - 1


class _SharedArrays:
    """Counts array bytes referenced by the clips against the distinct bytes behind them."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.distinct = 0
        self.repeated = 0

    def check(self, arr: np.ndarray, clip: str, field: str) -> None:
        # The buffer behind the array: numpy collapses views to the array that holds the data, and
        # frombuffer (protocol 5) holds a memoryview of the pickled bytearray.
        base = arr.base
        if isinstance(base, np.ndarray):
            arr, base = base, base.base
        if isinstance(base, memoryview):
            base = base.obj
        key = id(arr if base is None else base)
        if key not in self.seen:
            self.seen.add(key)
            self.distinct += arr.nbytes
            return
        self.repeated += arr.nbytes
        if self.repeated > self.distinct + _SHARED_SLACK:
            raise AnnotationError(f"{clip}: its '{field}' is one array shared with other clips, and the clips "
                                  f"would take {self.distinct + self.repeated:,} bytes of arrays held in "
                                  f"{self.distinct:,} (a pickle that repeats one array through its memo)")


def _as_float(arr: Any, clip: str, field: str, ndim: int, shared: _SharedArrays) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise AnnotationError(f"{clip}: '{field}' must be a numpy array, got {short_repr(arr)}")
    if arr.ndim != ndim:
        shape = "[M, T, V, C]" if ndim == 4 else "[M, T, V]"
        got = f"shape {list(arr.shape)}" if arr.ndim <= 8 else f"{arr.ndim} dimensions"
        raise AnnotationError(f"{clip}: '{field}' must be {shape}, got {got}")
    if arr.dtype.kind not in "fiu":
        raise AnnotationError(f"{clip}: '{field}' has non-numeric dtype {arr.dtype}")
    shared.check(arr, clip, field)  # before the cast, which may copy
    if arr.dtype.itemsize > 4 and arr.dtype.kind == "f":  # float64: values past float32's range become inf
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, without a warning on stderr
            out = arr.astype(WORK_DTYPE)
    else:
        out = arr.astype(WORK_DTYPE, copy=False)
    if not np.isfinite(out).all():
        # float64 values beyond float32's range also land here: they are inf after the cast.
        raise AnnotationError(f"{clip}: '{field}' has non-finite values (nan or inf)")
    return out


def _integer(value: Any) -> bool:
    kind = type(value)  # bool is an int, numpy.bool_ is not a numpy.integer
    return kind is int or (kind is not bool and isinstance(value, np.integer))


def _validate_clip(ann: Any, index: int, num_classes: int | None, allow_unlabeled: bool,
                   shared: _SharedArrays) -> str:
    """Check one annotation in place (arrays cast to WORK_DTYPE); return its frame_dir."""
    if not isinstance(ann, dict):
        raise AnnotationError(f"annotation #{index}: expected a dict, got {short_repr(ann)}")
    name = ann.get("frame_dir")
    clip = f"clip {short_repr(name)}" if isinstance(name, str) else f"annotation #{index}"
    missing = [k for k in REQUIRED_KEYS if k not in ann]
    if missing:
        raise AnnotationError(f"{clip}: missing key(s) {', '.join(repr(k) for k in missing)}")
    if not isinstance(name, str):
        raise AnnotationError(f"{clip}: 'frame_dir' must be a string, got {short_repr(name)}")

    kp = _as_float(ann["keypoint"], clip, "keypoint", 4, shared)
    m, t, v, c = kp.shape
    if m == 0 or t == 0:
        raise AnnotationError(f"{clip}: empty clip (keypoint shape {list(kp.shape)})")
    if v == 0 or c not in (2, 3):
        raise AnnotationError(f"{clip}: 'keypoint' must have V > 0 joints and C = 2 or 3, got {list(kp.shape)}")
    ann["keypoint"] = kp

    if ann.get("keypoint_score") is not None:
        score = _as_float(ann["keypoint_score"], clip, "keypoint_score", 3, shared)
        if score.shape != (m, t, v):
            raise AnnotationError(
                f"{clip}: 'keypoint_score' shape {list(score.shape)} does not match keypoint [M, T, V] = "
                f"{[m, t, v]}"
            )
        ann["keypoint_score"] = score

    total = ann["total_frames"]
    if not _integer(total):
        raise AnnotationError(f"{clip}: 'total_frames' must be an integer, got {short_repr(total)}")
    if int(total) != t:
        raise AnnotationError(f"{clip}: 'total_frames' is {short_repr(int(total))} but keypoint has T = {t} frames")
    ann["total_frames"] = int(total)

    label = ann["label"]
    if not _integer(label):
        raise AnnotationError(f"{clip}: 'label' must be an integer, got {short_repr(label)}")
    label = int(label)
    if label < 0 and not (allow_unlabeled and label == -1):
        raise AnnotationError(f"{clip}: 'label' {short_repr(label)} is negative")
    if num_classes is not None and label >= num_classes:
        raise AnnotationError(f"{clip}: 'label' {short_repr(label)} is out of range for {num_classes} classes")
    ann["label"] = label

    for key in ("img_shape", "original_shape"):
        if key in ann:
            shape = ann[key]
            if not (isinstance(shape, (tuple, list)) and len(shape) == 2 and _integer(shape[0])
                    and _integer(shape[1]) and 0 < shape[0] <= _MAX_SIDE and 0 < shape[1] <= _MAX_SIDE):
                raise AnnotationError(f"{clip}: '{key}' must be (height, width) in pixels, got {short_repr(shape)}")
            ann[key] = (int(shape[0]), int(shape[1]))
    return name


def validate_annotations(
    data: Any,
    source: str = "<memory>",
    num_classes: int | None = None,
    allow_unlabeled: bool = False,
) -> dict:
    """Validate a PYSKL annotation dict in place and return it.

    Keypoints and scores are cast to :data:`WORK_DTYPE`. Every clip must agree with the first on
    [V, C] and on having ``keypoint_score``. Raises :class:`AnnotationError` naming ``source`` and
    the clip at fault; values are quoted with :func:`~skelact.errors.short_repr`.

    Args:
        data: The unpickled object.
        source: File name used in error messages.
        num_classes: Labels must be below this; defaults to ``len(data['classes'])`` when present.
        allow_unlabeled: Accept ``label == -1`` (unknown), as written by ``skelact extract``.
    """
    if not isinstance(data, dict):
        raise AnnotationError(f"{source}: expected a dict with 'split' and 'annotations', got {short_repr(data)}")
    if "annotations" not in data:
        raise AnnotationError(f"{source}: missing key 'annotations'")
    anns = data["annotations"]
    if not isinstance(anns, list):
        raise AnnotationError(f"{source}: 'annotations' must be a list, got {short_repr(anns)}")
    if not anns:
        raise AnnotationError(f"{source}: no annotations")
    classes = data.get("classes")
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise AnnotationError(f"{source}: 'classes' must be a list of names")
        data["classes"] = list(classes)
        if num_classes is None:
            num_classes = len(classes)
        elif num_classes != len(classes):
            raise AnnotationError(f"{source}: {len(classes)} class names but num_classes={num_classes}")

    names: set[str] = set()
    dims: tuple[int, int] | None = None
    has_score: bool | None = None
    shared = _SharedArrays()
    for i, ann in enumerate(anns):
        try:
            name = _validate_clip(ann, i, num_classes, allow_unlabeled, shared)
        except AnnotationError as e:
            raise AnnotationError(f"{source}: {e}") from None
        vc = ann["keypoint"].shape[2:]
        scored = ann.get("keypoint_score") is not None
        if dims is None:
            dims, has_score = vc, scored
        if name in names or vc != dims or scored != has_score:
            clip = f"{source}: clip {short_repr(name)}"
            if name in names:
                raise AnnotationError(f"{clip}: duplicate frame_dir")
            if vc != dims:
                raise AnnotationError(f"{clip}: keypoint has [V, C] = {list(vc)} but earlier clips have {list(dims)}")
            raise AnnotationError(f"{clip}: " + ("has a 'keypoint_score' but earlier clips have none" if scored
                                                 else "has no 'keypoint_score' but earlier clips have one"))
        names.add(name)

    split = data.setdefault("split", {})
    if not isinstance(split, dict):
        raise AnnotationError(f"{source}: 'split' must be a dict of name -> list of frame_dir")
    listed = 0
    for sname, members in split.items():
        if not isinstance(sname, str) or not isinstance(members, (list, tuple)):
            raise AnnotationError(f"{source}: split {short_repr(sname)} must map a name to a list of frame_dir, "
                                  f"got {short_repr(members)}")
        listed += len(members)
        if listed > _MAX_LISTINGS * len(anns):  # one list shared by many split names through the memo
            raise AnnotationError(f"{source}: its splits list more than {_MAX_LISTINGS} clip names per clip "
                                  f"({len(split):,} splits for {len(anns):,} clips)")
        for member in members:
            if not isinstance(member, str):
                raise AnnotationError(f"{source}: split {short_repr(sname)} holds {short_repr(member)}, not a clip "
                                      "name")
            if member not in names:
                raise AnnotationError(f"{source}: split {short_repr(sname)} names unknown clip {short_repr(member)}")
        split[sname] = list(members)

    layout = data.get("layout")
    if layout is not None:
        from skelact.skeleton import Layout, LayoutError, layout_field, layout_from_dict

        if isinstance(layout, Layout):  # from code: stored as a name (built-in) or a mapping
            data["layout"] = layout = layout_field(layout)
        if isinstance(layout, dict):
            try:
                lay = layout_from_dict(layout, where=f"{source}: 'layout'")
            except LayoutError as e:
                raise AnnotationError(str(e)) from None
            if dims is not None and lay.num_joints != dims[0]:
                raise AnnotationError(f"{source}: its layout {short_repr(lay.name)} has {lay.num_joints} joints but "
                                      f"the clips have {dims[0]}")
        elif not isinstance(layout, str):
            raise AnnotationError(f"{source}: 'layout' must be a layout name or a mapping of joints and edges, got "
                                  f"{short_repr(layout)}")
    return data


def load_annotations(
    path: str | Path, num_classes: int | None = None, allow_unlabeled: bool = False
) -> dict:
    """Load and validate a PYSKL annotation pickle safely.

    Args:
        path: The ``.pkl`` file.
        num_classes: Optional upper bound for labels (defaults to the stored class list).
        allow_unlabeled: Accept ``label == -1`` for clips of unknown action.

    Returns:
        The annotation dict with float32 keypoints/scores.
    """
    data = safe_unpickle(path)
    return validate_annotations(data, str(path), num_classes=num_classes, allow_unlabeled=allow_unlabeled)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a new empty file beside ``path``; it replaces ``path`` only if the block succeeds.

    An exception (or a crash) inside the block leaves ``path`` untouched and removes the temporary
    file. ``suffix`` ends its name (writers that pick a format from the extension need it). A failed
    write (a full disk, a read-only folder) is raised as an ``OSError`` naming ``path``, never the
    temporary, also when the writer wrapped it in another exception (torch.save does).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL with mode 0o666: the process umask applies as it does to any new file (mkstemp
    # would make it 0600, and reading the umask in Python means setting it).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(tmp, flags, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as e:  # a read-only folder or file system, a full disk: name the user's file
            failed = _write_failure(e, tmp)
            if failed is None:
                raise
            raise OSError(failed.errno, failed.strerror, str(path)) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        failed = _write_failure(e, tmp)
        if failed is None:
            raise
        # The user never saw the hidden temporary: name the file they asked for.
        raise OSError(failed.errno, failed.strerror, str(path)) from None


#: What a failed write reports (a full disk or quota, a file too large, an I/O error, a read-only
#: file system, no permission): the OSErrors naming no file that an atomic write takes for its own.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES,
                           errno.EPERM})


def _write_failure(e: BaseException, tmp: Path) -> OSError | None:
    """The OSError behind a failed write into ``tmp``, if that is what ``e`` is, else None.

    A writer may wrap it (torch.save raises "RuntimeError: [enforce fail at inline_container.cc]"
    with the OSError as its context), and the OSError may name the temporary or nothing at all.
    """
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            if str(tmp) in (str(cause.filename), str(cause.filename2)):
                return cause  # whatever it is (the rename onto a folder, too), the temporary is ours
            if cause.filename is None and cause.errno in _WRITE_ERRNOS:
                return cause
            return None  # another file's error: it names that file already
        # What the writer raised while handling it ("raise ... from None" says it is unrelated)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return None


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], None], force: bool = True) -> Path:
    """Write a file through ``write(fileobj)`` into a temporary file, then rename it into place.

    A crash or an exception leaves no partial ``path`` behind.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    if not force and path.exists():
        raise FileExistsError(f"{path}: already exists (use --force to overwrite)")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return path


def save_annotations(data: dict, path: str | Path, force: bool = False, allow_unlabeled: bool = False) -> Path:
    """Validate ``data`` and write it as a pickle atomically (temporary file + rename).

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
        AnnotationError: ``data`` is invalid (nothing is written).
    """
    validate_annotations(data, str(path), allow_unlabeled=allow_unlabeled)
    return atomic_write(path, lambda f: pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL), force=force)


def _layout_name(field: object) -> str:
    """The name to print for a file's ``layout`` field (a built-in's name, or a whole layout as a dict)."""
    if isinstance(field, dict):
        field = f"{field.get('name', 'custom')} (stored in the file)"
    if field is None:
        return "unknown"
    return field if isinstance(field, str) and len(field) <= 80 else short_repr(field)


def summarize(data: dict) -> str:
    """A human-readable summary: clips per split, classes, frames, persons, joints, dims."""
    anns = data["annotations"]
    frames = np.array([a["total_frames"] for a in anns])
    persons = np.array([a["keypoint"].shape[0] for a in anns])
    v, c = anns[0]["keypoint"].shape[2:]
    labels = Counter(a["label"] for a in anns)
    classes = data.get("classes")
    scores = ", with scores" if anns[0].get("keypoint_score") is not None else ""
    lines = [
        f"clips: {len(anns)}",
        f"layout: {_layout_name(data.get('layout'))} ({v} joints, {c}D{scores})",
        f"frames: min {frames.min()}, median {int(np.median(frames))}, max {frames.max()}",
        f"persons: min {persons.min()}, max {persons.max()} "
        f"({', '.join(f'{k}: {n}' for k, n in sorted(Counter(persons.tolist()).items()))} clips)",
        "splits:" + ("" if data.get("split") else " none"),
    ]
    for name, members in data.get("split", {}).items():
        lines.append(f"  {name}: {len(members)} clips")
    n_classes = len(classes) if classes else len([k for k in labels if k >= 0])
    lines.append(f"classes: {n_classes}")
    for label in sorted(labels):
        cname = classes[label] if classes and 0 <= label < len(classes) else ("unlabeled" if label < 0 else "")
        lines.append(f"  {label:>4} {cname:<32} {labels[label]} clips")
    return "\n".join(lines)


class OutsideDataError(SkelactError, ValueError):
    """The out-of-class data file cannot be used; the message names it."""


def load_outside(path: str | Path, model_layout: Layout) -> list[dict]:
    """The clips of a PYSKL file of other activities, mapped to ``model_layout``, each labelled -1 (its
    own labels are ignored): what ``skelact calibrate --unknown-data`` joins between the validation
    clips and ``skelact train --unknown-data`` trains on with uniform targets.

    Raises:
        OutsideDataError: The file is missing, or its layout does not map to the model's (one line naming it).
        AnnotationError: The file is unreadable or holds no clips.
    """
    from skelact.skeleton import LayoutError, joint_mapping, resolve_layout

    try:
        data = load_annotations(path, allow_unlabeled=True)
    except FileNotFoundError:
        raise OutsideDataError(f"{path}: not found (a PYSKL .pkl of other activities)") from None
    anns = data["annotations"]  # never empty: the loader refuses a file without clips
    v = int(np.shape(anns[0]["keypoint"])[2])
    try:
        layout = resolve_layout(None, data.get("layout"), v, str(path))
    except LayoutError as e:
        text = str(e)
        raise OutsideDataError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    idx = joint_mapping(layout, model_layout) if layout != model_layout else tuple(range(v))
    if idx is None:
        raise OutsideDataError(f"{path}: its layout {layout.name!r} ({v} joints) does not map to the model's "
                               f"{model_layout.name!r} ({model_layout.num_joints} joints)")
    out = []
    for a in anns:
        clip = {**a, "label": -1, "keypoint": np.ascontiguousarray(a["keypoint"][:, :, list(idx)])}
        if a.get("keypoint_score") is not None:
            clip["keypoint_score"] = np.ascontiguousarray(a["keypoint_score"][:, :, list(idx)])
        out.append(clip)
    return out


def check_outside_dims(clips: list[dict], dims: int, source: str | Path, whose: str) -> None:
    """Refuse other-activity clips (:func:`load_outside`) whose coordinates are not ``dims``-D, naming
    ``source`` and whose clips they must match (``whose``: "the model's", "the training").

    Raises:
        OutsideDataError: Some clip has other coordinate dimensions.
    """
    other = {int(np.shape(c["keypoint"])[-1]) for c in clips} - {dims}
    if other:
        raise OutsideDataError(f"{source}: {'/'.join(map(str, sorted(other)))}D keypoints, {whose} clips are {dims}D")

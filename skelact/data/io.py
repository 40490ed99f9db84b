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

import _compat_pickle
import builtins
import codecs
import gc
import io
import os
import pickle
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from skelact.errors import SkelactError

__all__ = [
    "AnnotationError",
    "load_annotations",
    "validate_annotations",
    "save_annotations",
    "atomic_path",
    "atomic_write",
    "summarize",
    "WORK_DTYPE",
]

#: Keypoints and scores are held in this dtype whatever the file used (float16/32/64).
WORK_DTYPE = np.float32

REQUIRED_KEYS = ("frame_dir", "total_frames", "label", "keypoint")


class AnnotationError(SkelactError, ValueError):
    """An annotation file or clip is malformed; the message names the file and clip."""


# Globals a PYSKL pickle legitimately needs. Everything else is refused before it is looked up,
# so a payload's callable is never even imported, let alone called.
_SAFE_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool"}
)
# numpy scalar types such as numpy.float32 or numpy.int64 appear as dtype classes in old pickles.
# (numpy.bytes_ is wrapped below: numpy.bytes_(n) allocates n bytes.)
_SAFE_NUMPY_SCALARS = frozenset(
    {"bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "str_"}
)
# Plain dtype kinds an annotation file may hold: bool, integers, floats, complex, bytes, str.
# Object, void (structured) and datetime dtypes are refused.
_SAFE_DTYPE_KINDS = "biufcSU"


def _refuse(what: str) -> AnnotationError:
    return AnnotationError(f"refused to unpickle {what}: only containers, strings, numbers and plain "
                           "numeric numpy arrays are allowed in an annotation file")


class _DtypeSpec:
    """Stands in for ``numpy.dtype(...)`` while unpickling.

    numpy's own ``dtype.__setstate__`` trusts the pickled fields and flags: a crafted state can
    declare an object field without the flags that make numpy treat it as references, and an
    array of that dtype then reads attacker bytes as ``PyObject`` pointers (memory corruption,
    i.e. code execution). So the pickled arguments and state are only recorded here, and
    :meth:`resolve` builds a fresh dtype from the type code and byte order alone.
    """

    __slots__ = ("args", "state", "_dtype")

    def __init__(self, *args: Any) -> None:
        self.args, self.state, self._dtype = args, None, None

    def __setstate__(self, state: Any) -> None:
        self.state, self._dtype = state, None

    def resolve(self) -> np.dtype:
        if self._dtype is None:
            self._dtype = _plain_dtype(self.args, self.state)
        return self._dtype


def _plain_dtype(args: tuple, state: Any) -> np.dtype:
    code = args[0] if args else None
    if not isinstance(code, str):
        raise _refuse(f"a numpy dtype given as {type(code).__name__}")
    try:
        dt = np.dtype(code)
    except (TypeError, ValueError):
        raise _refuse(f"numpy dtype {code[:40]!r}") from None
    if dt.kind not in _SAFE_DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _refuse(f"numpy dtype {dt}")
    if state is not None:
        # numpy writes (version, byteorder, subdescr, names, fields, elsize, alignment, flags[, metadata]).
        if not isinstance(state, tuple) or len(state) not in (8, 9) or any(x is not None for x in state[2:5]):
            raise _refuse(f"numpy dtype {dt} with a structured or unknown state")
        order, elsize = state[1], state[5]
        if order not in ("<", ">", "|", "=") or isinstance(elsize, bool) or not isinstance(elsize, int):
            raise _refuse(f"numpy dtype {dt} with a malformed state")
        if dt.itemsize == 0 and elsize > 0:  # an unsized 'S' / 'U' code: the state holds the size
            dt = np.dtype((dt.type, elsize // (4 if dt.kind == "U" else 1)))
        if order in "<>" and dt.byteorder != "|":
            dt = dt.newbyteorder(order)
    if dt.itemsize == 0:  # 'U0': any number of elements from no data at all
        raise _refuse(f"numpy dtype {dt} of size 0")
    return dt


def _as_dtype(x: Any) -> np.dtype:
    if isinstance(x, _DtypeSpec):
        return x.resolve()
    raise _refuse(f"a numpy array with dtype given as {type(x).__name__}")


class _GuardedArray(np.ndarray):
    """What ``_reconstruct`` returns while unpickling: an ndarray whose ``__setstate__`` builds
    the array from a :func:`_plain_dtype` instead of the pickled dtype object. Turned into a
    plain ``ndarray`` view once loading is done (:func:`_finish`)."""

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, rawdata), or the same without the version.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("a numpy array with a malformed state")
        if not isinstance(state[-1], (bytes, bytearray)):
            raise _refuse("a numpy array whose data is not raw bytes (object arrays are not allowed)")
        super().__setstate__((*state[:-3], _as_dtype(state[-3]), *state[-2:]))


_NDARRAY = object()  # stands for numpy.ndarray, accepted only as _reconstruct's first argument


def _reconstruct(subtype: Any, shape: Any = None, dtype: Any = None) -> _GuardedArray:
    # The shape and dtype given here are placeholders numpy overwrites in __setstate__.
    if subtype is not _NDARRAY:
        raise _refuse("an array of a type other than numpy.ndarray")
    return np.ndarray.__new__(_GuardedArray, (0,), np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C", axis_order: Any = None) -> np.ndarray:
    # numpy's own _frombuffer (protocol 5), with the dtype rebuilt by _plain_dtype.
    if not isinstance(buf, (bytes, bytearray)):
        raise _refuse("a numpy array buffer that is not raw bytes")
    array = np.frombuffer(buf, dtype=_as_dtype(dtype))
    if order == "K" and axis_order is not None:  # a dense array with permuted axes
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _scalar(dtype: Any, obj: Any = None) -> Any:
    dt = _as_dtype(dtype)
    if obj is None:
        return np.zeros((), dt)[()]
    if not isinstance(obj, bytes):
        raise _refuse("a numpy scalar whose data is not raw bytes")
    return np.frombuffer(obj, dtype=dt, count=1)[0]


def _no_int(kind: type) -> Callable[..., Any]:
    # bytes(n), bytearray(n), numpy.bytes_(n) allocate n bytes from a pickle of a few bytes.
    def make(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise _refuse(f"{kind.__name__}() of a size")
        return kind(*args)

    return make


def _latin1(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Protocol 0-2 pickles store bytes as latin-1 text: ``_codecs.encode(text, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1", "iso8859-1"):
        raise _refuse(f"codecs.encode with encoding {str(encoding)[:20]!r}")
    return codecs.encode(text, "latin1")


_SAFE_CALLABLES: dict[tuple[str, str], Any] = {
    ("builtins", "bytes"): _no_int(bytes),
    ("builtins", "bytearray"): _no_int(bytearray),
    ("numpy", "bytes_"): _no_int(np.bytes_),
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1,
    ("codecs", "encode"): _latin1,
    ("numpy", "dtype"): _DtypeSpec,
    ("numpy", "ndarray"): _NDARRAY,
}
for _mod in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x module names
    _SAFE_CALLABLES[(f"{_mod}.multiarray", "_reconstruct")] = _reconstruct
    _SAFE_CALLABLES[(f"{_mod}.multiarray", "scalar")] = _scalar
    _SAFE_CALLABLES[(f"{_mod}.numeric", "_frombuffer")] = _frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name builtins the Python 2 way (__builtin__.unicode for str, ...).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if module == "numpy" and name in _SAFE_NUMPY_SCALARS:
            return getattr(np, name)
        if (module, name) in _SAFE_CALLABLES:
            return _SAFE_CALLABLES[(module, name)]
        raise _refuse(f"'{module}.{name}'")

    def persistent_load(self, pid: Any) -> Any:
        raise AnnotationError("persistent ids are not allowed in an annotation file")


def _finish(obj: Any) -> Any:
    """Replace the loading stand-ins (:class:`_GuardedArray`, :class:`_DtypeSpec`) inside
    ``obj`` by plain numpy arrays and dtypes; lists and dicts are updated in place."""
    memo: dict[int, Any] = {}  # id -> replacement
    originals: list[Any] = []  # keeps every memoised object alive, so its id is not reused
    leaves = frozenset((str, bytes, int, float, bool, type(None)))

    def fix(x: Any) -> Any:
        if type(x) in leaves:
            return x
        key = id(x)
        if key in memo:  # shared and self-referencing objects stay shared
            return memo[key]
        if isinstance(x, _GuardedArray):
            new: Any = x.view(np.ndarray)
        elif isinstance(x, _DtypeSpec):
            new = x.resolve()
        else:
            new = x
        memo[key] = new
        originals.append(x)
        if isinstance(x, dict):
            for k, v in x.items():
                if type(v) not in leaves:
                    fixed = fix(v)
                    if fixed is not v:
                        x[k] = fixed
        elif isinstance(x, list):
            for i, v in enumerate(x):
                if type(v) not in leaves:
                    fixed = fix(v)
                    if fixed is not v:
                        x[i] = fixed
        elif isinstance(x, tuple):
            items = [v if type(v) in leaves else fix(v) for v in x]
            if any(a is not b for a, b in zip(items, x, strict=True)):
                memo[key] = new = tuple(items)
        return new

    return fix(obj)


def safe_unpickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only builtin containers, str/numbers and plain numpy arrays/dtypes."""
    path = Path(path)
    # Loading creates ~10 container objects per clip; the cyclic GC would rescan the growing
    # graph many times over (a third of the load time at NTU60's 56k clips) for no garbage.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb") as f:
            return _finish(_RestrictedUnpickler(f).load())
    except AnnotationError as e:
        raise AnnotationError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise AnnotationError(f"{path}: is a directory, expected a .pkl file") from None
    except OSError:
        raise
    except RecursionError:
        raise AnnotationError(f"{path}: not a valid annotation pickle (nested too deeply)") from None
    except Exception as e:  # a malformed stream fails in many ways (UnpicklingError, EOFError, ...)
        raise AnnotationError(f"{path}: not a valid annotation pickle ({e.__class__.__name__}: {e})") from None
    finally:
        if gc_was_enabled:
            gc.enable()


def _as_float(arr: Any, clip: str, field: str, ndim: int) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise AnnotationError(f"{clip}: '{field}' must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != ndim:
        shape = "[M, T, V, C]" if ndim == 4 else "[M, T, V]"
        raise AnnotationError(f"{clip}: '{field}' must be {shape}, got shape {list(arr.shape)}")
    if arr.dtype.kind not in "fiu":
        raise AnnotationError(f"{clip}: '{field}' has non-numeric dtype {arr.dtype}")
    out = arr.astype(WORK_DTYPE, copy=False)
    if not np.isfinite(out).all():
        # float64 values beyond float32's range also land here: they are inf after the cast.
        raise AnnotationError(f"{clip}: '{field}' has non-finite values (nan or inf)")
    return out


def _validate_clip(ann: Any, index: int, num_classes: int | None, allow_unlabeled: bool) -> str:
    """Check one annotation in place (arrays cast to WORK_DTYPE); return its frame_dir."""
    if not isinstance(ann, dict):
        raise AnnotationError(f"annotation #{index}: expected a dict, got {type(ann).__name__}")
    name = ann.get("frame_dir")
    clip = f"clip {name!r}" if isinstance(name, str) else f"annotation #{index}"
    missing = [k for k in REQUIRED_KEYS if k not in ann]
    if missing:
        raise AnnotationError(f"{clip}: missing key(s) {', '.join(repr(k) for k in missing)}")
    if not isinstance(name, str):
        raise AnnotationError(f"{clip}: 'frame_dir' must be a string")

    kp = _as_float(ann["keypoint"], clip, "keypoint", 4)
    m, t, v, c = kp.shape
    if m == 0 or t == 0:
        raise AnnotationError(f"{clip}: empty clip (keypoint shape {list(kp.shape)})")
    if v == 0 or c not in (2, 3):
        raise AnnotationError(f"{clip}: 'keypoint' must have V > 0 joints and C = 2 or 3, got {list(kp.shape)}")
    ann["keypoint"] = kp

    if "keypoint_score" in ann and ann["keypoint_score"] is not None:
        score = _as_float(ann["keypoint_score"], clip, "keypoint_score", 3)
        if score.shape != (m, t, v):
            raise AnnotationError(
                f"{clip}: 'keypoint_score' shape {list(score.shape)} does not match keypoint [M, T, V] = "
                f"{[m, t, v]}"
            )
        ann["keypoint_score"] = score

    total = ann["total_frames"]
    if isinstance(total, (bool, float)) or not isinstance(total, (int, np.integer)):
        raise AnnotationError(f"{clip}: 'total_frames' must be an integer, got {total!r}")
    if int(total) != t:
        raise AnnotationError(f"{clip}: 'total_frames' is {int(total)} but keypoint has T = {t} frames")
    ann["total_frames"] = int(total)

    label = ann["label"]
    if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer)):
        raise AnnotationError(f"{clip}: 'label' must be an integer, got {label!r}")
    label = int(label)
    if label < 0 and not (allow_unlabeled and label == -1):
        raise AnnotationError(f"{clip}: 'label' {label} is negative")
    if num_classes is not None and label >= num_classes:
        raise AnnotationError(f"{clip}: 'label' {label} is out of range for {num_classes} classes")
    ann["label"] = label

    for key in ("img_shape", "original_shape"):
        if key in ann:
            shape = ann[key]
            if not (isinstance(shape, (tuple, list)) and len(shape) == 2
                    and all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
                raise AnnotationError(f"{clip}: '{key}' must be (height, width), got {shape!r}")
            ann[key] = (int(shape[0]), int(shape[1]))
    return name


def validate_annotations(
    data: Any,
    source: str = "<memory>",
    num_classes: int | None = None,
    allow_unlabeled: bool = False,
) -> dict:
    """Validate a PYSKL annotation dict in place and return it.

    Keypoints and scores are cast to :data:`WORK_DTYPE`. Raises :class:`AnnotationError` naming
    ``source`` and the clip at fault.

    Args:
        data: The unpickled object.
        source: File name used in error messages.
        num_classes: Labels must be below this; defaults to ``len(data['classes'])`` when present.
        allow_unlabeled: Accept ``label == -1`` (unknown), as written by ``skelact extract``.
    """
    if not isinstance(data, dict):
        raise AnnotationError(f"{source}: expected a dict with 'split' and 'annotations', got {type(data).__name__}")
    if "annotations" not in data:
        raise AnnotationError(f"{source}: missing key 'annotations'")
    anns = data["annotations"]
    if not isinstance(anns, list):
        raise AnnotationError(f"{source}: 'annotations' must be a list")
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
    for i, ann in enumerate(anns):
        try:
            name = _validate_clip(ann, i, num_classes, allow_unlabeled)
        except AnnotationError as e:
            raise AnnotationError(f"{source}: {e}") from None
        if name in names:
            raise AnnotationError(f"{source}: clip {name!r}: duplicate frame_dir")
        names.add(name)
        vc = ann["keypoint"].shape[2:]
        if dims is None:
            dims = vc
        elif vc != dims:
            raise AnnotationError(
                f"{source}: clip {name!r}: keypoint has [V, C] = {list(vc)} but earlier clips have {list(dims)}"
            )

    split = data.setdefault("split", {})
    if not isinstance(split, dict):
        raise AnnotationError(f"{source}: 'split' must be a dict of name -> list of frame_dir")
    for sname, members in split.items():
        if not isinstance(sname, str) or not isinstance(members, (list, tuple)):
            raise AnnotationError(f"{source}: split {sname!r} must map a name to a list of frame_dir")
        for member in members:
            if not isinstance(member, str) or member not in names:
                raise AnnotationError(f"{source}: split {sname!r} names unknown clip {member!r}")
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
                raise AnnotationError(f"{source}: its layout {lay.name!r} has {lay.num_joints} joints but the clips "
                                      f"have {dims[0]}")
        elif not isinstance(layout, str):
            raise AnnotationError(f"{source}: 'layout' must be a layout name or a mapping of joints and edges")
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
    file. ``suffix`` ends its name (writers that pick a format from the extension need it).
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
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def summarize(data: dict) -> str:
    """A human-readable summary: clips per split, classes, frames, persons, joints, dims."""
    anns = data["annotations"]
    frames = np.array([a["total_frames"] for a in anns])
    persons = np.array([a["keypoint"].shape[0] for a in anns])
    v, c = anns[0]["keypoint"].shape[2:]
    labels = Counter(a["label"] for a in anns)
    classes = data.get("classes")
    scores = ", with scores" if "keypoint_score" in anns[0] else ""
    lines = [
        f"clips: {len(anns)}",
        f"layout: {data.get('layout', 'unknown')} ({v} joints, {c}D{scores})",
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

"""NumPy ``.npy`` / ``.npz`` keypoint arrays -> PYSKL annotations, one file per clip.

A file holds ``[T, V, C]`` (one person) or ``[M, T, V, C]`` keypoints with C = 2 (pixel x, y) or
3 (x, y, z metres). A ``.npz`` has the arrays ``keypoint`` and optionally ``keypoint_score``
[(M,) T, V]; with ``with_score`` the last channel of ``keypoint`` is the score instead.

Arrays are never unpickled: every array header is read and checked (plain numeric dtype, a size
that fits the file and :data:`MAX_ARRAY_BYTES`) before its data is, then it is loaded with
``allow_pickle=False``. Before any data is read, the headers of all files are charged to one
:class:`~skelact.data.npz.ArrayBudget` (the rule ``fuse`` applies to score files), so small
compressed files that claim large arrays are refused before they are inflated.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from skelact.data.convert._common import ConvertError, ConvertSummary, assign_labels, pack_converted
from skelact.data.npz import ArrayBudget
from skelact.errors import one_line, short_repr
from skelact.skeleton import Layout, LayoutError, resolve_layout

__all__ = ["MAX_ARRAY_BYTES", "ARRAY_SUFFIXES", "read_npy", "read_pose_file", "charge_arrays", "convert_numpy"]

#: Largest array read (a 2-person 10,000-frame 25-joint 3D clip is 6 MB).
MAX_ARRAY_BYTES = 256 << 20
ARRAY_SUFFIXES = (".npy", ".npz")


def _header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the ``.npy`` stream ``f`` (read from its start)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:  # 3.0 exists only for structured dtypes with non-ASCII field names
            raise ConvertError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
    except ConvertError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ConvertError(f"{where}: not a NumPy .npy array ({one_line(e)})") from None
    if dtype.hasobject:
        raise ConvertError(f"{where}: an object array (refused: loading it would unpickle Python objects)")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "fiu":
        raise ConvertError(f"{where}: dtype {dtype} is not a plain integer or float type")
    return tuple(int(s) for s in shape), dtype, f.tell()


def read_npy(open_stream: Callable[[], IO[bytes]], size: int, where: str) -> np.ndarray:
    """One ``.npy`` array, checked before its data is read.

    Args:
        open_stream: Opens the ``.npy`` bytes (a file, or a member of an ``.npz``) from the start.
        size: Bytes the stream holds (the file size, or the member's stored size).
        where: The file (and member), for messages.

    Raises:
        ConvertError: Not a ``.npy`` array, an object / structured / non-numeric dtype, or a header
            claiming more data than the file holds or than :data:`MAX_ARRAY_BYTES`.
    """
    with open_stream() as f:
        shape, dtype, offset = _header(f, where)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
    if nbytes > MAX_ARRAY_BYTES:
        raise ConvertError(f"{where}: its header claims an array of shape {list(shape)[:8]} ({nbytes} bytes), larger "
                           f"than the {MAX_ARRAY_BYTES >> 20} MB a keypoint array may have")
    if nbytes > size - offset:
        raise ConvertError(f"{where}: its header claims {nbytes} bytes of data but the file holds {size - offset}"
                           " (truncated or corrupt)")
    try:
        with open_stream() as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ConvertError(f"{where}: cannot read the array ({one_line(e)})") from None


def _load(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The ``keypoint`` (and ``keypoint_score``) arrays of a ``.npy`` or ``.npz`` file, and the names
    of the other ``.npz`` arrays (not read)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if path.suffix.lower() == ".npy":
        return {"keypoint": read_npy(lambda: path.open("rb"), size, str(path))}, []
    try:
        with zipfile.ZipFile(path) as z:
            members = {info.filename: info for info in z.infolist()}
            names = {n[:-4] if n.endswith(".npy") else n: n for n in members}
            if "keypoint" not in names:
                raise ConvertError(f"{path}: no 'keypoint' array (it holds {', '.join(sorted(names))[:80] or 'none'})")
            out = {}
            for key in ("keypoint", "keypoint_score"):
                if key in names:
                    info = members[names[key]]
                    out[key] = read_npy(lambda info=info: z.open(info), info.file_size, f"{path}: '{key}'")
            return out, sorted(k for k in names if k not in out)
    except ConvertError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
        raise ConvertError(f"{path}: not a valid .npz file ({one_line(e)})") from None


def charge_arrays(files: Sequence[Path], budget: ArrayBudget | None = None) -> None:
    """Charge the ``keypoint`` / ``keypoint_score`` arrays of ``files`` to one budget, from headers alone.

    Args:
        files: ``.npy`` / ``.npz`` files converted together.
        budget: Default: ``ArrayBudget`` of the files' total size.

    Raises:
        ConvertError: The arrays claim more than the budget; the message names the file and array
            that crossed it. Unreadable files and bad headers are left to :func:`read_pose_file`.
    """
    if budget is None:
        budget = ArrayBudget(sum(p.stat().st_size for p in files))
    for path in files:
        try:
            if path.suffix.lower() == ".npy":
                with path.open("rb") as f:
                    claims = [(str(path), *_header(f, str(path)), path.stat().st_size)]
            else:
                claims = []
                with zipfile.ZipFile(path) as z:
                    for info in z.infolist():
                        key = info.filename.removesuffix(".npy")
                        if key in ("keypoint", "keypoint_score"):
                            with z.open(info) as f:
                                claims.append((f"{path}: '{key}'", *_header(f, str(path)), info.file_size))
        except (ConvertError, zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
            continue  # read_pose_file says what is wrong with the file, in order
        for where, shape, dtype, offset, size in claims:
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if nbytes > MAX_ARRAY_BYTES or nbytes > size - offset:
                continue  # one array too large for any clip, or for its file: read_npy's message
            if not budget.claim(nbytes):
                raise ConvertError(f"{where}: claims a {list(shape)[:8]} array ({nbytes / 2**20:.0f} MB), "
                                   f"{budget.refusal()} (a compressed .npz claiming far more than it holds)")


def read_pose_file(path: str | Path, with_score: bool = False) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Keypoints of one array file.

    Args:
        path: A ``.npy`` or ``.npz`` file.
        with_score: The last channel of ``keypoint`` is a score (C = 3: x, y, score; 4: x, y, z, score).

    Returns:
        ``(keypoint, score, ignored)``: float32 [M, T, V, C] with C = 2 or 3, float32 [M, T, V] or
        None, and the names of ``.npz`` arrays that were not used.

    Raises:
        ConvertError: See :func:`read_npy`; also a wrong ndim, C, an empty axis, NaN / inf, a
            score whose shape does not match, or a score given twice; the message names the file.
    """
    path = Path(path)
    arrays, ignored = _load(path)
    kp, score = arrays["keypoint"], arrays.get("keypoint_score")
    if kp.ndim not in (3, 4):
        raise ConvertError(f"{path}: keypoint array has shape {list(kp.shape)}; expected [T, V, C] or [M, T, V, C]")
    if kp.ndim == 3:
        kp = kp[None]
        if score is not None and score.ndim == 2:
            score = score[None]
    if with_score and score is not None:
        raise ConvertError(f"{path}: has a 'keypoint_score' array and --with-score takes the score from the last "
                           "channel too; drop one")
    channels = (3, 4) if with_score else (2, 3)
    if kp.shape[-1] not in channels:
        what = "x, y, score or x, y, z, score (--with-score)" if with_score else "x, y or x, y, z"
        raise ConvertError(f"{path}: keypoint array has C = {kp.shape[-1]} channels (shape {list(kp.shape)}); "
                           f"expected {' or '.join(map(str, channels))}: {what}")
    if 0 in kp.shape:
        raise ConvertError(f"{path}: keypoint array is empty (shape {list(kp.shape)})")
    if with_score:
        kp, score = kp[..., :-1], kp[..., -1]
    elif score is not None and score.shape != kp.shape[:3]:
        raise ConvertError(f"{path}: keypoint_score has shape {list(score.shape)}, expected {list(kp.shape[:3])} "
                           f"to match keypoint {list(kp.shape)}")
    with np.errstate(over="ignore"):
        kp = np.ascontiguousarray(kp, dtype=np.float32)
        score = None if score is None else np.ascontiguousarray(score, dtype=np.float32)
    for name, a in (("keypoint", kp), ("keypoint_score", score)):
        if a is not None and not np.isfinite(a).all():
            raise ConvertError(f"{path}: {name} values include NaN or inf (or exceed float32); write zeros for a "
                               "missing joint")
    return kp, score, ignored


def _find(src: Path) -> tuple[Path, list[Path]]:
    if not src.exists():
        raise ConvertError(f"{src}: not found")
    if src.is_file():
        if src.suffix.lower() not in ARRAY_SUFFIXES:
            raise ConvertError(f"{src}: not a .npy or .npz file")
        return src.parent, [src]
    try:
        entries = list(src.iterdir())
    except OSError as e:
        raise ConvertError(f"{src}: cannot list the folder ({e.strerror or type(e).__name__})") from None
    if not entries:
        raise ConvertError(f"{src}: empty folder; expected one .npy or .npz file per clip")
    files = sorted(p for p in entries if p.suffix.lower() in ARRAY_SUFFIXES and p.is_file())
    if not files:
        raise ConvertError(f"{src}: no .npy or .npz files in the folder")
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise ConvertError(f"{p}: clip name {short_repr(p.stem)} is also used by {seen[p.stem].name}; clips need "
                               "distinct file stems")
        seen[p.stem] = p
    return src, files


def convert_numpy(src: str | Path, labels: str | Path | None = None, classes: str | Path | None = None,
                  layout: str | Path | Layout | None = None, with_score: bool = False,
                  img_shape: tuple[int, int] | None = None) -> tuple[dict[str, Any], ConvertSummary]:
    """Convert a folder of ``.npy`` / ``.npz`` keypoint arrays (or one file), one clip per file.

    Args:
        src: The folder (its ``*.npy`` and ``*.npz`` files; not recursive) or one file.
        labels: A labels CSV (``name,label[,split]``; a name is a file's stem or file name).
        classes: A file of class names in label order, one a line (default: sorted names).
        layout: Layout name, YAML path or object (default: the built-in layout with V joints); a
            YAML layout is stored whole in the output.
        with_score: The last channel of each ``keypoint`` array is a score.
        img_shape: (height, width) of 2D pixel keypoints; without it clips have no ``img_shape``
            and must be normalised by their box (``normalize: bbox``).

    Returns:
        ``(data, summary)``: the arrays as float32 [M, T, V, C] (``keypoint_score`` when given),
        labels (-1 when unlabeled), splits from the labels file, ``classes`` when any, ``layout``.

    Raises:
        ConvertError: Bad files or labels (see :func:`read_pose_file` and
            :func:`~skelact.data.convert._common.assign_labels`), files whose V or C differ, or
            ``img_shape`` with 3D keypoints; the message names the file.
        LayoutError: An unknown layout, or one whose joint count is not the arrays' V.
    """
    t0 = time.perf_counter()
    root, files = _find(Path(src).expanduser())
    summary = ConvertSummary(dataset="numpy", src=str(root), files=len(files))
    labelling = assign_labels({p.stem: (p.name,) for p in files}, labels, classes, source=str(root))
    summary.notes.update(labelling.notes)

    # One budget for the whole conversion, before any data: the clips (and the output) stay within
    # GROWTH x the input's size however many small compressed files claim large arrays.
    try:
        charge_arrays(files)
    except OSError as e:
        raise ConvertError(f"{src}: cannot read ({e.strerror or type(e).__name__})") from None
    annotations = []
    first: tuple[Path, tuple[int, int]] | None = None
    lay: Layout | None = None
    scored: bool | None = None  # whether the first file has a score: every file must agree
    for p in files:
        kp, score, ignored = read_pose_file(p, with_score)
        vc = (int(kp.shape[2]), int(kp.shape[3]))
        if scored is not None and scored != (score is not None):
            has = "has no 'keypoint_score'" if scored else "has a 'keypoint_score'"
            raise ConvertError(f"{p}: {has} but {first[0].name} {'has' if scored else 'has none'}; give scores "
                               "for every file or for none")
        scored = score is not None
        if first is None:
            first = (p, vc)
            try:
                lay = resolve_layout(layout, None, vc[0], str(p))
            except LayoutError as e:  # "no built-in layout has V joints" does not name the file
                raise LayoutError(str(e) if str(p) in str(e) else f"{p}: {e}") from None
            if vc[1] == 3 and img_shape is not None:
                raise ConvertError(f"{p}: keypoints are 3D (C = 3); an image size (--img-shape) applies to 2D pixels")
        elif vc != first[1]:
            raise ConvertError(f"{p}: keypoints have [V, C] = {list(vc)} but {first[0].name} has {list(first[1])}; all "
                               "files must share the joint count and dimensions")
        if vc[1] == 3 and score is None and ((kp[..., 2] >= 0) & (kp[..., 2] <= 1)).all():
            summary.notes["3D clips whose third channel lies in [0, 1] (if it is a score: --with-score)"] += 1
        if ignored:
            summary.notes["files with arrays other than keypoint and keypoint_score (ignored)"] += 1
        ann: dict[str, Any] = {"frame_dir": p.stem, "total_frames": int(kp.shape[1]),
                               "label": labelling.label(p.stem), "keypoint": kp}
        if score is not None:
            ann["keypoint_score"] = score
        if img_shape is not None:
            ann["img_shape"] = ann["original_shape"] = (int(img_shape[0]), int(img_shape[1]))
        annotations.append(ann)
    assert first is not None and lay is not None  # _find returns at least one file
    if first[1][1] == 2 and img_shape is None:
        summary.notes["clips without img_shape (give --img-shape H W, or train with normalize: bbox)"] += len(
            annotations)
    summary.dataset = f"numpy ({lay.name}, {first[1][1]}D)"
    return pack_converted(annotations, labelling, lay, summary, t0)

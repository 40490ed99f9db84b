"""Train/val/test splits for datasets users assemble themselves: a stratified split and split files.

``stratified_split`` orders each class's items by a hash of (seed, item id), so the split depends on
nothing but the ids, their labels and the seed: the same on every machine, in every process and
whichever subset of the items a process works on (a shard of an extraction computes the split of the
whole folder and keeps its part). Adding items to a class moves at most the items at the boundary.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from skelact.errors import SkelactError, short_repr
from skelact.files import open_regular

__all__ = ["SplitError", "SPLIT_NAMES", "path_key", "val_count", "stratified_split", "validation_carve",
           "read_split_file", "carve_split"]

#: Split names a split file may use, in the order they are stored.
SPLIT_NAMES = ("train", "val", "test")

_MAX_LINE = 4096  # characters; a longer "line" means the file is not a split list


class SplitError(SkelactError, ValueError):
    """A split cannot be made, or a split file is malformed; the message names the file and line."""


def val_count(n: int, val_fraction: float) -> int:
    """Validation items of a class of ``n``: ``val_fraction * n`` rounded half up, at least 1 when
    ``val_fraction > 0`` and ``n >= 2``, and always leaving at least one training item."""
    if not 0.0 <= val_fraction < 1.0:
        raise SplitError(f"val fraction must be in [0, 1), got {short_repr(val_fraction)}")
    if n < 2 or val_fraction == 0.0:
        return 0
    return min(n - 1, max(1, math.floor(val_fraction * n + 0.5)))


def _rank(seed: int, key: str) -> str:
    # surrogatepass: a file name that is not valid UTF-8 reaches here as lone surrogates
    return hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


def stratified_split(keys: Sequence[str], labels: Sequence[int], val_fraction: float,
                     seed: int = 0) -> dict[str, list[str]]:
    """Split items into ``train`` and ``val`` per class (see :func:`val_count` for the sizes).

    Args:
        keys: Unique item ids (e.g. video paths relative to the dataset folder).
        labels: The class of each item.
        val_fraction: Share of each class that goes to ``val``, in [0, 1).
        seed: Different seeds give different (equally stratified) splits.

    Returns:
        ``{'train': [...], 'val': [...]}``, each in the order of ``keys``.
    """
    if len(keys) != len(labels):
        raise SplitError(f"{len(keys)} keys but {len(labels)} labels")
    by_class: dict[int, list[str]] = {}
    for key, label in zip(keys, labels, strict=True):
        by_class.setdefault(int(label), []).append(key)
    val: set[str] = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda k: _rank(seed, k))
        val.update(ranked[: val_count(len(members), val_fraction)])
    return {"train": [k for k in keys if k not in val], "val": [k for k in keys if k in val]}


def validation_carve(keys: Sequence[str], labels: Sequence[int], val_fraction: float, seed: int = 0) -> np.ndarray:
    """Which clips of a training split validate: the one rule behind ``data.val_fraction``.

    A pure function of (clip names, labels, fraction, seed) (see :func:`stratified_split`), so that
    training, ``skelact calibrate`` and any later run carve the same clips from the same file. Each
    class gives :func:`val_count` of its clips: a class of one clip gives none (it is trained on and
    not validated), a class of two gives one, and every class keeps at least one training clip.

    Returns:
        bool [len(keys)]: True for a validation clip.
    """
    val = set(stratified_split(keys, labels, val_fraction, seed)["val"])
    return np.fromiter((k in val for k in keys), dtype=bool, count=len(keys))


def path_key(rel: str) -> str:
    """The id of a relative path: ``/`` separators, no leading ``./``, Unicode NFC (macOS stores names
    decomposed; one spelling for one name keeps the split identical on every machine)."""
    rel = unicodedata.normalize("NFC", rel.replace("\\", "/"))
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def read_split_file(path: str | Path, keys: Sequence[str], aliases: Mapping[str, str] | None = None,
                    where: str = "the dataset") -> dict[str, list[str]]:
    """Read a split list: one ``relative/path.mp4 train|val|test`` a line.

    Blank lines and lines starting with ``#`` are skipped; the split name is the last word, so a path
    may contain spaces. Every item must be listed exactly once.

    Args:
        path: The split file (UTF-8 text).
        keys: The items of the dataset (relative paths with ``/``).
        aliases: Other names that stand for a key (e.g. the path without its extension).
        where: The dataset folder, for messages.

    Returns:
        Split name -> keys, in the order of ``keys``, for the names the file uses (train, val, test
        order).

    Raises:
        SplitError: A malformed line, an unknown split name, a path that is not one of ``keys``, a
            path listed twice, or an item not listed (the message names the file and line).
    """
    path = Path(path)
    lookup = {path_key(a): k for a, k in (aliases or {}).items()}
    lookup.update({path_key(k): k for k in keys})
    assigned: dict[str, tuple[str, int]] = {}
    try:
        with open_regular(path, "r", encoding="utf-8-sig", newline="") as f:  # not a FIFO: it would block
            lineno = 0
            while line := f.readline(_MAX_LINE + 1):
                lineno += 1
                if len(line) > _MAX_LINE:
                    raise SplitError(f"{path}:{lineno}: line longer than {_MAX_LINE} characters; "
                                     "is this a split list?")
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                parts = text.rsplit(None, 1)
                if len(parts) != 2:
                    raise SplitError(f"{path}:{lineno}: expected 'relative/path.mp4 train|val|test', got "
                                     f"{short_repr(text)}")
                rel, name = parts
                if name not in SPLIT_NAMES:
                    raise SplitError(f"{path}:{lineno}: unknown split {short_repr(name)} (use train, val or test)")
                key = lookup.get(path_key(rel))
                if key is None:
                    raise SplitError(f"{path}:{lineno}: {short_repr(rel)} is not a video of {where}")
                if key in assigned:
                    raise SplitError(f"{path}:{lineno}: {short_repr(rel)} is already listed on line "
                                     f"{assigned[key][1]}")
                assigned[key] = (name, lineno)
    except UnicodeDecodeError:
        raise SplitError(f"{path}: not a UTF-8 text file") from None
    except FileNotFoundError:
        raise SplitError(f"{path}: split file not found") from None
    except IsADirectoryError:
        raise SplitError(f"{path}: is a folder, expected a split file") from None
    except OSError as e:
        raise SplitError(f"{path}: cannot read the split file ({e.strerror or type(e).__name__})") from None
    missing = [k for k in keys if k not in assigned]
    if missing:
        raise SplitError(f"{path}: {len(missing)} video(s) of {where} are not listed, e.g. "
                         f"{short_repr(missing[0])}; give every video a line")
    return {name: [k for k in keys if assigned[k][0] == name]
            for name in SPLIT_NAMES if any(s == name for s, _ in assigned.values())}


def carve_split(data: dict, source: str, val_fraction: float, seed: int = 0, name: str = "val") -> dict:
    """Move a stratified ``val_fraction`` of split ``source``'s clips into a new split ``name``.

    For data that comes with train and test splits only: a validation split to choose settings,
    calibration and thresholds on, so that the test split stays unseen. Deterministic (see
    :func:`stratified_split`). ``data`` is a validated PYSKL dict; a new dict is returned (the
    annotations are shared).

    Raises:
        SplitError: ``source`` is missing, unlabeled, or ``name`` exists already.
    """
    splits = data.get("split") or {}
    if source not in splits:
        raise SplitError(f"no split {short_repr(source)} to take the validation clips from (has "
                         f"{', '.join(sorted(splits)) or 'none'})")
    if name in splits:
        raise SplitError(f"the data has a split {short_repr(name)} already")
    label = {a["frame_dir"]: int(a["label"]) for a in data["annotations"]}
    members = list(splits[source])
    if any(label[m] < 0 for m in members):
        raise SplitError(f"split {short_repr(source)} holds unlabeled clips; a stratified split needs labels")
    parts = stratified_split(members, [label[m] for m in members], val_fraction, seed)
    return {**data, "split": {**splits, source: parts["train"], name: parts["val"]}}

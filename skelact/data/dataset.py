"""Packed clip storage and the PyTorch dataset over it.

A PYSKL pickle is a list of ~56k dicts, each holding small arrays: tens of thousands of Python
objects whose reference counts are touched on every access, so forked DataLoader workers end up
copying the pages that hold them. :class:`PackedClips` stores every clip in a handful of
contiguous numpy arrays instead: workers share them copy-on-write (or through a memory-mapped
cache), and fetching a clip is two slices.

Row layout: clip ``i`` owns rows ``offsets[i]:offsets[i+1]`` of ``keypoint`` [R, V, C] and
``score`` [R, V]; there are ``num_persons[i] * num_frames[i]`` of them, ordered (person, frame),
so ``keypoint[rows].reshape(M, T, V, C)`` recovers the original array.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.data.transforms import Compose, Transform

__all__ = ["PackedClips", "SkeletonDataset", "join_clips"]

_FORMAT = "skelact-packed"
_VERSION = 1
# Per-clip integer arrays saved as .npy next to the keypoints.
_INDEX_FIELDS = ("offsets", "num_persons", "num_frames", "labels", "img_shape")


# Freed clip arrays are small heap blocks that the allocator keeps resident; handing them back to
# the OS every so often while packing keeps the peak near one copy of the data instead of two.
_TRIM_EVERY = 64 * 2**20


def _return_freed_memory() -> None:
    """Return free heap pages to the OS (glibc ``malloc_trim``); a no-op elsewhere."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


class PackedClips:
    """All clips of an annotation set in contiguous arrays (see the module docstring).

    Attributes:
        keypoint: float32 [R, V, C], rows ordered (clip, person, frame).
        score: float32 [R, V], or None (3D data).
        offsets: int64 [N + 1]; clip ``i`` owns rows ``offsets[i]:offsets[i+1]``.
        num_persons: int64 [N] (M of each clip).
        num_frames: int64 [N] (T of each clip).
        labels: int64 [N]; -1 for unlabeled clips.
        img_shape: int64 [N, 2] (h, w); 0 where absent.
        names: ``frame_dir`` of each clip.
        splits: split name -> int64 clip indices.
        classes: class names, or None.
        layout: layout name, or None.
    """

    def __init__(
        self,
        keypoint: np.ndarray,
        score: np.ndarray | None,
        offsets: np.ndarray,
        num_persons: np.ndarray,
        num_frames: np.ndarray,
        labels: np.ndarray,
        img_shape: np.ndarray,
        names: list[str],
        splits: dict[str, np.ndarray] | None = None,
        classes: list[str] | None = None,
        layout: str | None = None,
    ) -> None:
        n = len(names)
        if offsets.shape != (n + 1,) or num_persons.shape != (n,) or num_frames.shape != (n,):
            raise ValueError(f"packed index arrays do not describe {n} clips")
        if labels.shape != (n,) or img_shape.shape != (n, 2):
            raise ValueError(f"labels / img_shape do not describe {n} clips")
        if keypoint.ndim != 3 or int(offsets[-1]) != keypoint.shape[0]:
            raise ValueError(f"keypoint {keypoint.shape} does not match offsets ending at {int(offsets[-1])}")
        if not np.array_equal(np.diff(offsets), num_persons * num_frames):
            raise ValueError("offsets disagree with num_persons * num_frames")
        if score is not None and score.shape != keypoint.shape[:2]:
            raise ValueError(f"score {score.shape} does not match keypoint {keypoint.shape}")
        self.keypoint, self.score = keypoint, score
        self.offsets, self.num_persons, self.num_frames = offsets, num_persons, num_frames
        self.labels, self.img_shape, self.names = labels, img_shape, names
        self.splits = dict(splits or {})
        self.classes, self.layout = classes, layout
        self._mmap_path: Path | None = None  # set by load(mmap=True); makes pickling cheap

    def __getstate__(self) -> dict[str, Any]:
        # A memory-mapped store pickles as its folder (spawned DataLoader workers, DDP processes
        # re-open the same files instead of receiving gigabytes through a pipe).
        if self._mmap_path is not None:
            return {"_mmap_path": self._mmap_path}
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if set(state) == {"_mmap_path"}:
            state = PackedClips.load(state["_mmap_path"], mmap=True).__dict__
        self.__dict__.update(state)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_annotations(cls, data: dict, release: bool = True) -> PackedClips:
        """Pack a PYSKL annotation dict (as returned by ``load_annotations``) in O(N).

        Total rows are counted first, one array is preallocated, and clips are copied in. With
        ``release`` each clip's ``keypoint`` / ``keypoint_score`` is popped from ``data`` once
        copied, so peak memory stays near one copy of the arrays (``data`` is left without them).

        Args:
            data: ``{'split': ..., 'annotations': [...], 'classes'?: ..., 'layout'?: ...}``.
            release: Pop each clip's arrays from its annotation after copying.

        Raises:
            ValueError: Clips disagree on V, C or on having scores (the message names the clip),
                or a split names an unknown clip.
        """
        anns = data["annotations"]
        n = len(anns)
        if n == 0:
            raise ValueError("no annotations to pack")
        first = anns[0]["keypoint"]
        if first.ndim != 4:
            raise ValueError(f"clip {anns[0].get('frame_dir')!r}: keypoint must be [M, T, V, C]")
        v, c = first.shape[2:]
        has_score = anns[0].get("keypoint_score") is not None

        # Pass 1: shapes only -> per-clip counts and row offsets.
        num_persons = np.empty(n, dtype=np.int64)
        num_frames = np.empty(n, dtype=np.int64)
        for i, ann in enumerate(anns):
            kp = ann["keypoint"]
            if kp.ndim != 4 or kp.shape[2:] != (v, c):
                raise ValueError(f"clip {ann.get('frame_dir')!r}: keypoint shape {list(kp.shape)}, "
                                 f"expected [M, T, {v}, {c}] like the first clip")
            if (ann.get("keypoint_score") is not None) != has_score:
                raise ValueError(f"clip {ann.get('frame_dir')!r}: keypoint_score is "
                                 f"{'missing' if has_score else 'present'}, unlike the first clip")
            num_persons[i], num_frames[i] = kp.shape[:2]
        # Splits are resolved before anything is released, so an error leaves ``data`` intact.
        names = [str(ann["frame_dir"]) for ann in anns]
        lookup = {name: i for i, name in enumerate(names)}
        if len(lookup) != n:
            raise ValueError("duplicate frame_dir among the clips")
        splits = {}
        for sname, members in (data.get("split") or {}).items():
            try:
                splits[sname] = np.fromiter((lookup[m] for m in members), dtype=np.int64, count=len(members))
            except KeyError as e:
                raise ValueError(f"split {sname!r} names unknown clip {e.args[0]!r}") from None
        del lookup

        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(num_persons * num_frames, out=offsets[1:])
        rows = int(offsets[-1])

        # Pass 2: fill. np.empty leaves pages unmapped until written, so resident memory grows
        # only as clips are copied in (and their source arrays are released).
        keypoint = np.empty((rows, v, c), dtype=np.float32)
        score = np.empty((rows, v), dtype=np.float32) if has_score else None
        labels = np.empty(n, dtype=np.int64)
        img_shape = np.zeros((n, 2), dtype=np.int64)
        released = 0
        for i, ann in enumerate(anns):
            a, b = offsets[i], offsets[i + 1]
            if release:
                released += ann["keypoint"].nbytes + (0 if score is None else ann["keypoint_score"].nbytes)
                if released >= _TRIM_EVERY:
                    _return_freed_memory()
                    released = 0
            kp = ann.pop("keypoint") if release else ann["keypoint"]
            keypoint[a:b] = kp.reshape(b - a, v, c)
            if score is not None:
                sc = ann.pop("keypoint_score") if release else ann["keypoint_score"]
                score[a:b] = sc.reshape(b - a, v)
            del kp
            labels[i] = ann.get("label", -1)
            if ann.get("img_shape") is not None:
                img_shape[i] = ann["img_shape"]

        if release:
            _return_freed_memory()
        classes = data.get("classes")
        return cls(keypoint, score, offsets, num_persons, num_frames, labels, img_shape, names, splits,
                   list(classes) if classes is not None else None, data.get("layout"))

    @classmethod
    def from_pickle(
        cls,
        path: str | Path,
        cache: str | Path | None = None,
        num_classes: int | None = None,
        allow_unlabeled: bool = False,
    ) -> PackedClips:
        """Load a PYSKL pickle safely and pack it, through a packed cache folder if given.

        The cache records the pickle's size and modification time; a stale or missing cache is
        rebuilt, a fresh one is memory-mapped (seconds instead of a full unpickle).

        Args:
            path: The annotation ``.pkl``.
            cache: Folder for the packed cache, or None for no cache.
            num_classes: Passed to ``load_annotations``.
            allow_unlabeled: Passed to ``load_annotations``.
        """
        from skelact.data.io import load_annotations

        path = Path(path)
        st = path.stat()
        stamp = {"source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if cache is not None and (Path(cache) / "meta.json").is_file():
            try:
                meta = json.loads((Path(cache) / "meta.json").read_text())
            except (OSError, ValueError):
                meta = {}
            if meta.get("stamp") == stamp:
                packed = cls.load(cache)
                # The cache was validated when built, maybe with other label bounds: re-check those.
                packed._check_labels(str(path), num_classes, allow_unlabeled)
                return packed
        packed = cls.from_annotations(load_annotations(path, num_classes, allow_unlabeled))
        if cache is not None:
            packed.save(cache, force=True, stamp=stamp)
        return packed

    def _check_labels(self, source: str, num_classes: int | None, allow_unlabeled: bool) -> None:
        """The label checks of ``load_annotations`` on packed labels (for a store served from cache)."""
        from skelact.data.io import AnnotationError

        if self.classes is not None:
            if num_classes is not None and num_classes != len(self.classes):
                raise AnnotationError(f"{source}: {len(self.classes)} class names but num_classes={num_classes}")
            num_classes = len(self.classes)
        low = np.flatnonzero(self.labels < (-1 if allow_unlabeled else 0))
        if low.size:
            i = int(low[0])
            raise AnnotationError(f"{source}: clip {self.names[i]!r}: 'label' {int(self.labels[i])} is negative")
        if num_classes is not None:
            high = np.flatnonzero(self.labels >= num_classes)
            if high.size:
                i = int(high[0])
                raise AnnotationError(f"{source}: clip {self.names[i]!r}: 'label' {int(self.labels[i])} is out of "
                                      f"range for {num_classes} classes")

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_joints(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.keypoint.shape[2])

    @property
    def nbytes(self) -> int:
        """Bytes of the keypoint and score arrays."""
        return int(self.keypoint.nbytes + (0 if self.score is None else self.score.nbytes))

    def clip(self, i: int) -> dict[str, Any]:
        """The sample dict of clip ``i``: ``keypoint`` [M, T, V, C], ``keypoint_score`` [M, T, V]
        (when present), ``label``, ``frame_dir``, ``total_frames``, ``img_shape`` (when known).

        Arrays are read-only views into the packed storage; transforms return new arrays.
        """
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        m, t = int(self.num_persons[i]), int(self.num_frames[i])
        kp = self.keypoint[a:b].reshape(m, t, self.num_joints, self.num_channels)
        kp.flags.writeable = False
        sample: dict[str, Any] = {
            "keypoint": kp,
            "label": int(self.labels[i]),
            "frame_dir": self.names[i],
            "total_frames": t,
        }
        if self.score is not None:
            sc = self.score[a:b].reshape(m, t, self.num_joints)
            sc.flags.writeable = False
            sample["keypoint_score"] = sc
        h, w = int(self.img_shape[i, 0]), int(self.img_shape[i, 1])
        if h > 0 and w > 0:
            sample["img_shape"] = (h, w)
        return sample

    def indices(self, split: str) -> np.ndarray:
        """int64 clip indices of the split named ``split``."""
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; available: {sorted(self.splits) or 'none'}")
        return self.splits[split].copy()

    # ------------------------------------------------------------------ cache files

    def save(self, path: str | Path, force: bool = False, stamp: dict | None = None) -> Path:
        """Write a packed cache folder (``.npy`` arrays + ``meta.json``) atomically.

        The folder is written under a temporary name and renamed into place.

        Raises:
            FileExistsError: ``path`` exists and ``force`` is false.
        """
        path = Path(path)
        if path.exists() and not force:
            raise FileExistsError(f"{path}: already exists (use force=True to overwrite)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            arrays = {"keypoint": self.keypoint, **{f: getattr(self, f) for f in _INDEX_FIELDS}}
            if self.score is not None:
                arrays["score"] = self.score
            split_names = list(self.splits)
            arrays["splits"] = (np.concatenate([self.splits[s] for s in split_names])
                                if split_names else np.zeros(0, dtype=np.int64))
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            meta = {
                "format": _FORMAT, "version": _VERSION, "num_clips": len(self),
                "has_score": self.score is not None, "names": self.names, "classes": self.classes,
                "layout": self.layout, "splits": [[s, len(self.splits[s])] for s in split_names],
                "stamp": stamp,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            if path.exists():
                old = path.parent / f".{path.name}.old-{os.getpid()}"
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> PackedClips:
        """Open a packed cache folder written by :meth:`save`.

        Args:
            path: The folder.
            mmap: Memory-map the arrays read-only (shared by all processes through the page
                cache) instead of reading them into memory.
        """
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: not a packed cache (no meta.json)") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{path}: not a {_FORMAT} v{_VERSION} cache")
        mode = "r" if mmap else None

        def arr(name: str) -> np.ndarray:
            return np.load(path / f"{name}.npy", mmap_mode=mode, allow_pickle=False)

        idx = {f: np.asarray(arr(f)) for f in _INDEX_FIELDS}  # small: always in memory
        flat = np.asarray(arr("splits"))
        splits, start = {}, 0
        for name, count in meta["splits"]:
            splits[name] = flat[start : start + count]
            start += count
        try:
            packed = cls(arr("keypoint"), arr("score") if meta["has_score"] else None,
                         names=list(meta["names"]), splits=splits, classes=meta["classes"],
                         layout=meta["layout"], **idx)
        except ValueError as e:
            raise ValueError(f"{path}: corrupt packed cache ({e})") from None
        if mmap:
            packed._mmap_path = path.resolve()
        return packed


def join_clips(first: dict[str, Any], second: dict[str, Any], rng: np.random.Generator,
               low: float = 0.2) -> tuple[dict[str, Any], float]:
    """Part of one clip followed by part of another: an action boundary inside a window.

    A fraction ``f ~ U(low, 1 - low)`` of ``first``'s frames (a random contiguous run) is followed
    by a fraction ``1 - f`` of ``second``'s (its own random run); persons are padded with zeros to
    the larger count. 2D pixel coordinates of ``second`` are rescaled to ``first``'s image size, so
    the joined clip lives in one image as a video's frames do.

    Returns:
        The joined sample (``first``'s label, name and image size) and the fraction of its frames
        that come from ``first``.
    """
    f = float(rng.uniform(low, 1.0 - low))
    ta, tb = int(first["total_frames"]), int(second["total_frames"])
    na, nb = max(1, round(f * ta)), max(1, round((1.0 - f) * tb))
    sa, sb = int(rng.integers(0, ta - na + 1)), int(rng.integers(0, tb - nb + 1))
    kb = np.array(second["keypoint"][:, sb:sb + nb], dtype=np.float32)  # [Mb, nb, V, C]
    if kb.shape[-1] == 2 and "img_shape" in first and "img_shape" in second:
        (ha, wa), (hb, wb) = first["img_shape"], second["img_shape"]
        kb *= np.array([wa / wb, ha / hb], np.float32)
    m = max(first["keypoint"].shape[0], kb.shape[0])
    kp = np.zeros((m, na + nb) + kb.shape[2:], np.float32)
    kp[:first["keypoint"].shape[0], :na] = first["keypoint"][:, sa:sa + na]
    kp[:kb.shape[0], na:] = kb
    out = {**first, "keypoint": kp, "total_frames": na + nb}
    if "keypoint_score" in first and "keypoint_score" in second:
        sc = np.zeros((m, na + nb, kb.shape[2]), np.float32)
        sc[:first["keypoint_score"].shape[0], :na] = first["keypoint_score"][:, sa:sa + na]
        sc[:second["keypoint_score"].shape[0], na:] = second["keypoint_score"][:, sb:sb + nb]
        out["keypoint_score"] = sc
    else:
        out.pop("keypoint_score", None)
    return out, na / (na + nb)


class SkeletonDataset(torch.utils.data.Dataset):
    """Clips of a :class:`PackedClips` through a transform pipeline.

    Item ``i`` is ``(inputs, label)``: ``inputs`` float32 [M, T, V, C] in training (one view) and
    [K, M, T, V, C] at test. The pipeline must end with ``FormatFeatures`` (it writes ``inputs``).

    With ``join > 0`` (training), that fraction of the items is :func:`join_clips` of the clip and
    a random clip of another class, and every label is a float32 [num_classes] target: the share
    of the frames of each class (one-hot for the other items). A window that straddles two
    actions then teaches the model to be unsure, so a timeline's most confident windows are those
    holding one action (skelact/stream/timeline.py).

    With ``unknown > 0`` (training), that fraction of the items is a random clip of ``outside``
    (other activities) whose target is uniform over the classes, and a joined part comes from
    ``outside`` with the same probability (outlier exposure: unsure outside the classes).

    Randomness: item ``i`` draws from ``np.random.default_rng((seed, epoch, clip_index))``, so an
    epoch is reproducible whatever the worker count or order, workers never share a stream, and
    :meth:`set_epoch` changes the augmentation each epoch. Call ``set_epoch`` before creating the
    epoch's DataLoader iterator (with ``persistent_workers=True`` workers keep the old value).

    Args:
        packed: The clip store.
        indices: Clip indices, or a split name of ``packed``.
        pipeline: Transforms, e.g. a :class:`~skelact.data.transforms.Compose`.
        train: Training mode (squeeze the single view).
        seed: Base seed.
        join: Probability that a training item joins two clips (0: never; int labels).
        num_classes: Length of the soft targets (needed when ``join > 0`` or ``unknown > 0``).
        outside: Clips of other activities in the same layout (labels ignored).
        unknown: Probability that an item (or a joined part) is a clip of ``outside``.
    """

    def __init__(
        self,
        packed: PackedClips,
        indices: np.ndarray | Sequence[int] | str,
        pipeline: Compose | Transform,
        train: bool,
        seed: int = 0,
        join: float = 0.0,
        num_classes: int | None = None,
        outside: PackedClips | None = None,
        unknown: float = 0.0,
    ) -> None:
        self.packed = packed
        idx = packed.indices(indices) if isinstance(indices, str) else np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(packed))):
            raise IndexError(f"clip indices must be a 1-D array in [0, {len(packed)})")
        self.indices = idx
        self.pipeline, self.train, self.seed = pipeline, train, seed
        self.epoch = 0
        if (join > 0 or unknown > 0) and (not train or num_classes is None):
            raise ValueError("join and unknown need train=True and num_classes")
        if unknown > 0 and (outside is None or not len(outside)):
            raise ValueError("unknown > 0 needs outside clips")
        self.join, self.num_classes = join, num_classes
        self.outside, self.unknown = outside, unknown

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's random stream."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def labels(self) -> np.ndarray:
        """int64 [len(self)] labels in dataset order (for samplers and metrics)."""
        return self.packed.labels[self.indices]

    def _partner(self, label: int, rng: np.random.Generator, tries: int = 32) -> int | None:
        """A random clip of this dataset whose class is not ``label`` (None if none was drawn)."""
        for _ in range(tries):  # rejection sampling: no per-class index tables for 100k-clip sets
            j = int(self.indices[rng.integers(self.indices.size)])
            if self.packed.labels[j] != label:
                return j
        return None

    def _one_hot(self, label: int) -> np.ndarray:
        target = np.zeros(self.num_classes, np.float32)
        target[int(label)] = 1.0
        return target

    def _outside_clip(self, rng: np.random.Generator) -> tuple[dict[str, Any], np.ndarray]:
        """A random clip of ``outside`` (label 0 for the pipeline: the target is what counts) and its
        uniform target."""
        raw = self.outside.clip(int(rng.integers(len(self.outside))))
        return {**raw, "label": 0}, np.full(self.num_classes, 1.0 / self.num_classes, np.float32)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        clip = int(self.indices[i])
        rng = np.random.default_rng((self.seed, self.epoch, clip))
        raw = self.packed.clip(clip)
        target = None
        if self.join > 0 or self.unknown > 0:
            # Share of the frames per class; an out-of-class frame counts 1/classes for every class.
            inside = not (self.unknown > 0 and rng.random() < self.unknown)
            raw, target = (raw, self._one_hot(raw["label"])) if inside else self._outside_clip(rng)
            if self.join > 0 and rng.random() < self.join:
                second = None
                if inside and self.unknown > 0 and rng.random() < self.unknown:
                    second = self._outside_clip(rng)
                else:
                    partner = self._partner(raw["label"] if inside else -1, rng)
                    if partner is not None:
                        second = self.packed.clip(partner), self._one_hot(self.packed.labels[partner])
                if second is not None:
                    raw, share = join_clips(raw, second[0], rng)
                    target = share * target + (1.0 - share) * second[1]
        sample = self.pipeline(raw, rng)
        if "inputs" not in sample:
            raise KeyError(f"clip {sample.get('frame_dir')!r}: the pipeline produced no 'inputs' "
                           "(end it with FormatFeatures)")
        x = sample["inputs"]  # [K, M, T, V, C]
        if self.train and x.shape[0] == 1:
            x = x[0]
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return (x, int(sample["label"])) if target is None else (x, torch.from_numpy(target))

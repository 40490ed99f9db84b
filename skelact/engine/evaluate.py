"""Test-time evaluation of a checkpoint and late fusion of several score files.

``evaluate`` averages softmax probabilities over K test views per clip (and, optionally, over the
horizontally flipped views too), then writes into ``out_dir``:

- ``scores.npz``: ``probs`` float64 [N, C], ``labels`` int64 [N], ``names`` [N], ``classes`` [C]
- ``metrics.json``: :func:`skelact.engine.metrics.summarize` plus the settings used
- ``report.txt``: per-class precision / recall / F1 / support and the summary
- ``confusion.png``: the confusion matrix labelled with class names

``fuse`` combines the ``scores.npz`` of several streams (e.g. joint / bone / motion, 2:2:1:1).
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from skelact.config import Config, ConfigError
from skelact.data.io import atomic_write
from skelact.data.npz import GROWTH, ArrayBudget
from skelact.engine import metrics
from skelact.errors import SkelactError, one_line, printable, short_repr

if TYPE_CHECKING:
    from skelact.checkpoint import Checkpoint
    from skelact.data.dataset import PackedClips
    from skelact.inference import Predictor, ScoreOptions, Scores

__all__ = ["ScoreFileError", "Scored", "score_checkpoint", "evaluate", "fuse", "load_scores", "save_scores",
           "write_outputs"]


def save_scores(path: str | Path, probs: np.ndarray, labels: np.ndarray, names: Sequence[str],
                classes: Sequence[str]) -> Path:
    """Write a ``scores.npz`` atomically (temporary file in the same folder, then ``os.replace``)."""
    arrays = {"probs": np.asarray(probs, dtype=np.float64), "labels": np.asarray(labels, dtype=np.int64),
              "names": np.asarray(list(names), dtype=str), "classes": np.asarray(list(classes), dtype=str)}
    return atomic_write(path, lambda f: np.savez(f, **arrays))


class ScoreFileError(SkelactError, ValueError):
    """A score file cannot be used, or score files cannot be fused; the message names the file or option."""


_SCORE_KEYS = ("probs", "labels", "names", "classes")


def _npy_header(z: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one ``.npy`` member, read from its header alone."""
    with z.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def load_scores(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``scores.npz`` (no pickles allowed) and check its arrays agree with each other.

    Raises:
        ScoreFileError: The file is missing, not such a file, or its arrays are inconsistent
            (probabilities not finite rows in [0, 1] summing to 1, labels out of range ...).
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: score file not found")
    if not zipfile.is_zipfile(path):
        raise ScoreFileError(f"{path}: not a .npz score file (as written by `skelact test`)")
    where = f"{path}: not a skelact score file"
    budget = ArrayBudget(path.stat().st_size)  # a compressed .npz may claim gigabytes from kilobytes
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            members = set(z.namelist())
            missing = [k for k in _SCORE_KEYS if f"{k}.npy" not in members]
            if missing:
                raise ScoreFileError(f"{where} (no {', '.join(missing)} array)")
            for key in _SCORE_KEYS:
                shape, dtype = _npy_header(z, f"{key}.npy")
                if dtype.hasobject:
                    raise ScoreFileError(f"{where} ('{key}' is an object array)")
                nbytes = math.prod(shape) * dtype.itemsize
                shown = list(shape) if len(shape) <= 8 else f"{len(shape)}-dimensional"
                if nbytes > z.getinfo(f"{key}.npy").file_size:
                    raise ScoreFileError(f"{where} ('{key}' claims {shown} {dtype} values, more "
                                         "than the file holds)")
                if not budget.claim(nbytes):
                    raise ScoreFileError(f"{where} ('{key}' claims {shown} {dtype} values: its "
                                         f"arrays would take over {GROWTH}x the file's size)")
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in _SCORE_KEYS}
    except ScoreFileError:
        raise
    except Exception as e:  # a truncated or corrupt zip, a bad header: zipfile, zlib and numpy errors
        raise ScoreFileError(f"{path}: cannot read the score file ({type(e).__name__}: {one_line(e)})") from None
    probs, labels, names, classes = (out[k] for k in _SCORE_KEYS)
    if probs.ndim != 2 or 0 in probs.shape or labels.shape != probs.shape[:1] or names.shape != probs.shape[:1] \
            or classes.shape != probs.shape[1:]:
        raise ScoreFileError(f"{path}: inconsistent shapes probs {list(probs.shape)}, labels {list(labels.shape)}, "
                             f"names {list(names.shape)}, classes {list(classes.shape)}; expected [N, C], [N], [N], "
                             "[C] with N, C > 0")
    if probs.dtype.kind != "f" or labels.dtype.kind not in "iu" or names.dtype.kind != "U" \
            or classes.dtype.kind != "U":
        raise ScoreFileError(f"{path}: expected float probs, integer labels and string names and classes, got "
                             f"{probs.dtype}, {labels.dtype}, {names.dtype}, {classes.dtype}")
    probs = probs.astype(np.float64)
    rows = np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1)
                          | (np.abs(probs.sum(axis=1) - 1) > 1e-3))
    if rows.size:
        i = int(rows[0])
        raise ScoreFileError(f"{path}: clip {short_repr(str(names[i]))} has probabilities that are not finite "
                             f"values in [0, 1] summing to 1 ({rows.size} of {len(probs)} clips)")
    bad = np.flatnonzero((labels < 0) | (labels >= probs.shape[1]))
    if bad.size:
        i = int(bad[0])
        raise ScoreFileError(f"{path}: clip {short_repr(str(names[i]))} has label {short_repr(int(labels[i]))}, "
                             f"expected 0..{probs.shape[1] - 1}")
    return {"probs": probs, "labels": labels.astype(np.int64), "names": names, "classes": classes}


#: The files :func:`write_outputs` writes into its folder (the CLI checks none of them is an input).
OUTPUT_FILES = ("scores.npz", "metrics.json", "report.txt", "confusion.png")


def write_outputs(out_dir: str | Path, probs: np.ndarray, labels: np.ndarray, names: Sequence[str],
                  classes: Sequence[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``scores.npz``, ``metrics.json``, ``report.txt`` and ``confusion.png``; return the metrics."""
    from skelact.viz.plots import plot_confusion

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = metrics.summarize(probs, labels)
    save_scores(out_dir / "scores.npz", probs, labels, names, classes)
    report = metrics.classification_report(probs, labels, list(classes))
    text = printable(report).encode("utf-8")  # class names from a file may not be valid UTF-8
    atomic_write(out_dir / "report.txt", lambda f: f.write(text))
    cm = metrics.confusion_matrix(labels, metrics.rank_classes(probs)[:, 0], len(classes))
    plot_confusion(cm, list(classes), out_dir / "confusion.png")
    result = {**summary, **(extra or {})}
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(out_dir / "metrics.json", lambda f: f.write(text.encode("utf-8")))
    return result


class Scored(NamedTuple):
    """What :func:`score_checkpoint` scored: the scores, the clip store, which clips, and the model."""

    scores: Scores
    clips: PackedClips
    indices: np.ndarray
    predictor: Predictor


def score_checkpoint(ckpt: Checkpoint, source: str, cfg: Config, device: Any,
                     select: Callable[[PackedClips], np.ndarray], options: ScoreOptions,
                     shard: tuple[int, int] = (0, 1), gather: Callable[[Any], list[Any]] | None = None) -> Scored:
    """A loaded checkpoint's scores on clips of its recipe's data file: what ``test`` and
    ``calibrate`` share (model, clips, layout, memory check, :func:`skelact.inference.score_clips`).

    Args:
        ckpt: The loaded checkpoint; ``source`` names it in messages.
        cfg: The recipe whose data section gives the file and the test pipeline.
        select: The clip indices to score, from the loaded clips (a split, the validation share).
        options: Views, flip, batch, workers, precision; ``shard`` and ``gather`` as ``score_clips``.


    Raises:
        ConfigError: The data file's classes differ from the checkpoint's.
    """
    from skelact.engine import builders
    from skelact.inference import Predictor, score_clips

    # The model checks its weights against the checkpoint's config; the recipe given makes the pipeline.
    predictor = Predictor.from_checkpoint(ckpt, device, source, cfg)
    packed = builders.load_clips(cfg.data)
    # The checkpoint's layout (stored whole): the recipe's YAML file need not exist any more.
    layout = builders.resolve_layout(cfg.data, packed, given=ckpt.layout)
    classes = ckpt.classes
    if packed.classes is not None and list(packed.classes) != classes:
        raise ConfigError(f"{cfg.data.ann_file}: its classes differ from those {source} was trained on "
                          f"({len(packed.classes)} vs {len(classes)} classes)")
    indices = select(packed)
    # The batch's activations (K views of each clip) before the first forward.
    builders.check_memory(cfg, len(classes), layout, ckpt.in_channels, (cfg.data.max_persons, cfg.data.clip_len),
                          options.batch(cfg.data) * options.views(cfg.data), device, str(cfg.data.ann_file),
                          training=False)
    return Scored(score_clips(predictor, packed, indices, options, shard=shard, gather=gather), packed, indices,
                  predictor)


def evaluate(cfg: Config | None, checkpoint: Path, num_clips: int | None = None, flip: bool = False,
             out_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint on its test split (``data.test_split``, else ``data.val_split``) with
    multi-view (and flip) test-time averaging.

    Args:
        cfg: The recipe (data section: file, split, pipeline); ``None`` uses the one stored in the
            checkpoint. Its model section must match the checkpoint's.
        checkpoint: A ``best.pt`` / ``last.pt`` written by training.
        num_clips: Views per clip (K); ``None`` takes ``data.num_clips_test``.
        flip: Also average over horizontally flipped views (left/right joints swapped).
        out_dir: Where the outputs go; ``None`` writes nothing.

    Returns:
        The summary metrics (top1, top5, mean_class_acc, macro P/R/F1, loss, brier, num_clips) plus
        ``checkpoint``, ``split``, ``views`` and ``flip``.
    """
    import torch

    from skelact.checkpoint import Checkpoint
    from skelact.engine import builders
    from skelact.engine.distributed import all_gather_objects, cleanup_distributed, init_distributed
    from skelact.inference import ScoreOptions, view_probs
    from skelact.runtime import keep_freed_memory, resolve_amp

    keep_freed_memory()  # every batch frees and allocates the same large activations again
    owns_group = not torch.distributed.is_initialized()
    info = init_distributed(cfg.device if cfg is not None else "auto")
    try:
        ckpt = Checkpoint.load(checkpoint)
        if cfg is None:
            cfg = ckpt.config
        elif cfg.model.name != ckpt.config.model.name:
            raise ConfigError(f"{checkpoint} holds a {ckpt.config.model.name!r} model but the config names "
                              f"{cfg.model.name!r}")
        split, key = builders.evaluated_split(cfg.data)
        options = ScoreOptions(num_clips=num_clips, flip=flip, workers=cfg.data.num_workers,
                               amp=resolve_amp(cfg.optim.amp, info.device, strict=False), progress="test")
        # The probabilities users see in `skelact predict`: at the checkpoint's calibrated temperature.
        scores, packed, indices, _ = score_checkpoint(
            ckpt, str(checkpoint), cfg, info.device, lambda clips: builders.split_indices(
                clips, split, len(ckpt.classes), key), options, shard=(info.rank, info.world_size),
            gather=all_gather_objects)
        k, classes = options.views(cfg.data), ckpt.classes
        probs, labels, calib = scores.probs, scores.labels, scores.calibration  # [N, C] mean over the views
        extra: dict[str, Any] = {"checkpoint": str(checkpoint), "ann_file": cfg.data.ann_file,
                                 "split": split, "views": k * (2 if flip else 1), "flip": flip,
                                 "temperature": scores.temperature}
        if calib is not None and calib.threshold is not None:
            extra.update(unknown_threshold=calib.threshold, calibrated_on=calib.split,
                         unknown_rate=float(scores.unknown.mean()),
                         ece_uncalibrated=metrics.expected_calibration_error(view_probs(scores.logits, 1.0), labels))
        names = [packed.names[i] for i in indices]
        if out_dir is not None and info.rank == 0:
            return write_outputs(out_dir, probs, labels, names, classes, extra)
        return {**metrics.summarize(probs, labels), **extra}
    finally:
        if owns_group:
            cleanup_distributed()


def fuse(score_files: list[Path], weights: list[float] | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Weighted late fusion of several ``scores.npz`` files (e.g. J/B/JM/BM streams 2:2:1:1).

    The fused probability is ``sum_i w_i p_i / sum_i w_i`` (so it stays a distribution and the loss
    and Brier score are meaningful). Every file must list the same clips in the same order, with the
    same labels and classes.

    Args:
        score_files: Two or more ``scores.npz`` written by :func:`evaluate`.
        weights: One non-negative weight per file; ``None`` weighs them equally.
        out_dir: Where to write the fused outputs; ``None`` writes nothing.

    Returns:
        The summary metrics of the fusion plus ``inputs`` (files and weights) and ``per_stream_top1``.

    Raises:
        ScoreFileError: A file :func:`load_scores` refuses, files that disagree, or bad weights;
            nothing is written then.
    """
    if len(score_files) < 1:
        raise ScoreFileError("fuse needs at least one score file")
    if weights is not None and len(weights) != len(score_files):
        raise ScoreFileError(f"weights: {len(weights)} weights for {len(score_files)} score files; give one per file")
    weights = [1.0] * len(score_files) if weights is None else [float(w) for w in weights]
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ScoreFileError(f"weights: must be finite, non-negative and not all zero, got "
                             f"{short_repr(' '.join(f'{w:g}' for w in weights))}")
    loaded = [load_scores(p) for p in score_files]
    ref, ref_path = loaded[0], score_files[0]
    for path, s in zip(score_files[1:], loaded[1:], strict=True):
        if s["names"].shape != ref["names"].shape or not np.array_equal(s["names"], ref["names"]):
            raise ScoreFileError(f"{path}: its clips differ from {ref_path} (names or order); evaluate every stream "
                                 "on the same split")
        if not np.array_equal(s["classes"], ref["classes"]):
            raise ScoreFileError(f"{path}: its classes differ from {ref_path}")
        if not np.array_equal(s["labels"], ref["labels"]):
            raise ScoreFileError(f"{path}: its labels differ from {ref_path}")
    total = sum(weights)
    probs = sum(w * s["probs"] for w, s in zip(weights, loaded, strict=True)) / total  # [N, C]
    labels = ref["labels"]
    extra = {
        "inputs": [{"file": str(p), "weight": w} for p, w in zip(score_files, weights, strict=True)],
        "per_stream_top1": [metrics.topk_accuracy(s["probs"], labels, 1) for s in loaded],
    }
    if out_dir is not None:
        return write_outputs(out_dir, probs, labels, ref["names"].tolist(), ref["classes"].tolist(), extra)
    return {**metrics.summarize(probs, labels), **extra}

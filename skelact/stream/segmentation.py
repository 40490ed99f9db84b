"""Temporal action segmentation metrics: frame accuracy, segmental edit score and F1@k.

Definitions as in Lea et al., *Temporal Convolutional Networks for Action Segmentation and
Detection* (CVPR 2017), and the evaluation of MS-TCN (Farha and Gall, CVPR 2019):

- a *segment* is a maximal run of frames with one label;
- **edit score**: ``100 * (1 - levenshtein(P, G) / max(|P|, |G|))`` over the sequences of segment
  labels P (predicted) and G (true), averaged over sequences;
- **F1@k**: predicted segments are taken in order; each is a true positive when its IoU with the
  best-overlapping true segment of the same label is at least ``k`` and that true segment is not
  matched yet, else a false positive; unmatched true segments are false negatives. Counts are
  summed over all sequences, then ``F1 = 2PR / (P + R)``, as a percentage.

Labels in ``ignore`` (e.g. a background class) form no segments in the edit score and F1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["runs", "frame_accuracy", "edit_score", "f1_counts", "segmentation_scores"]


def runs(labels: Sequence[int] | np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal labels as ``(start, stop, label)``, ``stop`` exclusive.

    Example:
        >>> runs([0, 0, 1, 1, 1, 0])
        [(0, 2, 0), (2, 5, 1), (5, 6, 0)]
    """
    a = np.asarray(labels)
    if a.size == 0:
        return []
    cut = np.flatnonzero(a[1:] != a[:-1]) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [a.size]])
    return [(int(s), int(e), int(a[s])) for s, e in zip(starts, stops, strict=True)]


def _segments(labels: Sequence[int] | np.ndarray, ignore: Iterable[int]) -> list[tuple[int, int, int]]:
    skip = set(ignore)
    return [r for r in runs(labels) if r[2] not in skip]


def frame_accuracy(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray) -> float:
    """Fraction of frames whose predicted label is the true one."""
    p, t = np.asarray(pred), np.asarray(true)
    if p.shape != t.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"expected two equal, non-empty 1-D label sequences, got {p.shape} and {t.shape}")
    return float(np.mean(p == t))


def _levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def edit_score(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray, ignore: Iterable[int] = ()) -> float:
    """Segmental edit score of one sequence, 0-100 (100: the same order of segments)."""
    ignore = tuple(ignore)
    p = [lab for _, _, lab in _segments(pred, ignore)]
    t = [lab for _, _, lab in _segments(true, ignore)]
    if not p and not t:
        return 100.0
    return 100.0 * (1.0 - _levenshtein(p, t) / max(len(p), len(t)))


def f1_counts(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray, overlap: float,
              ignore: Iterable[int] = ()) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one sequence at IoU ``overlap`` (0-1)."""
    ignore = tuple(ignore)
    ps, ts = _segments(pred, ignore), _segments(true, ignore)
    used = [False] * len(ts)
    tp = fp = 0
    for s, e, lab in ps:
        best, best_iou = -1, 0.0
        for k, (ts_, te, tlab) in enumerate(ts):
            if tlab != lab:
                continue
            inter = min(e, te) - max(s, ts_)
            if inter <= 0:
                continue
            iou = inter / (max(e, te) - min(s, ts_))
            if iou > best_iou:
                best, best_iou = k, iou
        if best >= 0 and best_iou >= overlap and not used[best]:
            used[best] = True
            tp += 1
        else:
            fp += 1
    return tp, fp, len(ts) - sum(used)


def segmentation_scores(preds: Sequence[Sequence[int] | np.ndarray], trues: Sequence[Sequence[int] | np.ndarray],
                        overlaps: Sequence[float] = (0.1, 0.25, 0.5), ignore: Iterable[int] = ()) -> dict[str, float]:
    """All metrics over several sequences.

    Returns:
        ``{'accuracy': frame accuracy over all frames (%), 'edit': mean edit score,
        'f1@10': ..., 'f1@25': ..., 'f1@50': ...}`` (keys follow ``overlaps``).
    """
    if len(preds) != len(trues) or not preds:
        raise ValueError(f"expected as many predicted as true sequences (at least one), got {len(preds)} "
                         f"and {len(trues)}")
    ignore = tuple(ignore)
    correct = total = 0
    for p, t in zip(preds, trues, strict=True):
        correct += frame_accuracy(p, t) * len(t)
        total += len(t)
    out = {"accuracy": 100.0 * correct / total,
           "edit": float(np.mean([edit_score(p, t, ignore) for p, t in zip(preds, trues, strict=True)]))}
    for k in overlaps:
        tp = fp = fn = 0
        for p, t in zip(preds, trues, strict=True):
            a, b, c = f1_counts(p, t, k, ignore)
            tp, fp, fn = tp + a, fp + b, fn + c
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"f1@{round(100 * k)}"] = 100.0 * f1
    return out

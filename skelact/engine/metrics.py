"""Classification metrics on score matrices: pure numpy / scikit-learn functions.

Conventions: ``scores`` is [N, num_classes] (probabilities or logits, higher is better) and
``labels`` is [N] integer class ids. Ranking ties are broken towards the lower class index, so every
function is deterministic.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

__all__ = [
    "rank_classes",
    "topk_accuracy",
    "mean_class_accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "cross_entropy",
    "brier_score",
    "expected_calibration_error",
    "auroc",
    "noise_margin",
    "summarize",
    "classification_report",
]


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"expected scores [N, C] and labels [N], got {scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be in [0, {scores.shape[1]}), got range [{labels.min()}, {labels.max()}]")
    return scores, labels


def rank_classes(scores: np.ndarray) -> np.ndarray:
    """Class indices sorted by decreasing score, ties to the lower index: [N, C]."""
    # A stable sort of the negated scores keeps equal scores in index order.
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of clips whose label is among the ``k`` highest scores (``k`` capped at C)."""
    scores, labels = _check(scores, labels)
    if len(labels) == 0:
        return float("nan")
    top = rank_classes(scores)[:, : min(k, scores.shape[1])]  # [N, k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [C, C]: row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 recall averaged over the classes that occur in ``labels`` (absent classes are skipped)."""
    scores, labels = _check(scores, labels)
    cm = confusion_matrix(labels, rank_classes(scores)[:, 0], scores.shape[1])
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


def precision_recall_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall and F1 of the top-1 predictions.

    The average runs over the classes that occur in the labels or the predictions (scikit-learn's
    convention); a class never predicted has precision 0.
    """
    scores, labels = _check(scores, labels)
    preds = rank_classes(scores)[:, 0]
    p, r, f, _ = precision_recall_fscore_support(labels, preds, average="macro", zero_division=0)
    return float(p), float(r), float(f)


def cross_entropy(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class; ``probs`` rows must be probabilities."""
    probs, labels = _check(probs, labels)
    p = np.clip(probs[np.arange(len(labels)), labels], eps, 1.0)
    return float(-np.log(p).mean())


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over clips of ``sum_c (p_c - onehot_c)²``.

    This is Brier's original definition (range 0 to 2), not the per-class mean that some
    libraries report (which is this value divided by the number of classes).
    """
    probs, labels = _check(probs, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: ``sum_b n_b / N * |accuracy_b - confidence_b|`` over ``bins`` equal-width bins of the top-1
    probability (Guo et al. 2017; a top-1 probability of exactly 1 falls in the last bin)."""
    probs, labels = _check(probs, labels)
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (rank_classes(probs)[:, 0] == labels).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - conf[inside].mean())
    return float(total / len(labels))


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher for ``known`` than for ``unknown``
    samples (the probability that a random known one outscores a random unknown one, ties half)."""
    from sklearn.metrics import roc_auc_score

    known, unknown = np.asarray(known, np.float64).ravel(), np.asarray(unknown, np.float64).ravel()
    if not known.size or not unknown.size:
        raise ValueError("auroc needs known and unknown samples")
    return float(roc_auc_score(np.r_[np.ones(known.size), np.zeros(unknown.size)], np.r_[known, unknown]))


def noise_margin(accuracy: float, clips: int) -> float:
    """Two standard errors of an accuracy measured on ``clips`` clips: ``2 sqrt(p (1 - p) / n)``.

    Two checkpoints whose validation accuracies differ by less than this are not told apart by
    those clips (p is clamped to [0.05, 0.95] so that a perfect score on a few clips is not exact).

    Example:
        >>> round(noise_margin(0.9, 15), 3), round(noise_margin(0.9, 1000), 3)
        (0.155, 0.019)
    """
    p = min(0.95, max(0.05, float(accuracy)))
    return 2.0 * float(np.sqrt(p * (1.0 - p) / max(1, clips)))


def summarize(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All summary metrics of a probability matrix [N, C] as a flat dict of floats."""
    probs, labels = _check(probs, labels)
    prec, rec, f1 = precision_recall_f1(probs, labels)
    return {
        "num_clips": int(len(labels)),
        "top1": topk_accuracy(probs, labels, 1),
        "top5": topk_accuracy(probs, labels, 5),
        "mean_class_acc": mean_class_accuracy(probs, labels),
        "macro_precision": prec,
        "macro_recall": rec,
        "macro_f1": f1,
        "loss": cross_entropy(probs, labels),
        "brier": brier_score(probs, labels),
        "ece": expected_calibration_error(probs, labels),
    }


def classification_report(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> str:
    """Per-class precision / recall / F1 / support table followed by the summary metrics."""
    probs, labels = _check(probs, labels)
    num_classes = probs.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    preds = rank_classes(probs)[:, 0]
    p, r, f, s = precision_recall_fscore_support(
        labels, preds, labels=np.arange(num_classes), average=None, zero_division=0
    )
    width = max([len("class"), *(len(n) for n in class_names)])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for i, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  {p[i]:9.4f}  {r[i]:6.4f}  {f[i]:5.4f}  {int(s[i]):7d}")
    lines.append("")
    for key, value in summarize(probs, labels).items():
        lines.append(f"{key:<16} {value:d}" if isinstance(value, int) else f"{key:<16} {value:.4f}")
    return "\n".join(lines) + "\n"

"""Training curves and confusion matrices as PNG files (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "plot_confusion"]


def _pyplot():  # noqa: ANN202 - matplotlib module
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    """A CSV column as floats; empty cells (e.g. epochs without validation) become NaN."""
    out = []
    for r in rows:
        v = r.get(key, "")
        try:
            out.append(float(v) if v not in ("", None) else math.nan)
        except ValueError:
            out.append(math.nan)
    return np.asarray(out, dtype=np.float64)


def plot_curves(csv_path: str | Path, out_png: str | Path) -> Path:
    """Loss and accuracy per epoch from a training ``metrics.csv``.

    Args:
        csv_path: CSV with at least ``epoch``, ``train_loss``, ``train_top1`` and optionally
            ``val_loss``, ``val_top1``, ``val_top5``, ``lr``.
        out_png: Output image.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epoch = _column(rows, "epoch")
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        y = _column(rows, key)
        if np.isfinite(y).any():
            m = np.isfinite(y)
            ax_loss.plot(epoch[m], y[m], style, marker="o", ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, style in (("train_top1", "-"), ("val_top1", "--"), ("val_top5", ":")):
        y = _column(rows, key)
        if np.isfinite(y).any():
            m = np.isfinite(y)
            ax_acc.plot(epoch[m], 100 * y[m], style, marker="o", ms=3, label=key)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], out_png: str | Path, normalize: bool = True) -> Path:
    """A confusion matrix image (rows = true class, columns = predicted), labelled with class names.

    Args:
        cm: Counts [C, C].
        class_names: C names.
        out_png: Output image.
        normalize: Colour by row fraction (recall) instead of raw counts; cells show counts.
    """
    cm = np.asarray(cm)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names")
    plt = _pyplot()
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = min(max(5.0, 0.45 * n + 2), 30.0)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "clips")
    ax.set_xticks(range(n), labels=list(class_names), rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels=list(class_names), fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if n <= 30:  # counts are legible only on small matrices
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    dark = shown[i, j] > (0.5 if normalize else shown.max() / 2)
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png

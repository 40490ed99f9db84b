"""Training curves and confusion matrices as PNG files (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from skelact.data.io import atomic_path
from skelact.errors import printable

__all__ = ["plot_curves", "plot_confusion", "plot_timeline"]


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
    try:
        with atomic_path(out_png, suffix=".tmp.png") as tmp:  # a full disk leaves no half image
            fig.savefig(tmp, dpi=100, format="png")
    finally:
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
    names = [printable(c) for c in class_names]  # matplotlib's font code raises on names that are not UTF-8
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels=names, fontsize=8)
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
    try:
        with atomic_path(out_png, suffix=".tmp.png") as tmp:  # a full disk leaves no half image
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return out_png


UNKNOWN_COLOR = "#9e9e9e"  #: timeline colour of an "unknown action" span
NOBODY_COLOR = "#e6e6e6"  #: timeline colour of a span where nobody is seen


def plot_timeline(rows: Sequence[Mapping], duration_s: float, out_png: str | Path,
                  classes: Sequence[str]) -> Path:
    """A timeline: time across, one row per person, a colour per action, a legend.

    Args:
        rows: Timeline rows with ``start_s``, ``end_s``, ``person`` (None for the scene or nobody),
            ``state`` (``action``, ``unknown`` or ``nobody``) and ``label`` (see
            ``skelact.stream.timeline.Segment.to_dict``).
        duration_s: Length of the video.
        out_png: Output image.
        classes: Class names; each keeps its colour (tab20 by class index) from video to video.
    """
    from matplotlib.patches import Patch

    from skelact.viz.draw import PALETTE

    plt = _pyplot()
    cmap = plt.get_cmap("tab20")
    color = {c: cmap(i % 20) for i, c in enumerate(classes)}
    people = sorted({r["person"] for r in rows if r["state"] != "nobody"}, key=lambda p: (p is not None, p or 0))
    names = ["scene" if p is None else f"person {p}" for p in people]
    has_nobody = any(r["state"] == "nobody" for r in rows)
    if has_nobody:
        names.append("nobody")
    n = max(1, len(names))
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * n))
    y_of = {p: i for i, p in enumerate(people)}
    used: dict[str, object] = {}
    for r in rows:
        span = (float(r["start_s"]), float(r["end_s"]) - float(r["start_s"]))
        if r["state"] == "nobody":
            y, c, key = len(people), NOBODY_COLOR, "nobody"
        elif r["state"] == "unknown":
            y, c, key = y_of[r["person"]], UNKNOWN_COLOR, "unknown"
        else:
            y, c, key = y_of[r["person"]], color.get(r["label"], UNKNOWN_COLOR), printable(str(r["label"]))
        ax.broken_barh([span], (y - 0.4, 0.8), facecolors=c, edgecolors="none")
        used.setdefault(key, c)
    ax.set_yticks(range(len(names)), labels=names)
    for tick, p in zip(ax.get_yticklabels(), people, strict=False):
        if p is not None:  # the person's track colour, as in the overlay (PALETTE is BGR)
            b, g, r_ = PALETTE[(p - 1) % len(PALETTE)]
            tick.set_color((r_ / 255, g / 255, b / 255))
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, max(duration_s, 1e-3))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    order = [k for k in classes if k in used] + [k for k in ("unknown", "nobody") if k in used]
    if order:
        ax.legend(handles=[Patch(facecolor=used[k], label=k) for k in order], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100, format="png")
    plt.close(fig)
    return out_png

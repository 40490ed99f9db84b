"""Drawing skeletons and prediction panels on BGR frames (OpenCV).

Coordinates are pixels of the frame drawn on; for normalised or 3D keypoints first map them with
:func:`skelact.viz.video.to_canvas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from skelact.errors import printable
from skelact.skeleton import Layout, joint_present, resolve_layout

__all__ = ["PALETTE", "person_color", "draw_skeletons", "draw_panel", "draw_person_label", "draw_people_panel"]

#: Per-person colours (BGR), distinct on dark and light backgrounds; person m uses PALETTE[m % 8].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 128, 0),    # azure
    (0, 140, 255),    # orange
    (255, 0, 255),    # magenta
    (0, 255, 255),    # yellow
    (255, 255, 0),    # cyan
    (80, 80, 255),    # red
    (60, 220, 60),    # green
    (255, 80, 140),   # violet
)



def person_color(person: int) -> tuple[int, int, int]:
    """The track colour (BGR) of person number ``person`` (1, 2, ...): ``PALETTE[(person - 1) % 8]``."""
    return PALETTE[(person - 1) % len(PALETTE)]


_OK = (60, 200, 60)  # correct prediction (BGR green)
_WRONG = (60, 60, 230)  # wrong top-1 (BGR red)
_NEUTRAL = (200, 160, 60)  # prediction without a known true label
_OTHER = (150, 150, 150)
_TEXT = (235, 235, 235)
_PANEL_BG = (32, 32, 32)


def import_cv2() -> ModuleType:
    """Import OpenCV, or fail with the extra to install."""
    try:
        import cv2
    except ImportError:
        raise ImportError('drawing and video writing need OpenCV: pip install "skelact[pose]"') from None
    return cv2


def default_thickness(height: int, width: int) -> int:
    """Line width for a frame: 2 px at 480p, 4 px at 1080p."""
    return max(1, round(min(height, width) / 250))


def draw_skeletons(frame: np.ndarray, keypoint: np.ndarray, score: np.ndarray | None = None,
                   layout: str | Path | Layout | None = "coco17", thickness: int | None = None,
                   threshold: float = 0.1, inplace: bool = False,
                   colors: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Draw people's joints (circles) and bones (the layout's limbs) in per-person colours.

    Args:
        frame: uint8 [H, W, 3] BGR image.
        keypoint: [M, V, 2] (or [V, 2]) pixel x, y.
        score: [M, V] (or [V]) joint confidences; joints with score <= ``threshold`` are skipped.
            Joints at exactly (0, 0) are missing and skipped too.
        layout: Layout (name, file or object); ``None`` infers it from V.
        thickness: Line width in pixels (default scales with the frame size).
        threshold: Score threshold.
        inplace: Draw on ``frame`` itself instead of a copy.
        colors: BGR colour of each of the M people (default ``PALETTE[m % 8]``).

    Returns:
        The drawn frame.
    """
    cv2 = import_cv2()
    keypoint = np.asarray(keypoint)
    if keypoint.ndim == 2:
        keypoint = keypoint[None]
        score = None if score is None else np.asarray(score)[None]
    if keypoint.ndim != 3 or keypoint.shape[-1] != 2:
        raise ValueError(f"expected pixel keypoints [M, V, 2], got {list(keypoint.shape)} "
                         "(map 3D or normalised keypoints with skelact.viz.video.to_canvas first)")
    if score is not None and np.shape(score) != keypoint.shape[:2]:
        raise ValueError(f"score shape {list(np.shape(score))} does not match keypoint [M, V] "
                         f"{list(keypoint.shape[:2])}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] frame, got {frame.dtype} {list(frame.shape)}")
    lay = resolve_layout(layout, None, keypoint.shape[1], "the keypoints")
    out = frame if inplace else frame.copy()
    h, w = out.shape[:2]
    th = thickness or default_thickness(h, w)
    radius = th + 1
    ok = joint_present(keypoint, score, threshold)  # [M, V]
    # Sub-pixel drawing: shift=2 keeps 2 fractional bits so slow motion does not jitter.
    pts = np.round(np.nan_to_num(keypoint) * 4).clip(-(1 << 28), 1 << 28).astype(np.int64)
    for m in range(len(keypoint)):
        color = PALETTE[m % len(PALETTE)] if colors is None else colors[m]
        for a, b in lay.limbs:
            if ok[m, a] and ok[m, b]:
                cv2.line(out, tuple(map(int, pts[m, a])), tuple(map(int, pts[m, b])), color, th, cv2.LINE_AA, 2)
        for v in np.flatnonzero(ok[m]):
            cv2.circle(out, tuple(map(int, pts[m, v])), radius * 4, color, -1, cv2.LINE_AA, 2)
    return out


def _fit_text(cv2: ModuleType, text: str, max_width: int, scale: float, th: int) -> str:
    """``text`` in ASCII (Hershey fonts have nothing else), cut with '...' to fit ``max_width`` px."""
    text = text.encode("ascii", "replace").decode()
    if cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0][0] <= max_width:
        return text
    while text and cv2.getTextSize(text + "...", cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0][0] > max_width:
        text = text[:-1]
    return text + "..."


def _wrap_text(cv2: ModuleType, text: str, max_width: int, scale: float, th: int, max_lines: int = 2) -> list[str]:
    """``text`` broken at spaces into at most ``max_lines`` lines of ``max_width`` px (the last cut with '...')."""
    text = text.encode("ascii", "replace").decode()
    lines: list[str] = []
    words = text.split(" ")
    while words and len(lines) < max_lines - 1:
        n = len(words)
        while n > 1 and cv2.getTextSize(" ".join(words[:n]), cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0][0] > max_width:
            n -= 1
        if n == len(words):
            break
        lines.append(_fit_text(cv2, " ".join(words[:n]), max_width, scale, th))
        words = words[n:]
    lines.append(_fit_text(cv2, " ".join(words), max_width, scale, th))
    return lines


def _blank_panel(h: int, width: int | None) -> tuple[np.ndarray, int, float, int, int, int]:
    """An empty side panel of height ``h`` and its text metrics: (panel, font, scale, thickness, line
    height, padding); ``width`` defaults to a third of the height, at least 200."""
    cv2 = import_cv2()
    width = width or max(200, h // 3)
    panel = np.full((h, width, 3), _PANEL_BG, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale, th = _text_style(h)
    line = int(cv2.getTextSize("Ag", font, scale, th)[0][1] * 1.8) + 2
    return panel, font, scale, th, line, max(6, width // 25)


def _percent(cv2: ModuleType, prob: float, scale: float, th: int) -> tuple[str, int]:
    """``prob`` (clipped to [0, 1]) as ``"93%"`` and that text's width in pixels."""
    pct = f"{100 * float(np.clip(prob, 0.0, 1.0)):.0f}%"
    return pct, cv2.getTextSize(pct, cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0][0]


def _prob_bar(cv2: ModuleType, panel: np.ndarray, y: int, bar_h: int, pad: int, prob: float,
              color: tuple[int, int, int]) -> None:
    """A probability bar across the panel ending at row ``y``: grey track, ``prob`` of it in ``color``."""
    width = panel.shape[1]
    p = float(np.clip(prob, 0.0, 1.0))
    cv2.rectangle(panel, (pad, y - bar_h), (width - pad, y), (70, 70, 70), -1)
    if p > 0:
        cv2.rectangle(panel, (pad, y - bar_h), (pad + round(p * (width - 2 * pad)), y), color, -1)


def draw_panel(frame: np.ndarray, topk: Sequence[tuple[str, float]], true_label: str | None = None,
               width: int | None = None) -> np.ndarray:
    """Append a side panel to the right of ``frame`` listing the top-k actions with probability bars.

    The row of the true label is green; a wrong top-1 is red; without a true label the top-1 is
    blue. The true label is written under the list.

    Args:
        frame: uint8 [H, W, 3] BGR image.
        topk: (class name, probability in [0, 1]) pairs, most probable first.
        true_label: The clip's real action, if known.
        width: Panel width in pixels (default: a third of the frame height, at least 200).

    Returns:
        A new uint8 [H, W + width, 3] image.
    """
    cv2 = import_cv2()
    # OpenCV crashes on text that cannot be encoded (class names from a file need not be UTF-8).
    topk = [(printable(name), prob) for name, prob in topk]
    true_label = None if true_label is None else printable(true_label)
    h = frame.shape[0]
    panel, font, scale, th, line, pad = _blank_panel(h, width)
    width = panel.shape[1]
    bar_h = max(4, line // 3)
    y = pad + line

    cv2.putText(panel, "prediction", (pad, y), font, scale, _TEXT, th, cv2.LINE_AA)
    y += line // 2
    for i, (name, prob) in enumerate(topk):
        if y + line + bar_h > h - 2 * line:  # keep room for the true label
            break
        if true_label is not None and name == true_label:
            color = _OK
        elif i == 0:
            color = _WRONG if true_label is not None else _NEUTRAL
        else:
            color = _OTHER
        pct, pct_w = _percent(cv2, prob, scale, th)
        # A long name (NTU's "wear on glasses", a user's own classes) wraps onto a second line.
        labels = _wrap_text(cv2, f"{i + 1}. {name}", width - 3 * pad - pct_w, scale, th)
        if y + line * len(labels) + bar_h > h - 2 * line:
            labels = labels[:1]
        y += line
        cv2.putText(panel, pct, (width - pad - pct_w, y), font, scale, color, th, cv2.LINE_AA)
        for k, label in enumerate(labels):
            cv2.putText(panel, label, (pad, y + k * line), font, scale, color, th, cv2.LINE_AA)
        y += line * (len(labels) - 1)
        y += bar_h + 2
        _prob_bar(cv2, panel, y, bar_h, pad, prob, color)
    if true_label is not None:
        y_true = h - pad
        cv2.putText(panel, _fit_text(cv2, f"true: {true_label}", width - 2 * pad, scale, th), (pad, y_true), font,
                    scale, _OK if topk and topk[0][0] == true_label else _TEXT, th, cv2.LINE_AA)
    return np.concatenate([frame, panel], axis=1)


def _text_style(h: int) -> tuple[float, int]:
    """Font scale and stroke for a frame ``h`` pixels high (the panel's rule)."""
    scale = float(np.clip(h / 900, 0.35, 1.2))
    return scale, max(1, round(scale * 1.5))


def draw_person_label(frame: np.ndarray, keypoint: np.ndarray, score: np.ndarray | None, text: str,
                      color: tuple[int, int, int], threshold: float = 0.1,
                      avoid: list[tuple[int, int, int, int]] | None = None) -> tuple[int, int, int, int] | None:
    """Write ``text`` above a person (over the top of their present joints), in ``color``, in place.

    Args:
        frame: uint8 [H, W, 3] BGR image, drawn on.
        keypoint: [V, 2] pixel x, y of the person.
        score: [V] joint scores or None; joints at or below ``threshold`` are ignored.
        text: The label, e.g. ``Prediction.describe()``.
        color: BGR text colour (the person's track colour).
        threshold: Score threshold.
        avoid: Boxes (x1, y1, x2, y2) of labels already drawn; this one moves up (or down, at the
            top of the frame) until it overlaps none, and its box is appended.

    Returns:
        The label's box, or None (nothing drawn) when the person has no present joint.
    """
    cv2 = import_cv2()
    ok = joint_present(np.asarray(keypoint)[None], None if score is None else np.asarray(score)[None], threshold)[0]
    if not ok.any():
        return None
    h, w = frame.shape[:2]
    pts = np.asarray(keypoint, np.float64)[ok]
    scale, th = _text_style(h)
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = _fit_text(cv2, printable(text), w - 4, scale, th)  # OpenCV crashes on text that is not UTF-8
    (tw, tht), base = cv2.getTextSize(text, font, scale, th)
    pad = max(2, tht // 3)
    x = int(np.clip((pts[:, 0].min() + pts[:, 0].max()) / 2 - tw / 2, pad, max(pad, w - tw - pad)))
    # Above the head, pushed below the top edge when the person is at the top of the frame.
    lo, hi = tht + pad, max(tht + pad, h - base - pad)
    y = int(np.clip(pts[:, 1].min() - 2 * pad - base, lo, hi))
    step = tht + base + 2 * pad + 1

    def box(y: int) -> tuple[int, int, int, int]:
        return x - pad, y - tht - pad, x + tw + pad, y + base + pad

    def hits(b: tuple[int, int, int, int]) -> bool:
        return any(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3] for o in avoid or ())

    for direction in (-1, 1):  # up first, then down from the start
        cand = y
        while hits(box(cand)) and lo <= cand + direction * step <= hi:
            cand += direction * step
        if not hits(box(cand)):
            y = cand
            break
    b = box(y)
    cv2.rectangle(frame, b[:2], b[2:], _PANEL_BG, -1)
    cv2.putText(frame, text, (x, y), font, scale, color, th, cv2.LINE_AA)
    if avoid is not None:
        avoid.append(b)
    return b


def draw_people_panel(frame: np.ndarray, people: Sequence[tuple[int | None, object]], topk: int = 3,
                      width: int | None = None, title: str = "now") -> np.ndarray:
    """Append a side panel listing each person's current top-k, headed in their track colour.

    Args:
        frame: uint8 [H, W, 3] BGR image.
        people: ``(person number or None for the scene, Prediction or None)`` pairs; a person
            without a prediction yet is listed as "...".
        topk: Classes listed per person.
        width: Panel width (default: a third of the frame height, at least 200).
        title: First line of the panel.

    Returns:
        A new uint8 [H, W + width, 3] image.
    """
    cv2 = import_cv2()
    h = frame.shape[0]
    panel, font, scale, th, line, pad = _blank_panel(h, width)
    width = panel.shape[1]
    bar_h = max(3, line // 4)
    y = pad + line
    cv2.putText(panel, printable(title), (pad, y), font, scale, _TEXT, th, cv2.LINE_AA)
    for person, pred in people:
        if y + 2 * line > h:
            break
        color = _NEUTRAL if person is None else person_color(person)
        head = "scene" if person is None else f"person {person}"
        if pred is not None and getattr(pred, "unknown", False):
            head += ": unknown action"
        y += line + line // 3
        # A solid swatch of the track colour: thin coloured text alone is hard to match to a
        # skeleton on a compressed video, and an unknown person's rows are grey.
        sw = max(6, (line * 2) // 3)
        cv2.rectangle(panel, (pad, y - sw), (pad + sw, y), color, -1)
        x = pad + sw + max(4, pad // 2)
        cv2.putText(panel, _fit_text(cv2, head, width - pad - x, scale, th), (x, y), font, scale, color, th,
                    cv2.LINE_AA)
        rows = [] if pred is None else list(pred.topk)[:topk]  # type: ignore[attr-defined]
        if pred is None:
            y += line
            cv2.putText(panel, "...", (pad, y), font, scale, _OTHER, th, cv2.LINE_AA)
        for i, (name, prob) in enumerate(rows):
            if y + line + bar_h > h:
                break
            pct, pct_w = _percent(cv2, prob, scale, th)
            shade = color if i == 0 and not getattr(pred, "unknown", False) else _OTHER
            y += line
            cv2.putText(panel, pct, (width - pad - pct_w, y), font, scale, shade, th, cv2.LINE_AA)
            cv2.putText(panel, _fit_text(cv2, printable(name), width - 3 * pad - pct_w, scale, th), (pad, y), font,
                        scale, shade,
                        th, cv2.LINE_AA)
            y += bar_h + 2
            _prob_bar(cv2, panel, y, bar_h, pad, prob, shade)
    return np.concatenate([frame, panel], axis=1)

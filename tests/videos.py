"""Helpers shared by the video tests: write a small video, count its frames, run the CLI for its exit status."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from skelact.cli import main


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """MJPG video of uint8 BGR ``frames`` (size from the first); returns ``path``."""
    import cv2

    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, first.shape[1::-1])
    assert writer.isOpened()
    writer.write(first)
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def frame_count(path: Path) -> int:
    """Frames OpenCV decodes from ``path``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def cli_status(argv: list[str]) -> int:
    """``main(argv)``'s exit status, usage errors (SystemExit from argparse) included."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def colour_pixels(frame: np.ndarray, bgr: tuple[int, int, int]) -> int:
    """How many pixels of ``frame`` are close to the colour ``bgr``."""
    return int((np.abs(frame.astype(int) - np.array(bgr)).sum(-1) < 60).sum())

"""Synthetic Penn-like clips, a tiny data file, recipe and model spec, a small labelled video folder, real raw NTU
clips as other activities, and synthetic people (a figure to draw, stick-person detections) shared by the tests."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from skelact.data.io import save_annotations

# A two-block ST-GCN++ (a few thousand parameters): the real model code, at test-suite speed.
TINY_MODEL = {"name": "stgcnpp", "kwargs": {"channels": [8, 8], "strides": [1, 2], "dilations": [1, 2]}}


def penn_clip(name: str, label: int, frames: int, rng: np.random.Generator) -> dict:
    """A Penn-like 2D clip (13 joints, 1 person, 480x360) oscillating at a class-specific rate."""
    base = rng.uniform(150, 300, size=(1, 1, 13, 2))
    phase = np.linspace(0, 2 * np.pi * (label + 1), frames)[None, :, None, None] + np.arange(13)[None, None, :, None]
    kp = base + 40 * np.sin(phase) + rng.normal(0, 2, size=(1, frames, 13, 2))
    return {"frame_dir": name, "total_frames": frames, "img_shape": (360, 480), "original_shape": (360, 480),
            "label": label, "keypoint": kp.astype(np.float32),
            "keypoint_score": rng.uniform(0.5, 1.0, size=(1, frames, 13)).astype(np.float32)}


def make_dataset(path: Path, classes: int = 3, per_class: int = 8, frames: int = 24) -> Path:
    """A PYSKL file of Penn-like clips (see :func:`penn_clip`): splits train / test (3:1), class names, penn13."""
    rng = np.random.default_rng(0)
    anns = [penn_clip(f"c{c}_{i:02d}", c, frames + int(rng.integers(-4, 5)), rng)
            for c in range(classes) for i in range(per_class)]
    names = [a["frame_dir"] for a in anns]
    split = {"train": [n for k, n in enumerate(names) if k % 4], "test": [n for k, n in enumerate(names) if k % 4 == 0]}
    save_annotations({"split": split, "annotations": anns, "classes": [f"action{c}" for c in range(classes)],
                      "layout": "penn13"}, path)
    return path


def recipe(ann_file: Path, **optim: object) -> dict:
    """A 2-epoch recipe of the tiny model on :func:`make_dataset`'s file (``optim`` keys override)."""
    return {
        "data": {"ann_file": str(ann_file), "clip_len": 16, "max_persons": 1, "features": ["joint", "bone"],
                 "augment": {"flip": 0.5, "rotate": 10, "scale": [0.9, 1.1], "shift": 0.05},
                 "batch_size": 6, "num_workers": 0, "num_clips_val": 2},
        "model": copy.deepcopy(TINY_MODEL),  # a test may edit its recipe: never the shared dict
        "optim": {"name": "sgd", "lr": 0.05, "epochs": 2, "warmup_epochs": 0.5, "clip_grad": 5.0, **optim},
        "seed": 0,
        "device": "cpu",
    }


def raw_ntu_file(data_root: Path, root: Path, count: int) -> Path:
    """``root/ntu.pkl``: the first ``count`` real raw NTU RGB+D files of ``data_root/ntu_raw`` (drink water,
    ...: no class of the tiny model) converted to 2D, layout ntu25: clips of other activities."""
    import shutil

    from skelact.data.convert import convert_ntu

    raw = root / "raw"
    raw.mkdir()
    for name in sorted((data_root / "ntu_raw").glob("*.skeleton"))[:count]:
        shutil.copy(name, raw)
    data, _ = convert_ntu(raw, dims=2)
    return save_annotations(data, root / "ntu.pkl")


def labelled_video_folder(root: Path, source: Path, clips: int = 4, frames: int = 18,
                          size: tuple[int, int] = (640, 360)) -> Path:
    """A small labelled folder ``root/<class>/clip_<i>.avi`` cut from a real video.

    Class ``forward`` holds ``clips`` consecutive ``frames``-frame pieces of ``source`` resized to
    ``size`` (width, height); class ``reversed`` holds the same pieces played backwards, so that
    ``reversed/clip_<i>`` shows the frames of ``forward/clip_<clips-1-i>`` in reverse order. MJPG
    compresses every frame on its own: but for the first and last frame of a file (which the encoder
    treats differently), equal frames decode to equal pixels in both classes.
    """
    import cv2

    cap = cv2.VideoCapture(str(source))
    decoded = []
    while len(decoded) < clips * frames:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if len(decoded) < clips * frames:
        raise ValueError(f"{source}: {len(decoded)} frames, {clips * frames} needed")
    for name, seq in (("forward", decoded), ("reversed", decoded[::-1])):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(clips):
            writer = cv2.VideoWriter(str(root / name / f"clip_{i}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
            for frame in seq[i * frames:(i + 1) * frames]:
                writer.write(frame)
            writer.release()
    return root


def figure_joints(cx: float, cy: float) -> np.ndarray:
    """coco17 joints [17, 2] of a small upright figure centred at (cx, cy) (for drawing tests)."""
    rel = np.array([
        [0, -40], [-4, -44], [4, -44], [-8, -42], [8, -42],  # face
        [-14, -28], [14, -28], [-20, -12], [20, -12], [-24, 2], [24, 2],  # arms
        [-8, 2], [8, 2], [-9, 22], [9, 22], [-10, 42], [10, 42],  # legs
    ], np.float32)
    return rel + np.array([cx, cy], np.float32)


# 17 joints on a circle of 6 px: each joint of a stick person at a distinct, known offset.
STICK_OFFSETS = np.stack([np.cos(np.arange(17)), np.sin(np.arange(17))], -1).astype(np.float32) * 6  # [17, 2]


def stick_person(x: float, y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One detection at (x, y) for the tracker and stream tests: keypoints [17, 2], scores [17], box [4]."""
    kp = STICK_OFFSETS + np.array([x, y], np.float32)
    return kp, np.full(17, 0.9, np.float32), np.array([x - 8, y - 8, x + 8, y + 8], np.float32)

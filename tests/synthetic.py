"""Synthetic Penn-like clips and a tiny model spec shared by the engine, inference and export tests."""

from __future__ import annotations

import numpy as np

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

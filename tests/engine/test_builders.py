"""What the engine builds from a recipe (skelact.engine.builders): the learning-rate schedule, the overfit
subset, the pipelines and their augmentation order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import recipe

from skelact.config import config_from_dict
from skelact.engine import builders
from skelact.skeleton import get_layout

pytestmark = pytest.mark.usefixtures("one_thread")


def test_warmup_cosine_schedule() -> None:
    lrs = [builders.warmup_cosine(s, total=10, warmup=2) for s in range(10)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == 1.0 and lrs[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_overfit_indices_are_stratified_and_deterministic() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    picked = builders.overfit_indices(labels, np.arange(9), 5)
    np.testing.assert_array_equal(picked, [0, 1, 3, 4, 5])  # round 1: 0, 3, 5; round 2: 1, 4
    np.testing.assert_array_equal(builders.overfit_indices(labels, np.arange(9), 100), np.arange(9))


def test_forced_flip_mirrors_pixels_about_the_image_centre(ann_file: Path) -> None:
    cfg = config_from_dict({**recipe(ann_file), "data": {"ann_file": str(ann_file), "normalize": "none",
                                                          "features": ["joint"], "max_persons": 1, "clip_len": 8}})
    packed = builders.load_clips(cfg.data)
    layout = builders.resolve_layout(cfg.data, packed)
    plain = builders.build_pipeline(cfg.data, layout, 2, train=False)
    flipped = builders.build_pipeline(cfg.data, layout, 2, train=False, force_flip=True)
    rng = np.random.default_rng(0)
    a = plain(packed.clip(0), rng)["inputs"]  # [1, 1, 8, 13, 3]
    b = flipped(packed.clip(0), rng)["inputs"]
    np.testing.assert_allclose(b[..., 0], 480 - a[..., layout.flip_index, 0], rtol=1e-6)
    np.testing.assert_array_equal(b[..., 2], a[..., layout.flip_index, 2])


def test_3d_scale_goes_with_the_viewpoint_rotation(ann_file: Path) -> None:
    from skelact.data.transforms import RandomAffine2D, RandomRotate3D

    data = {"ann_file": str(ann_file), "normalize": "center3d", "augment": {"rotate3d": 60, "scale": [0.5, 1.5]}}
    cfg = config_from_dict({**recipe(ann_file), "data": data})
    steps = builders.build_pipeline(cfg.data, get_layout("penn13"), 3, train=True).transforms
    view = [s for s in steps if isinstance(s, RandomRotate3D)]
    assert len(view) == 1 and view[0].scale_range == (0.5, 1.5)
    assert view[0].max_angle == pytest.approx(np.pi / 3)
    assert not any(isinstance(s, RandomAffine2D) for s in steps)  # not scaled twice


def test_axes_normalisation_comes_after_the_viewpoint_augmentation(ann_file: Path) -> None:
    from skelact.data.transforms import NormalizeAxes, RandomFlip, RandomRotate3D

    data = {"ann_file": str(ann_file), "normalize": "axes", "augment": {"flip": 0.5, "rotate3d": 30}}
    cfg = config_from_dict({**recipe(ann_file), "data": data})
    kinds = [type(s) for s in builders.build_pipeline(cfg.data, get_layout("penn13"), 3, train=True).transforms]
    assert kinds.index(RandomFlip) < kinds.index(RandomRotate3D) < kinds.index(NormalizeAxes) == len(kinds) - 2
    test = builders.build_pipeline(cfg.data, get_layout("penn13"), 3, train=False, force_flip=True).transforms
    assert [type(s) for s in test][-3:-1] == [RandomFlip, NormalizeAxes]

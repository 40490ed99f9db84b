"""Checks shared by the converter tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from skelact.data.io import validate_annotations


def _check_converted(data: dict, layout: str, num_joints: int, dims: int, scores: bool) -> None:
    """Shapes, dtypes and labels of every clip; every clip in exactly one split of each pair."""
    assert data["layout"] == layout
    n_cls = len(data["classes"])
    for ann in data["annotations"]:
        kp = ann["keypoint"]
        m, t, v, c = kp.shape
        assert (v, c) == (num_joints, dims) and m >= 1 and t == ann["total_frames"] > 0
        assert kp.dtype == np.float32 and np.isfinite(kp).all()
        assert 0 <= ann["label"] < n_cls and isinstance(ann["label"], int)
        if scores:
            assert ann["keypoint_score"].shape == (m, t, v) and ann["keypoint_score"].dtype == np.float32
            assert len(ann["img_shape"]) == 2 and ann["original_shape"] == ann["img_shape"]
        else:
            assert "keypoint_score" not in ann and "img_shape" not in ann
    validate_annotations(data, source=layout)  # the lead's validator accepts what we produce


@pytest.fixture
def check_converted() -> Callable[..., None]:
    """``check_converted(data, layout, num_joints, dims, scores)``: see :func:`_check_converted`."""
    return _check_converted

"""The model registry (skelact.models.registry): names, input kinds, errors."""

from __future__ import annotations

import pytest

from skelact.models import create_model, list_models, model_info


def test_registry() -> None:
    names = list_models()
    assert {"kpc3d", "stgcnpp", "poseconv3d_c3d", "poseconv3d_slowonly"} <= set(names)
    for name in names:
        info = model_info(name)
        assert info.input_kind in ("keypoint", "heatmap") and info.description
    assert model_info("poseconv3d_c3d").input_kind == "heatmap"
    with pytest.raises(ValueError, match="stgcnpp"):
        create_model("stgcn_pp", 10)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("poseconv3d_c3d", 10, in_channels=2)

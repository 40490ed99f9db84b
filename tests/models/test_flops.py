"""Parameter and MAC counts (skelact.models.flops) against the published figures."""

from __future__ import annotations

import pytest
import torch

from skelact.models import count_macs, count_params, create_model


@pytest.mark.parametrize(("name", "published"), [
    ("stgcnpp", 1.39e6), ("poseconv3d_c3d", 3.4e6), ("poseconv3d_slowonly", 2.0e6),
])
def test_param_counts_match_papers(name: str, published: float) -> None:
    model = create_model(name, 60, "coco17")
    assert abs(count_params(model) - published) <= 0.1 * published


def test_keypoint_model_costs() -> None:
    x = torch.randn(1, 2, 100, 17, 3)
    stgcn = create_model("stgcnpp", 60).eval()
    assert count_macs(stgcn, x) == pytest.approx(1.93e9, rel=0.05)
    kp = create_model("kpc3d", 60).eval()
    assert 0.5e6 <= count_params(kp) <= 2e6
    # At least 20x cheaper than PoseConv3D-SlowOnly's 15.6 GMACs, even at 100 frames.
    assert count_macs(kp, x) <= 15.6e9 / 20


def test_importing_the_models_does_not_import_the_flop_counter() -> None:
    """torch's FLOP counter warns on import under CUDA builds without triton (the default wheel), which
    would put a second line under every one-line error: it is imported only to count."""
    import subprocess
    import sys

    code = ("import sys, skelact.models, skelact.inference, skelact.engine.train\n"
            "print('torch.utils.flop_counter' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

"""PoseConv3D's layers (skelact.models.poseconv3d)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("shape", [(2, 5, 3, 8, 6), (1, 4, 2, 7, 9)])
def test_spatial_avg_pool_keeps_channels_last_with_avg_pool3d_values_and_gradients(shape: tuple[int, ...]) -> None:
    """C3D-light's 1x2x2 pooling: AvgPool3d's values and gradients (odd sizes floored), channels-last out."""
    from skelact.models.poseconv3d import SpatialAvgPool

    torch.manual_seed(0)
    ref_in = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = ref_in.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    ref = torch.nn.AvgPool3d((1, 2, 2), (1, 2, 2))(ref_in)
    out = SpatialAvgPool()(x)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(x.grad, ref_in.grad, rtol=0, atol=1e-12)
    # The default layout takes AvgPool3d itself.
    torch.testing.assert_close(SpatialAvgPool()(ref_in.detach()), ref.detach(), rtol=0, atol=0)

"""PoseConv3D (Duan et al., "Revisiting Skeleton-based Action Recognition", CVPR 2022).

Keypoints become a stack of Gaussian pseudo-heatmaps (channels = joints, limbs or one), drawn
inside the model on the input's device by :class:`~skelact.models.heatmap.PoseHeatmap`, and a
3D-CNN classifies the ``(N, K, T, H, W)`` volume:

* C3D-light: six 3x3x3 conv-BN-ReLU layers (32, 64, 128, 128, 256, 256 channels) with 1x2x2
  average pooling between stages (no temporal downsampling); 3.4M parameters with 17 joint
  channels and a 60-class head.
* SlowOnly-R50 pathway: a 1x7x7 stem without stride or pooling, then three bottleneck ResNet
  stages of 4, 6 and 3 blocks (widths 32, 64, 128 -> 128, 256, 512 out), spatial stride 2 in
  each, temporal stride 2 in the last; the first stage uses 1x1x1 first convs, the later stages
  3x1x1 ("inflated"); 2.0M parameters.

Head: global average pool over (T, H, W), dropout 0.5, linear.

The backbone's weights and the heatmap volume are kept channels-last (``torch.channels_last_3d``,
memory order N, T, H, W, C): oneDNN's 3D convolutions then skip reordering their inputs and
weights, and a C3D-light / SlowOnly-R50 training step ran 1.16x / 1.35x faster on the CPU
benchmark machine (BENCHMARKS.md). The values, shapes and state dicts are those of the default layout.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..skeleton import Layout
from .heatmap import PoseHeatmap
from .registry import register_model

__all__ = ["SpatialAvgPool", "C3DLight", "SlowOnly", "PoseConv3D", "poseconv3d_c3d", "poseconv3d_slowonly"]


def _conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
                  relu: bool = True) -> nn.Sequential:
    pad = tuple(k // 2 for k in kernel)
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm3d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SpatialAvgPool(nn.Module):
    """2x2 average pooling over (H, W) of every frame, ``(N, C, T, H, W) -> (N, C, T, H/2, W/2)``.

    The same values as ``nn.AvgPool3d((1, 2, 2))``, but a channels-last volume stays channels-last:
    torch's CPU ``avg_pool3d`` has no channels-last kernel, so it copies the volume to the default
    layout and back (forward and backward). Memory order (N, T, H, W, C) is the channels-last 2D
    layout of ``(N*T, C, H, W)``, whose ``avg_pool2d`` has such a kernel. C3D-light's training step
    ran 1.075x faster with it on the CPU benchmark machine (``benchmarks/c3d_pooling.py``).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_contiguous(memory_format=torch.channels_last_3d) or x.is_contiguous():
            return F.avg_pool3d(x, (1, 2, 2), (1, 2, 2))  # default layout (e.g. inside an ONNX export)
        n, c, t, h, w = x.shape
        y = F.avg_pool2d(x.transpose(1, 2).reshape(n * t, c, h, w), 2, 2)  # a view: no copy
        return y.reshape(n, t, c, h // 2, w // 2).transpose(1, 2)


def _avg_pool(kernel: tuple[int, int, int]) -> nn.Module:
    return SpatialAvgPool() if kernel == (1, 2, 2) else nn.AvgPool3d(kernel, kernel)


class C3DLight(nn.Module):
    """C3D-light backbone: ``(N, K, T, H, W) -> (N, 8 * base, T', H / 8, W / 8)``.

    Args:
        in_channels: Heatmap channels K.
        base_channels: Width of the first conv.
        temporal_downsample: Also halve T at the 2nd and 3rd pooling.
    """

    def __init__(self, in_channels: int, base_channels: int = 32, temporal_downsample: bool = False) -> None:
        super().__init__()
        c = base_channels
        k = (3, 3, 3)
        pool = (2, 2, 2) if temporal_downsample else (1, 2, 2)
        self.layers = nn.Sequential(
            _conv_bn_relu(in_channels, c, k),
            _avg_pool((1, 2, 2)),
            _conv_bn_relu(c, 2 * c, k),
            _avg_pool(pool),
            _conv_bn_relu(2 * c, 4 * c, k),
            _conv_bn_relu(4 * c, 4 * c, k),
            _avg_pool(pool),
            _conv_bn_relu(4 * c, 8 * c, k),
            _conv_bn_relu(8 * c, 8 * c, k),
        )
        self.out_channels = 8 * c

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Bottleneck3d(nn.Module):
    """ResNet bottleneck in 3D: (3x1x1 or 1x1x1) -> 1x3x3 (strided) -> 1x1x1, expansion 4."""

    expansion = 4

    def __init__(self, cin: int, planes: int, spatial_stride: int = 1, temporal_stride: int = 1,
                 inflate: bool = False) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = _conv_bn_relu(cin, planes, (3, 1, 1) if inflate else (1, 1, 1))
        self.conv2 = _conv_bn_relu(planes, planes, (1, 3, 3), (temporal_stride, spatial_stride, spatial_stride))
        self.conv3 = _conv_bn_relu(planes, cout, (1, 1, 1), relu=False)
        # Zero-init the last BN so every block starts as the identity (helps from-scratch training).
        nn.init.zeros_(self.conv3[1].weight)
        self.down: nn.Module = nn.Identity()
        if cin != cout or spatial_stride != 1 or temporal_stride != 1:
            self.down = _conv_bn_relu(cin, cout, (1, 1, 1), (temporal_stride, spatial_stride, spatial_stride),
                                      relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.down(x))


class SlowOnly(nn.Module):
    """SlowOnly ResNet3d pathway of PoseConv3D: ``(N, K, T, H, W) -> (N, 16 * base, T / 2, H / 8, W / 8)``.

    Args:
        in_channels: Heatmap channels K.
        base_channels: Stem width; stage ``i`` has ``base * 2**i`` bottleneck planes.
        stage_blocks: Blocks per stage.
        inflate: Per stage, whether the first conv of each block is 3x1x1.
        spatial_strides: Per stage.
        temporal_strides: Per stage.
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 32,
        stage_blocks: tuple[int, ...] = (4, 6, 3),
        inflate: tuple[bool, ...] = (False, True, True),
        spatial_strides: tuple[int, ...] = (2, 2, 2),
        temporal_strides: tuple[int, ...] = (1, 1, 2),
    ) -> None:
        super().__init__()
        # Heatmaps are already small (56 px): no stride or pooling in the stem.
        self.stem = _conv_bn_relu(in_channels, base_channels, (1, 7, 7))
        stages = []
        cin = base_channels
        for i, n_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            blocks = [Bottleneck3d(cin, planes, spatial_strides[i], temporal_strides[i], inflate[i])]
            cin = planes * Bottleneck3d.expansion
            blocks += [Bottleneck3d(cin, planes, 1, 1, inflate[i]) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


class PoseConv3D(nn.Module):
    """Heatmap drawing + 3D-CNN backbone + linear head.

    Input ``(N, M, T, V, 3)`` (pixel x, y, score), output ``(N, num_classes)``.
    """

    def __init__(self, heatmap: PoseHeatmap, backbone: nn.Module, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.heatmap = heatmap
        self.backbone = backbone.to(memory_format=torch.channels_last_3d)
        self.num_features: int = backbone.out_channels  # type: ignore[assignment]
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, M, T, V, 3)`` -> backbone features ``(N, C, T', H', W')``."""
        hm = self.heatmap(x)
        if not torch.onnx.is_in_onnx_export():  # a memory layout is not part of an ONNX graph
            hm = hm.contiguous(memory_format=torch.channels_last_3d)
        return self.backbone(hm)

    def forward_head(self, features: Tensor) -> Tensor:
        """Global average pool, dropout, linear: ``(N, num_classes)``."""
        return self.fc(self.drop(features.mean(dim=(2, 3, 4))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _heatmap(layout: Layout, in_channels: int, heatmap: str, sigma: float, size: int, test_size: int,
             **aug: object) -> PoseHeatmap:
    if in_channels != 3:
        raise ValueError(f"heatmap models take (x, y, score) input, in_channels=3; got {in_channels}")
    return PoseHeatmap(layout, heatmap, sigma, size, test_size, **aug)  # type: ignore[arg-type]


@register_model("poseconv3d_c3d", input_kind="heatmap")
def poseconv3d_c3d(
    num_classes: int,
    layout: str | Layout = "coco17",
    in_channels: int = 3,
    heatmap: str = "joint",
    sigma: float = 0.6,
    size: int = 56,
    test_size: int = 64,
    base_channels: int = 32,
    temporal_downsample: bool = False,
    dropout: float = 0.5,
    **aug: object,
) -> PoseConv3D:
    """PoseConv3D with the C3D-light backbone on joint/limb/single heatmaps (3.4M params)."""
    hm = _heatmap(layout, in_channels, heatmap, sigma, size, test_size, **aug)  # type: ignore[arg-type]
    return PoseConv3D(hm, C3DLight(hm.out_channels, base_channels, temporal_downsample), num_classes, dropout)


@register_model("poseconv3d_slowonly", input_kind="heatmap")
def poseconv3d_slowonly(
    num_classes: int,
    layout: str | Layout = "coco17",
    in_channels: int = 3,
    heatmap: str = "joint",
    sigma: float = 0.6,
    size: int = 56,
    test_size: int = 64,
    base_channels: int = 32,
    dropout: float = 0.5,
    **aug: object,
) -> PoseConv3D:
    """PoseConv3D with the SlowOnly-R50 pathway on joint/limb/single heatmaps (2.0M params)."""
    hm = _heatmap(layout, in_channels, heatmap, sigma, size, test_size, **aug)  # type: ignore[arg-type]
    return PoseConv3D(hm, SlowOnly(hm.out_channels, base_channels), num_classes, dropout)

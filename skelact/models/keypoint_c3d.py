"""Keypoint 3D-CNN: classify raw keypoint coordinates with a 3D-CNN, no heatmaps.

The input ``(N, M, T, V, C)`` is read as a 3D volume over (persons, frames, joints) with the C
coordinates (x, y, score, or any stacked features) as channels.

Axis order. The seed project tried (persons, joints, frames) and (joints, frames, persons)
volumes with cubic kernels; neither order is the point. What matters is which axes a kernel
should slide along:

* Coordinates are channels, never a spatial axis: x and y are not neighbouring samples of one
  signal, they are two features of one point.
* Persons have no order and no neighbourhood (person 0 vs 1 is an artefact of the tracker), so
  kernels span 1 along M: every person goes through the same weights (persons act as extra
  batch) and only the final mean over persons mixes them, which keeps the output invariant to
  person order and to a missing second person being zero-padded.
* Frames are a true 1D signal: temporal kernels and strides as in any video network.
* Joints are a graph, not a line. A kernel of width 3 along V mixes joints ``v-1, v, v+1``, which
  in native storage order are often unrelated (COCO: right ear, left shoulder, right shoulder).
  With ``joint_order='dfs'`` the V axis is the depth-first walk of the skeleton tree from its root
  that returns along each bone (2V - 1 entries, e.g. nose, left eye, left ear, left eye, nose, ...),
  so every pair of neighbours along V is a bone and a width-3 kernel sees a kinematic chain
  (shoulder-elbow-wrist). This is the default; ``'native'`` keeps the storage order (V instead
  of 2V - 1 positions: 0.88M params and 0.10 GMACs at 100 frames instead of 1.01M and 0.18).
  On Penn Action (2D, 13 joints, 32 frames, 30 epochs of SGD, test top-1 over two seeds) dfs
  reached 96.5 / 96.4 and native 96.3 / 95.7: a small but consistent edge for the chain.
* Translation invariance along V is wrong for joints (a wrist is not an ankle), so after the
  local (T, V) stages one conv spans the whole remaining V axis with its own weights per
  position, collapsing joints into channels; temporal residual blocks follow.

Network: input BN per (joint, coordinate) -> joint reordering -> stem conv (1, 3, 3) with
temporal stride 2 -> residual stages of (1, 3, 3) convs, stride 2 in T and V entering stages 2
and 3 -> joint-collapsing conv (1, 1, V') -> temporal residual block(s) (1, 3, 1) -> mean over
persons and frames -> dropout -> linear. BN and ReLU everywhere; trained with cross-entropy on
the logits.

Cost (MACs, FlopCounterMode): ``kpc3d`` ~0.19 G at 2 persons x 100 frames x 17 joints x 3
(0.09 G at 48 frames), ``kpc3d_small`` ~0.05 G; PoseConv3D SlowOnly is 15.6 G at 48 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..skeleton import Layout, get_layout
from .registry import register_model

__all__ = ["dfs_joint_order", "KeypointC3D", "kpc3d", "kpc3d_small"]


def dfs_joint_order(layout: str | Layout) -> list[int]:
    """Depth-first walk of the layout's skeleton tree from the root, returning along each bone.

    Consecutive entries are always joined by a bone; every joint appears, branch points
    repeatedly. Children are visited in index order.

    Returns:
        ``2V - 1`` joint indices, starting and ending at the root.
    """
    layout = get_layout(layout)
    parents = layout.parents
    children: list[list[int]] = [[] for _ in range(layout.num_joints)]
    for j, p in enumerate(parents):
        if j != layout.root:
            children[int(p)].append(j)
    # An explicit stack: a user's layout may be a chain of thousands of joints (recursion would
    # overflow). Each joint is written on entry and again after each child's subtree.
    order = [layout.root]
    stack = [(layout.root, iter(children[layout.root]))]
    while stack:
        child = next(stack[-1][1], None)
        if child is None:
            stack.pop()
            if stack:
                order.append(stack[-1][0])
        else:
            order.append(child)
            stack.append((child, iter(children[child])))
    return order


def _conv(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
          relu: bool = True, padding: tuple[int, int, int] | None = None) -> nn.Sequential:
    pad = padding if padding is not None else tuple(k // 2 for k in kernel)
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm3d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock3d(nn.Module):
    """Two convs with a residual; ``(N, C_in, M, T, V) -> (N, C_out, M, T/s_t, V/s_v)``."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, kernel, stride)
        self.conv2 = _conv(cout, cout, kernel, relu=False)
        nn.init.zeros_(self.conv2[1].weight)  # start as identity: stable from-scratch training
        self.down: nn.Module = nn.Identity()
        if cin != cout or stride != (1, 1, 1):
            self.down = _conv(cin, cout, (1, 1, 1), stride, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.down(x))


class KeypointC3D(nn.Module):
    """3D-CNN on keypoints ``(N, M, T, V, C)`` -> logits ``(N, num_classes)``.

    Args:
        num_classes: Output classes.
        layout: Skeleton layout (for V and the DFS joint order).
        in_channels: C.
        joint_order: ``'dfs'`` (bone-chain walk, 2V - 1 positions) or ``'native'``.
        widths: Channels of the local (T, V) stages; stages after the first halve T and V.
        depths: Residual blocks per stage.
        head_width: Channels after collapsing the joint axis.
        head_blocks: Temporal residual blocks after the collapse.
        temporal_kernel: Temporal extent of the (T, V) kernels.
        dropout: Before the linear head.
    """

    def __init__(
        self,
        num_classes: int,
        layout: str | Layout = "coco17",
        in_channels: int = 3,
        joint_order: str = "dfs",
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (1, 1, 1),
        head_width: int = 256,
        head_blocks: int = 1,
        temporal_kernel: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.layout = get_layout(layout)
        self.in_channels = in_channels
        v = self.layout.num_joints
        if joint_order == "dfs":
            order = dfs_joint_order(self.layout)
        elif joint_order == "native":
            order = list(range(v))
        else:
            raise ValueError(f"joint_order must be 'dfs' or 'native', got {joint_order!r}")
        if len(widths) != len(depths) or not widths:
            raise ValueError("widths and depths must be non-empty and of the same length")
        self.joint_order = joint_order
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.data_bn = nn.BatchNorm1d(v * in_channels)

        kt = temporal_kernel
        self.stem = _conv(in_channels, widths[0], (1, kt, 3), (1, 2, 1))
        stages = []
        cin = widths[0]
        length = len(order)
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = (1, 2, 2) if i > 0 and j == 0 else (1, 1, 1)
                blocks.append(ResBlock3d(cin, width, (1, kt, 3), stride))
                cin = width
            if i > 0:
                length = (length + 1) // 2
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        # One kernel over the whole remaining joint axis: joint-specific weights, V' -> 1.
        self.collapse = _conv(cin, head_width, (1, 1, length), padding=(0, 0, 0))
        self.temporal = nn.Sequential(*[ResBlock3d(head_width, head_width, (1, kt, 1), (1, 1, 1))
                                        for _ in range(head_blocks)])
        self.num_features = head_width
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(head_width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, M, T, V, C)`` -> features ``(N, C', M, T', 1)``."""
        n, m, t, v, c = x.shape
        if v != self.layout.num_joints or c != self.in_channels:
            raise ValueError(f"expected (N, M, T, {self.layout.num_joints}, {self.in_channels}) input, "
                             f"got {tuple(x.shape)}")
        # BN per joint and coordinate, shared by persons and frames (coordinates come in pixels,
        # normalised units or metres; the network sees unit-scale features either way).
        y = self.data_bn(x.permute(0, 1, 3, 4, 2).reshape(n * m, v * c, t))
        y = y.view(n, m, v, c, t)[:, :, self.order]  # (N, M, V', C, T)
        y = y.permute(0, 3, 1, 4, 2)  # (N, C, M, T, V'): a 3D volume with coordinates as channels
        y = self.stages(self.stem(y))
        return self.temporal(self.collapse(y))

    def forward_head(self, features: Tensor) -> Tensor:
        """Mean over persons and frames, dropout, linear: ``(N, num_classes)``."""
        return self.fc(self.drop(features.mean(dim=(2, 3, 4))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("kpc3d", input_kind="keypoint")
def kpc3d(num_classes: int, layout: str | Layout = "coco17", in_channels: int = 3,
          **kwargs: object) -> KeypointC3D:
    """Keypoint 3D-CNN: coordinates as channels over (persons, frames, DFS-ordered joints), ~1M params."""
    return KeypointC3D(num_classes, layout, in_channels, **kwargs)  # type: ignore[arg-type]


@register_model("kpc3d_small", input_kind="keypoint")
def kpc3d_small(num_classes: int, layout: str | Layout = "coco17", in_channels: int = 3,
                **kwargs: object) -> KeypointC3D:
    """Keypoint 3D-CNN at half width (16, 32, 64 -> 128), ~0.25M params."""
    kwargs = {"widths": (16, 32, 64), "head_width": 128, **kwargs}
    return KeypointC3D(num_classes, layout, in_channels, **kwargs)  # type: ignore[arg-type]

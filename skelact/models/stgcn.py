"""ST-GCN++ (Duan et al., "PYSKL: Towards Good Practices for Skeleton Action Recognition", 2022).

A spatial-temporal graph network: ten blocks, each a graph convolution over the joints followed
by a multi-scale temporal convolution over the frames, both with residual paths.

* Spatial GCN: three joint subsets (the joint itself, neighbours nearer the root, neighbours
  farther from it), each a normalised adjacency matrix built from the layout's bones; the
  matrices are learnable parameters initialised from the graph ("init" adaptive mode). A 1x1
  convolution makes ``K * C_out`` channels, subset ``k`` is mixed across joints by ``A_k``, the
  subsets are summed, then BN, a residual (1x1 conv + BN when the width changes) and ReLU.
* Multi-scale TCN: six parallel branches on a split of the channels: kernel-3 temporal convs
  with dilations 1-4, a 3-frame max-pool and a plain (strided) 1x1; concatenated, then
  BN-ReLU-1x1 conv-BN.
* Channels 64 x4, 128 x3, 256 x3, temporal stride 2 entering the 128 and 256 stages; input BN
  over (V * C) per joint and coordinate; mean over persons, frames and joints; linear head.

Only ``layout.edges``, ``layout.root`` and ``layout.num_joints`` are used, so any layout works.

The blocks keep their activations and conv weights channels-last (``torch.channels_last``, memory
order N, T, V, C): oneDNN's 1x1 and temporal convolutions then skip reordering, and the graph
aggregation over (subset, joint) becomes one batched matmul on views without copies. Values,
shapes and state dicts are those of the default layout; BENCHMARKS.md has the measured speed-up.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..skeleton import Layout, get_layout
from .registry import register_model

__all__ = ["spatial_partitions", "STGCNPlusPlus", "stgcnpp"]


def _hop_distance(layout: Layout) -> np.ndarray:
    """Graph distance of every joint from the root along the layout's edges."""
    adj: list[list[int]] = [[] for _ in range(layout.num_joints)]
    for a, b in layout.edges:
        adj[a].append(b)
        adj[b].append(a)
    dist = np.full(layout.num_joints, -1, dtype=np.int64)
    dist[layout.root] = 0
    queue = deque([layout.root])
    while queue:
        u = queue.popleft()
        for w in adj[u]:
            if dist[w] < 0:
                dist[w] = dist[u] + 1
                queue.append(w)
    return dist


def spatial_partitions(layout: str | Layout) -> np.ndarray:
    """The three normalised spatial subsets of ST-GCN's partition strategy.

    ``A[k, v, w]`` is the weight with which joint ``v`` feeds joint ``w`` in subset ``k``: 0 the
    joint itself (plus equal-distance neighbours, only present in graphs with cycles), 1 the
    neighbours nearer the root, 2 those farther away. Each output joint averages its inputs
    (columns sum to 1 where non-empty).

    Returns:
        ``(3, V, V)`` float32.
    """
    layout = get_layout(layout)
    v = layout.num_joints
    dist = _hop_distance(layout)
    a = np.zeros((3, v, v), dtype=np.float32)
    a[0][np.arange(v), np.arange(v)] = 1.0
    for i, j in layout.edges:
        for src, dst in ((i, j), (j, i)):
            if dist[src] == dist[dst]:
                a[0, src, dst] = 1.0
            else:
                a[1 if dist[src] < dist[dst] else 2, src, dst] = 1.0
    col = a.sum(1, keepdims=True)
    return np.divide(a, col, out=np.zeros_like(a), where=col > 0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands on its gradient channels-last.

    Gradients that reach a channels-last activation as a channel slice (the backward of ``cat``)
    or expanded (the backward of the head's mean) are not dense; BN's and oneDNN's backward then
    take slow generic paths (BN 4-5x slower). One copy of the gradient here is cheaper.
    """

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.contiguous(memory_format=torch.channels_last)


def _dense_grad(x: Tensor) -> Tensor:
    """``x``, with its gradient made channels-last (a no-op without autograd or under ONNX export)."""
    if not x.requires_grad or torch.onnx.is_in_onnx_export():
        return x
    return _ChannelsLastGrad.apply(x)


class GraphConv(nn.Module):
    """Spatial graph convolution with a learnable adjacency initialised from the layout.

    Input and output ``(N, C, T, V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray) -> None:
        super().__init__()
        self.num_subsets = adjacency.shape[0]
        self.adjacency = nn.Parameter(torch.from_numpy(adjacency.copy()))
        self.conv = nn.Conv2d(in_channels, out_channels * self.num_subsets, 1)
        self.bn = _bn(out_channels)
        if in_channels == out_channels:
            self.down: nn.Module = nn.Identity()
        else:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), _bn(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        n, cin, t, v = x.shape
        k, cout = self.num_subsets, self.bn.num_features
        a = self.adjacency  # (K, V, W)
        # einsum("nkctv,kvw->nctw") over the 1x1 conv's K*Cout channels (k*Cout + c), each as
        # one batched matmul over the N*T frames. With channels-last activations (memory N, T, V, C)
        # the reshapes are views; the expanded adjacency keeps bmm from copying it per frame.
        if cin < cout and not torch.onnx.is_in_onnx_export():  # (ONNX wants the conv's own weight)
            # Fewer channels to mix before the conv than after it (the first block and the wider
            # ones): mix the joints first, z[nt, w*K + k, i] = sum_v A[k, v, w] x[nt, v, i], then
            # convolve the K*Cin channels (k*Cin + i) with the same weights, regrouped. The conv's
            # bias passes through the adjacency as b[k, c] * sum_v A[k, v, w].
            am = a.permute(2, 0, 1).reshape(v * k, v)
            z = torch.bmm(am.expand(n * t, v * k, v), x.permute(0, 2, 3, 1).reshape(n * t, v, cin))
            z = z.view(n, t, v, k * cin).permute(0, 3, 1, 2)  # (N, K*Cin, T, W)
            weight = self.conv.weight.view(k, cout, cin).transpose(0, 1).reshape(cout, k * cin, 1, 1)
            bias = self.conv.bias.view(k, cout).t() @ a.sum(1)  # (Cout, W)
            out = F.conv2d(z, weight) + bias.unsqueeze(1)
        else:
            # (V, K*V)[w, v*K + k] = A[k, v, w]  @  (N*T, V*K, Cout)  ->  (N*T, W, Cout)
            y = self.conv(x).permute(0, 2, 3, 1).reshape(n * t, v * k, cout)
            am = a.permute(2, 1, 0).reshape(v, v * k)
            out = torch.bmm(am.expand(n * t, v, v * k), y).view(n, t, v, cout).permute(0, 3, 1, 2)
        return self.relu(self.bn(out) + self.down(x))


class TemporalConv(nn.Module):
    """Temporal convolution ``(k, 1)`` with dilation and stride, then BN. ``(N, C, T, V)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        pad = (kernel - 1) * dilation // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = _bn(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class MultiScaleTCN(nn.Module):
    """Parallel temporal branches on a channel split, concatenated and fused. ``(N, C, T, V)``.

    Every branch opens with a 1x1 conv + BN on the same input. The forward runs those thin convs
    as one conv with their weights concatenated (the strided 1x1 branch apart), their BNs as one
    call, and the kernel-3 branches' closing BNs as one call, because on a CPU one GEMM or BN over
    all the channels is several times faster than six narrow ones (and on a GPU it saves
    launches). The function and the parameters are exactly those of the six separate modules, so
    checkpoints and the reference forward (``forward_reference``) agree.

    Args:
        dilations: One kernel-3 branch per dilation; a max-pool and a 1x1 branch are added.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dilations: tuple[int, ...] = (1, 2, 3, 4), dropout: float = 0.0) -> None:
        super().__init__()
        n_branches = len(dilations) + 2
        mid = out_channels // n_branches
        widths = [out_channels - mid * (n_branches - 1)] + [mid] * (n_branches - 1)
        self.stride = stride
        self.widths = widths
        branches: list[nn.Module] = []
        for width, dil in zip(widths, dilations, strict=False):
            branches.append(nn.Sequential(
                nn.Conv2d(in_channels, width, 1), _bn(width), nn.ReLU(inplace=True),
                TemporalConv(width, width, 3, stride, dil)))
        w_max, w_one = widths[-2], widths[-1]
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, w_max, 1), _bn(w_max), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 1), (stride, 1), (1, 0))))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, w_one, 1, (stride, 1)), _bn(w_one)))
        self.branches = nn.ModuleList(branches)
        self.fuse = nn.Sequential(_bn(sum(widths)), nn.ReLU(inplace=True),
                                  nn.Conv2d(sum(widths), out_channels, 1), _bn(out_channels))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        convs = [branch[0] for branch in self.branches]
        bns = [branch[1] for branch in self.branches]
        # (N, sum(widths), T, V): the entry convs at once. With a temporal stride the last
        # branch's 1x1 conv is strided and runs on its own.
        joint = convs if self.stride == 1 else convs[:-1]
        y = F.conv2d(x, torch.cat([c.weight for c in joint]), torch.cat([c.bias for c in joint]))
        parts = list(_batch_norm_groups(y, bns[:len(joint)]).split(self.widths[:len(joint)], dim=1))
        if self.stride != 1:
            parts.append(bns[-1](convs[-1](x)))
        # The kernel-3 branches' temporal convs, then their BNs as one call (a channels-last BN
        # costs about the same for 10 channels as for 64), the max-pool, and the 1x1 branch
        # (conv + BN only). The backward of cat hands each part a channel slice of the gradient.
        temporal = [branch[3] for branch in self.branches[:-2]]
        convs_t = [tc.conv(torch.relu(part)) for tc, part in zip(temporal, parts, strict=False)]
        bn_t = _batch_norm_groups(torch.cat([_dense_grad(c) for c in convs_t], dim=1), [tc.bn for tc in temporal])
        pooled = self.branches[-2][3](torch.relu(parts[-2]))
        y = torch.cat([_dense_grad(bn_t), _dense_grad(pooled), _dense_grad(parts[-1])], dim=1)
        return self.drop(self.fuse(y))

    def forward_reference(self, x: Tensor) -> Tensor:
        """The plain per-branch forward (for tests): same result as ``forward``."""
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.fuse(y))


def _batch_norm_groups(x: Tensor, bns: list[nn.Module]) -> Tensor:
    """Apply ``bns[i]`` to the i-th channel group of ``x`` in one call; running stats kept per module.

    ``x`` is ``(N, sum(C_i), T, V)``. In training the concatenated running statistics are
    updated by ``F.batch_norm`` and copied back into each module, so every ``BatchNorm2d`` ends
    in the state it would reach on its own.
    """
    first = bns[0]
    assert isinstance(first, nn.BatchNorm2d)
    weight = torch.cat([bn.weight for bn in bns])
    bias = torch.cat([bn.bias for bn in bns])
    mean = torch.cat([bn.running_mean for bn in bns])
    var = torch.cat([bn.running_var for bn in bns])
    out = F.batch_norm(x, mean, var, weight, bias, first.training, float(first.momentum), first.eps)
    if first.training:
        with torch.no_grad():
            start = 0
            for bn in bns:
                c = bn.num_features
                bn.running_mean.copy_(mean[start:start + c])
                bn.running_var.copy_(var[start:start + c])
                bn.num_batches_tracked.add_(1)
                start += c
    return out


class STGCNBlock(nn.Module):
    """GCN then multi-scale TCN, plus a block residual; ``(N, C_in, T, V) -> (N, C_out, T/s, V)``."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray, stride: int = 1,
                 residual: bool = True, dilations: tuple[int, ...] = (1, 2, 3, 4),
                 tcn_dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, adjacency)
        self.tcn = MultiScaleTCN(out_channels, out_channels, stride, dilations, tcn_dropout)
        self.residual: nn.Module | None
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.tcn(self.gcn(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


class STGCNPlusPlus(nn.Module):
    """ST-GCN++ on keypoints ``(N, M, T, V, C)`` -> logits ``(N, num_classes)``.

    Args:
        num_classes: Output classes.
        layout: Skeleton layout (its bones define the graph).
        in_channels: C, e.g. 3 for (x, y, score).
        channels: Width of each block.
        strides: Temporal stride of each block.
        dilations: Dilations of the kernel-3 TCN branches.
        dropout: Dropout before the linear head.
        tcn_dropout: Dropout at the end of every TCN.
    """

    def __init__(
        self,
        num_classes: int,
        layout: str | Layout = "coco17",
        in_channels: int = 3,
        channels: tuple[int, ...] = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256),
        strides: tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1),
        dilations: tuple[int, ...] = (1, 2, 3, 4),
        dropout: float = 0.0,
        tcn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError("channels and strides must have the same length")
        self.layout = get_layout(layout)
        self.in_channels = in_channels
        v = self.layout.num_joints
        adjacency = spatial_partitions(self.layout)
        self.data_bn = nn.BatchNorm1d(v * in_channels)
        blocks = []
        prev = in_channels
        for i, (width, stride) in enumerate(zip(channels, strides, strict=True)):
            blocks.append(STGCNBlock(prev, width, adjacency, stride, residual=i > 0, dilations=dilations,
                                     tcn_dropout=tcn_dropout))
            prev = width
        self.blocks = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        self.num_features = prev
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(prev, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, M, T, V, C)`` -> per-person features ``(N, M, C', T', V)``."""
        n, m, t, v, c = x.shape
        if v != self.layout.num_joints or c != self.in_channels:
            raise ValueError(f"expected (N, M, T, {self.layout.num_joints}, {self.in_channels}) input, "
                             f"got {tuple(x.shape)}")
        # BN per joint and coordinate, shared by persons and frames.
        x = x.permute(0, 1, 3, 4, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x).view(n * m, v, c, t).permute(0, 2, 3, 1)  # (N*M, C, T, V)
        if not torch.onnx.is_in_onnx_export():  # a memory layout is not part of an ONNX graph
            x = x.contiguous(memory_format=torch.channels_last)
        # The head's mean hands back an expanded gradient.
        y = _dense_grad(self.blocks(x))
        return y.reshape(n, m, *y.shape[1:])

    def forward_head(self, features: Tensor) -> Tensor:
        """Mean over persons, frames and joints, dropout, linear: ``(N, num_classes)``."""
        return self.fc(self.drop(features.mean(dim=(1, 3, 4))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("stgcnpp", input_kind="keypoint")
def stgcnpp(num_classes: int, layout: str | Layout = "coco17", in_channels: int = 3,
            **kwargs: object) -> STGCNPlusPlus:
    """ST-GCN++: adaptive graph conv + multi-scale TCN, 10 blocks (PYSKL recipe, 1.39M params)."""
    return STGCNPlusPlus(num_classes, layout, in_channels, **kwargs)  # type: ignore[arg-type]

"""Multiply-accumulate counts with ``torch.utils.flop_counter``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["count_macs", "count_params"]


def count_macs(model: nn.Module, x: Tensor) -> int:
    """MACs (FLOPs / 2) of one forward pass on ``x``, in the model's current train/eval mode.

    Counts matrix multiplies and convolutions (what torch's FLOP counter knows); elementwise
    ops, pooling and the heatmap drawing of heatmap models are not counted.

    Args:
        model: Any module.
        x: Its input, e.g. ``(N, M, T, V, C)``.
    """
    from torch.utils.flop_counter import FlopCounterMode  # here: its import warns under CUDA builds without triton

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

"""An exponential moving average (EMA) of a model's weights, for ``optim.ema``.

The average model is a copy that follows the trained one after every optimiser step::

    avg = d * avg + (1 - d) * weights,   d = min(decay, (1 + t) / (10 + t))

where ``t`` counts the updates so far: the warm-up of ``d`` keeps the early average from holding
on to the random initialisation. Floating-point buffers (BatchNorm running statistics) are
averaged the same way; integer ones (``num_batches_tracked``) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightEMA"]


class WeightEMA:
    """A moving-average copy of ``model`` (same device and dtype), updated with :meth:`update`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update will use."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights and buffers."""
        d = self.current_decay()
        # state_dict() tensors share storage with the modules, so in-place ops update them.
        for avg, new in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.is_floating_point():
                avg.lerp_(new.to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(new)
        self.updates += 1

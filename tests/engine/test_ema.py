"""Exact values of the weight EMA (optim.ema)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skelact.engine.ema import WeightEMA


def test_ema_exact_updates_with_warmup_of_the_decay() -> None:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = WeightEMA(model, decay=0.5)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0) < 0.5
    with torch.no_grad():
        model[0].weight.fill_(11.0)
        model[1].running_mean.fill_(2.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)  # d = 0.1: 0.1 * 1 + 0.9 * 11
    assert ema.module[0].weight.item() == pytest.approx(10.0)
    assert ema.module[1].running_mean.item() == pytest.approx(0.9 * 2.0)
    assert ema.module[1].num_batches_tracked.item() == 7  # integer buffers are copied
    ema.updates = 100  # (1 + 100) / 110 > 0.5: the configured decay applies
    assert ema.current_decay() == 0.5
    ema.update(model)
    assert ema.module[0].weight.item() == pytest.approx(0.5 * 10 + 0.5 * 11)
    assert ema.updates == 101
    assert model[0].weight.item() == 11.0  # the trained model is untouched


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_ema_rejects_a_decay_outside_0_1(decay: float) -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(nn.Linear(1, 1), decay)

"""Softmax probabilities of a model over a test loader, gathered from every process.

Shared by the per-epoch validation in :mod:`skelact.engine.train` and by ``skelact test``
(:mod:`skelact.engine.evaluate`).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from skelact.engine.distributed import DistInfo, all_gather_objects
from skelact.runtime import autocast_context

__all__ = ["predict", "BAR_INTERVAL"]

#: Seconds between progress bar redraws: often on a terminal, rarely when stderr is a log file.
BAR_INTERVAL = 0.1 if sys.stderr.isatty() else 30.0


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, info: DistInfo, amp: str = "none",
            progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities averaged over each clip's K views, gathered from every rank.

    The loader must use a :class:`ShardSampler` (rank ``r`` holds items ``r::world``) over a dataset
    in test mode, whose items are [K, M, T, V, C].

    Returns:
        ``(probs, labels)``: float64 [N, num_classes] and int64 [N] in dataset order, on every rank.
    """
    from tqdm import tqdm

    model.eval()
    probs, labels = [], []
    bar = tqdm(loader, desc=progress, leave=False, disable=progress is None or info.rank != 0, dynamic_ncols=True,
               mininterval=BAR_INTERVAL)
    for x, y in bar:
        x = x.to(info.device, non_blocking=True)  # [N, K, M, T, V, C]
        n, k = x.shape[:2]
        with autocast_context(amp, info.device):
            logits = model(x.flatten(0, 1))  # [N*K, classes]: the views are a bigger batch
        p = F.softmax(logits.float(), dim=1).view(n, k, -1).mean(dim=1)  # [N, classes]
        probs.append(p.cpu().double().numpy())
        labels.append(y.numpy())
    local = (np.concatenate(probs) if probs else np.zeros((0, 0)), np.concatenate(labels) if labels else
             np.zeros(0, dtype=np.int64))
    parts = all_gather_objects(local)
    if len(parts) == 1:
        return local[0], local[1].astype(np.int64)
    # Re-interleave the rank::world shards into dataset order (a rank may hold no clip at all).
    total = sum(len(p[1]) for p in parts)
    width = max(p[0].shape[1] for p in parts if len(p[1]))
    out_p, out_y = np.zeros((total, width)), np.zeros(total, dtype=np.int64)
    for r, (p, y) in enumerate(parts):
        if len(y):
            out_p[r::len(parts)], out_y[r::len(parts)] = p, y
    return out_p, out_y



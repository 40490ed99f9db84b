"""Softmax probabilities of a model over a test loader, gathered from every process.

Shared by the per-epoch validation in :mod:`skelact.engine.train` and by ``skelact test``
(:mod:`skelact.engine.evaluate`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from skelact.engine.distributed import DistInfo, all_gather_objects
from skelact.progress import progress as progress_bar
from skelact.runtime import autocast_context

__all__ = ["predict", "predict_logits", "view_probs"]


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader, info: DistInfo, amp: str = "none",
                   progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every view of every clip, gathered from every rank.

    The loader must use a :class:`ShardSampler` (rank ``r`` holds items ``r::world``) over a dataset
    in test mode, whose items are [K, M, T, V, C].

    Returns:
        ``(logits, labels)``: float32 [N, K, num_classes] and int64 [N] in dataset order, on every rank.
    """
    model.eval()
    chunks, labels = [], []
    shown = progress is not None and info.rank == 0
    for x, y in progress_bar(loader, desc=progress or "", unit="batch", enabled=shown):
        x = x.to(info.device, non_blocking=True)  # [N, K, M, T, V, C]
        n, k = x.shape[:2]
        with autocast_context(amp, info.device):
            logits = model(x.flatten(0, 1))  # [N*K, classes]: the views are a bigger batch
        chunks.append(logits.float().view(n, k, -1).cpu().numpy())
        labels.append(y.numpy())
    local = (np.concatenate(chunks) if chunks else np.zeros((0, 0, 0), np.float32),
             np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64))
    parts = all_gather_objects(local)
    if len(parts) == 1:
        return local
    # Re-interleave the rank::world shards into dataset order (a rank may hold no clip at all).
    total = sum(len(p[1]) for p in parts)
    shape = next(p[0].shape[1:] for p in parts if len(p[1]))
    out_l, out_y = np.zeros((total, *shape), np.float32), np.zeros(total, dtype=np.int64)
    for r, (lg, y) in enumerate(parts):
        if len(y):
            out_l[r::len(parts)], out_y[r::len(parts)] = lg, y
    return out_l, out_y


def view_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float64 [N, C]: softmax of ``logits`` [N, K, C] / ``temperature``, averaged over the K views."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p.mean(axis=1)


def predict(model: nn.Module, loader: DataLoader, info: DistInfo, amp: str = "none",
            progress: str | None = None, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (at ``temperature``) averaged over each clip's K views, from every rank.

    Returns:
        ``(probs, labels)``: float64 [N, num_classes] and int64 [N] in dataset order, on every rank.
    """
    logits, labels = predict_logits(model, loader, info, amp, progress)
    return view_probs(logits, temperature), labels

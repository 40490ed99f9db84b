"""Input pipelines: ``SkeletonDataset`` + ``DataLoader`` clips/s for each model family's NTU60 recipe."""

from __future__ import annotations

from typing import Any

import numpy as np

from skelact.signals import worker_exits_quietly

from ..options import Row
from ..synthetic import synthetic_store
from ..timing import rates, time_runs
from .common import Context

__all__ = ["bench_data", "pipelines"]


def pipelines() -> list[tuple[str, Any]]:
    """(description, DataConfig) of each model family's NTU60 training input pipeline."""
    from skelact.config import DataConfig

    kp_len, hm_len = 100, 48
    return [
        (f"stgcnpp: T={kp_len}, image-normalised joint+score",
         DataConfig(clip_len=kp_len, normalize="image", features=["joint"])),
        (f"kpc3d: T={kp_len}, image-normalised joint+bone+score",
         DataConfig(clip_len=kp_len, normalize="image", features=["joint", "bone"])),
        (f"poseconv3d: T={hm_len}, raw pixels+score",
         DataConfig(clip_len=hm_len, normalize="none", features=["joint"])),
    ]


def bench_data(ctx: Context) -> list[Row]:
    """SkeletonDataset + DataLoader clips/s per input pipeline, batch 32, with 0 and 2 workers."""
    import torch
    from torch.utils.data import DataLoader

    from skelact.data.dataset import SkeletonDataset
    from skelact.engine.builders import build_pipeline
    from skelact.skeleton import get_layout

    opts = ctx.opts
    num_clips, per_run = (256, 128) if opts.quick else (2000, 1024)
    store = synthetic_store(num_clips)
    layout = get_layout("coco17")
    rows = []
    for desc, data_cfg in pipelines():
        pipe = build_pipeline(data_cfg, layout, coord_dims=2, train=True)
        dataset = SkeletonDataset(store, np.arange(num_clips), pipe, train=True, seed=0)
        for workers in (0, 2):
            loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers, drop_last=True,
                                worker_init_fn=worker_exits_quietly,
                                persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
            batches = per_run // 32
            state: dict[str, Any] = {"it": iter(loader)}

            def run(loader: DataLoader = loader, state: dict[str, Any] = state, batches: int = batches) -> None:
                for _ in range(batches):
                    try:
                        next(state["it"])
                    except StopIteration:
                        state["it"] = iter(loader)
                        next(state["it"])

            clips_s = rates(time_runs(run, opts.runs, warmup=1), batches * 32.0)
            del state["it"]
            rows.append(Row("data", f"{desc}, {workers} workers", float(np.median(clips_s)), "clips/s",
                            f"batch 32, {num_clips} synthetic 2-person clips", clips_s))
            del loader
    return rows

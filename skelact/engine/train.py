"""The training loop, readable top to bottom.

``train(cfg, work_dir)`` does, in order: join the process group (under torchrun), seed, load and
pack the clips, build datasets / model / optimiser / schedule, resume from ``last.pt`` if asked,
then per epoch: train, validate, log a CSV row, write ``last.pt`` (and ``best.pt``) atomically.
The same call works in one CPU process, on one GPU and under ``torchrun`` with N processes:

    skelact train configs/penn_stgcnpp_j.yaml --work-dir work_dirs/penn_j
    torchrun --nproc_per_node 4 $(which skelact) train configs/ntu60_xsub_stgcnpp_j.yaml --work-dir ...
    torchrun --nproc_per_node 4 -m skelact.cli train configs/ntu60_xsub_stgcnpp_j.yaml --work-dir ...
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from skelact.checkpoint import Calibration, Checkpoint, CheckpointError, TrainState, fit_weights
from skelact.config import Config, ConfigError, config_to_yaml
from skelact.data.dataset import PackedClips, SkeletonDataset
from skelact.data.io import atomic_path, atomic_write
from skelact.engine import builders, metrics
from skelact.engine.calibrate import Refine, calibrate, describe, refine_after_training
from skelact.engine.distributed import (
    DistInfo,
    ShardSampler,
    all_gather_objects,
    all_reduce_sum,
    broadcast_buffers,
    cleanup_distributed,
    init_distributed,
    state_digest,
    unwrap,
)
from skelact.engine.ema import WeightEMA
from skelact.engine.workdir import check_resumable, lock_work_dir, remove_stale_temporaries
from skelact.errors import one_line
from skelact.inference import Predictor, ScoreOptions, loader_logits, score_clips, view_probs
from skelact.progress import progress
from skelact.runtime import (
    autocast_context,
    keep_freed_memory,
    resolve_amp,
    rng_state,
    seed_everything,
    set_rng_state,
)
from skelact.signals import worker_exits_quietly
from skelact.skeleton import Layout

__all__ = ["train", "apply_overfit", "CSV_FIELDS"]

#: Columns of ``work_dir/metrics.csv``, one row per epoch (validation columns empty when skipped).
CSV_FIELDS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
              "val_mean_class_acc", "time", "clips_per_s")


# ------------------------------------------------------------------------------- small helpers


def apply_overfit(cfg: Config) -> Config:
    """The config with the ``overfit`` section's non-None values applied (a new object)."""
    o = cfg.overfit
    data = dataclasses.replace(cfg.data, **{k: v for k, v in (("clip_len", o.clip_len),
                                                             ("batch_size", o.batch_size)) if v is not None})
    optim_kw = {k: v for k, v in (("epochs", o.epochs), ("lr", o.lr), ("warmup_epochs", o.warmup_epochs),
                                  ("weight_decay", o.weight_decay), ("label_smoothing", o.label_smoothing))
                if v is not None}
    model = dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, **o.model_kwargs})
    return dataclasses.replace(cfg, data=data, model=model, optim=dataclasses.replace(cfg.optim, **optim_kw))


class _EpochIndexSampler(Sampler[tuple[int, int]]):
    """Wraps a ``DistributedSampler`` and yields ``(epoch, index)`` pairs.

    Passing the epoch with every index lets persistent DataLoader workers (which hold their own
    copy of the dataset) switch to the epoch's augmentation stream; see :class:`_EpochDataset`.
    """

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)  # the shuffle order depends on (seed, epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochDataset(Dataset):
    """Indexes a :class:`SkeletonDataset` by ``(epoch, index)`` and calls its ``set_epoch``."""

    def __init__(self, dataset: SkeletonDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


def _loader(dataset: Dataset, sampler: Sampler, batch_size: int, workers: int, device: torch.device,
            drop_last: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      worker_init_fn=worker_exits_quietly, persistent_workers=workers > 0,
                      pin_memory=device.type == "cuda", drop_last=drop_last)


def _log(line: str, work_dir: Path | None = None) -> None:
    print(line, flush=True)
    if work_dir is not None:
        path = work_dir / "log.txt"
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:  # a full disk raises from write/close without naming the file
            if e.filename is not None or not e.strerror:
                raise
            raise OSError(e.errno, e.strerror, str(path)) from None


# -------------------------------------------------------------------------------------- training


def _train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LambdaLR, scaler: torch.amp.GradScaler,
                     cfg: Config, info: DistInfo, epoch: int, ema: WeightEMA | None = None) -> dict[str, float]:
    """One pass over the training loader; returns loss / top-1 / clips summed over every rank.

    ``ema``, when given, follows the (unwrapped) model after every step.
    """
    model.train()
    loss_sum, correct, judged, seen = 0.0, 0.0, 0.0, 0.0
    start = time.perf_counter()
    bar = progress(loader, desc=f"epoch {epoch}/{cfg.optim.epochs}", unit="batch", enabled=info.rank == 0)
    for x, y in bar:
        x = x.to(info.device, non_blocking=True)  # [N, M, T, V, C]
        y = y.to(info.device, non_blocking=True)  # [N] labels, or [N, classes] frame shares (augment.join)
        with autocast_context(cfg.optim.amp, info.device):
            logits = model(x)  # [N, classes]
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch}: the training loss became {loss.item()}; lower optim.lr "
                                     "or set optim.clip_grad")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.clip_grad is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per-iteration schedule
        if ema is not None:
            ema.update(unwrap(model))

        n = y.shape[0]
        loss_sum += loss.item() * n
        if y.ndim == 1:
            correct += (logits.argmax(dim=1) == y).sum().item()
            judged += n
        else:  # soft targets: the major class; a uniform target (an out-of-class clip) has none
            has_class = y.max(dim=1).values > y.min(dim=1).values
            correct += ((logits.argmax(dim=1) == y.argmax(dim=1)) & has_class).sum().item()
            judged += has_class.sum().item()
        seen += n
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / max(judged, 1):.3f}",
                        clips_s=f"{seen * info.world_size / (time.perf_counter() - start):.1f}")
    loss_sum, correct, judged, seen = all_reduce_sum([loss_sum, correct, judged, seen], info.device)
    elapsed = time.perf_counter() - start
    return {"train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(judged, 1),
            "clips_per_s": seen / max(elapsed, 1e-9), "train_time": elapsed}


def _read_csv_rows(path: Path, last_epoch: int) -> list[dict[str, str]]:
    """Rows of an existing metrics.csv up to ``last_epoch`` (later ones belong to a lost epoch)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) <= last_epoch]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"


def train(cfg: Config, work_dir: Path, resume: bool = False, overfit: int | None = None,
          packed: PackedClips | None = None, init: str | Path | None = None,
          refine: Refine | None = None) -> dict[str, Any]:
    """Train a model as the recipe says; works alone or under ``torchrun``.

    Args:
        cfg: The recipe.
        work_dir: Output folder: ``last.pt``, ``best.pt``, ``metrics.csv``, ``curves.png``,
            ``config.yaml``, ``log.txt``.
        resume: Continue from ``work_dir/last.pt`` (epoch, optimiser, schedule, RNG).
        overfit: Sanity check: train on ``overfit`` clips of the training split (spread over the
            classes) with the recipe's ``overfit`` settings and no augmentation, and validate on
            the same clips.
        packed: ``cfg.data.ann_file`` already loaded (saves loading it twice).
        init: The checkpoint file ``cfg.init`` names (the CLI resolves a shipped model's name to
            its file); None: ``cfg.init`` as a path. Applied when the run starts, not on a resume
            from ``last.pt`` (which holds the weights it led to).
        refine: A further fit after the calibration, on the validation clips (``skelact train``
            passes the timeline threshold's, ``stream.fitting.timeline_refiner``).

    Returns:
        Final metrics: ``epoch``, ``train_loss``, ``train_top1``, ``val_*`` of the last validation,
        ``best_top1``, ``best_epoch`` (on the validation clips), ``validation`` (which clips, in words),
        ``num_val_clips``, ``weights_digest`` (SHA-256 of the weights, equal on all
        ranks), ``work_dir``.
    """
    work_dir = Path(work_dir)
    if cfg.model.streams:  # several networks, each trained here: skelact/engine/ensemble.py
        raise ConfigError("model.streams: an ensemble trains through skelact.engine.ensemble.train_ensemble")
    builders.check_model_name(cfg)  # before any data is loaded
    owns_group = not torch.distributed.is_initialized()  # leave a caller's process group alone
    info = init_distributed(cfg.device)
    resolve_amp(cfg.optim.amp, info.device)  # fp16 on a CPU fails here, not in the first step
    created = not work_dir.exists()
    try:
        with contextlib.ExitStack() as stack:
            if info.rank == 0:
                work_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(lock_work_dir(work_dir))  # one run per work dir
                remove_stale_temporaries(work_dir)  # left by a run killed while writing
            return _train(cfg, work_dir, resume, overfit, info, packed, init, refine)
    except BaseException:
        if created and info.rank == 0 and work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()  # failed before writing anything: leave no trace
        raise
    finally:
        if owns_group:
            cleanup_distributed()


def _train(cfg: Config, work_dir: Path, resume: bool, overfit: int | None, info: DistInfo,
           packed: PackedClips | None, init: str | Path | None, refine: Refine | None) -> dict[str, Any]:
    main_rank = info.rank == 0
    keep_freed_memory()  # every step frees and allocates the same large activations again
    if overfit is not None:
        cfg = apply_overfit(cfg)
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels

    # ---- data: packed clips, layout, splits -> datasets
    if packed is None:
        packed = builders.load_clips(cfg.data)
    layout = builders.resolve_layout(cfg.data, packed)
    classes = builders.class_names(packed)
    train_idx, val_idx = builders.validation_split(cfg, packed, len(classes))
    validation = builders.validation_name(cfg, quote=True)  # which clips, in words
    augment = True
    if overfit is not None:
        train_idx = builders.overfit_indices(packed.labels, train_idx, overfit)
        val_idx, augment = train_idx, cfg.overfit.augment
        validation = "the training clips (--overfit)"
    outside = builders.outside_clips(cfg.data, layout, packed) if augment else None
    train_ds = builders.build_dataset(cfg, packed, layout, train_idx, train=True, augment=augment, outside=outside)
    val_ds = builders.build_dataset(cfg, packed, layout, val_idx, train=False, num_clips=cfg.data.num_clips_val)
    sample = train_ds[0][0]
    in_channels = int(sample.shape[-1])  # C of [M, T, V, C]
    # Before anything large is built: a layout of thousands of joints must be one line, not the OOM killer.
    builders.check_memory(cfg, len(classes), layout, in_channels, tuple(sample.shape), cfg.data.batch_size,
                          info.device, str(cfg.data.ann_file))

    # ---- model (identical on every rank: same seed, and DDP broadcasts rank 0's weights anyway)
    model = builders.build_model(cfg, len(classes), layout, in_channels)
    init = init if init is not None else cfg.init
    if init is not None and not (resume and (work_dir / "last.pt").is_file()):  # a resume has its own weights
        lines = builders.init_model(cfg, model, init, classes, packed.num_channels, packed.score is not None)
        for line in lines if main_rank else ():
            _log(line, work_dir)
    model = model.to(info.device)
    ddp_model: nn.Module = model
    if info.distributed:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)

    # ---- loaders: each rank draws a disjoint shuffled shard per epoch
    bs = cfg.data.batch_size
    shard = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                               seed=cfg.seed, drop_last=False)
    train_sampler = _EpochIndexSampler(shard)
    # A last batch of one clip breaks BatchNorm; drop the remainder when there are full batches.
    drop_last = len(shard) > bs
    train_loader = _loader(_EpochDataset(train_ds), train_sampler, bs, cfg.data.num_workers, info.device, drop_last)
    val_loader = _loader(val_ds, ShardSampler(len(val_ds), info.rank, info.world_size),
                         max(1, bs // cfg.data.num_clips_val), cfg.data.num_workers, info.device)
    steps_per_epoch = len(train_loader)
    if overfit is not None and cfg.overfit.min_steps is not None:
        epochs = max(cfg.optim.epochs, math.ceil(cfg.overfit.min_steps / steps_per_epoch))
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=epochs))

    # ---- optimisation
    optimizer = builders.build_optimizer(cfg.optim, model)
    scheduler = builders.build_scheduler(optimizer, cfg.optim, steps_per_epoch)
    use_scaler = cfg.optim.amp == "fp16" and info.device.type == "cuda"
    scaler = torch.amp.GradScaler(info.device.type, enabled=use_scaler)
    # The averaged copy is what gets validated and saved as "model"; the raw weights go to
    # "train_model" so that --resume continues the optimisation itself.
    ema = WeightEMA(model, cfg.optim.ema) if cfg.optim.ema is not None else None
    eval_model = ema.module if ema is not None else model

    # ---- resume
    start_epoch, best_top1, best_epoch = 1, -1.0, 0
    csv_path = work_dir / "metrics.csv"
    last_path, best_path = work_dir / "last.pt", work_dir / "best.pt"
    if resume and last_path.is_file():
        ckpt = Checkpoint.load(last_path, map_location=info.device, require_train_state=True)
        check_resumable(ckpt, cfg, classes, layout, in_channels, last_path)
        t = ckpt.train
        assert t is not None  # require_train_state
        try:
            fit_weights(model, t.train_model or ckpt.model, last_path)
            if ema is not None:
                fit_weights(ema.module, ckpt.model, last_path)
                ema.updates = t.ema_updates
            optimizer.load_state_dict(t.optimizer)
            scheduler.load_state_dict(t.scheduler)
            if t.scaler:
                scaler.load_state_dict(t.scaler)
            set_rng_state(t.rng)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"{last_path}: cannot resume from it ({type(e).__name__}: {one_line(e)})") from None
        start_epoch, best_top1, best_epoch = ckpt.epoch + 1, ckpt.best_metric, ckpt.best_epoch
        if main_rank:
            _log(f"resumed from {last_path} at epoch {ckpt.epoch}", work_dir)
    elif resume and main_rank:
        _log(f"no {last_path} to resume from: starting from scratch", work_dir)
    rows = _read_csv_rows(csv_path, start_epoch - 1)
    peak = max([best_top1, *(float(r["val_top1"]) for r in rows if r.get("val_top1"))])  # best validation yet
    if main_rank:
        text = config_to_yaml(cfg).encode("utf-8")
        atomic_write(work_dir / "config.yaml", lambda f: f.write(text))
        _write_csv(csv_path, rows)
        n_params = sum(p.numel() for p in model.parameters())
        _log(f"{cfg.model.name}: {n_params / 1e6:.3f}M params | {len(train_ds)} train / {len(val_ds)} validation "
             f"clips ({validation}) | "
             f"{len(classes)} classes | layout {layout.name} | input C={in_channels} | device {info.device} "
             f"x{info.world_size}", work_dir)
    writer = _tensorboard(work_dir) if main_rank else None

    last: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.optim.epochs + 1):
        epoch_start = time.perf_counter()
        train_sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = _train_one_epoch(ddp_model, train_loader, optimizer, scheduler, scaler, cfg, info, epoch, ema)

        # ---- validate (every rank predicts its shard with the same weights and BN statistics)
        broadcast_buffers(model)
        if ema is not None:
            broadcast_buffers(ema.module)  # averaged from each rank's own BN statistics
        val: dict[str, float] = {}
        if epoch % cfg.eval_interval == 0 or epoch == cfg.optim.epochs:
            logits, labels = loader_logits(eval_model, val_loader, info.device, cfg.optim.amp,
                                           gather=all_gather_objects)
            s = metrics.summarize(view_probs(logits), labels)
            val = {"val_loss": s["loss"], "val_top1": s["top1"], "val_top5": s["top5"],
                   "val_mean_class_acc": s["mean_class_acc"]}
        # best.pt: the latest epoch whose validation top-1 is within noise of the best seen (two
        # standard errors on these clips). A later epoch of the decayed schedule and the weight
        # average is the better model unless an earlier one was clearly better; on a few clips
        # (10 per class: +-15 points) a strict maximum picks noise, and last.pt tested 1.5-6.4 points
        # above it (benchmarks/learning_curves.py).
        improved = False
        if val:
            peak = max(peak, val["val_top1"])
            improved = val["val_top1"] >= peak - metrics.noise_margin(peak, len(val_ds))
        if improved:
            best_top1, best_epoch = val["val_top1"], epoch

        row = {"epoch": epoch, "lr": _fmt(lr), "train_loss": _fmt(stats["train_loss"]),
               "train_top1": _fmt(stats["train_top1"]), "time": _fmt(time.perf_counter() - epoch_start),
               "clips_per_s": _fmt(stats["clips_per_s"]), **{k: _fmt(v) for k, v in val.items()}}
        last = {"epoch": epoch, **stats, **val}
        if main_rank:
            rows.append(row)
            _write_csv(csv_path, rows)  # before last.pt: a resume drops rows past the checkpoint
            ckpt = Checkpoint(
                model=eval_model.state_dict(), config=cfg, classes=classes, layout=layout, in_channels=in_channels,
                epoch=epoch, best_metric=best_top1, best_epoch=best_epoch,
                train=TrainState(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                 rng=rng_state(), scaler=scaler.state_dict() if use_scaler else {},
                                 train_model=model.state_dict() if ema is not None else None,
                                 ema_updates=ema.updates if ema is not None else 0))
            if improved:
                ckpt.save(best_path)
            ckpt.save(last_path)
            if writer is not None:
                for k, v in {**stats, **val, "lr": lr}.items():
                    writer.add_scalar(k, v, epoch)
            val_txt = (f" | val loss {val['val_loss']:.4f} top1 {val['val_top1']:.4f} top5 {val['val_top5']:.4f} "
                       f"mca {val['val_mean_class_acc']:.4f}") if val else ""
            _log(f"epoch {epoch}/{cfg.optim.epochs} lr {lr:.3g} | train loss {stats['train_loss']:.4f} "
                 f"top1 {stats['train_top1']:.4f} | {stats['clips_per_s']:.1f} clips/s{val_txt}", work_dir)

    if writer is not None:
        writer.close()
    if last and overfit is None and cfg.calibration.enabled:
        calibrations = _calibrate_checkpoints(cfg, packed, layout, val_idx, eval_model, info, work_dir,
                                              best_epoch, cfg.optim.epochs, classes, in_channels, refine)
        if main_rank:
            for name, c in calibrations.items():
                _log(f"calibrated {name} on {validation}: {describe(c)}", work_dir)
    if main_rank and rows:
        from skelact.viz.plots import plot_curves

        plot_curves(csv_path, work_dir / "curves.png")
    result = {**last, "epoch": cfg.optim.epochs, "best_top1": best_top1, "best_epoch": best_epoch,
              "validation": validation, "num_val_clips": len(val_ds),
              "weights_digest": state_digest(model), "work_dir": str(work_dir)}
    if not last and main_rank:
        _log(f"nothing to do: {last_path} already holds epoch {start_epoch - 1}", work_dir)
    return result


def _calibrate_checkpoints(cfg: Config, packed: PackedClips, layout: Layout, val_idx: np.ndarray,
                           last_model: nn.Module, info: DistInfo, work_dir: Path, best_epoch: int,
                           last_epoch: int, classes: list[str], in_channels: int,
                           refine: Refine | None) -> dict[str, Calibration]:
    """Fit temperature and unknown threshold on the validation split (the test-time views, scored as
    ``skelact calibrate`` scores them) for ``last.pt`` and ``best.pt``, then ``refine`` (rank 0), and
    store them there. Every rank predicts; rank 0 refines and writes."""
    options = ScoreOptions(workers=cfg.data.num_workers, amp=cfg.optim.amp, progress="calibration")
    out: dict[str, Calibration] = {}
    for name in ("last.pt", "best.pt"):
        path = work_dir / name
        if name == "best.pt" and best_epoch == last_epoch:
            out[name] = out["last.pt"]  # the same weights
        else:
            model = last_model
            if name == "best.pt":
                if not path.is_file():
                    continue
                model = copy.deepcopy(last_model)
                fit_weights(model, Checkpoint.load(path, map_location=info.device).model, path)
            predictor = Predictor(model, cfg, classes, layout, in_channels, str(path), info.device)
            scores = score_clips(predictor, packed, val_idx, options, shard=(info.rank, info.world_size),
                                 gather=all_gather_objects)
            out[name] = calibrate(scores.logits, scores.labels, builders.validation_name(cfg), cfg.calibration.accept)
            if info.rank == 0:
                run = Checkpoint(model={}, config=cfg, classes=classes, layout=layout, in_channels=in_channels)
                out[name] = refine_after_training(refine, out[name], run, model,
                                                  [packed.clip(int(i)) for i in val_idx],
                                                  lambda text, n=name: _log(f"{n}: {text}", work_dir))
        if info.rank == 0 and path.is_file():
            ckpt = Checkpoint.load(path, require_train_state=name == "last.pt")
            ckpt.calibration = out[name]
            ckpt.save(path)
    return out


def _tensorboard(work_dir: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` when ``tensorboard`` is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(work_dir / "tb"))

"""Train an ensemble of streams and write it as one checkpoint.

``train_ensemble(cfg, work_dir)`` for a recipe with ``model.streams`` (``skelact train DATA.pkl
--streams j,b,jm,bm``):

1. trains each stream in ``WORK_DIR/streams/<name>/``, one after another, with
   :func:`skelact.engine.train.train` and the recipe less its streams, with the stream's features
   (and no calibration of its own; the ensemble is calibrated as a whole);
2. runs every stream's ``best.pt`` (then every stream's ``last.pt``) over the validation clips
   (``builders.validation_split``: the recipe's validation split, or the share carved from the
   training split; never the test split),
   as one :class:`~skelact.models.ensemble.StreamEnsemble` whose input is the joint clip (scored by
   ``inference.score_clips``, as ``skelact test`` scores), and chooses the fusion weights there
   (:func:`choose_weights`) unless the recipe gives them;
3. writes ``WORK_DIR/best.pt``: the ensemble, with its temperature and unknown threshold fitted on
   the same validation logits; and ``WORK_DIR/last.pt``, the same from every stream's ``last.pt``
   (the last epoch, fixed in advance). ``test``, ``predict``, ``calibrate``, ``export`` and ``live``
   load them like any checkpoint. ``--resume`` continues each stream from its own ``last.pt`` (a
   finished stream is not trained again), and fuses them again.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelact.checkpoint import Checkpoint, CheckpointError, fit_weights
from skelact.config import Config, ConfigError, StreamConfig, config_to_yaml
from skelact.data.dataset import PackedClips
from skelact.data.io import atomic_write
from skelact.engine import builders, metrics
from skelact.engine.calibrate import Refine, calibrate, describe, refine_after_training
from skelact.engine.train import _log, train
from skelact.engine.workdir import lock_work_dir, remove_stale_temporaries
from skelact.inference import Predictor, ScoreOptions, score_clips, view_probs
from skelact.models.ensemble import StreamEnsemble
from skelact.runtime import resolve_amp, resolve_device
from skelact.skeleton import Layout

__all__ = ["train_ensemble", "stream_config", "stream_starts", "stream_dir", "choose_weights",
           "validation_stream_logits", "WEIGHT_GRID"]

#: The weights tried per stream (PYSKL's usual 2:2:1:1 is among the combinations).
WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0)


def stream_dir(work_dir: Path, stream: StreamConfig) -> Path:
    """Where a stream trains: ``WORK_DIR/streams/<name>``."""
    return Path(work_dir) / "streams" / stream.name


def stream_config(cfg: Config, stream: StreamConfig, init: str | Path | None = None) -> Config:
    """The recipe one stream trains with: the ensemble's, with the stream's features, without
    streams, without a calibration of its own, and starting from ``init`` (None: from scratch, at
    the full learning rate: ``optim.backbone_lr_mult`` applies to loaded weights only)."""
    optim = cfg.optim if init is not None else dataclasses.replace(cfg.optim, backbone_lr_mult=1.0)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, features=list(stream.features)),
                               model=dataclasses.replace(cfg.model, streams=[]), optim=optim,
                               calibration=dataclasses.replace(cfg.calibration, enabled=False),
                               init=None if init is None else str(init))


def stream_starts(streams: list[StreamConfig], init: str | Path | None) -> dict[str, str | Path | None]:
    """What each stream starts from: ``init`` where it has a network that sees the stream's features
    (an ensemble checkpoint: the stream of those features; a single model: the stream of its
    features; either without ``partner``: :func:`builders.start_features`), else None (from
    scratch). A joint model is no start for the bone or motion streams: started from it, they
    reached 33-60 % validation top-1 against 80 % from scratch (Penn Action, 10 clips per class)."""
    if init is None:
        return {s.name: None for s in streams}
    have = builders.init_features(init)
    return {s.name: init if builders.start_features(s.features, have) is not None else None for s in streams}


class _AllStreams(nn.Module):
    """Every stream's logits side by side, ``(N, S * classes)``, so that the evaluation code that
    gathers one model's logits gathers them all in one pass."""

    def __init__(self, ensemble: StreamEnsemble) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.ensemble.stream_logits(x)  # [S, N, classes]
        return s.permute(1, 0, 2).flatten(1)


def validation_stream_logits(ensemble: StreamEnsemble, cfg: Config, classes: list[str], layout: Layout,
                             in_channels: int, packed: PackedClips, indices: np.ndarray, options: ScoreOptions,
                             device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """``(logits [S, N, K, classes], labels [N])`` of every stream over the clips ``indices``.

    The one evaluation path (``inference.score_clips``, what ``skelact test`` and the calibration run:
    the recipe's test pipeline, K fixed views) with every stream's logits side by side.
    """
    predictor = Predictor(_AllStreams(ensemble), cfg, classes, layout, in_channels, "the ensemble's streams", device)
    scores = score_clips(predictor, packed, indices, options)
    n, k, _ = scores.logits.shape  # [N, K, S * classes]
    return scores.logits.reshape(n, k, len(ensemble.specs), -1).transpose(2, 0, 1, 3), scores.labels


def _score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(top-1, NLL) of the view-averaged softmax of ``logits [N, K, C]``, as ``skelact test`` reads them."""
    probs = view_probs(logits)
    if not len(labels):
        return 0.0, 0.0
    top1 = float((probs.argmax(axis=1) == labels).mean())
    nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())
    return top1, nll


def choose_weights(stream_logits: np.ndarray, labels: np.ndarray,
                   grid: tuple[float, ...] = WEIGHT_GRID) -> tuple[tuple[float, ...], float]:
    """The fusion weights, and their validation top-1: equal weights, unless a combination's
    validation top-1 beats theirs by more than noise (two standard errors on these clips,
    :func:`skelact.engine.metrics.noise_margin`); then the best combination (then the lowest NLL).

    Every combination of ``grid`` per stream is tried (all zero excepted), scaled to sum to 1, so
    the fused logits stay on one stream's scale (the temperature is fitted afterwards) and
    proportional combinations (1:1 and 2:2) are one candidate. A tie keeps the earlier one. On a
    few validation clips the best of the 255 combinations is mostly noise; equal weights are the
    safe choice there.

    Args:
        stream_logits: ``[S, N, K, C]`` per-stream, per-view logits on the validation clips.
        labels: ``[N]``.
    """
    best: tuple[tuple[float, float], tuple[float, ...]] | None = None
    seen = set()
    for combo in itertools.product(grid, repeat=stream_logits.shape[0]):
        total = sum(combo)
        if total <= 0:
            continue
        w = tuple(round(c / total, 6) for c in combo)
        if w in seen:
            continue
        seen.add(w)
        top1, nll = _score(np.tensordot(np.asarray(w, np.float32), stream_logits, axes=1), labels)
        if best is None or (-top1, nll) < best[0]:
            best = ((-top1, nll), w)
    assert best is not None  # the grid has a non-zero value
    equal = tuple(round(1.0 / stream_logits.shape[0], 6) for _ in range(stream_logits.shape[0]))
    equal_top1 = _score(np.tensordot(np.asarray(equal, np.float32), stream_logits, axes=1), labels)[0]
    if -best[0][0] - equal_top1 <= metrics.noise_margin(-best[0][0], len(labels)):
        return equal, equal_top1
    return best[1], -best[0][0]


def train_ensemble(cfg: Config, work_dir: Path, resume: bool = False, packed: PackedClips | None = None,
                   init: str | Path | None = None, refine: Refine | None = None) -> dict[str, Any]:
    """Train ``cfg.model.streams`` one after another and write the ensemble to ``work_dir/best.pt`` (of the
    streams' ``best.pt``) and ``work_dir/last.pt`` (of their ``last.pt``).

    Args:
        cfg: A recipe with ``model.streams``.
        work_dir: ``config.yaml``, ``log.txt``, ``best.pt``, ``last.pt`` and ``streams/<name>/`` (each a
            training work dir).
        resume: Continue each stream from its ``last.pt`` (a finished one is not trained again).
        packed: ``cfg.data.ann_file`` already loaded.
        init: The checkpoint file ``cfg.init`` names (None: ``cfg.init``): each stream it has a
            network for starts from that network (:func:`stream_starts`), the others from scratch.
        refine: A further fit after the ensemble's calibration (``skelact train``: the timeline threshold).

    Returns:
        ``best_top1`` (the ``best.pt`` ensemble's validation top-1), ``best_epoch``, ``validation``,
        ``num_val_clips``, ``weights`` and ``streams`` (each stream's validation top-1), ``last_top1``
        (the ``last.pt`` ensemble's), ``work_dir``.
    """
    if not cfg.model.streams:
        raise ConfigError("model.streams: an ensemble needs streams")
    builders.check_model_name(cfg)
    if builders.input_kind(cfg.model.name) != "keypoint":
        raise ConfigError(f"model.streams: {cfg.model.name!r} draws heatmaps from the raw keypoints; only keypoint "
                          "models make ensembles of feature streams")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("model.streams: an ensemble trains in one process; train each stream under torchrun "
                          "instead (a recipe per stream) and fuse their scores with `skelact fuse`")
    work_dir = Path(work_dir)
    created = not work_dir.exists()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        with lock_work_dir(work_dir):  # one run per work dir; each stream locks its own folder too
            remove_stale_temporaries(work_dir)
            return _train_ensemble(cfg, work_dir, resume, packed, init if init is not None else cfg.init, refine)
    except BaseException:
        if created and work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()  # failed before writing anything: leave no trace
        raise


def _train_ensemble(cfg: Config, work_dir: Path, resume: bool, packed: PackedClips | None,
                    init: str | Path | None, refine: Refine | None) -> dict[str, Any]:
    if packed is None:
        packed = builders.load_clips(cfg.data)
    text = config_to_yaml(cfg).encode("utf-8")
    atomic_write(work_dir / "config.yaml", lambda f: f.write(text))
    streams = cfg.model.streams
    names = ", ".join(f"{s.name} ({'+'.join(s.features)})" for s in streams)
    _log(f"ensemble of {len(streams)} {cfg.model.name} streams: {names}", work_dir)
    starts = stream_starts(streams, init)
    for s in streams:
        start = starts[s.name]
        how = "" if init is None else f", starting from {start}" if start is not None else \
            f", from scratch ({init} has no network for {'+'.join(s.features)})"
        _log(f"stream {s.name}: training in {stream_dir(work_dir, s)}{how}", work_dir)
        train(stream_config(cfg, s, start), stream_dir(work_dir, s), resume=resume, packed=packed, init=start)

    layout = builders.resolve_layout(cfg.data, packed)
    classes = builders.class_names(packed)
    _, val_idx = builders.validation_split(cfg, packed, len(classes))
    validation = builders.validation_name(cfg, quote=True)
    if cfg.data.val_split is not None and cfg.data.val_split == builders.evaluated_split(cfg.data)[0]:
        _log(f"note: the weights and the calibration are chosen on {validation}, the split `skelact test` evaluates: "
             "its top-1 is then not an unseen test (set data.val_fraction to validate on a share of "
             f"{cfg.data.train_split!r})", work_dir)
    # best.pt: every stream's best.pt; last.pt: every stream's last epoch (what a run reports when its
    # epoch is fixed in advance). Each is fused and calibrated on the validation clips on its own.
    fused = _fuse(cfg, work_dir, packed, layout, classes, val_idx, refine)
    top1, weights, per_stream = fused["best"]
    return {"best_top1": top1, "best_epoch": cfg.optim.epochs, "validation": validation,
            "num_val_clips": len(val_idx), "weights": dict(zip([s.name for s in streams], weights, strict=True)),
            "streams": per_stream, "last_top1": fused["last"][0], "work_dir": str(work_dir)}


def _fuse(cfg: Config, work_dir: Path, packed: PackedClips, layout: Layout, classes: list[str], val_idx: np.ndarray,
          refine: Refine | None) -> dict[str, tuple[float, tuple[float, ...], dict[str, float]]]:
    """The streams' ``last.pt``, then their ``best.pt``, each as one model whose input is the joint clip, its
    fusion weights chosen and its calibration fitted on the validation clips, written to ``WORK_DIR/last.pt`` and
    ``WORK_DIR/best.pt``.

    Returns:
        Per ``last`` / ``best``: the ensemble's validation top-1, its weights, and each stream's validation top-1.
    """
    streams = cfg.model.streams
    # The stored recipe says whether the last input channel is a score: only when the clips have one.
    ens_cfg = dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, features=["joint"], with_score=cfg.data.with_score and packed.score is not None))
    in_channels = int(builders.build_dataset(ens_cfg, packed, layout, val_idx[:1], train=False, num_clips=1)[0][0]
                      .shape[-1])
    device = resolve_device(cfg.device, "device")
    # The views `skelact test` averages, as the calibration uses; batched as `skelact test` batches them.
    options = ScoreOptions(workers=cfg.data.num_workers, amp=resolve_amp(cfg.optim.amp, device, strict=False))
    k = options.views(ens_cfg.data)
    builders.check_memory(ens_cfg, len(classes), layout, in_channels, (cfg.data.max_persons, cfg.data.clip_len),
                          options.batch(ens_cfg.data) * k, device, str(cfg.data.ann_file), training=False)
    validation = builders.validation_name(cfg, quote=True)
    val_clips = [packed.clip(int(i)) for i in val_idx]  # what the timeline fit (refine) joins
    out = {}
    for which in ("last", "best"):
        model = builders.build_model(ens_cfg, len(classes), layout, in_channels)
        assert isinstance(model, StreamEnsemble)
        for s in streams:
            folder = stream_dir(work_dir, s)
            path = folder / f"{which}.pt" if (folder / f"{which}.pt").is_file() else folder / "last.pt"
            ckpt = Checkpoint.load(path)
            if ckpt.classes != classes:
                raise CheckpointError(f"{path}: trained on other classes than {cfg.data.ann_file} holds")
            fit_weights(model.streams[s.name], ckpt.model, str(path), f"stream {s.name!r} of the ensemble")
        model = model.eval().to(device)
        scoring = dataclasses.replace(options, progress=f"streams' {which}.pt on validation")
        logits, labels = validation_stream_logits(model, ens_cfg, classes, layout, in_channels, packed, val_idx,
                                                  scoring, device)

        # ---- fusion weights on the validation clips, then the ensemble calibrated as a whole
        if all(s.weight is not None for s in streams):
            weights = tuple(float(s.weight) for s in streams)  # type: ignore[arg-type]
            how = "given by the recipe"
        else:
            weights, _ = choose_weights(logits, labels)
            how = (f"chosen on {validation} from {'/'.join(f'{g:g}' for g in WEIGHT_GRID)} per stream; equal unless "
                   "a weighting is better beyond noise")
        fused = np.tensordot(np.asarray(weights, np.float32), logits, axes=1)  # [N, K, C]
        per_stream = {s.name: _score(logits[i], labels)[0] for i, s in enumerate(streams)}
        top1 = _score(fused, labels)[0]
        for s in streams:
            _log(f"stream {s.name} ({which}.pt): validation top-1 {100 * per_stream[s.name]:.2f} % "
                 f"({len(labels)} clips, {k} views)", work_dir)
        named = ", ".join(f"{s.name} {w:.3g}" for s, w in zip(streams, weights, strict=True))
        _log(f"ensemble of the {which}.pt: weights {named} ({how}): validation top-1 {100 * top1:.2f} %", work_dir)
        model.specs = tuple(dataclasses.replace(spec, weight=w) for spec, w in zip(model.specs, weights, strict=True))
        final = dataclasses.replace(ens_cfg, model=dataclasses.replace(ens_cfg.model, streams=[
            dataclasses.replace(s, weight=w) for s, w in zip(streams, weights, strict=True)]))
        calibration = None
        if cfg.calibration.enabled:
            calibration = calibrate(fused, labels, builders.validation_name(cfg), cfg.calibration.accept)
        ckpt = Checkpoint(model={name: w.cpu() for name, w in model.state_dict().items()}, config=final,
                          classes=classes, layout=layout, in_channels=in_channels, epoch=cfg.optim.epochs,
                          best_metric=top1, best_epoch=cfg.optim.epochs, calibration=calibration)
        if calibration is not None:
            ckpt.calibration = refine_after_training(refine, calibration, ckpt, model, val_clips,
                                                     lambda t: _log(t, work_dir))
            _log(f"calibrated the ensemble of the {which}.pt on {validation}: {describe(ckpt.calibration)}", work_dir)
        ckpt.save(work_dir / f"{which}.pt")
        _log(f"wrote the ensemble to {work_dir / f'{which}.pt'}", work_dir)
        out[which] = top1, weights, per_stream
    return out

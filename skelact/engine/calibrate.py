"""Calibrated probabilities and an honest "unknown action": a softmax temperature and a threshold,
both chosen on a validation split only.

- The temperature ``T`` minimises the validation negative log-likelihood of the test-time
  prediction itself (softmax of ``logits / T`` averaged over the K views), found by a bounded
  search over ``log T`` (Guo et al. 2017, "On Calibration of Modern Neural Networks"). It is left at
  1 where the fit is ill-posed: fewer than :data:`MIN_FIT_CLIPS` validation clips, or every one of
  them right (the NLL then only falls as ``T`` shrinks; a small dataset's 10 % validation share was
  fitted to T = 0.05, which made every later prediction "unknown").
- The unknown-action threshold is the ``1 - accept`` quantile of the calibrated top-1
  probability on the validation clips, so that a fraction ``accept`` (e.g. 95 %) of in-distribution
  clips is accepted; anything less confident is reported as "unknown action (closest: X, p)".

``train`` calls :func:`calibrate` after the last epoch and stores the result in ``last.pt`` and
``best.pt`` (``skelact train`` also fits the timeline's threshold there, :func:`refine_after_training`);
``skelact calibrate CKPT`` does it for an existing checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skelact.checkpoint import Calibration
from skelact.engine.metrics import expected_calibration_error
from skelact.inference import view_probs

__all__ = ["MIN_FIT_CLIPS", "Refine", "fit_temperature", "unknown_threshold", "calibrate", "refine_after_training",
           "describe", "calibrate_checkpoint"]

_LOG_T = (math.log(0.05), math.log(20.0))
#: Fewer validation clips than this fit no temperature (T stays 1).
MIN_FIT_CLIPS = 20


def _nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = view_probs(logits, t)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the NLL of the view-averaged softmax; 1 when the fit
    is ill-posed (fewer than :data:`MIN_FIT_CLIPS` clips, or no clip wrong).

    Args:
        logits: [N, K, C] per-view logits.
        labels: [N] true classes.
    """
    from scipy.optimize import minimize_scalar

    if len(labels) < MIN_FIT_CLIPS or (view_probs(logits).argmax(axis=1) == labels).all():
        return 1.0
    res = minimize_scalar(lambda lt: _nll(logits, labels, math.exp(lt)), bounds=_LOG_T, method="bounded",
                          options={"xatol": 1e-3})
    t = math.exp(float(res.x))
    # The search can stop a hair off a flat optimum: never do worse than no scaling at all.
    return t if _nll(logits, labels, t) <= _nll(logits, labels, 1.0) else 1.0


def unknown_threshold(probs: np.ndarray, accept: float) -> float:
    """The top-1 probability that ``accept`` of the clips reach (the ``1 - accept`` quantile)."""
    if not 0.0 < accept <= 1.0:
        raise ValueError(f"accept must be in (0, 1], got {accept}")
    top = np.asarray(probs, np.float64).max(axis=1)
    return float(np.quantile(top, 1.0 - accept, method="lower")) if top.size else 0.0


def calibrate(logits: np.ndarray, labels: np.ndarray, split: str, accept: float = 0.95) -> Calibration:
    """Temperature and unknown threshold from a split's per-view logits [N, K, C] and labels [N]."""
    t = fit_temperature(logits, labels)
    before, after = view_probs(logits, 1.0), view_probs(logits, t)
    threshold = unknown_threshold(after, accept)
    accepted = float((after.max(axis=1) >= threshold).mean()) if len(labels) else 0.0
    return Calibration(temperature=t, threshold=threshold, split=split,
                       ece_before=expected_calibration_error(before, labels),
                       ece_after=expected_calibration_error(after, labels), accept_rate=accepted)


#: A further fit on the same validation clips, from a layer above (``skelact.stream.fitting``'s timeline
#: threshold): ``(calibration, checkpoint with the run's config, its model, the clips) -> calibration``.
Refine = Callable[[Calibration, Any, Any, list[dict]], Calibration]


def refine_after_training(refine: Refine | None, calibration: Calibration, ckpt: Any, model: Any, clips: list[dict],
                          log: Callable[[str], None]) -> Calibration:
    """Training's last step: ``refine`` (the timeline threshold, from the CLI) on the validation clips.

    A fit that fails (e.g. clips too short for the timeline's windows) leaves ``calibration`` as it
    was and says so in ``log``: a trained model is not thrown away for it.
    """
    from skelact.errors import SkelactError

    if refine is None:
        return calibration
    try:
        return refine(calibration, ckpt, model, clips)
    except SkelactError as e:
        log(f"timeline threshold not fitted ({e}); predict --window uses the clip threshold")
        return calibration


def describe(c: Calibration) -> str:
    """What training logs of a calibration: temperature, ECE, the unknown threshold (and the timeline's)."""
    text = (f"temperature {c.temperature:.3f}, ECE {c.ece_before:.4f} -> {c.ece_after:.4f}; unknown below p = "
            f"{c.threshold:.3f} ({c.accept_rate:.1%} of the clips accepted)")
    if c.timeline_threshold is not None and c.timeline_accept is not None:
        text += (f"; timeline (predict --window): unknown below p = {c.timeline_threshold:.3f} "
                 f"({c.timeline_accept:.1%} of the frames of joined validation clips accepted)")
    return text


def calibrate_checkpoint(checkpoint: Path, out: Path, split: str | None = None, accept: float = 0.95,
                         ann_file: str | None = None, refine: Refine | None = None) -> Calibration:
    """Fit a checkpoint's temperature and unknown threshold on a split of its data; write it to ``out``.

    Args:
        checkpoint: A ``.pt`` from ``skelact train``.
        out: Where the calibrated checkpoint goes (atomically; not ``checkpoint`` itself).
        split: The split to fit on (default: the clips training validated on: ``data.val_split``,
            or the share ``data.val_fraction`` carved from the training split, the same clips).
            Use a validation split, never the one you report results on.
        accept: Fraction of the split's clips the unknown threshold accepts.
        ann_file: The data file (default: the recipe's ``data.ann_file``).
        refine: Called with the fitted calibration before the file is written; returns the one to store.
    """
    import dataclasses

    from skelact.checkpoint import Checkpoint
    from skelact.data.dataset import PackedClips
    from skelact.engine import builders
    from skelact.engine.evaluate import score_checkpoint
    from skelact.inference import ScoreOptions
    from skelact.runtime import resolve_amp, resolve_device

    ckpt = Checkpoint.load(checkpoint)
    data = ckpt.config.data
    if split is not None:  # a named split replaces the recipe's validation clips, carved or not
        data = dataclasses.replace(data, val_split=split, val_fraction=0.0)
    if ann_file is not None:
        data = dataclasses.replace(data, ann_file=ann_file)
    cfg = dataclasses.replace(ckpt.config, data=data)
    device = resolve_device("auto")

    def select(clips: PackedClips) -> np.ndarray:
        if split is not None:
            return builders.split_indices(clips, split, len(ckpt.classes), "--split")
        return builders.validation_split(cfg, clips, len(ckpt.classes))[1]

    options = ScoreOptions(workers=cfg.data.num_workers, amp=resolve_amp(cfg.optim.amp, device, strict=False),
                           progress="calibration")
    scores, packed, idx, predictor = score_checkpoint(ckpt, str(checkpoint), cfg, device, select, options)
    ckpt.calibration = calibrate(scores.logits, scores.labels, builders.validation_name(cfg), accept)
    if refine is not None:
        ckpt.calibration = refine(ckpt.calibration, dataclasses.replace(ckpt, config=cfg), predictor.model,
                                  [packed.clip(int(i)) for i in idx])
    ckpt.save(out)
    return ckpt.calibration

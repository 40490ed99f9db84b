"""The one checkpoint type: what ``skelact train`` writes and ``test``, ``predict``, ``export`` and the
shipped models read.

On disk a checkpoint is a ``torch.save`` dict of tensors, numbers, strings, lists and dicts only, so
it loads with ``torch.load(..., weights_only=True)`` and no code from the file ever runs::

    {'format': 'skelact-checkpoint', 'version': 2,
     'model': state_dict, 'config': dict, 'classes': [str], 'layout': {joints, edges, root, ...},
     'in_channels': int, 'epoch': int, 'best_metric': float, 'best_epoch': int,
     'calibration': {'temperature': float, 'threshold': float | None, ...}      # optional
     'optimizer', 'scheduler', 'scaler', 'rng', 'train_model', 'ema_updates'}  # training state

The layout is stored whole, so a model trained on a user layout tests, predicts and exports on a
machine that has never seen the layout's YAML file. Files of version 1 (layout stored by name) load
when that name is a built-in layout. With ``optim.ema``, ``model`` holds the averaged weights and
``train_model`` the raw ones that ``--resume`` continues from.
"""

from __future__ import annotations

import errno
import math
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelact.config import Config, ConfigError, config_from_dict, config_to_dict
from skelact.data.io import atomic_write
from skelact.errors import SkelactError, one_line, short_repr
from skelact.skeleton import Layout, LayoutError, get_layout, layout_from_dict, list_layouts

__all__ = ["CheckpointError", "Calibration", "TrainState", "Checkpoint", "fit_weights", "release_checkpoint",
           "model_from_config", "FORMAT", "VERSION"]

FORMAT = "skelact-checkpoint"
VERSION = 2
_REQUIRED = ("model", "config", "classes", "layout", "in_channels")
_TRAIN_KEYS = ("optimizer", "scheduler", "rng")


class CheckpointError(SkelactError, ValueError):
    """A checkpoint file is missing, unreadable, foreign or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Calibration:
    """How the model's probabilities are read: a softmax temperature and an "unknown action" threshold.

    Attributes:
        temperature: Logits are divided by it before the softmax (fitted on the validation split).
        threshold: A top-1 probability (after the temperature) below this is reported as unknown;
            None: never.
        split: The split both were chosen on.
        ece_before: Expected calibration error on that split at temperature 1.
        ece_after: The same at ``temperature``.
        accept_rate: Fraction of that split's clips at or above ``threshold``.
        timeline_threshold: The threshold of the window timeline (``predict --window``), whose frames
            take the most confident of many overlapping windows and so are surer than single clips:
            fitted for that rule on joined validation sequences (see
            ``skelact.stream.fitting``); None: the timeline uses ``threshold``.
        timeline_accept: Share of the in-class frames of those sequences at or above it.
        timeline_flagged: Share of their out-of-class frames below it (None: fitted without any).
        timeline_data: What the out-of-class stretches were ("" when none were given).
    """

    temperature: float = 1.0
    threshold: float | None = None
    split: str = ""
    ece_before: float | None = None
    ece_after: float | None = None
    accept_rate: float | None = None
    timeline_threshold: float | None = None
    timeline_accept: float | None = None
    timeline_flagged: float | None = None
    timeline_data: str = ""

    def unknown(self, probs: np.ndarray, timeline: bool = False) -> np.ndarray:
        """The "unknown action" rule, for ``probs [..., C]``: top-1 probability below the threshold.

        One rule for ``skelact predict`` (``Predictor``), ``skelact test`` (its unknown rate) and,
        with ``timeline``, the frames of a window timeline (``probs``: the frame's most confident
        covering window), which use ``timeline_threshold`` when one was fitted.
        """
        top1 = np.max(probs, axis=-1)
        threshold = self.timeline_threshold if timeline and self.timeline_threshold is not None else self.threshold
        return top1 < threshold if threshold is not None else np.zeros(np.shape(top1), bool)

    def to_dict(self) -> dict[str, Any]:
        out = {"temperature": self.temperature, "threshold": self.threshold, "split": self.split,
               "ece_before": self.ece_before, "ece_after": self.ece_after, "accept_rate": self.accept_rate}
        if self.timeline_threshold is not None:  # files without it stay as they were
            out.update(timeline_threshold=self.timeline_threshold, timeline_accept=self.timeline_accept,
                       timeline_flagged=self.timeline_flagged, timeline_data=self.timeline_data)
        return out

    @classmethod
    def from_dict(cls, value: object, where: str) -> Calibration:
        if not isinstance(value, dict):
            raise CheckpointError(f"{where}: 'calibration' must be a mapping, got {short_repr(value)}")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise CheckpointError(f"{where}: 'calibration' has unknown keys {short_repr(sorted(map(str, unknown)))}")

        def number(key: str, optional: bool) -> float | None:
            v = value.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CheckpointError(f"{where}: calibration '{key}' must be a finite number, got {short_repr(v)}")
            return float(v)

        temperature = number("temperature", optional=False) if "temperature" in value else 1.0
        if temperature <= 0:
            raise CheckpointError(f"{where}: calibration 'temperature' must be > 0, got {temperature}")
        threshold, timeline_threshold = number("threshold", optional=True), number("timeline_threshold", True)
        for key, v in (("threshold", threshold), ("timeline_threshold", timeline_threshold)):
            if v is not None and not 0.0 <= v <= 1.0:
                raise CheckpointError(f"{where}: calibration '{key}' must be a probability, got {v}")
        split, data = value.get("split", ""), value.get("timeline_data", "")
        for key, v in (("split", split), ("timeline_data", data)):
            if not isinstance(v, str):
                raise CheckpointError(f"{where}: calibration '{key}' must be a string, got {short_repr(v)}")
        return cls(temperature, threshold, split, number("ece_before", True), number("ece_after", True),
                   number("accept_rate", True), timeline_threshold, number("timeline_accept", True),
                   number("timeline_flagged", True), data)


@dataclass
class TrainState:
    """What ``--resume`` needs beyond the weights."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    scaler: dict[str, Any] = field(default_factory=dict)
    train_model: dict[str, torch.Tensor] | None = None  # raw weights when ``model`` holds the EMA
    ema_updates: int = 0


@dataclass
class Checkpoint:
    """A trained model and everything needed to use it (and, optionally, to resume its training).

    Attributes:
        model: The weights (``state_dict``).
        config: The recipe it was trained with.
        classes: Class names in label order.
        layout: The skeleton layout of its input, whole.
        in_channels: C of its ``(N, M, T, V, C)`` input.
        epoch: Epochs trained.
        best_metric: Best validation top-1 so far (-1 before any validation).
        best_epoch: Epoch of ``best_metric``.
        calibration: Temperature and unknown-action threshold, when fitted.
        train: Optimiser, schedule and RNG state for ``--resume`` (None in released models).
    """

    model: dict[str, torch.Tensor]
    config: Config
    classes: list[str]
    layout: Layout
    in_channels: int
    epoch: int = 0
    best_metric: float = -1.0
    best_epoch: int = 0
    calibration: Calibration | None = None
    train: TrainState | None = None

    # ------------------------------------------------------------------ writing

    def to_state(self) -> dict[str, Any]:
        """The on-disk dict (weights-only-safe)."""
        state: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "model": self.model, "config": config_to_dict(self.config),
            "classes": list(self.classes), "layout": self.layout.to_dict(), "in_channels": self.in_channels,
            "epoch": self.epoch, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
        }
        if self.calibration is not None:
            state["calibration"] = self.calibration.to_dict()
        if self.train is not None:
            t = self.train
            state.update(optimizer=t.optimizer, scheduler=t.scheduler, scaler=t.scaler, rng=t.rng)
            if t.train_model is not None:
                state.update(train_model=t.train_model, ema_updates=t.ema_updates)
        return state

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file in the same folder, then a rename.

        A crash (even SIGKILL) leaves either the previous file or the new one, never a torn file.
        """
        state = self.to_state()
        return atomic_write(path, lambda f: torch.save(state, f))

    def describe(self) -> str:
        """What ``skelact info CHECKPOINT`` prints: model, data, training, calibration; one fact a line."""
        cfg, cal = self.config, self.calibration
        params = sum(int(t.numel()) for k, t in self.model.items() if t.is_floating_point() and "running_" not in k)
        streams = ", ".join(f"{s.name} ({'+'.join(s.features)}"
                            + (f", weight {s.weight:.3g})" if s.weight is not None else ")")
                            for s in cfg.model.streams)
        names = ", ".join(self.classes[:8]) + (f", ... ({len(self.classes) - 8} more)" if len(self.classes) > 8 else "")
        lines = [f"model: {cfg.model.name}, {params / 1e6:.2f} M parameters"
                 + (f"; an ensemble of streams {streams}" if streams else f"; features {', '.join(cfg.data.features)}"),
                 f"classes: {len(self.classes)}: {names}",
                 f"layout: {self.layout.name} ({self.layout.num_joints} joints); input C={self.in_channels}; "
                 f"{cfg.data.clip_len} frames, {cfg.data.max_persons} person(s), normalize {cfg.data.normalize}",
                 f"trained: {self.epoch} epoch(s) on {cfg.data.ann_file} (split {cfg.data.train_split!r})"
                 + (f", from {cfg.init}" if cfg.init else "")
                 + (f"; best validation top-1 {100 * self.best_metric:.2f} % at epoch {self.best_epoch}"
                    if self.best_metric >= 0 else "")]
        if cal is None:
            lines.append("calibration: none (temperature 1, no unknown threshold; `skelact calibrate` fits them)")
        else:
            accept = f", {100 * cal.accept_rate:.1f} % accepted" if cal.accept_rate is not None else ""
            ece = (f"; ECE {cal.ece_before:.4f} -> {cal.ece_after:.4f}"
                   if cal.ece_before is not None and cal.ece_after is not None else "")
            unknown = f"unknown below p = {cal.threshold:.3f}{accept}" if cal.threshold is not None else "no threshold"
            lines.append(f"calibration: temperature {cal.temperature:.3f}, {unknown}, on {cal.split or '?'}{ece}")
            lines.append(f"timeline threshold (predict --window): {cal.timeline_threshold:.3f}, fitted with "
                         f"{cal.timeline_data or 'no out-of-class data'}" if cal.timeline_threshold is not None
                         else "timeline threshold (predict --window): not fitted, the clip threshold serves "
                         "(`skelact calibrate --unknown-data` fits it)")
        lines.append("resumable: yes (training state kept)" if self.train is not None
                     else "resumable: no (a released model)")
        return "\n".join(lines)

    def released(self) -> Checkpoint:
        """A copy without the training state (what is shipped or handed to users)."""
        return replace(self, train=None)

    # ------------------------------------------------------------------ reading

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu",
             require_train_state: bool = False) -> Checkpoint:
        """Read and validate a checkpoint file.

        Args:
            path: A ``.pt`` written by ``skelact train`` (or a released model).
            map_location: Where tensors are loaded.
            require_train_state: Also require (and check) what ``--resume`` needs.

        Raises:
            CheckpointError: One line naming ``path`` and what is wrong with it.
        """
        path = Path(path)
        return cls.from_state(_read(path, map_location), str(path), require_train_state)

    @classmethod
    def from_state(cls, state: object, where: str = "checkpoint", require_train_state: bool = False) -> Checkpoint:
        """Validate an unpickled checkpoint dict (see the module docstring) and build the object."""
        if not isinstance(state, dict):
            raise CheckpointError(f"{where}: not a skelact checkpoint (it holds {short_repr(state)}, not a mapping)")
        fmt = state.get("format", FORMAT)
        if fmt != FORMAT:
            raise CheckpointError(f"{where}: not a skelact checkpoint (format {short_repr(fmt)})")
        version = state.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version > VERSION:
            raise CheckpointError(f"{where}: checkpoint version {short_repr(version)} is newer than this skelact "
                                  f"reads ({VERSION}); upgrade skelact")
        missing = [k for k in _REQUIRED if k not in state]
        if missing:
            raise CheckpointError(f"{where}: not a skelact checkpoint (missing {', '.join(missing)})")
        model = _state_dict(state["model"], where, "model")
        try:
            config = config_from_dict(state["config"])
        except ConfigError as e:
            raise CheckpointError(f"{where}: invalid stored config: {e}") from None
        classes = state["classes"]
        if (not isinstance(classes, (list, tuple)) or not classes or len(classes) > 100_000
                or not all(isinstance(c, str) for c in classes)):
            raise CheckpointError(f"{where}: 'classes' must be a non-empty list of names, got {short_repr(classes)}")
        layout = _layout(state["layout"], where)
        in_channels = _int(state["in_channels"], where, "in_channels", low=1)
        epoch = _int(state.get("epoch", 0), where, "epoch", low=0)
        best_epoch = _int(state.get("best_epoch", 0), where, "best_epoch", low=0)
        best = state.get("best_metric", -1.0)
        if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
            raise CheckpointError(f"{where}: 'best_metric' must be a number, got {short_repr(best)}")
        calibration = None
        if state.get("calibration") is not None:
            calibration = Calibration.from_dict(state["calibration"], where)
        train = _train_state(state, where) if require_train_state or all(k in state for k in _TRAIN_KEYS) else None
        return cls(model, config, [str(c) for c in classes], layout, in_channels, epoch, float(best), best_epoch,
                   calibration, train)

    # ------------------------------------------------------------------ using

    def build_model(self, device: str | torch.device = "cpu", where: str = "checkpoint") -> nn.Module:
        """The registered model its config names, with these weights, in eval mode on ``device``.

        Raises:
            CheckpointError: The model cannot be built, or the weights do not fit it (the message
                says which tensors are missing, unexpected or of another shape).
        """
        name = self.config.model.name
        streams = self.config.model.streams
        if any(s.weight is None for s in streams):
            raise CheckpointError(f"{where}: its ensemble of {len(streams)} streams has no fusion weights")
        try:
            model = model_from_config(self.config, len(self.classes), self.layout, self.in_channels)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{where}: cannot build its model {name!r}: {one_line(e)}") from None
        what = f"an ensemble of {len(streams)} {name!r} streams" if streams else f"the {name!r} model"
        fit_weights(model, self.model, where, f"{what} its config describes ({len(self.classes)} "
                    f"classes, layout {self.layout.name!r}, C={self.in_channels})")
        return model.eval().to(device)


def model_from_config(config: Config, num_classes: int, layout: Layout, in_channels: int) -> nn.Module:
    """The model a recipe describes, untrained: the registered ``model.name`` with ``model.kwargs``, or,
    with ``model.streams``, a :class:`~skelact.models.ensemble.StreamEnsemble` of it whose input is the
    joint clip (its last channel the score when ``data.with_score``; see ``engine/ensemble.py``).

    The one place both training (``engine/builders.build_model``) and :meth:`Checkpoint.build_model`
    make a model from a config.

    Raises:
        ValueError, TypeError: The registry refuses the name, an option or the input.
    """
    from skelact.models import create_model
    from skelact.models.ensemble import StreamSpec, create_ensemble

    m = config.model
    if not m.streams:
        return create_model(m.name, num_classes, layout, in_channels, **m.kwargs)
    specs = [StreamSpec(s.name, tuple(s.features), 1.0 if s.weight is None else s.weight) for s in m.streams]
    return create_ensemble(m.name, num_classes, layout, in_channels, config.data.with_score, specs, **m.kwargs)


def fit_weights(model: nn.Module, weights: dict[str, torch.Tensor], where: str, what: str = "the model") -> None:
    """``model.load_state_dict(weights)`` after checking that they fit exactly.

    Raises:
        CheckpointError: Missing, unexpected or differently shaped tensors, named in one line.
    """
    problem = _weights_mismatch(model.state_dict(), weights)
    if problem:
        raise CheckpointError(f"{where}: its weights do not fit {what}: {problem}")
    model.load_state_dict(weights)


def release_checkpoint(checkpoint: str | Path, out: str | Path) -> tuple[Path, str]:
    """Slim a training checkpoint into a shippable one and return its path and sha256.

    Keeps the weights, config, classes, layout, input channels, calibration and epoch bookkeeping;
    drops the optimiser, scheduler and RNG states. Written atomically (temporary file, then rename).
    Its path and sha256 are what an entry of ``skelact.models.weights`` records.
    """
    from skelact.models.weights import file_sha256

    out = Checkpoint.load(checkpoint).released().save(out)
    return out, file_sha256(out)


# ---------------------------------------------------------------------------------- helpers


_MAX_BYTES = 8 << 30  # no checkpoint of ours comes near this


def _read(path: Path, map_location: str | torch.device) -> object:
    """``torch.load(weights_only=True)`` with every failure turned into one line naming ``path``."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file, expected a checkpoint (.pt)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if size > _MAX_BYTES:
        raise CheckpointError(f"{path}: {size / 2**30:.1f} GiB is too large for a skelact checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on a pickle protocol it did not expect
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: {_unpickling_reason(str(e))}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError, UnicodeDecodeError, AssertionError) as e:
        text = one_line(e)
        if "zip archive" in text or "central directory" in text or isinstance(e, (EOFError, zipfile.BadZipFile)):
            reason = "truncated or not a PyTorch file"
        else:
            reason = f"{type(e).__name__}: {text}" if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a readable checkpoint (nested too deeply)") from None
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EISDIR, errno.EIO):
            raise CheckpointError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
        # torch seeks to offsets the file claims: a truncated archive fails here (EINVAL).
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a PyTorch file)") from None


def _unpickling_reason(text: str) -> str:
    """The useful part of torch's weights-only refusal (its advice to load unsafely is wrong here)."""
    glob = re.search(r"GLOBAL ([\w.]+)", text)
    if glob:
        return (f"refused to load: it holds a Python object ({glob.group(1)}), and loading it could run code; "
                "only tensors, numbers, strings, lists and dicts are allowed")
    detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
    first = next((line.strip() for line in detail.splitlines() if line.strip()), "")
    if first and not first.startswith("Unsupported operand"):
        return f"refused to load: {first[:120]} (only tensors, numbers, strings, lists and dicts are allowed)"
    return "not a readable checkpoint (not a PyTorch file, or a corrupt one)"


def _int(value: object, where: str, key: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CheckpointError(f"{where}: '{key}' must be an integer >= {low}, got {short_repr(value)}")
    return value


def _state_dict(value: object, where: str, key: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not value:
        raise CheckpointError(f"{where}: '{key}' must be a non-empty mapping of weight tensors, got "
                              f"{short_repr(value)}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{where}: '{key}' entry {short_repr(k)} is {short_repr(v)}, not a tensor")
    return value


def _layout(value: object, where: str) -> Layout:
    if isinstance(value, str):  # version 1 stored a name, which only a built-in layout resolves
        if value in list_layouts():
            return get_layout(value)
        raise CheckpointError(f"{where}: trained on layout {short_repr(value)}, which is not built in, and this "
                              "checkpoint (from an older skelact) does not hold its joints; retrain it")
    try:
        return layout_from_dict(value, where=f"{where}: 'layout'")
    except LayoutError as e:
        raise CheckpointError(str(e)) from None


def _train_state(state: dict, where: str) -> TrainState:
    missing = [k for k in _TRAIN_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{where}: holds no training state to resume from (missing {', '.join(missing)}); "
                              "it is a released model: train from it in a new work dir instead")
    opt, sched, rng = state["optimizer"], state["scheduler"], state["rng"]
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(
            opt.get("param_groups"), list):
        raise CheckpointError(f"{where}: 'optimizer' is not an optimiser state (state, param_groups)")
    if not isinstance(sched, dict):
        raise CheckpointError(f"{where}: 'scheduler' must be a mapping, got {short_repr(sched)}")
    if not isinstance(rng, dict):
        raise CheckpointError(f"{where}: 'rng' must be a mapping, got {short_repr(rng)}")
    scaler = state.get("scaler") or {}
    if not isinstance(scaler, dict):
        raise CheckpointError(f"{where}: 'scaler' must be a mapping, got {short_repr(scaler)}")
    train_model = None
    if state.get("train_model") is not None:
        train_model = _state_dict(state["train_model"], where, "train_model")
    ema_updates = _int(state.get("ema_updates", 0), where, "ema_updates", low=0)
    return TrainState(opt, sched, rng, scaler, train_model, ema_updates)


def _weights_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    """'' when ``got`` fits ``expected`` exactly; else a short account of the difference."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [k for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {short_repr(missing[0])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {short_repr(unexpected[0])})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} of another shape (e.g. {k!r}: {list(got[k].shape)} where the model has "
                     f"{list(expected[k].shape)})")
    return "; ".join(parts)

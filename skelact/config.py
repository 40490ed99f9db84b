"""Typed experiment configuration: dataclasses, YAML loading and ``--set key=value`` overrides.

A recipe is one small YAML file whose sections mirror :class:`Config`::

    base: penn_stgcnpp_j.yaml          # optional: start from another recipe (relative to this file)
    data:  {ann_file: ${SKELACT_DATA:-data}/penn_action.pkl, clip_len: 64, features: [bone]}
    model: {name: stgcnpp, kwargs: {}}
    optim: {name: sgd, lr: 0.1, epochs: 40}
    seed: 0

String values may use ``${VAR}`` / ``${VAR:-default}`` environment expansion. Every key is checked
against the dataclasses: an unknown key or a value of the wrong type is a :class:`ConfigError` that
names the key. Only ``model.kwargs`` is a free dict (it is passed to the model builder).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from skelact.errors import SkelactError, short_repr

__all__ = [
    "ConfigError",
    "AugmentConfig",
    "DataConfig",
    "StreamConfig",
    "ModelConfig",
    "FEATURES",
    "STREAM_SHORT_NAMES",
    "parse_streams",
    "OptimConfig",
    "OverfitConfig",
    "CalibrationConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "expand_env",
    "config_to_yaml",
]


class ConfigError(SkelactError, ValueError):
    """A configuration file, key or value is invalid."""


@dataclass
class AugmentConfig:
    """Training-time augmentation (ignored at evaluation).

    Attributes:
        flip: Probability of a horizontal flip that also swaps left/right joints.
        rotate: Maximum in-plane rotation in degrees (2D data).
        scale: ``[low, high]`` range of a random isotropic scale (2D or 3D data), or ``None``.
        shift: Maximum translation as a fraction of the (normalised) coordinate range (2D data).
        rotate3d: Maximum rotation in degrees about the x and y axes (3D data): a random viewpoint.
        join: Probability that a training clip is followed by part of a clip of another class,
            with soft labels by frame share (skelact/data/dataset.py ``join_clips``): for models
            that label the windows of long videos (``predict --window``).
        unknown: Probability that a training item is a clip of ``data.unknown_file`` (other
            activities) with a uniform target over the classes, and, with ``join``, that the part
            joined after a clip comes from there (outlier exposure: the model learns to be unsure
            outside its classes, which a timeline's unknown threshold needs).
    """

    flip: float = 0.0
    rotate: float = 0.0
    scale: list[float] | None = None
    shift: float = 0.0
    rotate3d: float = 0.0
    join: float = 0.0
    unknown: float = 0.0


@dataclass
class DataConfig:
    """Where the clips are and how they become tensors.

    Attributes:
        ann_file: PYSKL annotation pickle (relative paths resolve against the current directory).
        train_split: Split name used for training.
        val_split: Split validated on during training (``best.pt``, the calibration), or ``None``
            when ``val_fraction`` carves the validation clips out of ``train_split`` instead.
        val_fraction: Share of each class of ``train_split`` set aside for validation (stratified,
            seeded by ``seed``: :func:`skelact.data.splits.validation_carve`); 0: validate on
            ``val_split``. The carved clips are not trained on.
        test_split: Split ``skelact test`` evaluates; ``None``: ``val_split`` (recipes and
            checkpoints from before this key).
        layout: Skeleton layout name or YAML file; ``None`` takes the file's ``layout`` field.
        clip_len: Frames sampled per clip (uniform segment sampling).
        num_clips_val: Clips averaged per video in the per-epoch validation.
        num_clips_test: Clips averaged per video by ``skelact test``.
        max_persons: Persons kept (padded with zeros) per clip.
        normalize: ``image`` (pixels to [-1, 1] by image size), ``bbox`` (per-clip box),
            ``center3d`` (3D, subtract the root joint), ``align3d`` (3D: centred, then turned into
            the body's frame at the first frame: hips to shoulders along y, shoulders along x),
            ``axes`` (each axis of the clip to [-1, 1] by its min and max, after the augmentation)
            or ``none`` (raw pixels; heatmap models).
        features: Streams concatenated on the channel axis: ``joint``, ``bone``, ``joint_motion``,
            ``bone_motion``, ``partner`` (:data:`FEATURES`).
        with_score: Append the keypoint score as an extra channel (2D data).
        augment: Training augmentation.
        unknown_file: PYSKL file of other activities (labels ignored; a layout that maps to the
            data's), drawn from with probability ``augment.unknown``; ``None``: none.
        batch_size: Clips per optimiser step and per process.
        num_workers: DataLoader worker processes (0 loads in the main process).
    """

    ann_file: str = ""
    train_split: str = "train"
    val_split: str | None = "test"
    val_fraction: float = 0.0
    test_split: str | None = None
    layout: str | None = None
    clip_len: int = 100
    num_clips_val: int = 1
    num_clips_test: int = 10
    max_persons: int = 2
    normalize: Literal["image", "bbox", "center3d", "align3d", "axes", "none"] = "image"
    features: list[str] = field(default_factory=lambda: ["joint"])
    with_score: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    unknown_file: str | None = None
    batch_size: int = 16
    num_workers: int = 2


@dataclass
class StreamConfig:
    """One stream of an ensemble: the model trained on these features of the joint clip.

    Attributes:
        name: Short name, also its folder ``WORK_DIR/streams/<name>/`` (letters, digits, ``_+-``).
        features: Features the stream's network sees, computed inside the ensemble from the joint
            clip (:data:`FEATURES`; several are concatenated).
        weight: Its logits' weight in the ensemble's weighted sum; ``None`` (in every stream):
            chosen on the validation clips after training.
    """

    name: str = "j"
    features: list[str] = field(default_factory=lambda: ["joint"])
    weight: float | None = None


@dataclass
class ModelConfig:
    """A registered model and its keyword arguments (see ``skelact.models.list_models()``).

    With ``streams``, the model is an ensemble (``skelact.models.ensemble.StreamEnsemble``): one
    ``name`` network per stream, each trained on its own features, whose logits are summed with the
    streams' weights. Its input is then the joint clip (``data.features: [joint]``).
    """

    name: str = "stgcnpp"
    kwargs: dict[str, Any] = field(default_factory=dict)
    streams: list[StreamConfig] = field(default_factory=list)


@dataclass
class OptimConfig:
    """Optimiser, schedule and loss.

    Attributes:
        name: ``sgd`` or ``adamw``.
        lr: Peak learning rate (reached at the end of the warm-up).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        weight_decay: Weight decay (decoupled for AdamW).
        epochs: Training epochs.
        warmup_epochs: Linear warm-up length in epochs (may be fractional), stepped per iteration.
        min_lr: Learning rate at the end of the cosine schedule.
        clip_grad: Maximum gradient L2 norm, or ``None`` for no clipping.
        label_smoothing: Cross-entropy label smoothing.
        amp: Mixed precision: ``none``, ``bf16``, ``fp16`` (CUDA only) or ``auto`` (bf16 on CUDA
            and on CPUs with native bf16, AVX512-BF16 or AMX; otherwise none).
        ema: Decay of an exponential moving average of the weights and BatchNorm statistics,
            updated after every step (e.g. 0.999), or ``None`` for none. With it, validation and
            the ``model`` weights in ``last.pt`` / ``best.pt`` (what ``skelact test`` loads) are the
            averaged ones.
        backbone_lr_mult: With ``init``: the learning rate of every weight but the classifier's is
            ``lr`` times this; 0 freezes them (their BatchNorm statistics still follow the data).
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    epochs: int = 80
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    clip_grad: float | None = None
    label_smoothing: float = 0.0
    amp: Literal["none", "bf16", "fp16", "auto"] = "none"
    ema: float | None = None
    backbone_lr_mult: float = 1.0


@dataclass
class OverfitConfig:
    """Settings that replace the recipe's when training with ``overfit=N`` (a sanity check).

    ``None`` keeps the recipe's value. Augmentation is off unless ``augment`` is true;
    ``model_kwargs`` is merged into ``model.kwargs`` (e.g. to turn off a model's own augmentation).
    ``min_steps`` lengthens the run to at least that many optimiser steps: a handful of clips
    makes one step per epoch, too few for any model to fit them in ``epochs``.
    """

    epochs: int | None = None
    min_steps: int | None = None
    lr: float | None = None
    clip_len: int | None = None
    batch_size: int | None = None
    warmup_epochs: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    augment: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class CalibrationConfig:
    """What training fits on the validation clips after the last epoch (stored in the checkpoints).

    Attributes:
        enabled: Fit a softmax temperature and an unknown-action threshold.
        accept: Fraction of the validation clips the threshold accepts (the rest of the
            confidence range is reported as "unknown action").
    """

    enabled: bool = True
    accept: float = 0.95


@dataclass
class Config:
    """A complete experiment.

    Attributes:
        data: Data section.
        model: Model section.
        optim: Optimisation section.
        overfit: Overrides used by the ``overfit`` sanity check.
        calibration: Temperature and unknown threshold fitted after training.
        init: Fine-tune: start from this checkpoint's weights (a path; ``skelact train`` also takes a
            shipped model's name), mapped onto the data's joints, channels and classes
            (:mod:`skelact.models.transfer`); ``None``: from scratch.
        seed: Seed for torch, numpy and Python ``random`` (and the data pipeline).
        eval_interval: Validate every this many epochs (and always after the last).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    overfit: OverfitConfig = field(default_factory=OverfitConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    init: str | None = None
    seed: int = 0
    eval_interval: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"


# ---------------------------------------------------------------------------------------------
# Environment expansion
# ---------------------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str = "config") -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string inside ``value`` (recursively).

    ``${VAR:-default}`` uses ``default`` when ``VAR`` is unset or empty, as in the shell. An unset
    ``${VAR}`` without default is an error naming the key.
    """
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            got = os.environ.get(name)
            if got:
                return got
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set (use ${{{name}:-default}})")

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass with type checks
# ---------------------------------------------------------------------------------------------


def _check_value(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` converted to the annotation ``tp`` or raise ``ConfigError`` naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(arg, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {short_repr(value)} matches none of {tp}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {short_repr(value)} is not one of {list(allowed)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {short_repr(value)}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_check_value(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {short_repr(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {short_repr(value)}")
        return _from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
        return value
    if tp is float:
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {short_repr(value)}")
        return value
    raise ConfigError(f"{key}: unsupported annotation {tp}")  # pragma: no cover - programming error


def _from_dict(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else str(k)
            raise ConfigError(f"unknown config key {short_repr(where)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for k, v in raw.items():
        kwargs[k] = _check_value(hints[k], v, f"{prefix}.{k}" if prefix else k)
    return cls(**kwargs)


def config_from_dict(raw: dict) -> Config:
    """Build a :class:`Config` from a plain dict (environment variables expanded, keys checked)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
    cfg = _from_dict(Config, expand_env(raw), "")
    _check_semantics(cfg)
    return cfg


#: The features a network can see, computed from the joint coordinates (``data.features``, a stream's
#: ``features``): the joints, the bones, their motions, and each joint's offset from the same joint of
#: the nearest other person (``partner``, for actions between two people).
FEATURES: tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion", "partner")
#: The short stream names of ``--streams j,b,jm,bm`` (PYSKL's, and ``p``); the features' own names work too.
STREAM_SHORT_NAMES = {"j": "joint", "b": "bone", "jm": "joint_motion", "bm": "bone_motion", "p": "partner"}
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_+-]{1,32}$")
_MAX_STREAMS = 8  # the weight search tries 4^S combinations


def parse_streams(text: str) -> list[StreamConfig]:
    """``j,b,jm,bm`` (or ``joint,bone``, or ``j+b`` for one stream of two features) as stream configs.

    Raises:
        ConfigError: An unknown or repeated stream, or too many.
    """
    streams = []
    for token in (t.strip() for t in text.split(",")):
        features = []
        for part in token.split("+"):
            feature = STREAM_SHORT_NAMES.get(part, part)
            if feature not in FEATURES:
                raise ConfigError(f"unknown stream {short_repr(part)} (choose from "
                                  f"{', '.join([*STREAM_SHORT_NAMES, *FEATURES])}, joined by commas)")
            features.append(feature)
        streams.append(StreamConfig(name=token, features=features))
    _check_streams(streams)
    return streams


def _check_streams(streams: list[StreamConfig]) -> None:
    """Names, features and weights of an ensemble's streams (``model.streams``)."""
    if len(streams) > _MAX_STREAMS:
        raise ConfigError(f"model.streams: at most {_MAX_STREAMS} streams, got {len(streams)}")
    names = [s.name for s in streams]
    twice = [n for n in names if names.count(n) > 1]
    if twice:
        raise ConfigError(f"model.streams: the name {short_repr(twice[0])} is used twice")
    seen: dict[tuple[str, ...], str] = {}
    for i, s in enumerate(streams):
        key = f"model.streams[{i}]"
        if not _STREAM_NAME.match(s.name):
            raise ConfigError(f"{key}.name: {short_repr(s.name)} is not 1-32 letters, digits or _+-")
        if not s.features or len(set(s.features)) != len(s.features):
            raise ConfigError(f"{key}.features: one or more distinct features, got {short_repr(s.features)}")
        for f in s.features:
            if f not in FEATURES:
                raise ConfigError(f"{key}.features: unknown feature {f!r} (choose from {list(FEATURES)})")
        if tuple(s.features) in seen:
            raise ConfigError(f"{key}: stream {s.name!r} repeats the features of {seen[tuple(s.features)]!r}")
        seen[tuple(s.features)] = s.name
        if s.weight is not None and s.weight < 0:
            raise ConfigError(f"{key}.weight: must be >= 0, got {s.weight}")
    given = [s.weight is not None for s in streams]
    if any(given) and not all(given):
        raise ConfigError("model.streams: give every stream a weight, or none (then they are chosen on the "
                          "validation clips)")
    if all(given) and streams and not any(s.weight for s in streams):
        raise ConfigError("model.streams: the weights are all 0")


def _check_semantics(cfg: Config) -> None:
    d, o = cfg.data, cfg.optim
    for f in d.features:
        if f not in FEATURES:
            raise ConfigError(f"data.features: unknown feature {f!r} (choose from {list(FEATURES)})")
    if not d.features:
        raise ConfigError("data.features: at least one feature is needed")
    if cfg.model.streams:
        _check_streams(cfg.model.streams)
        if d.features != ["joint"]:
            raise ConfigError(f"data.features: an ensemble's input is the joint clip (each stream's features are "
                              f"in model.streams): set data.features: [joint], not {short_repr(d.features)}")
    positive = {
        "data.clip_len": d.clip_len, "data.num_clips_val": d.num_clips_val,
        "data.num_clips_test": d.num_clips_test, "data.max_persons": d.max_persons,
        "data.batch_size": d.batch_size, "optim.epochs": o.epochs, "eval_interval": cfg.eval_interval,
    }
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{key}: must be >= 1, got {v}")
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: a share in [0, 1), got {d.val_fraction}")
    # Exactly one source of validation clips, and a split for `skelact test`.
    if d.val_fraction > 0 and d.val_split is not None:
        raise ConfigError(f"data.val_split: {d.val_split!r} and data.val_fraction {d.val_fraction:g} both choose "
                          "the validation clips; set data.val_split: null to validate on the share carved from "
                          "data.train_split, or data.val_fraction: 0")
    if d.val_fraction == 0 and d.val_split is None:
        raise ConfigError("data.val_split: null needs data.val_fraction > 0 (a validation share of "
                          "data.train_split); name a split or set the fraction (with a data file, "
                          "--val-fraction 0 validates on the test split)")
    if d.val_split is None and d.test_split is None:
        raise ConfigError("data.test_split: name the split `skelact test` evaluates (data.val_split is null)")
    if d.num_workers < 0:
        raise ConfigError(f"data.num_workers: must be >= 0, got {d.num_workers}")
    if not 0 < o.lr <= 10:
        raise ConfigError(f"optim.lr: must be in (0, 10], got {o.lr}")
    if not 0 <= o.min_lr <= o.lr:
        raise ConfigError(f"optim.min_lr: must be in [0, optim.lr], got {o.min_lr}")
    if o.weight_decay < 0:
        raise ConfigError(f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
    if not 0 <= o.momentum < 1:
        raise ConfigError(f"optim.momentum: must be in [0, 1), got {o.momentum}")
    if o.warmup_epochs < 0:
        raise ConfigError(f"optim.warmup_epochs: must be >= 0, got {o.warmup_epochs}")
    if o.clip_grad is not None and o.clip_grad <= 0:
        raise ConfigError(f"optim.clip_grad: must be > 0 (or null for no clipping), got {o.clip_grad}")
    a = d.augment
    for key, v in (("rotate", a.rotate), ("shift", a.shift), ("rotate3d", a.rotate3d)):
        if v < 0:
            raise ConfigError(f"data.augment.{key}: must be >= 0, got {v}")
    for key, v in (("flip", a.flip), ("join", a.join)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"data.augment.{key}: a probability in [0, 1], got {v}")
    if not 0.0 <= a.unknown < 1.0:
        raise ConfigError(f"data.augment.unknown: a probability in [0, 1), got {a.unknown}")
    if (a.unknown > 0) != (d.unknown_file is not None):
        raise ConfigError(f"data.augment.unknown: {a.unknown:g} with data.unknown_file {short_repr(d.unknown_file)}: "
                          "out-of-class clips need both (a file and the share of training items drawn from it)")
    if d.unknown_file is not None and not d.unknown_file.strip():
        raise ConfigError("data.unknown_file: empty; give a PYSKL file of other activities, or null")
    if a.scale is not None and (len(a.scale) != 2 or not 0 < a.scale[0] <= a.scale[1]):
        raise ConfigError(f"data.augment.scale: expected [low, high] with 0 < low <= high, got {short_repr(a.scale)}")
    if o.ema is not None and not 0.0 < o.ema < 1.0:
        raise ConfigError(f"optim.ema: a decay in (0, 1), got {o.ema}")
    if cfg.overfit.min_steps is not None and cfg.overfit.min_steps < 1:
        raise ConfigError(f"overfit.min_steps: must be >= 1, got {cfg.overfit.min_steps}")
    if not 0.0 < cfg.calibration.accept <= 1.0:
        raise ConfigError(f"calibration.accept: a fraction in (0, 1], got {cfg.calibration.accept}")
    if o.backbone_lr_mult < 0:
        raise ConfigError(f"optim.backbone_lr_mult: must be >= 0 (0 freezes the backbone), got {o.backbone_lr_mult}")
    if o.backbone_lr_mult != 1.0 and cfg.init is None:
        raise ConfigError(f"optim.backbone_lr_mult: {o.backbone_lr_mult:g} applies to a backbone loaded with init "
                          "(--init CKPT|NAME); set init, or leave it at 1")
    if cfg.init is not None and not cfg.init.strip():
        raise ConfigError("init: empty; give a checkpoint path or a shipped model name, or null")
    if not 0.0 <= o.label_smoothing < 1.0:
        raise ConfigError(f"optim.label_smoothing: must be in [0, 1), got {o.label_smoothing}")


def config_to_dict(cfg: Config) -> dict:
    """The config as a plain dict of primitives (YAML- and ``torch.load(weights_only=True)``-safe)."""
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------------------------------
# Overrides and files
# ---------------------------------------------------------------------------------------------


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a raw config dict; values are parsed as YAML.

    Keys are checked against :class:`Config` (``model.kwargs.*`` is free-form). Returns a new dict.
    """
    out = _merge({}, raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {short_repr(item)}: expected key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {short_repr(item)}: the value is not valid YAML{_yaml_where(e)}") from None
        except RecursionError:
            raise ConfigError(f"--set {short_repr(item)}: the value is nested too deeply") from None
        parts = key.split(".")
        cls: Any = Config
        node = out
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            if cls is not None:
                fields = {f.name: f for f in dataclasses.fields(cls)}
                if part not in fields:
                    raise ConfigError(f"--set {short_repr(item)}: unknown config key {short_repr(where)}")
                hint = typing.get_type_hints(cls)[part]
                cls = hint if dataclasses.is_dataclass(hint) else None
                free = typing.get_origin(hint) is dict
            else:
                free = True
            if i == len(parts) - 1:
                node[part] = value
            else:
                if cls is None and not free:
                    raise ConfigError(f"--set {short_repr(item)}: config key {short_repr(where)} is not a section")
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return out


def _yaml_where(e: Exception) -> str:
    """`` at line L, column C: <problem>`` of a YAML error (PyYAML's own message spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or ""
    if "!!python" in str(e) or "could not determine a constructor" in str(e):
        problem = "tags such as !!python are not allowed"
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{at}: {problem}" if problem else at


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = _merge({}, v) if isinstance(v, dict) else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base' chain")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.stat().st_size > 1 << 20:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a recipe")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML{_yaml_where(e)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {short_repr(raw)}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name")
    return _merge(_read_yaml(path.parent / base, (*seen, path)), raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a YAML recipe (following ``base:``), apply ``--set`` overrides and validate.

    Args:
        path: The YAML file.
        overrides: ``key=value`` strings, e.g. ``["optim.lr=0.05", "data.batch_size=32"]``.

    Raises:
        ConfigError: With the offending file or key in the message.
    """
    raw = _read_yaml(Path(path))
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML text (what a run actually used; ``load_config`` reads it back)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)

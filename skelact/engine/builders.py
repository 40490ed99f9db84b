"""Config → objects: clip store, layout, transform pipelines, datasets, model, optimiser, schedule.

Every choice a recipe makes is resolved here with plain ``if`` statements over typed fields, so the
training loop never looks at strings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from skelact import skeleton
from skelact.config import Config, ConfigError, DataConfig, OptimConfig
from skelact.data.dataset import PackedClips
from skelact.errors import one_line, short_repr

# The recipe's pipeline and datasets live one layer down (inference builds them too); named here as
# well, so that the engine builds everything through this module.
from skelact.pipeline import (
    build_dataset,
    build_pipeline,
    check_clip_fields,
    class_names,
    input_kind,
    outside_clips,
)
from skelact.skeleton import Layout

if TYPE_CHECKING:
    from skelact.checkpoint import Checkpoint

__all__ = [
    "load_clips",
    "load_clips_file",
    "resolve_layout",
    "class_names",
    "split_indices",
    "validation_split",
    "carve_validation",
    "validation_name",
    "evaluated_split",
    "input_kind",
    "build_pipeline",
    "build_dataset",
    "outside_clips",
    "check_clip_fields",
    "overfit_indices",
    "check_model_name",
    "check_memory",
    "build_model",
    "init_model",
    "check_init_family",
    "init_features",
    "start_features",
    "build_optimizer",
    "build_scheduler",
    "warmup_cosine",
]


# ------------------------------------------------------------------------------------------ data


def load_clips(data: DataConfig) -> PackedClips:
    """Load ``data.ann_file`` (safe unpickler + validation) into packed arrays."""
    if not data.ann_file:
        raise ConfigError("data.ann_file is empty: set it in the recipe or with --set data.ann_file=...")
    return load_clips_file(data.ann_file, "data.ann_file")


def load_clips_file(path: str | Path, what: str = "data file") -> PackedClips:
    """Load a PYSKL pickle (safe unpickler + validation) into packed arrays."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: {path} not found (a PYSKL .pkl; see `skelact convert` and `skelact extract`)")
    # Unlabeled clips (-1) may sit in splits the run does not use; split_indices checks the ones it does.
    return PackedClips.from_pickle(path, allow_unlabeled=True)


def resolve_layout(data: DataConfig, packed: PackedClips, given: Layout | None = None) -> Layout:
    """The clip store's layout (:func:`skelact.skeleton.resolve_layout`): ``given`` (a checkpoint's),
    else the recipe's ``data.layout``, else the file's, else one inferred from the joint count."""
    return skeleton.resolve_layout(given if given is not None else data.layout, packed.layout, packed.num_joints,
                                   data.ann_file, "the checkpoint's layout" if given is not None else "data.layout")


def split_indices(packed: PackedClips, split: str, num_classes: int, key: str) -> np.ndarray:
    """Clip indices of ``split``, checking it exists and every clip has a label in range.

    Args:
        packed: The clip store.
        split: Split name.
        num_classes: Labels must lie in ``[0, num_classes)``.
        key: Config key named in errors (``data.train_split`` ...).
    """
    if split not in packed.splits:
        raise ConfigError(f"{key}: no split {split!r} in the annotation file; it has {sorted(packed.splits)}")
    idx = packed.indices(split)
    if idx.size == 0:
        raise ConfigError(f"{key}: split {split!r} is empty")
    labels = packed.labels[idx]
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        clip = packed.names[int(idx[bad[0]])]
        raise ConfigError(f"{key}: clip {clip!r} of split {split!r} has label {int(labels[bad[0]])}, "
                          f"expected 0..{num_classes - 1}")
    return idx


def validation_split(cfg: Config, packed: PackedClips, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(training, validation)`` clip indices: ``data.train_split`` and ``data.val_split``, or, with
    ``data.val_fraction``, the training split less the share :func:`skelact.data.splits.validation_carve`
    sets aside (seeded by ``cfg.seed``). Never reads the split ``skelact test`` evaluates unless the
    recipe names it for validation."""
    d = cfg.data
    train_idx = split_indices(packed, d.train_split, num_classes, "data.train_split")
    if d.val_split is not None:
        return train_idx, split_indices(packed, d.val_split, num_classes, "data.val_split")
    return carve_validation(packed, train_idx, d.val_fraction, cfg.seed, "data.val_fraction")


def carve_validation(packed: PackedClips, train_idx: np.ndarray, val_fraction: float, seed: int,
                     where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(training, validation)`` indices: ``train_idx`` split by
    :func:`skelact.data.splits.validation_carve` on the clips' names and labels.

    Raises:
        ConfigError: No class has two clips, so nothing can be set aside (``where`` names the option).
    """
    from skelact.data.splits import validation_carve

    names = [packed.names[int(i)] for i in train_idx]
    val = validation_carve(names, packed.labels[train_idx].tolist(), val_fraction, seed)
    if not val.any():
        raise ConfigError(f"{where}: no class of the training split has two clips to share with validation; "
                          "name a validation split instead (or --val-fraction 0 with a data file)")
    return train_idx[~val], train_idx[val]


def validation_name(cfg: Config, quote: bool = False) -> str:
    """The validation clips in words (logs and the stored calibration): the split's name (quoted
    when ``quote``), or ``10% of 'train' (seed 0)`` for a carved share."""
    d = cfg.data
    if d.val_split is not None:
        return repr(d.val_split) if quote else d.val_split
    return f"{100 * d.val_fraction:g}% of {d.train_split!r} (seed {cfg.seed})"


def evaluated_split(data: DataConfig) -> tuple[str, str]:
    """``(split, config key)`` that ``skelact test`` evaluates: ``data.test_split``, else (recipes and
    checkpoints from before it) ``data.val_split``."""
    if data.test_split is not None:
        return data.test_split, "data.test_split"
    if data.val_split is None:  # config_from_dict refuses this; a hand-built DataConfig may not
        raise ConfigError("data.test_split: name the split `skelact test` evaluates")
    return data.val_split, "data.val_split"


def overfit_indices(labels: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    """``n`` clips of ``indices`` spread over the classes: a deterministic round-robin.

    Classes are visited in label order and each gives its next clip (in file order), so 100 Penn
    Action clips cover all 15 classes with 6-7 clips each.
    """
    if n < 1:
        raise ValueError(f"overfit needs at least 1 clip, got {n}")
    by_class: dict[int, list[int]] = {}
    for i in indices.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n, len(indices)):
        for q in queues:
            if depth < len(q) and len(picked) < n:
                picked.append(q[depth])
        depth += 1
    return np.asarray(sorted(picked), dtype=np.int64)


# ----------------------------------------------------------------------------------------- model


def check_model_name(cfg: Config) -> None:
    """Fail early on a ``model.name`` the registry does not know."""
    from skelact.models import list_models

    if cfg.model.name not in list_models():
        raise ConfigError(f"model.name: unknown model {short_repr(cfg.model.name)}; registered: "
                          f"{', '.join(list_models())}")


def build_model(cfg: Config, num_classes: int, layout: Layout, in_channels: int) -> nn.Module:
    """The recipe's model (``skelact.checkpoint.model_from_config``: its name and keyword arguments, or
    an ensemble of its ``model.streams``).

    Raises:
        ConfigError: An unknown model, or ``model.kwargs`` it does not take.
    """
    from skelact.checkpoint import model_from_config

    try:
        return model_from_config(cfg, num_classes, layout, in_channels)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {one_line(e)}") from None


def _load_init(checkpoint: str | Path) -> Checkpoint:
    """The ``init`` checkpoint: a file, or a shipped model's name (its verified file).

    Raises:
        CheckpointError: The file is missing or not a checkpoint, or the name is not shipped.
    """
    from skelact.checkpoint import Checkpoint, CheckpointError
    from skelact.inference import InferenceError, resolve_model_spec

    try:
        path, _ = resolve_model_spec(checkpoint)
    except InferenceError as e:
        raise CheckpointError(f"init: {e}") from None
    return Checkpoint.load(path)


def init_model(cfg: Config, model: nn.Module, checkpoint: str | Path, classes: list[str], coord_dims: int,
               has_score: bool) -> list[str]:
    """Load ``checkpoint``'s weights into ``model`` (fine-tuning, ``init``), mapped onto the run's
    layout, input channels and classes by :func:`skelact.models.transfer.transfer_weights`.

    Args:
        checkpoint: A checkpoint file or a shipped model's name (``penn_kpc3d``).
        coord_dims: 2 or 3, the data's coordinates.
        has_score: Whether the data has scores (appended as a channel with ``data.with_score``).

    Returns:
        The lines that say what was kept, remapped, new and dropped.

    Raises:
        CheckpointError: The file is missing or not a checkpoint, or the name is not shipped.
        TransferError: Another model, or weights that cannot be mapped (one line naming the file).
    """
    from skelact.models.transfer import TransferError, channel_names, infer_channels, transfer_weights

    where = str(checkpoint)
    src = _load_init(checkpoint)
    source_model = src.build_model(where=where)
    check_init_family(src.config.model.name, cfg.model.name, where)
    d, s = cfg.data, src.config.data
    target = channel_names(d.features, coord_dims, d.with_score and has_score)
    source = infer_channels(s.features, s.with_score, s.normalize, src.in_channels)
    if src.config.model.streams:  # an ensemble: the network of the stream that sees the run's features
        want = start_features(d.features, [tuple(st.features) for st in src.config.model.streams])
        stream = next((st for st in src.config.model.streams if tuple(st.features) == want), None)
        if stream is None:
            raise TransferError(f"{where}: an ensemble whose streams see "
                                f"{', '.join('+'.join(st.features) for st in src.config.model.streams)}; none sees "
                                f"{'+'.join(d.features)}, what the run trains on (data.features)")
        source_model = source_model.streams[stream.name]
        if source is not None:  # the joint clip's channels -> the stream's (its features, then the score)
            dims = sum(c.startswith("joint.") for c in source)
            source = channel_names(stream.features, dims, "score" in source)
        where = f"{where} (stream {stream.name})"
    new = [c for c in target if c not in source] if source is not None else []
    if cfg.optim.backbone_lr_mult == 0 and new:
        raise TransferError(f"{where}: optim.backbone_lr_mult 0 freezes the first layer, and the run's input channels "
                            f"{', '.join(new)} are new to it: they would start at zero weights and stay there; "
                            "let the backbone learn slowly instead (e.g. --backbone-lr-mult 0.1)")
    state, report = transfer_weights(source_model, model, src.classes, classes, source, target,
                                     where, cfg.model.name)
    model.load_state_dict(state)
    return report.lines(cfg.optim.backbone_lr_mult)


def start_features(run: Sequence[str], have: Sequence[tuple[str, ...]]) -> tuple[str, ...] | None:
    """Which of an init checkpoint's networks (the features each sees, ``have``) a network trained on
    the features ``run`` starts from: the one that sees the same, else the one that sees them without
    ``partner`` (a start that read one person at a time; the partner channels start at zero)."""
    for want in (tuple(run), tuple(f for f in run if f != "partner")):
        if want and want in have:
            return want
    return None


def check_init_family(source: str, model: str, where: str) -> None:
    """Refuse an ``init`` checkpoint holding a ``source`` model for a run that trains ``model``.

    Raises:
        TransferError: One line naming ``where`` (the checkpoint as the user named it).
    """
    from skelact.models.transfer import TransferError

    if source != model:
        raise TransferError(f"{where}: holds a {source!r} model, the run trains {model!r}; train {source!r} "
                            "(--model, or model.name in the recipe)")


def init_features(checkpoint: str | Path) -> list[tuple[str, ...]]:
    """The features each network of ``checkpoint`` sees (one entry for a single model, one per
    stream for an ensemble): which streams of an ensemble ``init`` can start.

    Raises:
        CheckpointError: The file is missing or not a checkpoint, or the name is not shipped.
    """
    src = _load_init(checkpoint).config
    if src.model.streams:
        return [tuple(s.features) for s in src.model.streams]
    return [tuple(src.data.features)]


# ------------------------------------------------------------------------------------- optimiser


def check_memory(cfg: Config, num_classes: int, layout: Layout, in_channels: int, clip_shape: tuple[int, ...],
                 batch: int, device: torch.device | str, where: str, training: bool = True) -> None:
    """Refuse, before the model is built, a run whose model and batch cannot fit in ``device``'s memory.

    Args:
        clip_shape: ``[M, T, V, C]`` of one clip as the pipeline makes it.
        batch: Clips per forward (test views included).
        where: The data file or checkpoint the layout comes from, for the message.

    Raises:
        MemoryLimitError: The estimate (:mod:`skelact.engine.memory`) exceeds the available memory;
            the message names the layout, its joint count, the estimate and the limit.
    """
    from skelact.engine.memory import check_fits, estimate_model_memory

    persons, frames = int(clip_shape[0]), int(clip_shape[1])
    states = (2 if cfg.optim.name == "adamw" else int(cfg.optim.momentum > 0)) if training else 0
    streams = cfg.model.streams
    if streams:  # an ensemble: the widest stream's network, whose weights are there once per stream
        from skelact.models.ensemble import stream_channels

        score = cfg.data.with_score
        in_channels = max(stream_channels(s.features, in_channels - int(score), score) for s in streams)
    estimate = estimate_model_memory(cfg.model.name, dict(cfg.model.kwargs), num_classes, in_channels,
                                     layout.num_joints, persons, frames, batch, training=training,
                                     optimizer_states=states, weight_copies=int(cfg.optim.ema is not None))
    if streams and estimate is not None:
        # The streams run one after another, so one stream's activations are alive at a time.
        estimate = dataclasses.replace(estimate, model_bytes=estimate.model_bytes * len(streams))
    what = (f"{'training' if training else 'running'} {cfg.model.name} (batch {batch} x {frames} frames x "
            f"{persons} persons)")
    advice = ("lower data.batch_size or data.clip_len" if training
              else "lower data.batch_size or the views per clip (--num-clips)")
    check_fits(estimate, device, where, layout, what, advice)


def build_optimizer(optim: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (optionally Nesterov) or AdamW over every trainable parameter.

    Weight decay applies to every parameter, biases and norms included: the recipes' learning rates
    and decays (configs/) were tuned and measured that way. With ``optim.backbone_lr_mult`` other
    than 1 the classifier is the first parameter group (its learning rate is the one logged) and the
    rest a second at ``lr`` times the multiplier; 0 freezes the rest (no gradients, not optimised).
    """
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if optim.backbone_lr_mult != 1.0:
        from skelact.models.transfer import split_parameters

        backbone, head = split_parameters(model)
        params = [{"params": [p for p in head if p.requires_grad]}]
        if optim.backbone_lr_mult == 0:
            for p in backbone:
                p.requires_grad_(False)
        else:
            params.append({"params": [p for p in backbone if p.requires_grad],
                           "lr": optim.lr * optim.backbone_lr_mult})
    if optim.name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum,
                               nesterov=optim.nesterov and optim.momentum > 0, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at iteration ``step``: linear from ~0 to 1 over ``warmup`` steps, then a cosine
    from 1 down to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _WarmupCosine:
    """Picklable multiplier for ``LambdaLR`` (its state is plain numbers)."""

    def __init__(self, total: int, warmup: int, min_ratio: float) -> None:
        self.total, self.warmup, self.min_ratio = total, warmup, min_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total, self.warmup, self.min_ratio)


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration warm-up + cosine schedule over ``optim.epochs * steps_per_epoch`` steps."""
    total = optim.epochs * steps_per_epoch
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    fn: Any = _WarmupCosine(total, warmup, optim.min_lr / optim.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

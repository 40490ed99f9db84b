"""A recipe chosen from the data: ``skelact train data.pkl --model kpc3d --work-dir w``.

:func:`auto_config` looks at the clips (2D or 3D, persons, layout, clip lengths, scores, image
sizes, split names, class and clip counts) and picks each setting by a rule that holds for data
it has never seen, not by dataset name. Each choice comes with its reason
(:attr:`AutoConfig.notes`), ``skelact train`` prints them, and the run writes the recipe to
``WORK_DIR/config.yaml`` so it can be repeated and edited.

The rules, per model family (:data:`FAMILIES`):

- splits: ``train`` (or the one split whose name contains "train"); validation: ``val``,
  ``validation`` or ``valid`` (or the train split's name with "train" replaced); without one, a
  stratified, seeded share of the training split (:data:`VAL_FRACTION`,
  :func:`skelact.data.splits.validation_carve`), so that nothing before ``skelact test`` reads the
  test split (``test``, the same way); ``val_fraction=0`` validates on the test split instead.
- persons: the fewest that cover 95 % of the training clips (at most 2).
- frames: the median training clip length rounded to 8, within the family's range (the cost of a
  step grows with the frames; a 3D-CNN on heatmaps costs far more per frame than a keypoint model).
- coordinates: 2D keypoint models normalise by the clip's box (position and scale vary between
  cameras; image sizes may be missing), 3D data is centred on the layout's root, heatmap models
  take raw pixels; the score is a channel when it carries information (not one constant).
- augmentation: a left/right flip when the layout has flip pairs, a small rotation / scale /
  shift in 2D, a small viewpoint rotation in 3D.
- length: a budget of optimiser steps (:attr:`Family.steps`; :attr:`Family.steps_3d` for 3D skeletons
  under viewpoint rotations), turned into whole epochs for the training
  split's size and kept within 10..200 epochs (a small dataset gets more passes, a large one
  fewer); warm-up ~5 % of it; cosine decay; label smoothing 0.1; a moving average of the weights
  whose horizon is ~12 % of the steps; bf16 where the hardware has it.
- validation: at most 10 passes over the validation split, and fewer where they would cost more
  than ~10 % of the training's compute (one view of a validation clip costs about a third of a
  training clip's forward and backward), always including the last epoch.
- small data (at most :data:`SMALL_DATA_CLIPS` training clips, families with
  :attr:`Family.small_data_streams`): four networks, on the joints, the bones and their motions
  (each with the partner offset where two people act), fused as one model; one network above that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skelact.config import (
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    OverfitConfig,
    StreamConfig,
    config_from_dict,
    config_to_dict,
)
from skelact.data.dataset import PackedClips
from skelact.skeleton import Layout, resolve_layout

__all__ = ["Family", "FAMILIES", "VAL_FRACTION", "SMALL_DATA_CLIPS", "AutoConfig", "auto_config", "pick_splits"]


@dataclass(frozen=True)
class Family:
    """Defaults shared by the models of one family.

    Attributes:
        batch_size: Clips per step (smaller when the training split is tiny).
        lr: SGD learning rate at that batch size.
        steps: Optimiser steps to train for (turned into epochs).
        steps_3d: Steps for 3D skeletons, trained under random viewpoint rotations (every rotation is
            another view of the clip, and a cross-view test asks for all of them); None: ``steps``.
        frames: ``(min, max)`` clip length.
        input_kind: ``keypoint`` or ``heatmap``.
        weight_decay: SGD weight decay.
        clip_grad: Gradient clipping, or None.
        model_kwargs: Options passed to the model builder.
        overfit: The ``--overfit N`` sanity-check settings.
        small_data_streams: Train four streams (joint, bone and their motions) on small data.
    """

    batch_size: int
    lr: float
    steps: int
    frames: tuple[int, int]
    steps_3d: int | None = None
    input_kind: str = "keypoint"
    weight_decay: float = 5e-4
    clip_grad: float | None = None
    model_kwargs: dict = field(default_factory=dict)
    overfit: dict = field(default_factory=dict)
    small_data_streams: bool = False


_KEYPOINT_OVERFIT = {"epochs": 20, "min_steps": 150, "lr": 0.05, "batch_size": 16, "warmup_epochs": 1,
                     "weight_decay": 0.0, "label_smoothing": 0.0}

# Step budgets: the hand-written Penn Action (2D) and NW-UCLA (3D) recipes' lengths in configs/
# (rounded up to whole epochs, a budget lands on the recipe's epochs for Penn Action's 1,258 clips).
# Four kpc3d streams gained at every size measured (BENCHMARKS.md, small data: Penn Action and NW-UCLA at 5 to
# all clips per class, +0.9 to +7.4 points) for four times a short run's time; ST-GCN++ streams were not measured.
_KPC3D = Family(32, 0.05, 1200, (24, 32), steps_3d=3200,
                overfit={**_KEYPOINT_OVERFIT, "model_kwargs": {"dropout": 0.0}}, small_data_streams=True)
_HEATMAP_3DCNN = Family(
    8, 0.05, 1800, (24, 32), input_kind="heatmap", weight_decay=3e-4, clip_grad=40.0,
    model_kwargs={"heatmap": "joint", "sigma": 0.6, "size": 32, "test_size": 32},
    overfit={**_KEYPOINT_OVERFIT, "clip_len": 12, "model_kwargs": {
        "base_channels": 16, "size": 24, "test_size": 24, "area": [1.0, 1.0], "ratio": [1.0, 1.0],
        "flip_prob": 0.0, "dropout": 0.0}})

#: Per registered model; a model not listed here gets the keypoint 3D-CNN's defaults.
FAMILIES: dict[str, Family] = {
    "kpc3d": _KPC3D,
    "kpc3d_small": _KPC3D,
    "stgcnpp": Family(16, 0.05, 3100, (24, 48), steps_3d=6400,
                      overfit={**_KEYPOINT_OVERFIT, "lr": 0.03, "clip_len": 24}),
    "poseconv3d_c3d": _HEATMAP_3DCNN,
    "poseconv3d_slowonly": _HEATMAP_3DCNN,
}

_VALIDATION_NAMES = ("val", "validation", "valid")
_VAL_NAMES = (*_VALIDATION_NAMES, "test")

#: Training clips up to which a family with ``small_data_streams`` trains four streams: the sizes measured
#: (Penn Action's 1,258 training clips the largest) with room; each network costs the same step budget,
#: so four cost four times one, which larger data (an NTU-sized set: hours a network) should not pay.
SMALL_DATA_CLIPS = 1500

#: Share of each class of the training split that validates when a file has no validation split:
#: a tenth keeps ~90 % of a small dataset for training and still gives every class of 5 or more
#: clips one validation clip (:func:`skelact.data.splits.val_count`).
VAL_FRACTION = 0.1


@dataclass
class AutoConfig:
    """The chosen recipe and why.

    Attributes:
        config: The recipe.
        layout: The data's layout (a whole object: the YAML need not exist later).
        notes: ``(key, value, reason)`` for every choice.
    """

    config: Config
    layout: Layout
    notes: list[tuple[str, str, str]]

    def describe(self) -> str:
        """The choices as aligned text, one per line."""
        width = max(len(f"{k} = {v}") for k, v, _ in self.notes)
        return "\n".join(f"  {f'{k} = {v}':<{width}}  # {why}" for k, v, why in self.notes)


def pick_splits(splits: dict[str, np.ndarray], where: str) -> tuple[str, str, str]:
    """``(train split, validation split, reason)`` from a file's split names.

    Raises:
        ConfigError: No split, or no unambiguous train / validation pair.
    """
    names = [s for s in splits if len(splits[s])]
    if not names:
        raise ConfigError(f"{where}: has no split; make one (`skelact extract ... --val-fraction 0.1`), or write "
                          "a recipe naming data.train_split and data.val_split")
    if "train" in names:
        train = "train"
    else:
        trains = sorted(s for s in names if "train" in s.lower())
        if len(trains) != 1:
            raise ConfigError(f"{where}: cannot tell which split trains ({', '.join(sorted(names))}); pass "
                              "--set data.train_split=NAME data.val_split=NAME")
        train = trains[0]
    val = _named_like(names, train, _VAL_NAMES)
    if val is not None:
        return train, val, f"splits {train!r} and {val!r} of {', '.join(sorted(names))}"
    raise ConfigError(f"{where}: no validation split beside {train!r} (has {', '.join(sorted(names))}); pass "
                      "--set data.val_split=NAME")


def _named_like(names: list[str], train: str, kinds: tuple[str, ...]) -> str | None:
    """The first split named one of ``kinds`` (or ``train`` with "train" replaced by one), any case."""
    candidates = [v for v in kinds if train == "train"] + [train.lower().replace("train", v) for v in kinds]
    lower = {s.lower(): s for s in names if s != train}
    return next((lower[c] for c in candidates if c in lower), None)


def _round8(x: float) -> int:
    return int(8 * round(x / 8))


def auto_config(packed: PackedClips, ann_file: str | Path, model: str, layout: str | Path | None = None,
                seed: int = 0, val_fraction: float | None = None, streams: bool = True) -> AutoConfig:
    """Choose a recipe for ``model`` on the clips of ``packed`` (loaded from ``ann_file``).

    Args:
        packed: The clip store.
        ann_file: Its file (recorded in the recipe).
        model: A registered model name.
        layout: Layout name or YAML file; None: the file's, else inferred from the joint count.
        seed: The run's seed (it also seeds the validation share).
        val_fraction: Share of the training split carved out for validation; None:
            :data:`VAL_FRACTION` when the file has no validation split, else 0 (the split is used).
            0 with no validation split validates on the test split.
        streams: Whether small data may get four streams (``skelact train`` passes False with ``--init``,
            ``--overfit``, ``--streams`` and under torchrun).

    Raises:
        ConfigError: Data the model cannot take (3D data for a heatmap model), no usable split.
    """
    from skelact.models import list_models

    where = str(ann_file)
    if model not in list_models():
        raise ConfigError(f"--model: unknown model {model!r}; registered: {', '.join(list_models())}")
    fam = FAMILIES.get(model, FAMILIES["kpc3d"])
    notes: list[tuple[str, str, str]] = []

    def note(key: str, value: object, why: str) -> None:
        notes.append((key, str(value), why))

    lay = resolve_layout(layout, packed.layout, packed.num_joints, where, "--layout")
    dims = packed.num_channels
    if fam.input_kind == "heatmap" and dims != 2:
        raise ConfigError(f"{where}: {model} draws heatmaps from 2D pixel keypoints; these clips are {dims}D "
                          "(use kpc3d or stgcnpp)")
    train, held_out, why = pick_splits(packed.splits, where)
    names = [s for s in packed.splits if len(packed.splits[s])]
    val = _named_like(names, train, _VALIDATION_NAMES)
    test = _named_like(names, train, ("test",)) or held_out
    note("data.train_split", train, why)
    idx = packed.indices(train)
    labels = packed.labels[idx]
    if (labels < 0).any():
        raise ConfigError(f"{where}: split {train!r} holds unlabeled clips (label -1)")
    chosen = val_fraction is None
    if val_fraction is None:
        val_fraction = 0.0 if val is not None else VAL_FRACTION
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction: a share in [0, 1), got {val_fraction:g}")
    if val_fraction > 0:
        from skelact.engine.builders import carve_validation

        kept, carved = carve_validation(packed, idx, val_fraction, seed, where)
        single = int((np.bincount(labels) == 1).sum())
        n_val = len(carved)
        val = None
        note("data.val_fraction", f"{val_fraction:g}",
             f"{'no validation split' if chosen else '--val-fraction'}: {n_val} of the {len(idx)} {train!r} clips "
             f"(stratified, seed {seed}) validate, choose best.pt and calibrate, and are not trained on"
             + (f"; {single} class(es) of one clip keep it for training, unvalidated" if single else "")
             + ("; --val-fraction 0 turns it off" if chosen else ""))
        idx = kept
    elif val is not None:
        note("data.val_split", val, "validated every few epochs: chooses best.pt and calibrates")
        n_val = len(packed.indices(val))
    else:
        val = test
        note("data.val_split", val, "--val-fraction 0: validated on the test split, which then chooses best.pt "
             "and the calibration (its score is no longer an unseen test)")
        n_val = len(packed.indices(val))
    note("data.test_split", test, "`skelact test` evaluates it" + (", nothing before" if val != test else ""))
    n_train = len(idx)

    # Persons with any present joint, per training clip.
    present = _persons_present(packed, idx)
    persons = int(min(2, max(1, np.quantile(present, 0.95, method="higher"))))
    share = float(np.mean(present <= persons))
    note("data.max_persons", persons, f"{share:.0%} of the training clips show at most {persons}")
    features = ["joint"]
    if persons > 1 and fam.input_kind == "keypoint":
        # What an action between two people turns on (a hand reaching the other's hand, face or chest)
        # is invisible to a network that reads each person alone and averages them.
        features.append("partner")
        note("data.features", "joint, partner", "two people: each joint's offset from the same joint of the other "
             "person too")

    ensemble = []
    if streams and fam.small_data_streams and fam.input_kind == "keypoint" and n_train <= SMALL_DATA_CLIPS:
        plus = "+p" if "partner" in features else ""
        ensemble = [StreamConfig(name=n + plus, features=[*f, *features[1:]]) for n, f in
                    (("j", ["joint"]), ("b", ["bone"]), ("jm", ["joint_motion"]), ("bm", ["bone_motion"]))]
        note("model.streams", ", ".join(s.name for s in ensemble),
             f"{n_train} training clips (at most {SMALL_DATA_CLIPS}): four networks (joints, bones, their motions) "
             f"fused as one model, about 4x one network's time; --streams {ensemble[0].name} trains one")
        features = ["joint"]  # an ensemble's input: each stream computes its own features

    frames = np.asarray(packed.num_frames[idx])
    median = float(np.median(frames))
    lo, hi = fam.frames
    clip_len = int(min(hi, max(lo, _round8(median))))
    note("data.clip_len", clip_len, f"median training clip {median:.0f} frames, within {lo}..{hi} for {model}")

    if fam.input_kind == "heatmap":
        normalize = "none"
        note("data.normalize", normalize, "heatmap models draw raw pixel coordinates")
    elif dims == 3:
        normalize = "center3d"
        note("data.normalize", normalize, f"3D: centred on the root joint {lay.joints[lay.root]!r}")
    else:
        normalize = "bbox"
        note("data.normalize", normalize, "2D: each clip scaled by its own box (camera position and distance vary)")
    with_score = packed.score is not None and _informative(packed.score)
    if packed.score is None:
        note("data.with_score", False, "the file holds no scores")
    else:
        note("data.with_score", with_score, "scores vary" if with_score else "every score is the same value")
    if fam.input_kind == "heatmap" and packed.score is None:
        raise ConfigError(f"{where}: {model} needs keypoint scores (the heatmap peaks); the file has none")

    flip = 0.5 if lay.flip_pairs else 0.0
    if dims == 3:
        augment = AugmentConfig(flip=flip, rotate3d=15.0)
        aug_text = ("flip, " if flip else "") + "viewpoint rotation 15 deg"
    elif fam.input_kind == "heatmap":
        augment = AugmentConfig()  # the model crops and flips its heatmaps itself
        aug_text = "the model's own random-resized crop and flip"
    else:
        augment = AugmentConfig(flip=flip, rotate=10.0, scale=[0.9, 1.1], shift=0.05)
        aug_text = ("flip, " if flip else "") + "rotation 10 deg, scale 0.9-1.1, shift 0.05"
    note("data.augment", aug_text, "left/right flip pairs in the layout" if flip else "no flip pairs in the layout")

    batch = int(min(fam.batch_size, max(4, n_train // 8)))
    lr = fam.lr * batch / fam.batch_size
    steps_per_epoch = max(1, n_train // batch)
    steps = fam.steps_3d if dims == 3 and fam.steps_3d else fam.steps
    epochs = int(min(200, max(10, math.ceil(steps / steps_per_epoch))))
    warmup = float(max(1, round(0.05 * epochs)))
    # An average over the last ~12 % of the steps: long enough to smooth, short enough to follow
    # the cosine schedule's end.
    ema = round(min(0.9999, max(0.99, 1 - 1 / (0.12 * epochs * steps_per_epoch))), 4)
    note("data.batch_size", batch, f"{n_train} training clips")
    note("optim.epochs", epochs, f"about {steps} steps of {batch} clips ({steps_per_epoch} per epoch)"
         + ("; 3D: more steps for the viewpoint rotations" if steps != fam.steps else ""))
    note("optim.lr", f"{lr:g}", f"SGD, cosine with {warmup:g} warm-up epochs")
    note("optim.ema", ema, "validated and saved: an average of the weights over the last ~12 % of the steps")
    eval_interval = _eval_interval(epochs, n_train, n_val)
    note("eval_interval", eval_interval, f"{math.ceil(epochs / eval_interval)} validations of {n_val} clips: at most "
         "10, and at most ~10 % of the training's compute")

    cfg = Config(
        data=DataConfig(ann_file=str(ann_file), train_split=train, val_split=val, val_fraction=val_fraction,
                        test_split=test,
                        layout=None if layout is None else str(layout), clip_len=clip_len, num_clips_val=1,
                        num_clips_test=10, max_persons=persons,
                        normalize=normalize, features=features, with_score=with_score, augment=augment,
                        batch_size=batch, num_workers=2),
        model=ModelConfig(name=model, kwargs=dict(fam.model_kwargs), streams=ensemble),
        optim=OptimConfig(name="sgd", lr=lr, momentum=0.9, nesterov=True, weight_decay=fam.weight_decay,
                          epochs=epochs, warmup_epochs=warmup, clip_grad=fam.clip_grad, label_smoothing=0.1,
                          amp="auto", ema=ema),
        overfit=OverfitConfig(**fam.overfit),
        seed=seed,
        eval_interval=eval_interval,
        device="auto",
    )
    return AutoConfig(config_from_dict(config_to_dict(cfg)), lay, notes)  # re-validated like a recipe file


def _eval_interval(epochs: int, n_train: int, n_val: int) -> int:
    """Epochs between validations: at most 10 of them, and their cost within ~10 % of the training's.

    A training clip costs about three forward passes (forward and backward); a validation clip one.
    """
    budget = 0.1 * epochs * 3 * n_train / max(1, n_val)
    validations = int(min(10, max(1, budget)))
    return max(1, epochs // validations)


def _persons_present(packed: PackedClips, idx: np.ndarray) -> np.ndarray:
    """int [len(idx)]: persons with at least one present joint in each clip."""
    from skelact.skeleton import joint_present

    out = np.zeros(len(idx), dtype=np.int64)
    for n, i in enumerate(idx.tolist()):
        clip = packed.clip(i)
        present = joint_present(clip["keypoint"], clip.get("keypoint_score"))  # [M, T, V]
        out[n] = int(present.any(axis=(1, 2)).sum())
    return np.maximum(out, 1)


def _informative(score: np.ndarray, sample: int = 1 << 20) -> bool:
    """Whether the scores carry information: not one value everywhere (a strided sample of them)."""
    flat = score.reshape(-1)
    step = max(1, flat.size // sample)
    s = flat[::step]
    return bool(s.size) and float(s.min()) != float(s.max())

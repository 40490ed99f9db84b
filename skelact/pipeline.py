"""A recipe's transform pipeline and datasets: what training, ``skelact test``, calibration and
:mod:`skelact.inference` feed the model, built in one place.

It sits below both the engine (training, evaluation) and inference, so that a clip predicted from a
video goes through exactly the pipeline the model was trained and tested with.
"""

from __future__ import annotations

import math

import numpy as np

from skelact.config import Config, ConfigError, DataConfig
from skelact.data.dataset import PackedClips, SkeletonDataset
from skelact.data.io import AnnotationError, check_outside_dims, load_outside
from skelact.data.transforms import (
    ALIGN_JOINTS,
    Align3D,
    Center3D,
    Compose,
    FormatFeatures,
    NormalizeAxes,
    NormalizeBBox,
    NormalizeImage,
    PadPersons,
    RandomAffine2D,
    RandomFlip,
    RandomRotate3D,
    Transform,
    UniformSample,
)
from skelact.errors import short_repr
from skelact.skeleton import Layout

__all__ = ["class_names", "input_kind", "build_pipeline", "build_dataset", "check_clip_fields", "outside_clips"]


def class_names(packed: PackedClips) -> list[str]:
    """The file's class names, else ``class_0 ... class_{C-1}`` from the largest label."""
    if packed.classes:
        return list(packed.classes)
    return [f"class_{i}" for i in range(int(packed.labels.max()) + 1)]



def input_kind(model_name: str) -> str:
    """``keypoint`` or ``heatmap``: what the registered model expects as input."""
    from skelact.models import model_info

    return model_info(model_name).input_kind


def build_pipeline(
    data: DataConfig,
    layout: Layout,
    coord_dims: int,
    train: bool,
    num_clips: int = 1,
    augment: bool = True,
    force_flip: bool = False,
    seed: int = 255,
) -> Compose:
    """The transform chain: sample → pad persons → normalise → augment → format features.

    ``normalize: axes`` is the exception: it rescales the augmented clip, just before the features.

    Args:
        data: Data section of the recipe.
        layout: Skeleton layout (flip pairs, bone parents, root).
        coord_dims: 2 (pixel x, y) or 3 (metres).
        train: Random frame sampling and augmentation; else fixed test views.
        num_clips: Test views per clip (K).
        augment: Apply ``data.augment`` when training (the overfit check turns it off).
        force_flip: Always flip (test-time flip augmentation).
        seed: Seed of the fixed test-view draws.
    """
    steps: list[Transform] = [
        UniformSample(data.clip_len, 1 if train else num_clips, train=train, seed=seed),
        PadPersons(data.max_persons),
    ]
    if data.normalize == "image":
        steps.append(NormalizeImage())
    elif data.normalize == "bbox":
        steps.append(NormalizeBBox())
    elif data.normalize == "center3d":
        steps.append(Center3D(layout.root))
    elif data.normalize == "align3d":
        missing = [j for j in ALIGN_JOINTS if j not in layout.joints]
        if missing:
            raise ConfigError(f"data.normalize: align3d needs joints named {', '.join(ALIGN_JOINTS)}; layout "
                              f"{layout.name!r} lacks {', '.join(missing)} (use center3d)")
        steps.append(Align3D(layout.root, [layout.joints.index(j) for j in ALIGN_JOINTS]))
    # Normalised (and 3D) coordinates mirror about x = 0; raw pixels about the image centre w / 2.
    pixels = data.normalize == "none" and coord_dims == 2
    flip_center = None if pixels else 0.0
    aug = data.augment
    if train and augment:
        if aug.flip > 0:
            steps.append(RandomFlip(layout, aug.flip, center_x=flip_center))
        scale = tuple(aug.scale) if aug.scale is not None else (1.0, 1.0)
        # 3D clips scale together with the viewpoint rotation; 2D clips in the in-plane affine.
        scale_2d = scale if coord_dims == 2 else (1.0, 1.0)
        if aug.rotate > 0 or aug.shift > 0 or scale_2d != (1.0, 1.0):
            if pixels:
                raise ConfigError("data.augment.rotate/scale/shift act on normalised coordinates; "
                                  "set data.normalize or drop them")
            steps.append(RandomAffine2D(math.radians(aug.rotate), scale_2d, aug.shift))
        if aug.rotate3d > 0 or (coord_dims == 3 and scale != (1.0, 1.0)):
            if coord_dims != 3:
                raise ConfigError("data.augment.rotate3d needs 3D keypoints")
            steps.append(RandomRotate3D(math.radians(aug.rotate3d), scale))
    if force_flip:
        steps.append(RandomFlip(layout, 1.0, center_x=flip_center))
    if data.normalize == "axes":
        # After the augmentation: the clip as rotated is what gets rescaled, so every axis the model
        # sees spans [-1, 1] whatever the rotation (and a uniform augment.scale has no effect here).
        steps.append(NormalizeAxes())
    steps.append(FormatFeatures(layout, data.features, data.with_score))
    return Compose(steps)


def build_dataset(
    cfg: Config,
    packed: PackedClips,
    layout: Layout,
    indices: np.ndarray,
    train: bool,
    num_clips: int = 1,
    augment: bool = True,
    force_flip: bool = False,
    outside: PackedClips | None = None,
) -> SkeletonDataset:
    """A :class:`SkeletonDataset` over ``indices`` with the recipe's pipeline.

    Training items are [M, T, V, C]; evaluation items are [K, M, T, V, C]. ``outside``: the clips of
    ``data.unknown_file`` (:func:`outside_clips`), needed when training with ``data.augment.unknown``.
    """
    kind = input_kind(cfg.model.name)
    if kind == "heatmap" and (cfg.data.normalize != "none" or packed.num_channels != 2):
        raise ConfigError(f"model {cfg.model.name!r} builds heatmaps from raw 2D pixel coordinates: "
                          "set data.normalize: none (and 2D data)")
    pipe = build_pipeline(cfg.data, layout, packed.num_channels, train, num_clips, augment, force_flip)
    check_clip_fields(packed, indices, pipe, cfg.data.ann_file)
    join = cfg.data.augment.join if train and augment else 0.0
    unknown = cfg.data.augment.unknown if train and augment else 0.0
    if unknown > 0:
        if outside is None:
            raise ValueError("data.augment.unknown > 0 needs the outside clips (pipeline.outside_clips)")
        check_clip_fields(outside, np.arange(len(outside)), pipe, str(cfg.data.unknown_file))
    return SkeletonDataset(packed, indices, pipe, train=train, seed=cfg.seed, join=join,
                           num_classes=len(class_names(packed)) if join > 0 or unknown > 0 else None,
                           outside=outside if unknown > 0 else None, unknown=unknown)


def outside_clips(data: DataConfig, layout: Layout, packed: PackedClips) -> PackedClips | None:
    """The clips of ``data.unknown_file`` (other activities) mapped to ``layout`` and packed as
    ``packed``'s: same coordinate dimensions, scores where ``packed`` has them (a joint whose
    coordinates are not all 0 counts as seen when the file has none). None without a file.

    Raises:
        skelact.data.io.OutsideDataError: The file is missing, unreadable, empty, or its layout or coordinates do not
            fit (one line naming it).
    """
    if data.unknown_file is None:
        return None
    clips = load_outside(data.unknown_file, layout)
    check_outside_dims(clips, packed.num_channels, data.unknown_file, "the training")
    for i, c in enumerate(clips):
        kp = np.asarray(c["keypoint"], np.float32)
        if packed.score is None:
            c.pop("keypoint_score", None)
        elif c.get("keypoint_score") is None:
            c["keypoint_score"] = (kp != 0).any(-1).astype(np.float32)
        c["frame_dir"] = f"{c['frame_dir']}@{i}"  # unique, whatever the file's names
    return PackedClips.from_annotations({"annotations": clips, "split": {"all": [c["frame_dir"] for c in clips]}})


def check_clip_fields(packed: PackedClips, indices: np.ndarray, pipe: Compose, where: str) -> None:
    """Refuse, before any work, clips that lack a field ``pipe`` reads: ``img_shape`` for
    ``normalize: image`` and for flips of raw pixels (about the image centre).

    Raises:
        AnnotationError: Names ``where`` (the annotation file), the first such clip and the setting.
    """
    needs = [t for t in pipe.transforms
             if isinstance(t, NormalizeImage) or (isinstance(t, RandomFlip) and t.center_x is None)]
    if not needs:
        return
    missing = np.flatnonzero((packed.img_shape[indices] <= 0).any(axis=1))
    if missing.size:
        clip = packed.names[int(indices[missing[0]])]
        setting = ("data.normalize: image" if isinstance(needs[0], NormalizeImage)
                   else "flipping raw pixel coordinates (data.normalize: none)")
        raise AnnotationError(f"{where}: clip {short_repr(clip)} has no 'img_shape' (h, w), which {setting} needs "
                              f"({missing.size} of {len(indices)} clips lack it); add it, or set data.normalize: bbox")

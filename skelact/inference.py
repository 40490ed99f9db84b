"""Naming the action in one clip with a trained model: load a checkpoint (or a shipped model), map the
clip into the model's skeleton layout, run the test pipeline and average softmax over K views::

    from skelact.inference import load_predictor
    predictor = load_predictor("work_dirs/penn_kpc3d/best.pt")        # or a shipped model name
    pred = predictor.predict_clip(ann, topk=5, layout="coco17")    # ann: one PYSKL annotation
    pred.topk                                                      # [(class name, probability), ...]

The model is rebuilt from the config stored in the checkpoint, so inference sees exactly the
training recipe's test pipeline (sampling, normalisation, feature streams).

:func:`score_clips` is the one path from a loaded model to per-view logits and calibrated
probabilities, for clips of a data file (``skelact test``, ``skelact calibrate``, training's
calibration) and for annotations (:meth:`Predictor.predict_clips`: ``predict``, ``demo``, ``live``
and the streams). This module sits below the engine: it imports nothing from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skelact.errors import SkelactError, one_line
from skelact.signals import worker_exits_quietly
from skelact.skeleton import Layout, LayoutError, get_layout, infer_layout, joint_mapping, joint_present

if TYPE_CHECKING:
    import torch
    from torch import nn

    from skelact.checkpoint import Calibration, Checkpoint
    from skelact.config import Config, DataConfig
    from skelact.data.dataset import PackedClips

__all__ = [
    "InferenceError",
    "Prediction",
    "Predictor",
    "Scores",
    "ScoreOptions",
    "load_predictor",
    "loader_logits",
    "score_clips",
    "view_probs",
    "resolve_model_spec",
    "min_frames",
    "valid_frame_count",
]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class InferenceError(SkelactError, ValueError):
    """A checkpoint cannot be used, or a clip does not fit the model; the message names the file or clip."""


def min_frames(clip_len: int) -> int:
    """Fewest frames with a person that a clip needs: a quarter of the model's input, at least 8.

    Shorter clips are looped by the sampler, but a handful of frames repeated many times is not
    the motion the model was trained on.
    """
    return max(8, clip_len // 4)


def valid_frame_count(keypoint: np.ndarray, score: np.ndarray | None = None) -> int:
    """Frames in which any person has a detected joint (score > 0, or non-zero coordinates without scores).

    Args:
        keypoint: [M, T, V, C].
        score: [M, T, V] or None.
    """
    present = joint_present(keypoint, score)  # [M, T, V]
    return int(np.any(present, axis=(0, 2)).sum())


@dataclass
class Prediction:
    """The result for one clip.

    Attributes:
        topk: ``(class name, probability)`` pairs, most probable first.
        probs: float64 [num_classes]: softmax (at the model's calibrated temperature) averaged over
            the test views.
        classes: Class names in label order.
        frames: Frames in the input clip.
        views: Test views averaged (K).
        unknown: The top-1 probability is below the model's unknown-action threshold: what the
            clip shows is probably none of the classes (``topk[0]`` is only the closest).
    """

    topk: list[tuple[str, float]]
    probs: np.ndarray
    classes: list[str]
    frames: int
    views: int
    unknown: bool = False

    @property
    def label(self) -> str | None:
        """The predicted class, or None when the prediction is unknown."""
        return None if self.unknown else self.topk[0][0]

    def describe(self) -> str:
        """One line: ``golf_swing (0.93)`` or ``unknown action (closest: golf_swing, 0.31)``."""
        name, p = self.topk[0]
        return f"unknown action (closest: {name}, {p:.2f})" if self.unknown else f"{name} ({p:.2f})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``label`` (None when unknown), ``unknown``, ``topk`` as ``[{'label', 'probability'}]``
        and every class's probability."""
        return {
            "label": self.label,
            "unknown": self.unknown,
            "topk": [{"label": name, "probability": p} for name, p in self.topk],
            "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs, strict=True)},
            "frames": self.frames,
            "views": self.views,
        }


@dataclass
class Predictor:
    """A trained model ready for single clips.

    Attributes:
        model: The network in eval mode on ``device``.
        cfg: The training recipe stored in the checkpoint.
        classes: Class names in label order.
        layout: The skeleton layout the model was trained on.
        in_channels: Input channels C of ``(N, M, T, V, C)``.
        source: Where the weights came from (checkpoint path or ``shipped:NAME``).
        device: Where the model runs.
        calibration: Temperature and unknown-action threshold fitted after training, if any.
    """

    model: nn.Module
    cfg: Config
    classes: list[str]
    layout: Layout
    in_channels: int
    source: str
    device: torch.device
    calibration: Calibration | None = None
    _pipelines: dict[tuple[int, int, bool], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: torch.device, source: str,
                        cfg: Config | None = None) -> Predictor:
        """The checkpoint's model built on ``device`` (weights checked against its config) with its
        recipe (or ``cfg``, whose model section must be the checkpoint's), classes, layout and
        calibration; ``source`` names the file in errors."""
        model = ckpt.build_model(device, where=source)
        return cls(model, cfg if cfg is not None else ckpt.config, ckpt.classes, ckpt.layout, ckpt.in_channels,
                   source, device, ckpt.calibration)

    @property
    def input_kind(self) -> str:
        """``keypoint`` or ``heatmap`` (see ``skelact.models.model_info``)."""
        from skelact.models import model_info

        return model_info(self.cfg.model.name).input_kind

    @property
    def clip_len(self) -> int:
        """Frames per test view."""
        return self.cfg.data.clip_len

    @property
    def min_frames(self) -> int:
        """Fewest frames with a person a clip must have (see :func:`min_frames`)."""
        return min_frames(self.clip_len)

    def pipeline(self, coord_dims: int, num_clips: int, flip: bool = False) -> Any:
        """The recipe's test pipeline (K fixed views, all flipped with ``flip``) for ``coord_dims``-D keypoints."""
        from skelact.pipeline import build_pipeline

        key = (coord_dims, num_clips, flip)
        if key not in self._pipelines:
            self._pipelines[key] = build_pipeline(self.cfg.data, self.layout, coord_dims, train=False,
                                                  num_clips=num_clips, force_flip=flip)
        return self._pipelines[key]

    def map_layout(self, ann: dict, layout: str | Path | Layout | None = None) -> dict:
        """``ann`` with its joints in the model's layout.

        Args:
            ann: One PYSKL annotation (``keypoint`` [M, T, V, C], optional ``keypoint_score``).
            layout: The clip's layout; ``None``: the model's when V matches, else the built-in
                layout with V joints.

        Raises:
            InferenceError: The layouts differ and no mapping between them is known.
        """
        name = ann.get("frame_dir", "<clip>")
        v = int(ann["keypoint"].shape[2])
        try:
            if layout is not None:
                src = get_layout(layout)
            else:
                src = self.layout if v == self.layout.num_joints else infer_layout(v)
        except LayoutError as e:
            raise InferenceError(f"clip {name!r}: {e}") from None
        if src.num_joints != v:
            raise InferenceError(f"clip {name!r} has {v} joints but its layout {src.name!r} has {src.num_joints}")
        if src == self.layout:
            return ann
        idx = joint_mapping(src, self.layout)
        if idx is None:
            raise InferenceError(f"clip {name!r} is in layout {src.name!r} ({v} joints) but the model expects "
                                 f"{self.layout.name!r} ({self.layout.num_joints} joints), and there is no "
                                 "mapping between them")
        out = dict(ann)
        out["keypoint"] = np.ascontiguousarray(ann["keypoint"][:, :, list(idx)])
        if ann.get("keypoint_score") is not None:
            out["keypoint_score"] = np.ascontiguousarray(ann["keypoint_score"][:, :, list(idx)])
        return out

    def predict_clip(self, ann: dict, topk: int = 5, num_clips: int | None = None,
                     layout: str | Path | Layout | None = None) -> Prediction:
        """Top-k actions of one clip: softmax averaged over K deterministic test views.

        Args:
            ann: One PYSKL annotation: ``keypoint`` [M, T, V, C], optional ``keypoint_score``
                [M, T, V] and ``img_shape`` (h, w) (needed when the recipe normalises by image).
            topk: How many classes to return (capped at the number of classes).
            num_clips: Test views K; ``None`` takes the recipe's ``data.num_clips_test``.
            layout: The clip's skeleton layout (see :meth:`map_layout`).

        Raises:
            InferenceError: Layout without mapping, too few frames with a person, or input
                channels the model was not trained on (2D vs 3D).
        """
        return self.predict_clips([ann], topk, num_clips, layout)[0]

    def predict_clips(self, anns: Sequence[dict], topk: int = 5, num_clips: int | None = None,
                      layout: str | Path | Layout | None = None, batch_size: int = 32) -> list[Prediction]:
        """:meth:`predict_clip` for many clips (e.g. the windows of a long video), ``batch_size`` clips per forward.

        Batching is ~3x faster per clip than one clip at a time for small models on a CPU.

        Raises:
            InferenceError: As :meth:`predict_clip`, for the first clip at fault.
        """
        k = num_clips or self.cfg.data.num_clips_test
        scores = score_clips(self, anns, options=ScoreOptions(num_clips=k, clips_per_batch=max(1, batch_size)),
                             layout=layout)
        out: list[Prediction] = []
        for i, ann in enumerate(anns):
            probs = scores.probs[i].copy()  # [classes]; not a view that keeps the whole batch alive
            order = np.argsort(-probs, kind="stable")[: max(1, min(topk, len(self.classes)))]
            out.append(Prediction([(self.classes[j], float(probs[j])) for j in order], probs, list(self.classes),
                                  int(np.shape(ann["keypoint"])[1]), k, unknown=bool(scores.unknown[i])))
        return out

    def model_input(self, ann: dict, num_clips: int, layout: str | Path | Layout | None = None,
                    flip: bool = False) -> tuple[np.ndarray, int]:
        """The model's input for one clip: float [K, M, T, V, C] (K = ``num_clips`` test views, flipped
        with ``flip``) and the clip's frames.

        Raises:
            InferenceError: As :meth:`predict_clip`.
        """
        name = ann.get("frame_dir", "<clip>")
        kp = np.asarray(ann["keypoint"])
        if kp.ndim != 4 or kp.shape[1] == 0:
            raise InferenceError(f"clip {name!r}: expected keypoints [M, T, V, C], got {list(kp.shape)}")
        ann = self.map_layout(ann, layout)
        kp, score = ann["keypoint"], ann.get("keypoint_score")
        frames = int(kp.shape[1])
        valid = valid_frame_count(kp, score)
        if valid < self.min_frames:
            raise InferenceError(f"clip {name!r} has {valid} frame(s) with a person; the model needs at least "
                                 f"{self.min_frames} (clip_len {self.clip_len})")
        coord_dims = int(kp.shape[-1])
        if self.input_kind == "heatmap" and coord_dims != 2:
            raise InferenceError(f"clip {name!r} has {coord_dims}D keypoints; heatmap models take 2D pixels")
        sample = {"keypoint": kp, "label": int(ann.get("label", -1)), "frame_dir": name, "total_frames": frames}
        if score is not None:
            sample["keypoint_score"] = score
        if ann.get("img_shape") is not None:
            sample["img_shape"] = tuple(int(s) for s in ann["img_shape"])
        try:
            pipe = self.pipeline(coord_dims, num_clips, flip)
            x = pipe(sample, np.random.default_rng(0))["inputs"]  # [K, M, T, V, C]
        except ValueError as e:  # e.g. image normalisation without an image size
            raise InferenceError(one_line(e)) from None
        if x.shape[-1] != self.in_channels:
            raise InferenceError(f"clip {name!r} gives {x.shape[-1]} input channels ({coord_dims}D keypoints), the "
                                 f"model was trained on {self.in_channels}")
        return x, frames

    def is_unknown(self, probs: np.ndarray) -> bool:
        """Whether a prediction with these probabilities is below the model's unknown-action threshold
        (``Calibration.unknown``, the rule :attr:`Scores.unknown` applies too)."""
        return self.calibration is not None and bool(self.calibration.unknown(probs))

    def timeline_unknown(self, probs: np.ndarray) -> bool:
        """:meth:`is_unknown` for a window timeline's frame (``probs``: its most confident covering window),
        with the threshold fitted for that rule when the model has one (``Calibration.unknown``)."""
        return self.calibration is not None and bool(self.calibration.unknown(probs, timeline=True))


def resolve_model_spec(spec: str | Path | None) -> tuple[Path, str | None]:
    """A ``--model`` value → ``(checkpoint path, shipped name or None)``.

    An existing file is a checkpoint; otherwise a registered shipped name; ``None`` is the default
    shipped model. The shipped file's sha256 is checked.

    Raises:
        InferenceError: A missing checkpoint path, or a name no shipped model has.
    """
    from skelact.models.weights import DEFAULT_PRETRAINED, WeightsError, get_weights, list_pretrained

    if spec is None or str(spec) == "":
        if DEFAULT_PRETRAINED not in list_pretrained():
            raise InferenceError(f"no shipped model {DEFAULT_PRETRAINED!r} in this installation yet; pass a "
                                 "checkpoint from `skelact train` with --model PATH")
        spec = DEFAULT_PRETRAINED
    path = Path(spec)
    if path.is_file():
        return path, None
    if str(spec) in list_pretrained():
        try:
            return get_weights(str(spec)), str(spec)
        except WeightsError as e:
            raise InferenceError(str(e)) from None
    if path.suffix in _CHECKPOINT_SUFFIXES or len(path.parts) > 1:
        raise InferenceError(f"{path}: checkpoint not found")
    shipped = ", ".join(list_pretrained()) or "none yet"
    raise InferenceError(f"{spec!r} is neither a checkpoint file nor a shipped model (shipped: {shipped})")


def load_predictor(spec: str | Path | None = None, device: str | torch.device = "cpu") -> Predictor:
    """Load a checkpoint written by ``skelact train`` (or a shipped model by name) for inference.

    This is the one path from a checkpoint file (or shipped name) to a ready predictor: ``skelact
    predict``, ``demo``, ``live``, ``export`` and the shipped models all come through here. (``skelact
    test`` and ``calibrate`` load their ``Checkpoint`` themselves and make it a predictor with the
    same :meth:`Predictor.from_checkpoint`.)

    Args:
        spec: Checkpoint path, shipped model name, or ``None`` for the default shipped model.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Raises:
        InferenceError: No such file or shipped model.
        CheckpointError: The file is unreadable, not a skelact checkpoint, or its weights do not
            fit the model its config describes.
        DeviceError: The device is not available.
    """
    from skelact.checkpoint import Checkpoint
    from skelact.runtime import resolve_device

    path, shipped = resolve_model_spec(spec)
    dev = resolve_device(device)
    ckpt = Checkpoint.load(path)
    predictor = Predictor.from_checkpoint(ckpt, dev, str(path))
    if shipped is not None:
        _check_shipped(path, shipped, ckpt.classes, ckpt.layout)
        predictor.source = f"shipped:{shipped}"
    return predictor


def _check_shipped(path: Path, name: str, classes: list[str], layout: Layout) -> None:
    from skelact.models.weights import pretrained_info

    info = pretrained_info(name)
    if list(info.classes) != classes or get_layout(info.layout) != layout:
        raise InferenceError(f"{path}: its classes or layout differ from the registry entry of {name!r}")


# ------------------------------------------------------------------------ the one evaluation path


@dataclass(frozen=True)
class ScoreOptions:
    """Test-time options of :func:`score_clips`.

    Attributes:
        num_clips: Views per clip (K); ``None`` takes the recipe's ``data.num_clips_test``.
        flip: Also average over the horizontally flipped views (left/right joints swapped): 2K views.
        clips_per_batch: Clips per forward, each with its K views; ``None``: ``data.batch_size // K``.
        workers: DataLoader worker processes (0: in this process).
        amp: Mixed precision of the forward (``none``, ``bf16``, ``fp16``; see ``runtime.autocast_context``).
        progress: Label of the progress bar (``None``: no bar); the flipped pass is labelled ``flip``.
    """

    num_clips: int | None = None
    flip: bool = False
    clips_per_batch: int | None = None
    workers: int = 0
    amp: str = "none"
    progress: str | None = None

    def views(self, data: DataConfig) -> int:
        """K: the views of one pass over a clip."""
        return self.num_clips or data.num_clips_test

    def batch(self, data: DataConfig) -> int:
        """Clips per forward (the memory check before a run sizes its batch with this too)."""
        return max(1, self.clips_per_batch or data.batch_size // self.views(data))


def view_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float64 [N, C]: softmax of ``logits`` [N, K, C] / ``temperature``, averaged over the K views."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if z.size == 0:  # no clip at all (e.g. no window of a stream yet): nothing to average
        return np.zeros((z.shape[0], z.shape[-1]))
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p.mean(axis=1)


@dataclass
class Scores:
    """What :func:`score_clips` gives for N clips.

    Attributes:
        logits: float32 [N, K, C] per view (with flip, the K plain views then the K flipped ones).
        labels: int64 [N]: each clip's label (-1 for an annotation without one).
        probs: float64 [N, C]: softmax at the calibrated temperature averaged over the views, the
            probabilities ``skelact test`` scores and ``skelact predict`` prints.
        temperature: The softmax temperature of ``probs``: the calibration's, else 1.
        calibration: The model's temperature and unknown threshold, if fitted.
    """

    logits: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    temperature: float = 1.0
    calibration: Calibration | None = None

    @classmethod
    def from_logits(cls, logits: np.ndarray, labels: np.ndarray, calibration: Calibration | None) -> Scores:
        """The probabilities of ``logits`` at ``calibration``'s temperature."""
        t = calibration.temperature if calibration is not None else 1.0
        return cls(logits, labels, view_probs(logits, t), t, calibration)

    @property
    def unknown(self) -> np.ndarray:
        """bool [N]: the clips the model calls "unknown action" (``Calibration.unknown``)."""
        if self.calibration is None:
            return np.zeros(len(self.probs), dtype=bool)
        return np.asarray(self.calibration.unknown(self.probs), dtype=bool)


def score_clips(predictor: Predictor, clips: PackedClips | Sequence[dict], indices: np.ndarray | None = None,
                options: ScoreOptions = ScoreOptions(), layout: str | Path | Layout | None = None,
                shard: tuple[int, int] = (0, 1),
                gather: Callable[[Any], list[Any]] | None = None) -> Scores:
    """The one path from a loaded model to per-view logits and calibrated probabilities.

    ``skelact test``, ``skelact calibrate``, training's calibration and :meth:`Predictor.predict_clips`
    (``predict``, ``demo``, ``live``, the streams) all score clips here: the recipe's test pipeline
    (``predictor.cfg``) over K fixed views (and their flips), batched through the model, the views'
    softmax at the calibrated temperature averaged.

    Args:
        predictor: The model, its recipe (whose data section makes the pipeline), layout and calibration.
        clips: A clip store (with ``indices``: which of its clips, in this order), or PYSKL
            annotations, each mapped into the model's layout and checked (:meth:`Predictor.model_input`).
        indices: Clip indices of ``clips`` when it is a clip store.
        options: Views, flip, batch, workers, precision, progress.
        layout: The annotations' layout (see :meth:`Predictor.map_layout`).
        shard: ``(rank, world)``: this process scores clips ``rank::world``, ...
        gather: ... and ``gather`` (every rank's object, in rank order) puts the shards back together.

    Raises:
        InferenceError: An annotation the model cannot take (as :meth:`Predictor.predict_clip`).
    """
    from torch.utils.data import DataLoader

    from skelact.data.dataset import PackedClips
    from skelact.pipeline import build_dataset

    rank, world = shard
    k = options.views(predictor.cfg.data)

    def dataset(flip: bool) -> Any:
        if not isinstance(clips, PackedClips):
            return _AnnotationViews(predictor, clips[rank::world], k, layout, flip)
        if indices is None:
            raise ValueError("score_clips: a clip store needs the indices of the clips to score")
        return build_dataset(predictor.cfg, clips, predictor.layout, np.asarray(indices)[rank::world], train=False,
                             num_clips=k, force_flip=flip)

    passes = []
    for flip in (False, True) if options.flip else (False,):
        ds, batch = dataset(flip), options.batch(predictor.cfg.data)
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]]
        if options.workers > 0:
            loader = DataLoader(ds, batch_size=batch, num_workers=options.workers, worker_init_fn=worker_exits_quietly,
                                pin_memory=predictor.device.type == "cuda")
        else:  # the same batches without DataLoader's machinery (~0.5 ms of a 5 ms call of a small model)
            loader = _Batches(ds, batch)
        progress = ("flip" if flip else options.progress) if options.progress is not None and rank == 0 else None
        passes.append(loader_logits(predictor.model, loader, predictor.device, options.amp, progress, gather))
    logits = np.concatenate([lg for lg, _ in passes], axis=1) if len(passes) > 1 else passes[0][0]  # [N, K', C]
    return Scores.from_logits(logits, passes[0][1], predictor.calibration)


class _Batches:
    """A dataset's items ``(x, label)`` stacked ``batch`` at a time, in order: what a DataLoader without
    workers gives, with a length (the progress bar's total)."""

    def __init__(self, ds: Any, batch: int) -> None:
        self.ds, self.batch = ds, batch

    def __len__(self) -> int:
        return -(-len(self.ds) // self.batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        for start in range(0, len(self.ds), self.batch):
            items = [self.ds[i] for i in range(start, min(start + self.batch, len(self.ds)))]
            yield torch.stack([x for x, _ in items]), torch.as_tensor([y for _, y in items], dtype=torch.int64)


class _AnnotationViews:
    """Annotations as a dataset of test views: item ``i`` is ``([K, M, T, V, C], label)``."""

    def __init__(self, predictor: Predictor, anns: Sequence[dict], num_clips: int,
                 layout: str | Path | Layout | None, flip: bool) -> None:
        self.predictor, self.anns, self.num_clips, self.layout, self.flip = predictor, anns, num_clips, layout, flip

    def __len__(self) -> int:
        return len(self.anns)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import torch

        ann = self.anns[i]
        x = self.predictor.model_input(ann, self.num_clips, self.layout, self.flip)[0]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(ann.get("label", -1))


def loader_logits(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                  amp: str = "none", progress: str | None = None,
                  gather: Callable[[Any], list[Any]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every view of every clip a loader of test views gives (the forward of :func:`score_clips`;
    training's per-epoch validation calls it on its own loader, whose workers persist across epochs).

    Args:
        loader: Batches ``(x [N, K, M, T, V, C], labels [N])`` (a DataLoader); under ``gather``, this rank's clips
            ``rank::world`` in order.
        gather: Every rank's object in rank order; the shards are put back in dataset order.

    Returns:
        ``(logits, labels)``: float32 [N, K, num_classes] and int64 [N] in dataset order.
    """
    import torch

    from skelact.progress import progress as progress_bar
    from skelact.runtime import autocast_context

    if model.training:  # eval() walks and sets every module; a predictor's model is in eval mode already
        model.eval()
    chunks, labels = [], []
    with torch.inference_mode():  # no autograd bookkeeping at all: a live stream calls this many times a second
        batches = loader if progress is None else progress_bar(loader, desc=progress, unit="batch")
        for x, y in batches:
            x = x.to(device, non_blocking=True)  # [N, K, M, T, V, C]
            n, k = x.shape[:2]
            with autocast_context(amp, device):
                logits = model(x.flatten(0, 1))  # [N*K, classes]: the views are a bigger batch
            chunks.append(logits.float().view(n, k, -1).cpu().numpy())
            labels.append(y.numpy())
    local = (np.concatenate(chunks) if chunks else np.zeros((0, 0, 0), np.float32),
             np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64))
    parts = gather(local) if gather is not None else [local]
    if len(parts) == 1:
        return parts[0]
    # Re-interleave the rank::world shards into dataset order (a rank may hold no clip at all).
    total = sum(len(p[1]) for p in parts)
    shape = next(p[0].shape[1:] for p in parts if len(p[1]))
    out_l, out_y = np.zeros((total, *shape), np.float32), np.zeros(total, dtype=np.int64)
    for r, (lg, y) in enumerate(parts):
        if len(y):
            out_l[r::len(parts)], out_y[r::len(parts)] = lg, y
    return out_l, out_y

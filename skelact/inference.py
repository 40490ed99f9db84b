"""Naming the action in one clip with a trained model: load a checkpoint (or a shipped model), map the
clip into the model's skeleton layout, run the test pipeline and average softmax over K views::

    from skelact.inference import load_predictor
    predictor = load_predictor("work_dirs/penn_kpc3d/best.pt")        # or a shipped model name
    pred = predictor.predict_clip(ann, topk=5, layout="coco17")    # ann: one PYSKL annotation
    pred.topk                                                      # [(class name, probability), ...]

The model is rebuilt from the config stored in the checkpoint, so inference sees exactly the
training recipe's test pipeline (sampling, normalisation, feature streams).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skelact.errors import SkelactError, one_line
from skelact.skeleton import Layout, LayoutError, get_layout, infer_layout, joint_mapping, joint_present

if TYPE_CHECKING:
    import torch
    from torch import nn

    from skelact.checkpoint import Calibration
    from skelact.config import Config

__all__ = [
    "InferenceError",
    "Prediction",
    "Predictor",
    "load_predictor",
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
    _pipelines: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)

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

    def pipeline(self, coord_dims: int, num_clips: int) -> Any:
        """The recipe's test pipeline (K fixed views) for ``coord_dims``-D keypoints."""
        from skelact.engine.builders import build_pipeline

        key = (coord_dims, num_clips)
        if key not in self._pipelines:
            self._pipelines[key] = build_pipeline(self.cfg.data, self.layout, coord_dims, train=False,
                                                  num_clips=num_clips)
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
        import torch

        out: list[Prediction] = []
        k = num_clips or self.cfg.data.num_clips_test
        for b in range(0, len(anns), max(1, batch_size)):
            chunk = [self.model_input(ann, k, layout) for ann in anns[b: b + max(1, batch_size)]]
            x = np.concatenate([c[0] for c in chunk])  # [clips * K, M, T, V, C]
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
            for i, (_, frames) in enumerate(chunk):
                probs = self.probabilities(logits[i * k: (i + 1) * k])  # [classes]
                order = np.argsort(-probs, kind="stable")[: max(1, min(topk, len(self.classes)))]
                out.append(Prediction([(self.classes[j], float(probs[j])) for j in order], probs, list(self.classes),
                                      frames, k, unknown=self.is_unknown(probs)))
        return out

    def model_input(self, ann: dict, num_clips: int,
                    layout: str | Path | Layout | None = None) -> tuple[np.ndarray, int]:
        """The model's input for one clip: float [K, M, T, V, C] (K = ``num_clips`` test views) and the clip's frames.

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
            x = self.pipeline(coord_dims, num_clips)(sample, np.random.default_rng(0))["inputs"]  # [K, M, T, V, C]
        except ValueError as e:  # e.g. image normalisation without an image size
            raise InferenceError(one_line(e)) from None
        if x.shape[-1] != self.in_channels:
            raise InferenceError(f"clip {name!r} gives {x.shape[-1]} input channels ({coord_dims}D keypoints), the "
                                 f"model was trained on {self.in_channels}")
        return x, frames

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """float64 [classes]: softmax of ``logits`` [K, classes] at the calibrated temperature, averaged over K
        (the rule `skelact test` applies, :func:`skelact.engine.predict.view_probs`)."""
        from skelact.engine.predict import view_probs

        t = self.calibration.temperature if self.calibration is not None else 1.0
        return view_probs(logits.float().cpu().numpy()[None], t)[0]

    def is_unknown(self, probs: np.ndarray) -> bool:
        """Whether a prediction with these probabilities is below the model's unknown-action threshold."""
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
    test`` builds its model through the same ``Checkpoint.build_model``, below inference.)

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
    model = ckpt.build_model(dev, where=str(path))
    if shipped is not None:
        _check_shipped(path, shipped, ckpt.classes, ckpt.layout)
    source = f"shipped:{shipped}" if shipped else str(path)
    return Predictor(model, ckpt.config, ckpt.classes, ckpt.layout, ckpt.in_channels, source, dev,
                     ckpt.calibration)


def _check_shipped(path: Path, name: str, classes: list[str], layout: Layout) -> None:
    from skelact.models.weights import pretrained_info

    info = pretrained_info(name)
    if list(info.classes) != classes or get_layout(info.layout) != layout:
        raise InferenceError(f"{path}: its classes or layout differ from the registry entry of {name!r}")

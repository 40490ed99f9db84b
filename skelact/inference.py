"""Naming the action in one clip with a trained model: load a checkpoint (or a shipped model), map the
clip into the model's skeleton layout, run the test pipeline and average softmax over K views::

    from skelact.inference import load_model
    predictor = load_model("work_dirs/penn_kpc3d/best.pt")        # or a shipped model name
    pred = predictor.predict_clip(ann, topk=5, layout="coco17")    # ann: one PYSKL annotation
    pred.topk                                                      # [(class name, probability), ...]

The model is rebuilt from the config stored in the checkpoint, so inference sees exactly the
training recipe's test pipeline (sampling, normalisation, feature streams).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skelact.skeleton import COCO17_TO_PENN13, Layout, LayoutError, get_layout, infer_layout

if TYPE_CHECKING:
    import torch
    from torch import nn

    from skelact.config import Config

__all__ = [
    "InferenceError",
    "LAYOUT_MAPPINGS",
    "Prediction",
    "Predictor",
    "load_model",
    "resolve_model_spec",
    "min_frames",
    "valid_frame_count",
]

#: Joint index maps ``(source layout, model layout) -> indices``: ``model_kp = source_kp[..., idx, :]``.
LAYOUT_MAPPINGS: dict[tuple[str, str], tuple[int, ...]] = {("coco17", "penn13"): COCO17_TO_PENN13}

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class InferenceError(ValueError):
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
    if score is not None:
        present = np.asarray(score) > 0  # [M, T, V]
    else:
        present = np.any(np.asarray(keypoint) != 0, axis=-1)
    return int(np.any(present, axis=(0, 2)).sum())


@dataclass
class Prediction:
    """The result for one clip.

    Attributes:
        topk: ``(class name, probability)`` pairs, most probable first.
        probs: float64 [num_classes]: softmax averaged over the test views.
        classes: Class names in label order.
        frames: Frames in the input clip.
        views: Test views averaged (K).
    """

    topk: list[tuple[str, float]]
    probs: np.ndarray
    classes: list[str]
    frames: int
    views: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``topk`` as ``[{'label', 'probability'}]`` and every class's probability."""
        return {
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
    """

    model: nn.Module
    cfg: Config
    classes: list[str]
    layout: Layout
    in_channels: int
    source: str
    device: torch.device
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
        if src.name == self.layout.name:
            return ann
        idx = LAYOUT_MAPPINGS.get((src.name, self.layout.name))
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
        import torch

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
        k = num_clips or self.cfg.data.num_clips_test
        sample = {"keypoint": kp, "label": int(ann.get("label", -1)), "frame_dir": name, "total_frames": frames}
        if score is not None:
            sample["keypoint_score"] = score
        if ann.get("img_shape") is not None:
            sample["img_shape"] = tuple(int(s) for s in ann["img_shape"])
        try:
            x = self.pipeline(coord_dims, k)(sample, np.random.default_rng(0))["inputs"]  # [K, M, T, V, C]
        except ValueError as e:  # e.g. image normalisation without an image size
            raise InferenceError(str(e).splitlines()[0]) from None
        if x.shape[-1] != self.in_channels:
            raise InferenceError(f"clip {name!r} gives {x.shape[-1]} input channels ({coord_dims}D keypoints), the "
                                 f"model was trained on {self.in_channels}")
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
            probs = torch.softmax(logits.float(), dim=1).mean(dim=0).double().cpu().numpy()  # [classes]
        order = np.argsort(-probs, kind="stable")[: max(1, min(topk, len(self.classes)))]
        return Prediction([(self.classes[i], float(probs[i])) for i in order], probs, list(self.classes), frames, k)


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


def _resolve_device(device: str | torch.device) -> torch.device:
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError("device 'cuda' requested but CUDA is not available")
    return dev


def load_model(spec: str | Path | None = None, device: str | torch.device = "cpu") -> Predictor:
    """Load a checkpoint written by ``skelact train`` (or a shipped model by name) for inference.

    Args:
        spec: Checkpoint path, shipped model name, or ``None`` for the default shipped model.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Raises:
        InferenceError: The file is missing, unreadable or not a skelact checkpoint, its layout is
            unknown, or its weights do not match the model its config describes.
    """
    from skelact.config import ConfigError, config_from_dict
    from skelact.engine.builders import build_model
    from skelact.engine.checkpoint import load_checkpoint

    path, shipped = resolve_model_spec(spec)
    dev = _resolve_device(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on a pickle protocol it did not expect
            ckpt = load_checkpoint(path, map_location="cpu")
    except Exception as e:  # torch.load raises many types for a file that is not a checkpoint
        text = str(e)
        if "WeightsUnpickler error:" in text:  # torch's long advice (weights_only=False) is wrong here
            text = text.split("WeightsUnpickler error:", 1)[1].strip()
        reason = (text.splitlines() or [type(e).__name__])[0][:200]
        if reason.startswith("Unsupported global"):
            reason = f"it holds Python objects, refused as loading them could run code: {reason}"
        raise InferenceError(f"{path}: not a skelact checkpoint ({reason})") from None
    if not isinstance(ckpt, dict):
        raise InferenceError(f"{path}: not a skelact checkpoint (a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in ("model", "config", "classes", "layout", "in_channels") if k not in ckpt]
    if missing:
        raise InferenceError(f"{path}: not a skelact checkpoint (missing {', '.join(missing)})")
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as e:
        raise InferenceError(f"{path}: invalid stored config: {e}") from None
    classes = [str(c) for c in ckpt["classes"]]
    layout = _checkpoint_layout(path, str(ckpt["layout"]), cfg.data.layout)
    in_channels = int(ckpt["in_channels"])
    try:
        model = build_model(cfg, len(classes), layout, in_channels)
    except (ConfigError, ValueError, TypeError) as e:
        raise InferenceError(f"{path}: cannot build its model {cfg.model.name!r}: {e}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        reason = " ".join(str(e).split())[:300]
        raise InferenceError(f"{path}: its weights do not fit the {cfg.model.name!r} model its config describes "
                             f"({len(classes)} classes, layout {layout.name!r}, C={in_channels}): {reason}") from None
    model.eval().to(dev)
    if shipped is not None:
        _check_shipped(path, shipped, classes, layout)
    source = f"shipped:{shipped}" if shipped else str(path)
    return Predictor(model, cfg, classes, layout, in_channels, source, dev)


def _checkpoint_layout(path: Path, name: str, recipe_layout: str | None) -> Layout:
    """The checkpoint's layout: built-in by name, else the recipe's YAML file (if still there)."""
    try:
        return get_layout(name)
    except LayoutError:
        pass
    if recipe_layout:
        try:
            layout = get_layout(recipe_layout)
        except LayoutError as e:
            raise InferenceError(f"{path}: trained on layout {name!r}: {e}") from None
        if layout.name == name:
            return layout
    raise InferenceError(f"{path}: trained on layout {name!r}, which is neither built in nor found as its "
                         "recipe's layout file")


def _check_shipped(path: Path, name: str, classes: list[str], layout: Layout) -> None:
    from skelact.models.weights import pretrained_info

    info = pretrained_info(name)
    if list(info.classes) != classes or info.layout != layout.name:
        raise InferenceError(f"{path}: its classes or layout differ from the registry entry of {name!r}")

"""An ensemble of streams as one model: joint, bone and motion networks whose logits are summed.

PYSKL's best numbers fuse four networks trained on four features of the same clip (joint, bone,
joint motion, bone motion), commonly with weights 2:2:1:1. Here the fusion is a model:
:class:`StreamEnsemble` takes the JOINT clip ``(N, M, T, V, C [+ score])`` as the data pipeline
makes it for ``data.features: [joint]``, computes each stream's features inside with
:func:`stream_features` (equal, value for value, to ``skelact.data.transforms.format_features``),
runs each stream's network and returns the weighted sum of their logits. Temperature, the
unknown-action threshold, top-k, ONNX export and every command then see one logits tensor.

The features can move into the model because the pipeline computes them last, from the joint
coordinates as sampled, normalised and augmented (``engine/builders.build_pipeline``); motion is
taken along the model's T axis, and the test views reach the model as separate batch items, so it
never crosses from one view into the next, as in ``FormatFeatures``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from skelact.models.registry import create_model, model_info
from skelact.skeleton import Layout

__all__ = ["StreamSpec", "StreamEnsemble", "stream_features", "stream_channels", "create_ensemble"]


@dataclass(frozen=True)
class StreamSpec:
    """One stream: its name, the features its network sees (concatenated) and its logits' weight."""

    name: str
    features: tuple[str, ...]
    weight: float


def stream_channels(features: Sequence[str], coord_dims: int, score: bool) -> int:
    """C of a stream's input: ``coord_dims`` per feature, plus the score channel."""
    return coord_dims * len(features) + int(score)


def _motion(x: torch.Tensor) -> torch.Tensor:
    """``x[..., t+1, :, :] - x[..., t, :, :]`` along T of ``(..., T, V, C)``, the last frame zero
    (``transforms.motion``)."""
    return torch.cat([x[..., 1:, :, :] - x[..., :-1, :, :], torch.zeros_like(x[..., :1, :, :])], dim=-3)


def _partner_offset(joint: torch.Tensor) -> torch.Tensor:
    """``transforms.partner_offset`` on ``(N, M, T, V, C)``: each joint's offset from the same joint
    of the nearest other person (by mean centre distance over the frames both are seen), else 0."""
    m = joint.shape[1]
    if m < 2:
        return torch.zeros_like(joint)
    present = (joint != 0).any(-1)  # (N, M, T, V)
    count = present.sum(-1)  # (N, M, T)
    center = (joint * present[..., None]).sum(-2) / count.clamp(min=1)[..., None]  # (N, M, T, C)
    seen = count > 0
    both = seen[:, :, None] & seen[:, None]  # (N, M, M, T)
    dist = torch.linalg.vector_norm(center[:, :, None] - center[:, None], dim=-1)  # (N, M, M, T)
    frames = both.sum(-1)
    mean = torch.where(both, dist, 0).sum(-1) / frames.clamp(min=1)
    eye = torch.eye(m, dtype=torch.bool, device=joint.device)
    mean = torch.where((frames > 0) & ~eye, mean, torch.inf)
    best, idx = mean.min(-1)  # (N, M): first index on ties, as numpy's argmin
    other = joint.gather(1, idx[:, :, None, None, None].expand_as(joint))
    other_present = present.gather(1, idx[:, :, None, None].expand_as(present))
    keep = present & other_present & torch.isfinite(best)[:, :, None, None]
    return torch.where(keep[..., None], joint - other, 0)


def stream_features(x: torch.Tensor, parents: torch.Tensor, coord_dims: int, score: bool,
                    features: Sequence[str]) -> torch.Tensor:
    """A stream's input from the joint clip, as ``format_features`` makes it from the keypoints.

    Args:
        x: ``(N, M, T, V, coord_dims [+ 1 score])`` float32, what the pipeline makes for ``[joint]``.
        parents: int64 ``[V]`` parent of each joint (``Layout.parents``).
        coord_dims: Coordinate channels (2 or 3); a score channel, when ``score``, follows them.
        features: Features to concatenate, in order.

    Returns:
        ``(N, M, T, V, len(features) * coord_dims [+ 1])``.
    """
    joint = x[..., :coord_dims]
    bone = joint - joint.index_select(-2, parents) if any(f.startswith("bone") for f in features) else joint
    make = {"joint": lambda: joint, "bone": lambda: bone, "joint_motion": lambda: _motion(joint),
            "bone_motion": lambda: _motion(bone), "partner": lambda: _partner_offset(joint)}
    parts = [make[f]() for f in features]
    if score:
        parts.append(x[..., coord_dims:coord_dims + 1])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


class StreamEnsemble(nn.Module):
    """Weighted sum of the logits of one network per stream, each fed its features of the joint clip.

    Its ``state_dict`` holds each network's under ``streams.<name>.``; the weights and features are
    the checkpoint's config (``model.streams``), not tensors.
    """

    def __init__(self, networks: dict[str, nn.Module], specs: Sequence[StreamSpec], layout: Layout,
                 coord_dims: int, score: bool) -> None:
        super().__init__()
        if [s.name for s in specs] != list(networks):
            raise ValueError("one network per stream, in the streams' order")
        self.specs = tuple(specs)
        self.coord_dims, self.score = coord_dims, score
        self.streams = nn.ModuleDict(networks)
        self.register_buffer("parents", torch.as_tensor(layout.parents, dtype=torch.int64), persistent=False)

    def stream_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(S, N, classes)``: every stream's logits, weight or not (what the weights are chosen from)."""
        return torch.stack([self.streams[s.name](stream_features(x, self.parents, self.coord_dims, self.score,
                                                                 s.features)) for s in self.specs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, classes)``: the weighted sum; a stream of weight 0 is not run."""
        out = None
        for s in self.specs:
            if s.weight == 0:
                continue
            logits = self.streams[s.name](stream_features(x, self.parents, self.coord_dims, self.score, s.features))
            out = logits * s.weight if out is None else out + logits * s.weight
        if out is None:
            raise ValueError("every stream has weight 0")
        return out


def create_ensemble(model_name: str, num_classes: int, layout: Layout, in_channels: int, score: bool,
                    specs: Sequence[StreamSpec], **kwargs: object) -> StreamEnsemble:
    """A :class:`StreamEnsemble` of the registered ``model_name`` (with ``kwargs``), one per stream.

    Args:
        in_channels: C of the joint clip it takes (coordinates, then the score when ``score``).
        score: Whether the last input channel is the keypoint score (each stream gets it too).

    Raises:
        ValueError: A heatmap model (its input is not a feature of the joint clip), or an input
            without coordinates.
    """
    if model_info(model_name).input_kind != "keypoint":
        raise ValueError(f"{model_name!r} draws heatmaps from the raw keypoints; only keypoint models make "
                         "ensembles of feature streams")
    coord_dims = in_channels - int(score)
    if coord_dims < 1:
        raise ValueError(f"an input of {in_channels} channels{' with a score' if score else ''} has no coordinates")
    networks = {s.name: create_model(model_name, num_classes, layout,
                                     stream_channels(s.features, coord_dims, score), **kwargs) for s in specs}
    return StreamEnsemble(networks, specs, layout, coord_dims, score)

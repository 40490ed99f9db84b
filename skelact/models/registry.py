"""Model registry: a plain dict from name to builder (``create_model`` builds one by name).

Every builder has the signature ``builder(num_classes, layout, in_channels, **options)`` and
returns an ``nn.Module`` that maps ``(N, M, T, V, C)`` float32 input to ``(N, num_classes)`` logits,
with ``forward_features`` (pooled features) and ``forward_head`` (features → logits), so that
features can be taken without the classifier.

    >>> from skelact.models import create_model, list_models
    >>> model = create_model("stgcnpp", num_classes=60, layout="coco17")
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import one_line
from ..skeleton import Layout, get_layout

__all__ = ["ModelInfo", "register_model", "list_models", "model_info", "create_model"]

INPUT_KINDS = ("keypoint", "heatmap")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Attributes:
        name: Registry name.
        description: One line.
        input_kind: ``'keypoint'`` (any C feature channels) or ``'heatmap'`` (C = 3: pixel x, y,
            score; the model draws heatmaps itself).
        builder: ``builder(num_classes, layout, in_channels, **options) -> nn.Module``.
    """

    name: str
    description: str
    input_kind: str
    builder: Callable[..., nn.Module]


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, input_kind: str = "keypoint", description: str | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a builder under ``name``.

    Args:
        name: Registry name (unique).
        input_kind: ``'keypoint'`` or ``'heatmap'``.
        description: One line; defaults to the first line of the builder's docstring.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        doc = description or (builder.__doc__ or name).strip().splitlines()[0]
        _MODELS[name] = ModelInfo(name, doc, input_kind, builder)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def _lookup(name: str) -> ModelInfo:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def model_info(name: str) -> ModelInfo:
    """Description and input kind of a registered model."""
    return _lookup(name)


def create_model(
    name: str,
    num_classes: int,
    layout: str | Path | Layout = "coco17",
    in_channels: int = 3,
    **kwargs: object,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: Registry name (see :func:`list_models`).
        num_classes: Size of the output logits.
        layout: Skeleton layout: built-in name, YAML path or :class:`~skelact.skeleton.Layout`.
        in_channels: Input channels C of ``(N, M, T, V, C)`` (3 for heatmap models: x, y, score).
        **kwargs: Model-specific options, passed to the builder.

    Returns:
        The model, in training mode.
    """
    info = _lookup(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1, got {in_channels!r}")
    layout = get_layout(layout)
    try:
        return info.builder(num_classes=num_classes, layout=layout, in_channels=in_channels, **kwargs)
    except TypeError as e:  # an unknown option, or an option of the wrong type
        text = str(e)
        bad = re.search(r"unexpected keyword argument '(\w+)'", text)
        if bad:
            raise ValueError(f"model {name!r} has no option {bad.group(1)!r}") from None
        raise ValueError(f"model {name!r}: an option has the wrong type ({one_line(text)})") from None

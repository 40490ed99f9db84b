"""ONNX export of a trained checkpoint, with the class names and input contract in the file's metadata.

The graph maps ``keypoints`` float32 ``(batch, M, T, V, C)`` (the output of the recipe's test
pipeline: sampled, normalised, feature streams stacked on C) to ``logits`` ``(batch, classes)``;
the batch axis is dynamic, M, T, V and C are those of the recipe. Heatmap models (PoseConv3D)
export too: their heatmap generator becomes part of the graph and takes raw pixel (x, y, score).

Metadata (``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``, or
:func:`read_metadata`): ``classes`` (JSON list), ``layout``, ``joints`` (JSON list), ``layout_spec``
(JSON: the whole layout), ``input_shape`` (JSON, ``"batch"`` first), ``input_axes``, ``model``,
``input_kind``, ``clip_len``, ``features``, ``with_score``, ``normalize``, ``num_clips_test``,
``preprocessing``, ``skelact_version``.

Needs the ``onnx`` extra: ``pip install "skelact[onnx]"`` (onnx, onnxruntime).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.io import atomic_write
from skelact.errors import one_line
from skelact.inference import InferenceError, Predictor, load_predictor

__all__ = ["DEFAULT_OPSET", "ExportError", "export_onnx", "export_predictor", "read_metadata"]

DEFAULT_OPSET = 17
_ATOL = 1e-4


class ExportError(InferenceError):
    """The model cannot be exported, or the exported graph disagrees with PyTorch."""


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs onnx and onnxruntime: pip install "skelact[onnx]"') from None
    return onnx


def _example_input(predictor: Predictor, batch: int, frames: int, seed: int) -> np.ndarray:
    """A plausible input: pixel coordinates and scores for heatmap models, unit-scale values otherwise."""
    d = predictor.cfg.data
    shape = (batch, d.max_persons, frames, predictor.layout.num_joints, predictor.in_channels)
    rng = np.random.default_rng(seed)
    if predictor.input_kind == "heatmap":  # (x, y, score) in a 640x480 image
        x = np.empty(shape, np.float32)
        x[..., 0] = rng.uniform(200, 440, shape[:-1])
        x[..., 1] = rng.uniform(100, 380, shape[:-1])
        x[..., 2] = rng.uniform(0.05, 1.0, shape[:-1])
        return x
    return rng.normal(0.0, 0.5, shape).astype(np.float32)


def _metadata(predictor: Predictor, frames: int) -> dict[str, str]:
    from skelact import __version__

    d = predictor.cfg.data
    shape: list[Any] = ["batch", d.max_persons, frames, predictor.layout.num_joints, predictor.in_channels]
    steps = (f"UniformSample(clip_len={d.clip_len}, test views={d.num_clips_test}, softmax averaged) -> "
             f"PadPersons({d.max_persons}) -> normalize={d.normalize} -> features={list(d.features)}"
             f"{' + score' if d.with_score else ''}")
    return {
        "classes": json.dumps(predictor.classes),
        "layout": predictor.layout.name,
        "joints": json.dumps(list(predictor.layout.joints)),
        "layout_spec": json.dumps(predictor.layout.to_dict()),  # joints, edges, root, flip pairs, limbs
        "input_shape": json.dumps(shape),
        "input_axes": "batch, persons, frames, joints, channels",
        "model": predictor.cfg.model.name,
        "input_kind": predictor.input_kind,
        "clip_len": str(d.clip_len),
        "features": json.dumps(list(d.features)),
        "with_score": json.dumps(d.with_score),
        "normalize": d.normalize,
        "num_clips_test": str(d.num_clips_test),
        "preprocessing": steps,
        "skelact_version": __version__,
    }


def export_predictor(predictor: Predictor, out: str | Path, opset: int = DEFAULT_OPSET,
                     example_frames: int | None = None, verify: bool = True) -> dict[str, Any]:
    """Export a loaded model to ONNX (atomically) and check it against PyTorch with onnxruntime.

    Args:
        predictor: From :func:`skelact.inference.load_predictor`.
        out: Output ``.onnx`` file.
        opset: ONNX opset.
        example_frames: Frames T of the exported input (default: the recipe's ``clip_len``).
        verify: Run the graph in onnxruntime on a batch of 2 and compare with PyTorch (tolerance 1e-4).

    Returns:
        ``{'path', 'input_shape', 'max_abs_diff' (None without verify), 'opset'}``.

    Raises:
        ExportError: The exporter fails or the outputs differ by more than the tolerance.
    """
    onnx = _import_onnx()
    out = Path(out)
    frames = example_frames or predictor.clip_len
    model = predictor.model.to("cpu").eval()  # moved back to predictor.device at the end
    try:
        data, diff = _export_bytes(onnx, predictor, frames, opset, verify)
    finally:
        model.to(predictor.device)
    atomic_write(out, lambda f: f.write(data))
    d = predictor.cfg.data
    shape = ["batch", d.max_persons, frames, predictor.layout.num_joints, predictor.in_channels]
    return {"path": out, "input_shape": shape, "max_abs_diff": diff, "opset": opset}


def _export_bytes(onnx: Any, predictor: Predictor, frames: int, opset: int, verify: bool) -> tuple[bytes, float | None]:
    """The serialised ONNX model with metadata, and the verification's max |diff| (None without it)."""
    import torch

    example = torch.from_numpy(_example_input(predictor, 1, frames, seed=0))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript-based exporter warns that it is deprecated and that shape checks are
            # traced as constants; neither matters for these fixed-layout graphs (verified below).
            warnings.simplefilter("ignore")
            torch.onnx.export(predictor.model, (example,), buf, dynamo=False, opset_version=opset,
                              input_names=["keypoints"], output_names=["logits"],
                              dynamic_axes={"keypoints": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as e:  # the exporter raises many types for unsupported operators
        raise ExportError(f"{predictor.source}: torch.onnx cannot export model {predictor.cfg.model.name!r} "
                          f"({one_line(e)})") from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in _metadata(predictor, frames).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"skelact {predictor.cfg.model.name}: keypoints (batch, M, T, V, C) -> logits (batch, classes)"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    return data, (_verify(data, predictor, frames) if verify else None)


def _verify(data: bytes, predictor: Predictor, frames: int) -> float:
    """Max |onnxruntime - PyTorch| on a fresh batch of 2 (another batch size than the export's)."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError('checking the export needs onnxruntime: pip install "skelact[onnx]"') from None
    x = _example_input(predictor, 2, frames, seed=1)
    with torch.inference_mode():
        ref = predictor.model(torch.from_numpy(x)).float().numpy()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"keypoints": x})[0]
    diff = float(np.max(np.abs(got - ref)))
    if not np.isfinite(diff) or diff > _ATOL * max(1.0, float(np.max(np.abs(ref)))):
        raise ExportError(f"{predictor.source}: the ONNX graph disagrees with PyTorch (max |diff| {diff:.3g})")
    return diff


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = DEFAULT_OPSET,
                example_frames: int | None = None, verify: bool = True) -> Path:
    """Export a checkpoint (or a shipped model name) to an ONNX file.

    Args:
        checkpoint: ``best.pt`` / ``last.pt`` from ``skelact train``, or a shipped model name.
        out: Output ``.onnx``, written through a temporary file and renamed.
        opset: ONNX opset.
        example_frames: Frames T of the input (default: the recipe's ``clip_len``).
        verify: Compare onnxruntime with PyTorch on a batch of 2 (max |diff| <= 1e-4).

    Returns:
        ``out``.
    """
    return export_predictor(load_predictor(checkpoint), out, opset, example_frames, verify)["path"]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The skelact metadata of an exported file, JSON fields decoded (``classes``, ``input_shape``, ...)."""
    onnx = _import_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    meta: dict[str, Any] = {p.key: p.value for p in proto.metadata_props}
    for key in ("classes", "joints", "layout_spec", "input_shape", "features", "with_score"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    for key in ("clip_len", "num_clips_test"):
        if key in meta:
            meta[key] = int(meta[key])
    return meta

"""ONNX export: every registered model runs in onnxruntime and matches PyTorch; metadata; CLI; atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.config import config_from_dict
from skelact.engine import builders
from skelact.models import list_models, model_info
from skelact.skeleton import get_layout

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from skelact.export import ExportError, export_onnx, read_metadata  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["a", "b", "c", "d"]
# Heatmap models at test size: small maps and widths, a handful of frames.
HEATMAP_KWARGS = {"poseconv3d_c3d": {"test_size": 32, "base_channels": 8},
                  "poseconv3d_slowonly": {"test_size": 32, "base_channels": 8}}


def make_checkpoint(path: Path, name: str) -> Path:
    """A freshly initialised model saved in the engine's checkpoint format (what `skelact train` writes)."""
    heatmap = model_info(name).input_kind == "heatmap"
    data = ({"clip_len": 8, "max_persons": 1, "normalize": "none", "features": ["joint"]} if heatmap else
            {"clip_len": 16, "max_persons": 2, "features": ["joint", "bone"]})
    cfg = config_from_dict({"data": data, "model": {"name": name, "kwargs": HEATMAP_KWARGS.get(name, {})},
                            "device": "cpu"})
    in_channels = 3 if heatmap else 5
    torch.manual_seed(0)
    model = builders.build_model(cfg, len(CLASSES), get_layout("penn13"), in_channels)
    if heatmap:  # sparse heatmaps give ~1e-6 logits at init: scale the head to O(1) logits so 1e-4 means something
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(model_input(name, 2, np.random.default_rng(0))))
            model.fc.weight.mul_(1.0 / logits.abs().max())
    Checkpoint(model.state_dict(), cfg, CLASSES, get_layout("penn13"), in_channels).save(path)
    return path


def model_input(name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
    if model_info(name).input_kind == "heatmap":  # pixel x, y and a score
        x = rng.uniform(50, 400, (batch, 1, 8, 13, 3)).astype(np.float32)
        x[..., 2] = rng.uniform(0.1, 1.0, (batch, 1, 8, 13))
        return x
    return rng.normal(0, 0.5, (batch, 2, 16, 13, 5)).astype(np.float32)


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_and_matches_pytorch(name: str, tmp_path: Path) -> None:
    from skelact.inference import load_predictor

    ckpt = make_checkpoint(tmp_path / f"{name}.pt", name)
    out = export_onnx(ckpt, tmp_path / "model.onnx")
    assert out == tmp_path / "model.onnx" and {p.name for p in tmp_path.iterdir()} == {f"{name}.pt", "model.onnx"}

    x = model_input(name, 3, np.random.default_rng(1))  # another batch size than the export's example
    with torch.inference_mode():
        ref = load_predictor(ckpt).model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "keypoints" and inp.shape[1:] == list(x.shape[1:]) and isinstance(inp.shape[0], str)
    got = sess.run(["logits"], {"keypoints": x})[0]
    assert got.shape == (3, len(CLASSES))
    assert np.abs(ref).max() > 1e-2
    assert np.abs(got - ref).max() <= 1e-4

    meta = read_metadata(out)
    assert meta["classes"] == CLASSES and meta["layout"] == "penn13" and meta["model"] == name
    assert meta["input_shape"] == ["batch", *x.shape[1:]] and meta["input_kind"] == model_info(name).input_kind
    assert meta["joints"] == list(get_layout("penn13").joints)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint(tmp_path / "k.pt", "kpc3d_small")
    out = tmp_path / "k.onnx"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: keypoints [batch, 2, 16, 13, 5]" in text and "onnxruntime matches PyTorch" in text
    before = out.stat().st_mtime_ns
    assert main(["export", str(ckpt), "-o", str(out)]) == 1
    assert "already exists (use --force" in capsys.readouterr().err and out.stat().st_mtime_ns == before
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err


def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = make_checkpoint(tmp_path / "k.pt", "kpc3d_small")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match=r"k.pt: torch.onnx cannot export model 'kpc3d_small' \(Unsupported"):
        export_onnx(ckpt, tmp_path / "k.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pt"]

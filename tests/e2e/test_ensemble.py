"""A four-stream ensemble on real Penn Action clips, through the commands a user runs: `train --streams`
(zero-config), then `test`, `predict`, `calibrate`, `export` and `live` take WORK_DIR/best.pt as one model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import expect_error

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.config import config_to_yaml
from skelact.data.io import load_annotations, save_annotations

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def penn(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 20th Penn Action clip (117 clips, every class, the official train/test split)."""
    from skelact.data.convert import convert_penn

    root = tmp_path_factory.mktemp("penn")
    labels = root / "labels"
    labels.mkdir()
    for f in sorted((data_root / "penn_action" / "labels").glob("*.mat"))[::20]:
        shutil.copy(f, labels / f.name)
    data, _ = convert_penn(labels)
    return save_annotations(data, root / "penn.pkl")


@pytest.fixture(scope="module")
def trained(penn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ens") / "work"
    assert main(["train", str(penn), "--model", "kpc3d_small", "--streams", "j,b,jm,bm", "--work-dir", str(work),
                 "--set", "optim.epochs=1", "data.num_workers=0", "data.num_clips_test=2", "device=cpu"]) == 0
    return work / "best.pt"


def test_train_streams_writes_one_calibrated_checkpoint(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = Checkpoint.load(trained)
    assert [s.name for s in ckpt.config.model.streams] == ["j", "b", "jm", "bm"]
    assert ckpt.config.data.val_split is None and ckpt.config.data.val_fraction > 0  # carved, not the test split
    assert ckpt.calibration is not None and ckpt.calibration.split.startswith("10% of 'train'")
    for s in ("j", "b", "jm", "bm"):
        assert (trained.parent / "streams" / s / "last.pt").is_file()
    log = (trained.parent / "log.txt").read_text()
    assert log.count("validation top-1") == 10  # four streams and the ensemble, of the best.pt and of the last.pt
    last = Checkpoint.load(trained.parent / "last.pt")  # the streams' last epoch, fused and calibrated the same way
    assert [s.name for s in last.config.model.streams] == ["j", "b", "jm", "bm"] and last.calibration is not None


def test_test_evaluates_the_ensemble_on_the_test_split(penn: Path, trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--checkpoint", str(trained), "--out-dir", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "top-1:" in out and "unknown:" in out
    scores = np.load(tmp_path / "t" / "scores.npz")
    assert len(scores["labels"]) == len(load_annotations(penn)["split"]["test"])


def test_predict_on_a_clip(penn: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_annotations(penn)
    clip = save_annotations({"annotations": [data["annotations"][0]], "layout": "penn13"}, tmp_path / "one.pkl")
    capsys.readouterr()
    assert main(["predict", str(clip), "--model", str(trained), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    probs = [c["probability"] for c in result["topk"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_calibrate_refits_what_training_fitted(trained: Path, tmp_path: Path) -> None:
    """`skelact calibrate` runs the whole model (the weighted sum inside) over the validation clips;
    training fitted the same temperature from the streams' logits fused outside."""
    out = tmp_path / "cal.pt"
    assert main(["calibrate", str(trained), "-o", str(out)]) == 0
    before, after = Checkpoint.load(trained).calibration, Checkpoint.load(out).calibration
    assert before is not None and after is not None and after.split == before.split
    assert after.temperature == pytest.approx(before.temperature, rel=1e-3)
    assert after.threshold == pytest.approx(before.threshold, abs=1e-4)


def test_export_to_onnx_matches_pytorch(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ens.onnx"
    assert main(["export", str(trained), "-o", str(out)]) == 0  # export itself compares onnxruntime with torch
    assert out.is_file()


def test_live_on_a_video(trained: Path, data_root: Path, models_root: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    pytest.importorskip("ai_edge_litert")
    capsys.readouterr()
    assert main(["live", "--source", str(data_root / "videos" / "ntu_sample.avi"), "--model", str(trained),
                 "--pose-model", str(models_root / "movenet_multipose_lightning_f16.tflite"), "--max-frames", "30",
                 "--every", "15", "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    classes = set(Checkpoint.load(trained).classes)
    assert lines and all(line["closest"] in classes for line in lines)


_FAST = ["--backbone-lr-mult", "0", "--set", "optim.epochs=1", "data.num_workers=0", "data.num_clips_test=2",
         "device=cpu"]


def _stem(ckpt: Path, stream: str | None) -> torch.Tensor:
    """The first convolution's kernel of ``stream``'s network (a single model's when None)."""
    state = Checkpoint.load(ckpt).model
    prefix = f"streams.{stream}." if stream else ""
    return next(v for k, v in state.items() if k.startswith(prefix) and v.ndim == 5)


def test_init_an_ensemble_stream_by_stream(penn: Path, trained: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`--init ENSEMBLE` on a data file trains the same streams, each from the network of its features
    (frozen here, so its weights must be the source's exactly)."""
    work = tmp_path / "ens"
    capsys.readouterr()
    assert main(["train", str(penn), "--init", str(trained), "--work-dir", str(work), *_FAST]) == 0
    assert "then --streams j,b,jm,bm (the streams of the --init ensemble; --streams j for one network)" in \
        capsys.readouterr().out
    log = (work / "log.txt").read_text()
    assert f"stream b: training in {work / 'streams' / 'b'}, starting from {trained}" in log
    assert f"init: weights of {trained} (stream b)" in (work / "streams" / "b" / "log.txt").read_text()
    for s in ("j", "b", "jm", "bm"):
        assert torch.equal(_stem(work / "best.pt", s), _stem(trained, s))


def test_init_a_single_model_starts_its_own_stream_only(penn: Path, trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A joint model starts the joint stream; the bone stream trains from scratch at the full learning
    rate (``--backbone-lr-mult`` applies to loaded weights), and the log says so. A recipe without
    streams fine-tunes one network from an ensemble: its joint stream."""
    joint = tmp_path / "joint"
    assert main(["train", str(penn), "--model", "kpc3d_small", "--streams", "j", "--work-dir", str(joint),
                 *_FAST[2:]]) == 0
    assert Checkpoint.load(joint / "last.pt").config.model.streams == []  # one stream: one network, no ensemble
    work = tmp_path / "ens"
    assert main(["train", str(penn), "--init", str(joint / "last.pt"), "--streams", "j,b", "--work-dir", str(work),
                 *_FAST]) == 0
    log = (work / "log.txt").read_text()
    assert f"stream j: training in {work / 'streams' / 'j'}, starting from {joint / 'last.pt'}" in log
    assert f"stream b: training in {work / 'streams' / 'b'}, from scratch ({joint / 'last.pt'} has no network " \
        "for bone)" in log
    assert "init:" not in (work / "streams" / "b" / "log.txt").read_text()
    assert Checkpoint.load(work / "streams" / "b" / "last.pt").config.optim.backbone_lr_mult == 1
    assert torch.equal(_stem(work / "best.pt", "j"), _stem(joint / "last.pt", None))
    single = tmp_path / "single"
    assert main(["train", str(joint / "config.yaml"), "--init", str(trained), "--work-dir", str(single),
                 *_FAST]) == 0
    assert torch.equal(_stem(single / "last.pt", None), _stem(trained, "j"))


def test_init_a_partner_network_from_one_that_reads_people_alone(penn: Path, trained: Path, tmp_path: Path) -> None:
    """A network that also sees the partner offset starts from the init's network of the same features
    without it: those channels copied, the partner channels at zero (a recipe of one network, and the
    streams j+p, b of an ensemble). The backbone learns at 1e-9 of the rate, so the weights stay where
    they started; a frozen one (0) is refused, since the partner channels would stay at zero."""
    recipe = tmp_path / "partner.yaml"
    ckpt = Checkpoint.load(trained)
    one = dataclasses.replace(ckpt.config, model=dataclasses.replace(ckpt.config.model, streams=[]),
                              data=dataclasses.replace(ckpt.config.data, features=["joint", "partner"]))
    recipe.write_text(config_to_yaml(one))
    single = tmp_path / "single"
    slow = ["--backbone-lr-mult", "1e-9", *_FAST[2:]]
    assert main(["train", str(recipe), "--init", str(trained), "--work-dir", str(single), *slow]) == 0
    got, want = _stem(single / "last.pt", None), _stem(trained, "j")  # channels x, y, partner x, y, score
    assert torch.allclose(got[:, [0, 1, 4]], want, atol=1e-6) and got[:, 2:4].abs().max() < 1e-6
    work = tmp_path / "ens"
    assert main(["train", str(penn), "--init", str(trained), "--streams", "j+p,b", "--work-dir", str(work),
                 *slow]) == 0
    assert f"stream j+p: training in {work / 'streams' / 'j+p'}, starting from {trained}" in \
        (work / "log.txt").read_text()
    got = _stem(work / "best.pt", "j+p")
    assert torch.allclose(got[:, [0, 1, 4]], want, atol=1e-6) and got[:, 2:4].abs().max() < 1e-6
    assert torch.allclose(_stem(work / "best.pt", "b"), _stem(trained, "b"), atol=1e-6)


def test_init_from_an_ensemble_without_the_runs_features(penn: Path, trained: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe of one joint network from an ensemble with no joint stream: one line naming the file
    and the streams."""
    ckpt = Checkpoint.load(trained)
    bone = dataclasses.replace(ckpt.config.model, streams=[s for s in ckpt.config.model.streams if s.name == "b"])
    only_b = dataclasses.replace(ckpt, config=dataclasses.replace(ckpt.config, model=bone),
                                 model={k: v for k, v in ckpt.model.items() if k.startswith("streams.b.")})
    path = tmp_path / "bone_only.pt"
    only_b.save(path)
    recipe = tmp_path / "joint.yaml"
    one = dataclasses.replace(ckpt.config, model=dataclasses.replace(ckpt.config.model, streams=[]))
    recipe.write_text(config_to_yaml(one))
    expect_error(capsys, ["train", str(recipe), "--init", str(path), "--work-dir", str(tmp_path / "w"), *_FAST],
                 [f"{path}: an ensemble whose streams see bone; none sees joint, what the run trains on"],
                 watch=[tmp_path])
    assert not (tmp_path / "w").exists()

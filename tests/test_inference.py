"""Inference: loading checkpoints and shipped models, predicting clips and videos, `skelact predict` / `demo`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import TINY_MODEL, penn_clip

from skelact.checkpoint import Checkpoint, CheckpointError, release_checkpoint
from skelact.cli import main
from skelact.config import config_from_dict
from skelact.data.io import save_annotations
from skelact.engine import builders
from skelact.engine.evaluate import evaluate
from skelact.engine.train import train
from skelact.inference import InferenceError, load_predictor, min_frames, resolve_model_spec, valid_frame_count
from skelact.models import weights
from skelact.skeleton import COCO17_TO_PENN13, get_layout, layout_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["action0", "action1", "action2"]
POSE_MODEL = "movenet_multipose_lightning_f16.tflite"


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    anns = [penn_clip(f"c{c}_{i}", c, 24 + int(rng.integers(-4, 5)), rng) for c in range(3) for i in range(6)]
    names = [a["frame_dir"] for a in anns]
    split = {"train": [n for k, n in enumerate(names) if k % 3], "test": [n for k, n in enumerate(names) if k % 3 == 0]}
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    save_annotations({"split": split, "annotations": anns, "classes": CLASSES, "layout": "penn13"}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(ann_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 1-epoch `skelact train` run: the real checkpoint format."""
    cfg = config_from_dict({
        "data": {"ann_file": str(ann_file), "clip_len": 16, "max_persons": 1, "features": ["joint", "bone"],
                 "num_clips_test": 3, "batch_size": 6, "num_workers": 0},
        "model": TINY_MODEL, "optim": {"lr": 0.05, "epochs": 1}, "seed": 0, "device": "cpu",
    })
    work = tmp_path_factory.mktemp("run")
    train(cfg, work)
    return work / "best.pt"


def one_clip_file(path: Path, ann: dict, layout: str | dict | None = "penn13",
                  classes: list[str] | None = CLASSES) -> Path:
    data: dict = {"split": {}, "annotations": [ann]}
    if layout:
        data["layout"] = layout
    if classes:
        data["classes"] = classes
    save_annotations(data, path, allow_unlabeled=True)
    return path


# ------------------------------------------------------------------------------------------ API


def test_predict_clip_matches_skelact_test(checkpoint: Path, ann_file: Path, tmp_path: Path) -> None:
    """The predictor's views and averaging are the engine's: the same probabilities as `skelact test`."""
    predictor = load_predictor(checkpoint)
    assert predictor.classes == CLASSES and predictor.layout.name == "penn13" and predictor.in_channels == 5
    assert not predictor.model.training
    evaluate(None, checkpoint, num_clips=3, out_dir=tmp_path)
    scores = np.load(tmp_path / "scores.npz")
    cfg = predictor.cfg
    packed = builders.load_clips(cfg.data)
    for row, name in enumerate(scores["names"][:2]):
        ann = packed.clip(packed.names.index(str(name)))
        pred = predictor.predict_clip(ann, topk=2, num_clips=3)
        np.testing.assert_allclose(pred.probs, scores["probs"][row], atol=1e-6)
        assert len(pred.topk) == 2 and pred.views == 3 and pred.frames == ann["keypoint"].shape[1]
        assert pred.topk[0][1] >= pred.topk[1][1] and pred.topk[0][0] == CLASSES[int(np.argmax(pred.probs))]
        assert abs(pred.probs.sum() - 1) < 1e-6


def test_coco17_clip_is_mapped_to_a_penn13_model(checkpoint: Path) -> None:
    predictor = load_predictor(checkpoint)
    rng = np.random.default_rng(1)
    penn = penn_clip("p", 1, 30, rng)
    coco = dict(penn, keypoint=rng.uniform(0, 300, (1, 30, 17, 2)).astype(np.float32),
                keypoint_score=rng.uniform(0, 1, (1, 30, 17)).astype(np.float32))
    coco["keypoint"][:, :, list(COCO17_TO_PENN13)] = penn["keypoint"]
    coco["keypoint_score"][:, :, list(COCO17_TO_PENN13)] = penn["keypoint_score"]
    a = predictor.predict_clip(penn, topk=3)
    b = predictor.predict_clip(coco, topk=3, layout="coco17")
    np.testing.assert_array_equal(a.probs, b.probs)
    assert [n for n, _ in b.topk] == [n for n, _ in a.topk]
    # Layouts that share joint names map by name (Kinect's ntu25 holds every penn13 joint) ...
    ntu = get_layout("ntu25")
    mapped = predictor.map_layout({"keypoint": np.ones((1, 4, 25, 2), np.float32)}, ntu)
    assert mapped["keypoint"].shape == (1, 4, 13, 2)
    # ... and one that does not is refused.
    upper = layout_from_dict({"name": "upper", "joints": ["neck", "l", "r"], "edges": [["l", "neck"], ["r", "neck"]]})
    with pytest.raises(InferenceError, match=r"layout 'upper' \(3 joints\).*'penn13' \(13 joints\).*no mapping"):
        predictor.predict_clip(dict(penn, keypoint=np.ones((1, 30, 3, 2), np.float32),
                                    keypoint_score=np.ones((1, 30, 3), np.float32)), layout=upper)


def test_short_clip_rule(checkpoint: Path) -> None:
    assert min_frames(16) == 8 and min_frames(100) == 25
    kp = np.ones((2, 10, 13, 2), np.float32)
    score = np.zeros((2, 10, 13), np.float32)
    score[1, 3:7, 0] = 0.5  # a person in 4 of the 10 frames
    assert valid_frame_count(kp, score) == 4
    predictor = load_predictor(checkpoint)
    clip = penn_clip("short", 0, 30, np.random.default_rng(2))
    clip["keypoint_score"][:, 7:] = 0  # nobody after frame 7
    with pytest.raises(InferenceError, match=r"'short' has 7 frame\(s\) with a person.*at least 8"):
        predictor.predict_clip(clip)


def test_bad_checkpoints(checkpoint: Path, tmp_path: Path) -> None:
    ckpt = Checkpoint.load(checkpoint)
    ckpt.classes = ["a", "b"]  # 2 names for 3 outputs
    ckpt.save(tmp_path / "classes.pt")
    with pytest.raises(CheckpointError, match=r"classes.pt: its weights do not fit .* of another shape"):
        load_predictor(tmp_path / "classes.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        load_predictor(tmp_path / "junk.pt")
    with pytest.raises(InferenceError, match="missing.pt: checkpoint not found"):
        load_predictor(tmp_path / "missing.pt")
    with pytest.raises(InferenceError, match="neither a checkpoint file nor a shipped model"):
        load_predictor("no_such_model")


# ------------------------------------------------------------------------------- shipped models


def test_no_shipped_model_yet_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_REGISTRY", {})
    with pytest.raises(InferenceError, match="no shipped model 'penn_kpc3d'.*--model PATH"):
        resolve_model_spec(None)


def test_registered_weights_are_checked_and_loaded(checkpoint: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_REGISTRY", {})
    monkeypatch.setenv("SKELACT_WEIGHTS_DIR", str(tmp_path))
    path, sha = release_checkpoint(checkpoint, tmp_path / "tiny_v1.pt")
    slim = torch.load(path, weights_only=True)
    assert "optimizer" not in slim and "rng" not in slim and slim["classes"] == CLASSES
    weights.register_pretrained({
        "name": "penn_kpc3d", "file": "tiny_v1.pt", "sha256": sha, "model": "stgcnpp",
        "model_kwargs": TINY_MODEL["kwargs"], "classes": CLASSES, "layout": "penn13", "dataset": "synthetic",
        "preprocessing": "16 frames, 3 views", "metrics": {}, "recipe": "test fixture",
    })
    assert weights.list_pretrained() == ["penn_kpc3d"]
    assert load_predictor().source == "shipped:penn_kpc3d"  # the default name
    assert load_predictor("penn_kpc3d").classes == CLASSES
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(InferenceError, match=r"tiny_v1.pt: sha256 .* does not match"):
        load_predictor("penn_kpc3d")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_predict_pickle_json_and_video(checkpoint: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pkl = one_clip_file(tmp_path / "one.pkl", penn_clip("clip7", 2, 40, np.random.default_rng(3)))
    assert main(["predict", str(pkl), "--model", str(checkpoint), "--json", "--topk", "2", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clip"] == "clip7" and result["true_label"] == "action2" and result["output"] is None
    probs = [t["probability"] for t in result["topk"]]
    assert len(probs) == 2 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-6

    out = tmp_path / "clip7.mp4"
    assert main(["predict", str(pkl), "--model", str(checkpoint), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1. action" in text and "true label: action2" in text and f"wrote {out}" in text
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40  # black canvas, one frame per clip frame
    cap.release()


def test_cli_errors_name_the_file_and_write_nothing(checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    one_clip_file(tmp_path / "short.pkl", penn_clip("s", 0, 5, rng))
    upper = {**penn_clip("n", 0, 30, rng), "keypoint": rng.uniform(1, 9, (1, 30, 3, 2)).astype(np.float32),
             "keypoint_score": np.ones((1, 30, 3), np.float32)}
    layout = {"name": "upper", "joints": ["neck", "l", "r"], "edges": [[1, 0], [2, 0]], "root": 0, "flip_pairs": [],
              "limbs": [[1, 0], [2, 0]]}
    one_clip_file(tmp_path / "upper.pkl", upper, layout=layout)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    expect = {"short.pkl": "at least 8", "upper.pkl": "'upper'", "bad.mp4": "cannot open as a video"}
    for name, needle in expect.items():
        out = tmp_path / f"{name}.out.mp4"
        assert main(["predict", str(tmp_path / name), "--model", str(checkpoint), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("skelact: error: ") and name in err and needle in err and "\n" not in err, err
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "short.pkl", "upper.pkl"]  # no temp files
    assert main(["predict", str(tmp_path / "upper.pkl"), "--model", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["predict", str(tmp_path / "upper.pkl"), "--model", str(checkpoint), "--device", "cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err


def test_demo_without_a_video(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SKELACT_DEMO_VIDEO", raising=False)
    assert main(["demo"]) == 2  # a usage error: caught before any work
    assert "pass one (skelact demo VIDEO) or set SKELACT_DEMO_VIDEO" in capsys.readouterr().err


def test_predict_video_end_to_end(checkpoint: Path, data_root: Path, models_root: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """MoveNet (COCO-17) -> penn13 model -> annotated video with one frame per input frame."""
    video = data_root / "videos" / "ntu_sample.avi"
    out = tmp_path / "pred.mp4"
    argv = ["predict", str(video), "--model", str(checkpoint), "--out", str(out), "--json", "--quiet",
            "--pose-model", str(models_root / POSE_MODEL)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clip"] == "ntu_sample" and result["frames"] == 72 and result["true_label"] is None
    assert [t["label"] for t in result["topk"]] and result["output"] == str(out)
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
    cap.release()

    # demo: the same chain, video from $SKELACT_DEMO_VIDEO, output beside the current directory.
    monkeypatch.setenv("SKELACT_DEMO_VIDEO", str(video))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--model", str(checkpoint), "--quiet", "--pose-model", str(models_root / POSE_MODEL)]) == 0
    demo_out = tmp_path / "ntu_sample_skelact.mp4"
    assert f"annotated video: {demo_out}" in capsys.readouterr().out and demo_out.stat().st_size > 0


def test_video_with_nobody_is_an_error(checkpoint: Path, models_root: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    video = tmp_path / "black.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (128, 96))
    for _ in range(5):
        writer.write(np.zeros((96, 128, 3), np.uint8))
    writer.release()
    out = tmp_path / "demo.mp4"
    assert main(["demo", str(video), "--model", str(checkpoint), "--out", str(out), "--quiet",
                 "--pose-model", str(models_root / POSE_MODEL)]) == 1
    err = capsys.readouterr().err
    assert "black.avi" in err and "no person detected" in err
    assert not out.exists()


"""The pose model (skelact.pose.movenet): model file resolution, MoveNet on a real frame."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from skelact.pose import PoseModelError, resolve_pose_model
from skelact.pose import movenet as movenet_mod
from skelact.pose.movenet import MODEL_FILENAME, MODEL_SHA256

cv2 = pytest.importorskip("cv2")


# ---------------------------------------------------------------------------------------------
# The first frame of the sample video (the model and the video: conftest.py)


@pytest.fixture(scope="module")
def first_frame(sample_video: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(sample_video))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


# ---------------------------------------------------------------------------------------------
# Model file resolution (never downloads from the network)


@pytest.fixture
def no_model_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user cache, no env var, and a download URL that cannot work; returns the cache file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SKELACT_POSE_MODEL", raising=False)
    monkeypatch.setattr(movenet_mod, "MODEL_URL", (tmp_path / "nowhere" / "model.tflite").as_uri())
    return tmp_path / "cache" / "skelact" / MODEL_FILENAME


def test_resolve_order(tmp_path: Path, no_model_anywhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit.tflite", tmp_path / "env.tflite"
    for p in (explicit, env, no_model_anywhere):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    monkeypatch.setenv("SKELACT_POSE_MODEL", str(env))
    assert resolve_pose_model(explicit) == explicit
    assert resolve_pose_model() == env
    monkeypatch.delenv("SKELACT_POSE_MODEL")
    assert resolve_pose_model() == no_model_anywhere


def test_resolve_missing_named_files(tmp_path: Path, no_model_anywhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PoseModelError, match="missing.tflite"):
        resolve_pose_model(tmp_path / "missing.tflite")
    monkeypatch.setenv("SKELACT_POSE_MODEL", str(tmp_path / "env_missing.tflite"))
    with pytest.raises(PoseModelError, match="env_missing.tflite.*SKELACT_POSE_MODEL"):
        resolve_pose_model()


def test_resolve_offline_error_says_where_to_put_it(no_model_anywhere: Path) -> None:
    with pytest.raises(PoseModelError) as err:
        resolve_pose_model()
    msg = str(err.value)
    assert "\n" not in msg
    assert str(no_model_anywhere) in msg and "SKELACT_POSE_MODEL" in msg and "--pose-model" in msg
    assert not no_model_anywhere.exists()
    assert not any(no_model_anywhere.parent.iterdir())  # no partial download left behind
    with pytest.raises(PoseModelError, match="--pose-model"):
        resolve_pose_model(download=False)


def test_download_checks_sha256(tmp_path: Path, no_model_anywhere: Path, model_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = tmp_path / "wrong.tflite"
    wrong.write_bytes(b"not the model")
    monkeypatch.setattr(movenet_mod, "MODEL_URL", wrong.as_uri())
    with pytest.raises(PoseModelError, match="checksum"):
        resolve_pose_model()
    assert not any(no_model_anywhere.parent.iterdir())

    # A "download" of the real file (file:// URL) lands in the cache and is found there afterwards.
    monkeypatch.setattr(movenet_mod, "MODEL_URL", model_path.as_uri())
    got = movenet_mod.download_pose_model(no_model_anywhere, progress=False)
    assert got == no_model_anywhere and resolve_pose_model() == no_model_anywhere
    assert hashlib.sha256(got.read_bytes()).hexdigest() == MODEL_SHA256
    assert [p.name for p in got.parent.iterdir()] == [MODEL_FILENAME]


# ---------------------------------------------------------------------------------------------
# MoveNet on real frames


def test_movenet_finds_two_people(model, first_frame: np.ndarray) -> None:
    h, w = first_frame.shape[:2]
    res = model(first_frame)
    assert len(res) >= 2
    assert res.keypoints.shape == (len(res), 17, 2) and res.keypoints.dtype == np.float32
    assert res.scores.shape == (len(res), 17) and res.boxes.shape == (len(res), 4)
    assert (np.diff(res.person_scores) <= 0).all() and (res.person_scores >= model.min_person_score).all()
    for p in range(2):
        kp, box = res.keypoints[p], res.boxes[p]
        assert (kp[:, 0] >= 0).all() and (kp[:, 0] < w).all() and (kp[:, 1] >= 0).all() and (kp[:, 1] < h).all()
        # The people stand in the middle of the room, upright: taller than wide, inside the frame.
        assert 0.2 * w < kp[:, 0].mean() < 0.8 * w
        assert box[3] - box[1] > box[2] - box[0]
        conf = res.scores[p] > 0.3
        inside = ((kp[conf] >= box[:2] - 0.05 * h) & (kp[conf] <= box[2:] + 0.05 * h)).all(-1)
        assert inside.mean() > 0.9


def test_movenet_letterbox_maps_back_to_pixels(model, first_frame: np.ndarray) -> None:
    """A portrait crop (different padding and scale) finds the same joints at the same pixels."""
    h, w = first_frame.shape[:2]
    assert model.input_shape(h, w)[:2] == (160, 256)
    full = model(first_frame)
    x0 = 560
    crop = np.ascontiguousarray(first_frame[:, x0:x0 + 720])  # 720×1080, portrait: padded on the right
    assert model.input_shape(*crop.shape[:2])[:2] == (256, 192)
    part = model(crop)
    assert len(part) >= 2
    for p in range(2):
        kp = part.keypoints[p] + [x0, 0]
        # Nearest person of the full frame; joints confident in both must agree within 3% of the height.
        dist = [np.abs(kp - full.keypoints[q]).mean() for q in range(len(full))]
        q = int(np.argmin(dist))
        conf = (part.scores[p] > 0.3) & (full.scores[q] > 0.3)
        assert conf.sum() >= 8
        err = np.linalg.norm(kp[conf] - full.keypoints[q][conf], axis=-1)
        assert np.median(err) < 0.03 * h


def test_movenet_rgb_input(model, first_frame: np.ndarray) -> None:
    rgb = np.ascontiguousarray(first_frame[..., ::-1])
    a, b = model(first_frame), model(rgb, bgr=False)
    np.testing.assert_allclose(a.keypoints[:2], b.keypoints[:2], atol=1e-3)

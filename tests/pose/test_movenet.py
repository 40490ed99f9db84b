"""Video → skeletons: model file resolution, MoveNet on a real frame, tracking, whole-video extraction."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from skelact.data.io import validate_annotations
from skelact.pose import PoseModelError, PoseResult, PoseTracker, VideoError, resolve_pose_model
from skelact.pose import movenet as movenet_mod
from skelact.pose.movenet import MODEL_FILENAME, MODEL_SHA256

cv2 = pytest.importorskip("cv2")


# ---------------------------------------------------------------------------------------------
# Fixtures: one model and one extraction of the sample video for the whole module


@pytest.fixture(scope="module")
def model_path(models_root: Path) -> Path:
    return models_root / MODEL_FILENAME


@pytest.fixture(scope="module")
def model(model_path: Path):
    pytest.importorskip("ai_edge_litert")
    from skelact.pose import MoveNet

    return MoveNet(model_path, num_threads=2, download=False)


@pytest.fixture(scope="module")
def sample_video(data_root: Path) -> Path:
    return data_root / "videos" / "ntu_sample.avi"


@pytest.fixture(scope="module")
def first_frame(sample_video: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(sample_video))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


@pytest.fixture(scope="module")
def extracted(model, sample_video: Path) -> dict:
    from skelact.pose import extract_video

    return extract_video(sample_video, model, max_persons=2, progress=False)


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


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


# ---------------------------------------------------------------------------------------------
# Tracking on synthetic detections


def _people(centres: list[tuple[float, float]], score: float = 0.8) -> PoseResult:
    """Detections of stick people of height 100 px centred at the given points."""
    kps, boxes = [], []
    offsets = np.stack([np.linspace(-20, 20, 17), np.linspace(-50, 50, 17)], -1)  # [17, 2]
    for cx, cy in centres:
        kp = offsets + [cx, cy]
        kps.append(kp)
        boxes.append([cx - 25, cy - 50, cx + 25, cy + 50])
    n = len(centres)
    return PoseResult(np.asarray(kps, np.float32).reshape(n, 17, 2), np.full((n, 17), 0.9, np.float32),
                      np.asarray(boxes, np.float32).reshape(n, 4), np.full(n, score, np.float32))


def test_tracker_keeps_identities_when_detection_order_changes() -> None:
    tr = PoseTracker()
    for t in range(10):
        a, b = (100 + 3 * t, 200), (400 - 3 * t, 200)  # walking towards each other
        tr.update(t, _people([a, b] if t % 2 else [b, a]))
    kp, sc = tr.arrays(10, max_persons=2)
    assert kp.shape == (2, 10, 17, 2) and sc.shape == (2, 10, 17)
    cx = kp[..., 0].mean(-1)  # [2, T]
    assert (sc.sum(-1) > 0).all()
    assert np.all(np.abs(np.diff(cx, axis=1)) < 10)  # each row follows one person smoothly


def test_tracker_max_age_and_selection() -> None:
    tr = PoseTracker(max_age=2, join_gap=0)
    for t in range(12):
        people = [(100, 200)] if t < 3 or t > 7 else []  # gone for 5 frames > max_age: a new track
        people.append((400, 200))
        tr.update(t, _people(people))
    assert len(tr.tracks) == 3
    kp, sc = tr.arrays(12, max_persons=2)
    present = sc.sum(-1) > 0  # [2, T]
    assert present[0].all()  # the always-present person has the highest total confidence
    assert present[1].sum() == 4 and present[1, 8:].all()  # the return (4 frames) beats the first visit (3)
    kp1, _ = tr.arrays(12, max_persons=1)
    assert kp1.shape[0] == 1
    assert PoseTracker().arrays(5)[0].shape == (0, 5, 17, 2)


def test_tracker_joins_fragments_of_one_person() -> None:
    tr = PoseTracker(max_age=2, join_gap=10)
    for t in range(20):
        people = [(400, 200)]
        if t < 3 or 7 < t < 12:
            people.append((100 + t, 200))  # lost for 5 frames, found again near where it was
        if t >= 15:
            people.append((250, 200))  # someone new, far from where the first was last seen
        tr.update(t, _people(people))
    assert len(tr.tracks) == 4
    joined = tr.joined_tracks()
    assert len(tr.tracks) == 4 and len(joined) == 3  # tr.tracks is unchanged
    assert sorted(j.frames[0] for j in joined) == [0, 0, 15]
    first = next(j for j in joined if j.frames[0] == 0 and j.keypoints[0][:, 0].mean() < 200)
    assert first.frames == [0, 1, 2, 8, 9, 10, 11]
    kp, sc = tr.arrays(20, max_persons=3)
    present = sc.sum(-1) > 0  # rows by total confidence: always there (20), joined (7), new (5)
    assert present.sum(1).tolist() == [20, 7, 5]
    # Only gaps up to join_gap frames (last seen at 2, seen again at 2 + missed + 1) are bridged.
    for missed, expected in ((3, 1), (4, 2)):
        tr = PoseTracker(max_age=2, join_gap=4)
        for t in (0, 1, 2, 2 + missed + 1, 2 + missed + 2):
            tr.update(t, _people([(100, 200)]))
        assert len(tr.tracks) == 2 and len(tr.joined_tracks()) == expected, missed


# ---------------------------------------------------------------------------------------------
# Whole videos


def test_extract_video_sample(extracted: dict, sample_video: Path) -> None:
    cap = cv2.VideoCapture(str(sample_video))
    n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    ann = extracted
    assert ann["frame_dir"] == "ntu_sample" and ann["label"] == -1
    assert ann["total_frames"] == n_frames == 72
    assert ann["img_shape"] == ann["original_shape"] == (1080, 1920)
    kp, sc = ann["keypoint"], ann["keypoint_score"]
    assert kp.shape == (2, 72, 17, 2) and kp.dtype == np.float32
    assert sc.shape == (2, 72, 17) and sc.dtype == np.float32
    both = ((sc.sum(-1) > 0).sum(0) == 2).mean()
    assert both >= 0.8
    # Two distinct people: their mean positions stay apart.
    gap = np.abs(kp[0, :, :, 0].mean(-1) - kp[1, :, :, 0].mean(-1))
    assert np.median(gap) > 100
    validate_annotations({"split": {}, "annotations": [dict(ann)], "layout": "coco17"}, allow_unlabeled=True)


def test_unreadable_and_empty_videos(model, tmp_path: Path) -> None:
    from skelact.pose import extract_video

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for bad in (junk, empty, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError, match=bad.name) as err:
            extract_video(bad, model, progress=False)
        assert "\n" not in str(err.value)


def test_no_person(model, tmp_path: Path) -> None:
    from skelact.pose import extract_video

    video = _write_video(tmp_path / "black.avi", [np.zeros((96, 128, 3), np.uint8)] * 5)
    with pytest.raises(VideoError, match="black.avi.*no person detected in any frame"):
        extract_video(video, model, progress=False)


def test_extract_folder_skips_bad_files(model, sample_video: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from skelact.pose import extract_videos

    cap = cv2.VideoCapture(str(sample_video))
    frames = [cv2.resize(cap.read()[1], (960, 540)) for _ in range(8)]
    cap.release()
    folder = tmp_path / "videos"
    folder.mkdir()
    _write_video(folder / "good.avi", frames)
    (folder / "bad.mp4").write_bytes(b"\x00" * 512)
    (folder / "notes.txt").write_text("not a video")
    data, failures = extract_videos(folder, model, max_persons=2, progress=False)
    assert [a["frame_dir"] for a in data["annotations"]] == ["good"]
    assert data["annotations"][0]["total_frames"] == 8
    assert data["layout"] == "coco17" and data["split"] == {} and "classes" not in data
    assert len(failures) == 1 and failures[0][0].name == "bad.mp4" and "bad.mp4" in failures[0][1]
    assert "bad.mp4" in capsys.readouterr().err
    validate_annotations(data, allow_unlabeled=True)
    with pytest.raises(VideoError, match="none of the 1 video"):
        extract_videos([folder / "bad.mp4"], model, progress=False)


def test_frame_size_change_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream whose frames change size mid-way (e.g. a re-encoded concatenation) fails naming the frame."""
    from skelact.pose import extract

    frames = [np.zeros((4, 6, 3), np.uint8)] * 2 + [np.zeros((8, 6, 3), np.uint8)]
    monkeypatch.setattr(extract, "iter_frames", lambda video: iter(frames))
    got = []
    with pytest.raises(VideoError, match=r"^v\.mp4: frame 2 is 6x8, earlier frames 6x4$"):
        for frame in extract.iter_frames_one_size("v.mp4"):
            got.append(frame)
    assert len(got) == 2

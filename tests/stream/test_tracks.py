"""The streaming engine (skelact.stream.tracks): tracker pruning with buffers, live streams, window
placement, bounded memory on a long video, `predict --per-person` and `predict --window` on the real
two-person NTU clip."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from synthetic import stick_person
from videos import cli_status, colour_pixels, frame_count, write_video

from skelact.cli import main
from skelact.data.tracking import PoseResult, PoseTracker
from skelact.pose.buffers import TrackBuffers
from skelact.pose.tracks import PoseStream, track_video
from skelact.stream.tracks import window_starts
from skelact.viz.draw import person_color

cv2 = pytest.importorskip("cv2")
pytestmark = pytest.mark.usefixtures("one_thread")

POSE_MODEL = "movenet_multipose_lightning_f16.tflite"


def _people(points: list[tuple[float, float]]) -> PoseResult:
    if not points:
        return PoseResult.empty()
    kp, sc, box = zip(*(stick_person(x, y) for x, y in points), strict=True)
    return PoseResult(np.stack(kp), np.stack(sc), np.stack(box), np.full(len(points), 0.8, np.float32))


class BlobPose:
    """A stand-in pose model: one person at the centre of the bright columns in each half of the frame."""

    def __init__(self) -> None:
        self.calls = 0
        self.memory: dict[int, int] = {}  # call -> traced Python memory then (when tracemalloc runs)

    def __call__(self, frame: np.ndarray) -> PoseResult:
        if tracemalloc.is_tracing():
            self.memory[self.calls] = tracemalloc.get_traced_memory()[0]
        self.calls += 1
        h, w = frame.shape[:2]
        cols = np.flatnonzero(frame[h // 2, :, 1] > 128)  # the blobs span the middle row
        points = [(float(c.mean()), h / 2) for c in (cols[cols < w // 2], cols[cols >= w // 2]) if len(c)]
        return _people(points)


def _blob_frame(t: int, h: int = 64, w: int = 96, present: bool = True) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    if present:
        for x in (24 + 6 * np.sin(t / 20), 72 + 6 * np.cos(t / 25)):
            frame[h // 2 - 8: h // 2 + 8, int(x) - 6: int(x) + 6] = 255
    return frame


# ------------------------------------------------------------------------------------------ tracker and buffers


def test_pruned_tracker_with_buffers_matches_the_full_tracker() -> None:
    """The engine (tracker keeping two poses per track + buffers) gives the arrays the full tracker gives."""
    rng = np.random.default_rng(0)
    full, pruned = PoseTracker(max_age=3, join_gap=20), PoseTracker(max_age=3, join_gap=20)
    buffers = TrackBuffers(17)
    for t in range(60):
        points = []
        if not 20 <= t < 26:  # person A disappears for 6 frames (> max_age): two fragments to join
            points.append((50 + t + rng.normal(), 60.0))
        if t >= 10:
            points.append((200 - t + rng.normal(), 80.0))
        people = _people(points[::-1] if t % 2 else points)
        full.update(t, people)
        buffers.add(t, pruned.update(t, people), people)
        pruned.prune()
    assert max(len(tr.frames) for tr in pruned.tracks) == 2
    assert pruned.chains() == full.chains() and len(full.chains()) == 2 and len(full.tracks) == 3
    keypoint, score = full.arrays(60, max_persons=2)
    tracks = sorted(buffers.joined(pruned.chains()), key=lambda tr: -tr.total_score)
    for m, tr in enumerate(tracks):
        np.testing.assert_array_equal(keypoint[m, tr.first: tr.last + 1], tr.keypoint[0])
        np.testing.assert_array_equal(score[m, tr.first: tr.last + 1], tr.score[0])
    assert [tr.person for tr in buffers.joined(pruned.chains())] == [1, 2]  # numbered by first appearance


def test_live_stream_forgets_ended_tracks() -> None:
    frames = iter([_blob_frame(t) for t in range(20)] + [_blob_frame(0, present=False)] * 30)
    stream = PoseStream(BlobPose(), PoseTracker(max_age=5), capacity=8)
    for frame in frames:
        stream.step(frame)
    assert stream.frames == 50 and stream.live() == [] and stream.buffers.buffers == {}
    assert len(stream.tracker.tracks) == 2  # two people were seen, and only their ends are kept

    pose = BlobPose()
    held = PoseStream(pose, pose_every=3)
    for t in range(7):
        people, ids = held.step(_blob_frame(10 * t))  # the blobs move a few pixels a step
    assert pose.calls == 3 and held.frames == 7  # frames 0, 3 and 6 posed
    kp, _ = held.buffers.buffers[ids[0]].arrays()
    np.testing.assert_array_equal(kp[1], kp[0])  # frames 1 and 2 hold frame 0's pose
    assert not np.array_equal(kp[3], kp[0])


# ------------------------------------------------------------------------------------------ memory


def test_memory_stays_flat_on_a_long_video(tmp_path: Path) -> None:
    """2,000 frames (18 kB each, 37 MB decoded): past the first 200, Python memory grows by the keypoints only."""
    path = write_video(tmp_path / "long.avi", (_blob_frame(t) for t in range(2000)))
    pose = BlobPose()
    tracemalloc.start()
    try:
        vt = track_video(path, pose, PoseTracker(), progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert vt.frames == 2000 and len(vt.tracks) == 2 and all(tr.frames == 2000 for tr in vt.tracks)
    growth = peak - pose.memory[200]
    # Keypoints: 2 people x 1,800 frames x 204 bytes = 0.7 MB; the buffers grow by doubling (up to 2x).
    assert growth < 3e6, f"peak memory grew by {growth / 1e6:.1f} MB after frame 200"


# ------------------------------------------------------------------------------------------ CLI on real video


@pytest.fixture(scope="module")
def pose_model(models_root: Path) -> Path:
    pytest.importorskip("ai_edge_litert")
    return models_root / POSE_MODEL


@pytest.fixture(scope="module")
def video(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-person NTU clip at 640x360 (72 frames, 30 fps): faster to decode than 1080p."""
    cap = cv2.VideoCapture(str(data_root / "videos" / "ntu_sample.avi"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.resize(got[1], (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    assert len(frames) == 72
    return write_video(tmp_path_factory.mktemp("video") / "two.avi", iter(frames))


def test_predict_per_person(video: Path, pose_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "people.avi"
    argv = ["predict", str(video), "--per-person", "--json", "--quiet", "--out", str(out), "--topk", "3",
            "--pose-model", str(pose_model)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    people = result["people"]
    assert result["per_person"] is True and result["frames"] == 72 and [p["person"] for p in people] == [1, 2]
    for p in people:
        assert p["first_frame"] == 0 and p["last_frame"] == 71 and p["end_s"] == 2.4
        assert len(p["topk"]) == 3 and p["closest"] == p["topk"][0]["label"]
        # None of Penn Action's sports: the shipped model calls both people unknown (BENCHMARKS.md)
        assert p["unknown"] is True and p["label"] is None and 0 < p["probability"] <= 1
    assert frame_count(out) == 72
    cap = cv2.VideoCapture(str(out))
    for _ in range(30):
        ok, frame = cap.read()
    cap.release()
    h, w = frame.shape[:2]
    # Each person's skeleton and label in their track colour; the panel on the right lists both.
    for person in (1, 2):
        assert colour_pixels(frame[:, :640], person_color(person)) > 50
        assert colour_pixels(frame[:, 640:], person_color(person)) > 20
    assert (h, w) == (360, 640 + 200)

    assert main(argv[:3] + ["--quiet", "--pose-model", str(pose_model)]) == 0  # the text form
    text = capsys.readouterr().out
    assert f"person 1  frames 0-71 (0.00-2.40 s): unknown action (closest: {people[0]['closest']}, " in text
    assert "person 2" in text


def test_predict_window_timeline(video: Path, pose_model: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, base = tmp_path / "tl.avi", tmp_path / "two"
    argv = ["predict", str(video), "--window", "0.6,1.2", "--stride", "0.2", "--timeline", str(base), "--out",
            str(out), "--json", "--quiet", "--pose-model", str(pose_model)]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["windows_s"] == [0.6, 1.2] and doc["strides_s"] == [0.2, 0.2] and doc["per_person"] is True
    rows = doc["rows"]
    for person in (1, 2):
        mine = [r for r in rows if r["person"] == person]
        assert mine and mine[0]["start_frame"] == 0 and mine[-1]["end_frame"] == 71
        assert all(a["end_frame"] + 1 == b["start_frame"] for a, b in zip(mine, mine[1:], strict=False))
        # the shipped model knows none of the video's actions: rows are actions or unknown, never empty
        assert all(r["state"] in ("action", "unknown") and (r["label"] is None) == (r["state"] == "unknown")
                   and r["closest"] for r in mine)
    assert not [r for r in rows if r["state"] == "nobody"]
    with open(f"{base}.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["person"], r["label"], r["start_frame"]) for r in table] == [
        (str(r["person"]), r["label"] or "", str(r["start_frame"])) for r in rows]  # unknown: an empty cell
    assert json.loads(Path(f"{base}.json").read_text())["rows"] == rows
    assert cv2.imread(f"{base}.png") is not None and frame_count(out) == 72


def test_window_and_stride_errors(video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "t"
    cases = [(["--window", "5"], 1, "--window 5 s is longer than the video"),
             (["--window", "1", "--stride", "2"], 2, "--stride 2 s is longer than --window 1 s"),
             (["--window", "1", "--stride", "0"], 2, "--stride: must be a finite number > 0"),
             (["--window", "1", "--stride", "-1"], 2, "--stride: must be a finite number > 0"),
             (["--window", "1,,2"], 2, "--window: invalid number"),
             (["--stride", "1"], 2, "--stride: applies with --window")]
    for extra, status, message in cases:
        assert cli_status(["predict", str(video), "--timeline", str(base), "--quiet", *extra]) == status, extra
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_long_stretch_with_nobody(video: Path, pose_model: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A minute with nobody (60 black frames at 1 frame/s), then the two people: a "nobody" row, no crash."""
    cap = cv2.VideoCapture(str(video))
    people = [cap.read()[1] for _ in range(40)]
    cap.release()
    black = np.zeros_like(people[0])
    path = write_video(tmp_path / "empty_room.avi", iter([black] * 60 + people), fps=1.0)
    base = tmp_path / "room"
    assert main(["predict", str(path), "--window", "12", "--stride", "4", "--timeline", str(base), "--json",
                 "--quiet", "--pose-model", str(pose_model)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["state"] == "nobody" and rows[0]["start_s"] == 0.0 and rows[0]["end_s"] >= 59.0
    assert rows[0]["person"] is None and rows[0]["label"] is None
    assert {r["person"] for r in rows[1:]} == {1, 2} and rows[-1]["end_s"] == 100.0

    # Nobody at all: one "nobody" row for the whole video.
    path = write_video(tmp_path / "black.avi", iter([black] * 20), fps=1.0)
    assert main(["predict", str(path), "--window", "10", "--timeline", str(tmp_path / "b"), "--json", "--quiet",
                 "--pose-model", str(pose_model)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["state"], r["start_s"], r["end_s"]) for r in rows] == [("nobody", 0.0, 20.0)]


@pytest.fixture(scope="module")
def shipped_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped model saved as if trained on two people per clip, and with an unknown-action threshold."""
    import dataclasses

    from skelact.checkpoint import Calibration, Checkpoint
    from skelact.models.weights import get_weights

    ckpt = Checkpoint.load(get_weights("penn_kpc3d"))
    folder = tmp_path_factory.mktemp("ckpt")
    two = dataclasses.replace(ckpt, config=dataclasses.replace(
        ckpt.config, data=dataclasses.replace(ckpt.config.data, max_persons=2)))
    unsure = dataclasses.replace(ckpt, calibration=Calibration(temperature=1.0, threshold=0.9999, split="test"))
    return {"two": two.save(folder / "two.pt"), "unsure": unsure.save(folder / "unsure.pt")}


def test_per_person_with_a_two_person_model_classifies_the_scene(video: Path, pose_model: Path,
                                                                  shipped_variants: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", str(video), "--per-person", "--model", str(shipped_variants["two"]), "--quiet",
            "--pose-model", str(pose_model)]
    assert main(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["per_person"] is False and "classifies the scene, not each person" in result["note"]
    assert "people" not in result and result["topk"] and result["frames"] == 72
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("note: --per-person: the model was trained on clips of 2 people")


def test_unknown_action_per_person(video: Path, pose_model: Path, shipped_variants: dict[str, Path],
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A calibrated threshold the people do not reach: label null, unknown, the closest class, in JSON and text."""
    argv = ["predict", str(video), "--per-person", "--model", str(shipped_variants["unsure"]), "--quiet",
            "--pose-model", str(pose_model)]
    assert main(argv + ["--json"]) == 0
    people = json.loads(capsys.readouterr().out)["people"]
    assert len(people) == 2
    for p in people:
        assert p["label"] is None and p["unknown"] is True and p["closest"] == p["topk"][0]["label"]
        assert p["probability"] < 0.9999
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"person 1  frames 0-71 (0.00-2.40 s): unknown action (closest: {people[0]['closest']}, " in text


def test_window_starts() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]  # the last window ends on the last frame
    assert window_starts(3, 4, 1) == [0]  # shorter than a window: one window over all of it
    assert window_starts(8, 4, 4) == [0, 4]
    with pytest.raises(ValueError):
        window_starts(8, 4, 0)

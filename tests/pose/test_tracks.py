"""The one video -> tracked people pipeline (skelact.pose.tracks): extract and --per-person read the same
tracks, and every video starts from a reset front end."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from videos import write_video

from skelact.cli import main
from skelact.data.io import load_annotations
from skelact.data.tracking import PoseResult, most_confident
from skelact.pose.options import PoseOptions
from skelact.pose.topdown import TopDownPose
from skelact.pose.tracks import PoseStream, track_video

cv2 = pytest.importorskip("cv2")


def test_extract_and_per_person_agree_on_a_real_clip(data_root: Path, model_path: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A real two-person UT-Interaction clip: the rows `skelact extract` writes are the two most confident of
    the tracks `predict --per-person` classifies, frame for frame, and both see the same people."""
    pytest.importorskip("ai_edge_litert")
    clip = data_root / "ut_interaction" / "hugging" / "segmented_set1_10_2_1.avi"
    pose = ["--pose-model", str(model_path), "--threads", "2", "--quiet"]
    out = tmp_path / "x.pkl"
    assert main(["extract", str(clip), "-o", str(out), *pose]) == 0
    capsys.readouterr()
    assert main(["predict", str(clip), "--per-person", "--json", *pose]) == 0
    people = json.loads(capsys.readouterr().out)["people"]

    ann = load_annotations(out, allow_unlabeled=True)["annotations"][0]
    vt = track_video(clip, PoseOptions(model=model_path, threads=2, download=False).build(), progress=False)
    assert len(vt.tracks) >= 2 and ann["keypoint"].shape == (2, vt.frames, 17, 2)
    # --per-person classifies each track long enough for the model: the same people, by span.
    spans = {(tr.person, tr.first, tr.last) for tr in vt.tracks}
    assert people and {(p["person"], p["first_frame"], p["last_frame"]) for p in people} <= spans
    # Each extracted row is one of those tracks, on the video's timeline, zero elsewhere.
    for m in range(2):
        row_kp, row_sc = ann["keypoint"][m], ann["keypoint_score"][m]
        matches = [tr for tr in vt.tracks if np.array_equal(row_kp[tr.first: tr.last + 1], tr.keypoint[0])
                   and np.array_equal(row_sc[tr.first: tr.last + 1], tr.score[0])]
        assert len(matches) == 1, m
        tr = matches[0]
        outside = np.ones(vt.frames, bool)
        outside[tr.first: tr.last + 1] = False
        assert not row_kp[outside].any() and not row_sc[outside].any()
    # ... and they are the two the one rule picks.
    scene = most_confident(vt.tracks, vt.frames, 2)
    assert np.array_equal(scene.keypoint, ann["keypoint"]) and np.array_equal(scene.score, ann["keypoint_score"])


class StatefulPose:
    """A front end that remembers across frames (as a top-down one does): it counts resets and frames."""

    def __init__(self) -> None:
        self.resets = 0
        self.seen = 0  # frames since the last reset

    def reset(self) -> None:
        self.resets += 1
        self.seen = 0

    def __call__(self, frame: np.ndarray) -> PoseResult:
        self.seen += 1
        return PoseResult.empty()


def test_every_video_starts_from_a_reset_front_end(tmp_path: Path) -> None:
    from skelact.pose.extract import extract_video
    from skelact.pose.video import VideoError

    video = write_video(tmp_path / "v.avi", [np.zeros((32, 48, 3), np.uint8)] * 5)
    pose = StatefulPose()
    vt = track_video(video, pose, progress=False)
    assert (pose.resets, pose.seen, vt.frames, vt.tracks) == (1, 5, 5, [])
    with pytest.raises(VideoError, match="no person detected"):
        extract_video(video, pose, progress=False)
    assert (pose.resets, pose.seen) == (2, 5)  # not 10: the second video started afresh
    PoseStream(pose, capacity=8)  # live: a new stream is a new video too
    assert pose.resets == 3
    PoseStream(lambda frame: PoseResult.empty())  # a plain function has nothing to reset


def test_pose_options_build_and_travel_to_worker_processes(model_path: Path) -> None:
    """PoseOptions is what folder extraction sends to its workers: it must pickle, and build() is the front end."""
    pytest.importorskip("ai_edge_litert")
    options = PoseOptions(model=model_path, input_size=320, threads=1, min_person_score=0.3, download=False,
                          topdown=False)
    assert pickle.loads(pickle.dumps(options)) == options
    pose = options.build()
    assert (pose.model_path, pose.input_size, pose.num_threads, pose.min_person_score) == (model_path, 320, 1, 0.3)
    pose.reset()  # MoveNet keeps nothing between frames; the protocol's reset is a no-op there
    assert len(pose(np.zeros((64, 64, 3), np.uint8))) == 0
    # The default: top-down around the same model, with the options' settings.
    options = PoseOptions(model=model_path, input_size=320, threads=1, download=False, min_height=0.25,
                          detect_every=3, crop_size=96)
    pose = options.build()
    assert isinstance(pose, TopDownPose)
    assert (pose.model.input_size, pose.min_height, pose.detect_every, pose.crop_size) == (320, 0.25, 3, 96)
    assert len(pose(np.zeros((64, 64, 3), np.uint8))) == 0
    assert set(options.settings()) == {"input_size", "front_end", "min_height", "detect_every", "crop_size"}

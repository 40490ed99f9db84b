"""Whole-video extraction (skelact.pose.extract): the sample video, bad and empty videos, folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelact.data.io import validate_annotations
from skelact.pose import VideoError

cv2 = pytest.importorskip("cv2")


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
    from skelact.pose import video

    frames = iter([np.zeros((4, 6, 3), np.uint8)] * 2 + [np.zeros((8, 6, 3), np.uint8)])

    class Capture:  # what cv2.VideoCapture gives for such a file
        def read(self) -> tuple[bool, np.ndarray | None]:
            frame = next(frames, None)
            return frame is not None, frame

        def get(self, prop: int) -> float:
            return 0.0

        def release(self) -> None:
            pass

    monkeypatch.setattr(video.FrameSource, "_open", lambda self, value, timeout: Capture())
    got = []
    with pytest.raises(VideoError, match=r"^v\.mp4: frame 2 is 6x8, earlier frames 6x4$"):
        for frame in video.iter_frames_one_size("v.mp4"):
            got.append(frame)
    assert len(got) == 2


def test_an_unclosed_frame_reader_lets_the_interpreter_exit(sample_video: Path) -> None:
    """The decode thread is not a daemon (one killed inside OpenCV's read aborts the process), so it
    must end by itself when the program exits with the reader never closed (a traceback held it)."""
    import subprocess
    import sys

    code = ("import sys\nfrom skelact.pose.video import iter_frames\n"
            f"frames = iter_frames({str(sample_video)!r}, prefetch=2)\nnext(frames)\n"
            "sys.exit(3)  # the reader stays open, its queue full\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "FATAL" not in proc.stderr and "Traceback" not in proc.stderr

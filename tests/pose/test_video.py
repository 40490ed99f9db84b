"""The one frame reader (skelact.pose.video): every command that opens a video meets the same checks."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hostile import expect_error
from videos import write_video

from skelact.data.tracking import PoseResult
from skelact.pose.tracks import track_video
from skelact.pose.video import FrameSource, describe_source, iter_frames, video_info

cv2 = pytest.importorskip("cv2")


@pytest.mark.parametrize("command", [["live", "--quiet", "--source"], ["predict", "--per-person", "--quiet"],
                                     ["extract", "-o", "OUT", "--quiet"]])
def test_a_corrupt_video_is_one_line_in_every_command(command: list[str], tmp_path: Path, model_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same message from live's source, predict's pass and extract's (which lists it and fails)."""
    bad = tmp_path / "in" / "bad.avi"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI junk, not a video" * 8)
    argv = [str(tmp_path / "x.pkl") if a == "OUT" else a for a in command] + [str(bad)]
    argv[1:1] = ["--pose-model", str(model_path)]
    line = expect_error(capsys, argv, [str(bad), "cannot open as a video (unknown format or corrupt file)"],
                        watch=[bad.parent])
    assert "Traceback" not in line
    assert not (tmp_path / "x.pkl").exists()


def test_a_path_is_always_a_file(tmp_path: Path) -> None:
    """A file named like a camera index or a URL is opened as the file it is when the caller gives a Path."""
    assert describe_source(Path("0")) == ("file", Path("0"))
    assert describe_source("0") == ("camera", 0)
    named = write_video(tmp_path / "7.avi", [np.full((16, 16, 3), 40, np.uint8)] * 3).rename(tmp_path / "7")
    assert video_info(named)["frames"] == 3 and len(list(iter_frames(named))) == 3


class Failing:
    """A front end that fails on the third frame."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> PoseResult:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("pose failed")
        return PoseResult.empty()


def test_the_decode_thread_ends_when_the_pipeline_fails(tmp_path: Path) -> None:
    """An error mid-video leaves no decode thread behind (the reader is closed, not left to the collector)."""
    video = write_video(tmp_path / "v.avi", [np.full((32, 32, 3), i, np.uint8) for i in range(40)])
    with pytest.raises(RuntimeError, match="pose failed"):
        track_video(video, Failing(), progress=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("decode ")]


def test_prefetched_and_inline_reads_agree(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", [np.full((24, 32, 3), 5 * i, np.uint8) for i in range(12)])
    with FrameSource(video, prefetch=3) as ahead, FrameSource(video) as inline:
        a, b = [f.image for f in ahead], [f.image for f in inline]
    assert len(a) == len(b) == 12 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_close_after_a_signal_inside_thread_start(tmp_path: Path) -> None:
    """A stop signal raised inside ``Thread.start()`` leaves a reader thread that has not started; closing the
    source must not fail on it ("cannot join thread before it is started"), and the thread, once it runs,
    reads nothing."""
    video = write_video(tmp_path / "v.avi", [np.zeros((32, 48, 3), np.uint8)] * 3)
    src = FrameSource(video, prefetch=3)
    src._thread = threading.Thread(target=lambda: None)  # as left by an interrupted start
    src.close()
    assert src._stop.is_set()

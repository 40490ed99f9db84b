"""`skelact convert / merge / split / info / viz` at the command line (skelact.cli.data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import expect_error

pytestmark = pytest.mark.usefixtures("one_thread")


def test_viz_bad_layout_extension_and_fps(run: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = str(run["data"])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--layout", "coco17", "--out", str(tmp_path / "a.mp4")],
                 ["layout 'coco17' has 17 joints but the data has 13"], [tmp_path])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--out", str(tmp_path / "x.txt")],
                 ["x.txt", "unsupported video extension '.txt'"], [tmp_path])

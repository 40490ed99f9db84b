"""What every command shares (skelact.cli.common): option values, and outputs that are inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hostile import expect_error

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bad_option_values_are_one_line_usage_errors(run: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, data, video = str(run["ckpt"]), str(run["data"]), str(tmp_path / "v.mp4")
    cases = [
        (["train", str(run["recipe"]), "--work-dir", str(tmp_path / "w"), "--overfit", "0"], "--overfit"),
        (["train", str(run["recipe"]), "--work-dir", str(tmp_path / "w"), "--overfit", "-3"], "--overfit"),
        (["test", "--checkpoint", ckpt, "--num-clips", "-2"], "--num-clips"),
        (["test", "--checkpoint", ckpt, "--num-clips", "0"], "--num-clips"),
        (["predict", video, "--input-size", "0"], "--input-size"),
        (["predict", video, "--input-size", "-64"], "--input-size"),
        (["predict", video, "--input-size", "33"], "--input-size"),
        (["viz", data, "--out", str(tmp_path / "x.mp4"), "--fps", "0"], "--fps"),
        (["train"], "required"),
    ]
    for args, needle in cases:
        line = expect_error(capsys, args, [needle], [tmp_path], status=2)
        assert "--help" in line
    expect_error(capsys, ["predict", data, "--clip", "c0_00", "--model", ckpt, "--device", "banana"],
                 ["--device", "'banana' is not a device"], [tmp_path])


def test_an_output_that_is_an_input_is_refused_whatever_the_flags(run: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "model.pt"
    shutil.copy(run["ckpt"], ckpt)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 64)
    data = tmp_path / "d.pkl"
    shutil.copy(run["data"], data)
    src = tmp_path / "ucla"
    src.mkdir()
    (src / "a01_s01_e00_v01.json").write_text("{}")
    cases = [
        ["predict", str(video), "--out", str(video)],
        ["predict", str(data), "--clip", "c0_00", "--model", str(ckpt), "--out", str(data)],
        ["export", str(ckpt), "-o", str(ckpt), "--force"],
        ["convert", "ucla", str(src), "-o", str(src / "a01_s01_e00_v01.json"), "--force"],
        ["viz", str(data), "--clip", "c0_00", "--out", str(data)],
    ]
    for args in cases:
        expect_error(capsys, args, ["is also an input" if "ucla" not in args else "inside the input folder"],
                     [tmp_path])

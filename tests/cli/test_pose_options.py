"""The pose options of every video command come from one place (cli/common.py add_pose_args / pose_options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelact.cli import build_parser
from skelact.cli.common import pose_options
from skelact.pose.options import PoseOptions

COMMANDS = {"extract": ["extract", "v.mp4", "-o", "x.pkl"], "predict": ["predict", "v.mp4"],
            "demo": ["demo", "v.mp4"], "live": ["live", "--source", "0"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_video_command_reads_the_same_pose_options(command: str) -> None:
    parser = build_parser()
    args = parser.parse_args([*COMMANDS[command], "--pose-model", "m.tflite", "--input-size", "320", "--threads", "3"])
    assert pose_options(args) == PoseOptions(model=Path("m.tflite"), input_size=320, threads=3)
    assert pose_options(parser.parse_args(COMMANDS[command])) == PoseOptions()  # the defaults are PoseOptions'


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_input_size_is_a_usage_error_in_every_video_command(command: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from hostile import expect_error

    expect_error(capsys, [*COMMANDS[command], "--input-size", "100"],
                 ["--input-size: must be a multiple of 32 (e.g. 256), got 100"], status=2)

"""The command line: help for every sub-command, convert/info on real data, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import expect_error

from skelact.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_help_for_every_subcommand(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"convert", "info"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: skelact " + name in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "skelact.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("skelact ")


def test_convert_and_info_on_penn(data_root, tmp_path, capsys):
    out = tmp_path / "penn.pkl"
    assert main(["convert", "penn", str(data_root / "penn_action"), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out and out.exists()
    # A second run refuses to overwrite, exits non-zero and leaves the file as it was.
    before = out.stat().st_mtime_ns
    assert main(["convert", "penn", str(data_root / "penn_action"), "-o", str(out)]) == 1
    assert "already exists (use --force" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clips: 2326" in text and "train: 1258 clips" in text and "test: 1068 clips" in text
    assert "classes: 15" in text and "baseball_pitch" in text


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"garbage")
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skelact: error: ") and str(bad) in err and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["convert", "ucla", str(empty), "-o", str(tmp_path / "u.pkl")]) == 1
    err = capsys.readouterr().err.strip()
    assert "empty" in err and "\n" not in err
    assert not (tmp_path / "u.pkl").exists()


def test_extract_then_viz_on_the_ntu_video(data_root, models_root, tmp_path, capsys):
    video = data_root / "videos" / "ntu_sample.avi"
    pkl = tmp_path / "v.pkl"
    model = models_root / "movenet_multipose_lightning_f16.tflite"
    assert main(["extract", str(video), "-o", str(pkl), "--pose-model", str(model), "--quiet"]) == 0
    assert main(["info", str(pkl)]) == 0
    assert "frames: min 72" in capsys.readouterr().out
    out = tmp_path / "v.mp4"
    assert main(["viz", str(pkl), "--out", str(out), "--video", str(video)]) == 0
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72


def test_extract_bad_video_writes_nothing(models_root, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "o.pkl"
    model = models_root / "movenet_multipose_lightning_f16.tflite"
    assert main(["extract", str(bad), "-o", str(out), "--pose-model", str(model), "--quiet"]) == 1
    assert "bad.mp4" in capsys.readouterr().err
    assert not out.exists()


def test_viz_unknown_clip(data_root, tmp_path, capsys):
    pkl = tmp_path / "u.pkl"
    assert main(["convert", "ucla", str(data_root / "nwucla"), "-o", str(pkl)]) == 0
    assert main(["viz", str(pkl), "--clip", "nope", "--out", str(tmp_path / "x.mp4")]) == 1
    assert "no clip named 'nope'" in capsys.readouterr().err
    assert main(["viz", str(pkl), "--clip", "a01_s01_e00_v01", "--out", str(tmp_path / "x.webm")]) == 0
    assert (tmp_path / "x.webm").stat().st_size > 0


def test_bad_counts_are_usage_errors(tmp_path, capsys):
    for option in ("--max-bodies", "--workers"):
        with pytest.raises(SystemExit) as e:
            main(["convert", "ntu", str(tmp_path), "-o", str(tmp_path / "n.pkl"), option, "0"])
        assert e.value.code == 2
        assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


def test_convert_force_overwrites_and_output_folder_is_one_line_error(data_root, tmp_path, capsys):
    src = tmp_path / "ucla"
    src.mkdir()
    for name in ("a01_s01_e00_v01", "a02_s01_e00_v02", "a03_s01_e00_v03"):
        shutil.copy(data_root / "nwucla" / "all_sqe" / f"{name}.json", src)
    out = tmp_path / "u.pkl"
    out.write_bytes(b"old")
    assert main(["convert", "ucla", str(src), "-o", str(out)]) == 1
    assert out.read_bytes() == b"old"
    assert main(["convert", "ucla", str(src), "-o", str(out), "--force"]) == 0
    text = capsys.readouterr().out
    assert "nwucla: 3 clips converted from 3 files" in text and f"wrote {out}" in text
    assert "      2  train" in text and "      1  test" in text
    assert out.read_bytes() != b"old"
    folder = tmp_path / "folder.pkl"
    folder.mkdir()
    assert main(["convert", "ucla", str(src), "-o", str(folder), "--force"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skelact: error: ") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.pkl", "u.pkl", "ucla"]  # no temporary left behind


def test_unexpected_errors_are_one_line_with_the_debug_hint(run: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import skelact.data.io as io_module

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(io_module, "summarize", broken)
    line = expect_error(capsys, ["info", str(run["data"])], ["unexpected ZeroDivisionError: a bug over two lines",
                                                             "SKELACT_DEBUG=1"])
    assert line.endswith("for the traceback)")
    monkeypatch.setenv("SKELACT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", str(run["data"])])


def test_the_console_script_exit_codes(tmp_path: Path) -> None:
    """Through a real process: 2 for a usage error, 1 for a bad file, one line on stderr each."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"junk")
    for args, code in ((["info"], 2), (["info", str(bad)], 1)):
        out = subprocess.run([sys.executable, "-m", "skelact.cli", *args], capture_output=True, text=True, env=env)
        assert out.returncode == code and len(out.stderr.strip().splitlines()) == 1, out.stderr

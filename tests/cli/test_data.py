"""`skelact convert / merge / split / info / viz` at the command line (skelact.cli.data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hostile import expect_error

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_viz_bad_layout_extension_and_fps(run: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = str(run["data"])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--layout", "coco17", "--out", str(tmp_path / "a.mp4")],
                 ["layout 'coco17' has 17 joints but the data has 13"], [tmp_path])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--out", str(tmp_path / "x.txt")],
                 ["x.txt", "unsupported video extension '.txt'"], [tmp_path])


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


def test_info_on_a_checkpoint(run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``info best.pt``: model, classes, layout, training, calibration, whether it resumes."""
    import zipfile

    from skelact.checkpoint import Checkpoint

    capsys.readouterr()
    assert main(["info", str(run["ckpt"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    ckpt = Checkpoint.load(run["ckpt"])
    assert lines[0].startswith(f"model: {ckpt.config.model.name}, ")
    assert lines[1].startswith(f"classes: {len(ckpt.classes)}: {ckpt.classes[0]}")
    assert lines[2].startswith(f"layout: penn13 (13 joints); input C={ckpt.in_channels}")
    assert lines[3].startswith(f"trained: {ckpt.epoch} epoch(s) on ")
    assert lines[4].startswith("calibration: ") and lines[-1] == "resumable: yes (training state kept)"
    # A zip that holds no checkpoint: one line naming it.
    bad = tmp_path / "not_a_model.pt"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("x.txt", "hello")
    expect_error(capsys, ["info", str(bad)], [str(bad)], [tmp_path])


def test_info_on_a_shipped_model(capsys: pytest.CaptureFixture[str]) -> None:
    """``info pretrain_kpc3d``: a shipped model by name, its four streams listed."""
    capsys.readouterr()
    assert main(["info", "pretrain_kpc3d"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model: kpc3d, ") and "streams j (joint, " in out and "classes: 31: penn:" in out


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

"""An output that is one of a command's inputs is refused (issue 27, items 2 and 16): every path a
command reads counts (option files, a checkpoint's data file, the files a converter would read from
its folder), through symlinks, hard links and ``./`` / ``..`` spellings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_dataset, recipe

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file (and link) under ``folder`` with a hash of its content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir"
    return out


def _refused(argv: list[str], folder: Path, capsys: pytest.CaptureFixture[str], named: str) -> str:
    before = _snapshot(folder)
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # an argparse error would be the wrong kind: fail on the status below
        status = int(e.code)
    err = capsys.readouterr().err
    assert status == 1, (argv, err)
    assert err.count("\n") == 1 and err.startswith("skelact: error: "), (argv, err)
    assert "Traceback" not in err and "unexpected" not in err, (argv, err)
    assert named in err, (argv, err)
    assert "is also an input" in err or "inside the input folder" in err, (argv, err)
    assert _snapshot(folder) == before, f"{argv}: changed the files"
    return err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Inputs of every kind: a video folder, a split file, a pose model, arrays, CSVs, a layout YAML."""
    from videos import write_video

    rng = np.random.default_rng(0)
    (tmp_path / "ds" / "a").mkdir(parents=True)
    write_video(tmp_path / "ds" / "a" / "v.avi", (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(9)))
    (tmp_path / "split.txt").write_text("a/v.avi train\n")
    (tmp_path / "pose.tflite").write_bytes(b"a pose model the output must not overwrite")
    (tmp_path / "np").mkdir()
    np.save(tmp_path / "np" / "c1.npy", rng.uniform(1, 50, (8, 17, 2)).astype(np.float32))
    (tmp_path / "labels.csv").write_text("name,label\nc1,wave\n")
    (tmp_path / "classes.txt").write_text("wave\n")
    (tmp_path / "op" / "v1").mkdir(parents=True)
    (tmp_path / "layout.yaml").write_text("name: mine\njoints: [a, b]\n")
    os.symlink(tmp_path / "split.txt", tmp_path / "split_link.txt")
    os.link(tmp_path / "pose.tflite", tmp_path / "pose_hard.pkl")
    (tmp_path / "sub").mkdir()
    return tmp_path


def test_outputs_that_are_inputs_are_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = folder
    video = f / "ds" / "a" / "v.avi"
    cases = [  # (argv, the path the message names)
        (["extract", f / "ds", "-o", f / "split.txt", "--split-file", f / "split.txt", "--force"], "split.txt"),
        (["extract", f / "ds", "-o", f / "pose.tflite", "--pose-model", f / "pose.tflite", "--force"], "pose.tflite"),
        # the same files through a symlink, a hard link, and ./ and .. spellings
        (["extract", f / "ds", "-o", f / "split_link.txt", "--split-file", f / "split.txt", "--force"], "split_link"),
        (["extract", f / "ds", "-o", f / "pose_hard.pkl", "--pose-model", f / "pose.tflite", "--force"], "pose_hard"),
        (["extract", f / "ds", "-o", f"{f}/sub/.././split.txt", "--split-file", f / "split.txt", "--force"],
         "split.txt"),
        # the failures report written beside the output is an output too
        (["extract", f / "ds", "-o", f / "x.pkl", "--split-file", f / "x.pkl.failures.csv", "--force"],
         "x.pkl.failures.csv"),
        # item 16: a converter's own input type inside its input folder, read by the next conversion
        (["convert", "numpy", f / "np", "-o", f / "np" / "new.npy"], "new.npy"),
        (["convert", "numpy", f / "np", "-o", f / "np" / "deeper" / "new.npz"], "new.npz"),
        (["convert", "openpose", f / "op", "-o", f / "op" / "v1" / "x.json"], "x.json"),
        (["convert", "numpy", f / "np", "-o", f / "labels.csv", "--labels", f / "labels.csv", "--force"], "labels.csv"),
        (["convert", "numpy", f / "np", "-o", f / "classes.txt", "--labels", f / "labels.csv", "--classes",
          f / "classes.txt", "--force"], "classes.txt"),
        (["convert", "numpy", f / "np", "-o", f / "layout.yaml", "--layout", f / "layout.yaml", "--force"],
         "layout.yaml"),
        (["predict", video, "--out", f / "p.mp4", "--pose-model", f / "p.mp4"], "p.mp4"),
        (["predict", video, "--window", "0.1", "--timeline", f / "t", "--pose-model", f / "t.png"], "t.png"),
        (["live", "--source", video, "--out", f / "p.mp4", "--pose-model", f / "p.mp4"], "p.mp4"),
    ]
    for argv, named in cases:
        _refused(argv, f, capsys, named)


def test_a_new_file_of_another_type_in_a_converter_folder_is_fine(folder: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The refusal of item 16 is about what the converter reads, not any file in its folder."""
    assert main(["convert", "numpy", str(folder / "np"), "-o", str(folder / "np" / "out.pkl")]) == 0, \
        capsys.readouterr().err


def test_checkpoint_commands_count_the_data_file_the_checkpoint_reads(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from skelact.config import config_from_dict
    from skelact.engine.train import train

    data = make_dataset(tmp_path / "tiny.pkl", classes=2, per_class=4, frames=16)
    train(config_from_dict(recipe(data, epochs=1)), tmp_path / "work")
    ckpt = tmp_path / "work" / "last.pt"
    os.symlink(data, tmp_path / "data_link.pkl")
    (tmp_path / "work" / "config.yaml").rename(tmp_path / "recipe.yaml")
    (tmp_path / "afile").write_text("not a folder")
    capsys.readouterr()  # the training's own output
    cases = [
        (["calibrate", ckpt, "-o", data, "--force"], "tiny.pkl"),  # item 2: the dataset would be overwritten
        (["calibrate", ckpt, "-o", tmp_path / "data_link.pkl", "--force"], "data_link.pkl"),
        (["train", tmp_path / "recipe.yaml", "--work-dir", tmp_path, "--set",
          f"data.ann_file={tmp_path / 'curves.png'}"], "curves.png"),
        (["test", "--checkpoint", ckpt, "--out-dir", tmp_path, "--set", f"data.ann_file={tmp_path / 'report.txt'}"],
         "report.txt"),
    ]
    for argv, named in cases:
        _refused(argv, tmp_path, capsys, named)
    before = _snapshot(tmp_path)
    assert main(["test", "--checkpoint", str(ckpt), "--out-dir", str(tmp_path / "afile")]) == 1
    err = capsys.readouterr().err
    assert err == f"skelact: error: {tmp_path / 'afile'}: is a file; give a folder\n"
    assert _snapshot(tmp_path) == before


def test_the_pose_model_found_through_the_environment_is_an_input(folder: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKELACT_POSE_MODEL", str(folder / "pose.tflite"))
    _refused(["extract", folder / "ds", "-o", folder / "pose.tflite", "--force"], folder, capsys, "pose.tflite")

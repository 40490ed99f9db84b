"""A FIFO (or a device) named where a text input is expected is refused at once with one line, never
waited on: `--labels`, `--classes`, `--layout`, `--split-file` and the data file itself (issue 27, item 9).

Each command runs in a child process (``hostile.run_cli_batch``) with a timeout, so a command that
blocks on the FIFO fails the test instead of hanging pytest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_one_line_error, run_cli_batch


@pytest.fixture
def arrays(tmp_path: Path) -> Path:
    """Two valid one-person 2D clips for `convert numpy`, and a FIFO and a labels file beside them."""
    src = tmp_path / "arrays"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(src / f"{name}.npy", rng.uniform(0, 100, (12, 17, 2)).astype(np.float32))
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "labels.csv").write_text("name,label\na,x\nb,y\n", encoding="utf-8")
    return tmp_path


def test_fifo_as_text_input_is_refused_not_waited_on(arrays: Path) -> None:
    fifo, out = arrays / "fifo", arrays / "out.pkl"
    base = ["convert", "numpy", str(arrays / "arrays"), "-o", str(out)]
    cases = {
        "--labels": [*base, "--labels", str(fifo)],
        "--classes": [*base, "--labels", str(arrays / "labels.csv"), "--classes", str(fifo)],
        "--layout": [*base, "--layout", str(fifo)],
        "data file": ["info", str(fifo)],
    }
    results = run_cli_batch([(args, arrays) for args in cases.values()], timeout=120)
    for what, result in zip(cases, results, strict=True):
        message = assert_one_line_error(result, str(fifo), max_seconds=20)
        assert "not a regular file (a FIFO)" in message, (what, message)
    assert not out.exists() and fifo.exists()


def test_character_device_as_labels_is_refused(arrays: Path) -> None:
    """/dev/zero never ends: it is refused as a device, not read up to the size limit."""
    result, = run_cli_batch([(["convert", "numpy", str(arrays / "arrays"), "-o", str(arrays / "out.pkl"),
                               "--labels", "/dev/zero"], arrays)], timeout=120)
    assert "not a regular file (a character device)" in assert_one_line_error(result, "/dev/zero", max_seconds=20)


def test_fifo_as_split_file_is_refused(tmp_path: Path) -> None:
    """`extract --split-file FIFO`: refused before any video is opened (the videos here are not even
    decodable, so reaching them would fail differently)."""
    root = tmp_path / "videos"
    for cls in ("walk", "run"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            (root / cls / f"clip_{i}.avi").write_bytes(b"not a video")
    fifo = tmp_path / "split.txt"
    os.mkfifo(fifo)
    out = tmp_path / "out.pkl"
    result, = run_cli_batch([(["extract", str(root), "-o", str(out), "--split-file", str(fifo), "--quiet"],
                              tmp_path)], timeout=120)
    message = assert_one_line_error(result, str(fifo), max_seconds=30)
    assert "not a regular file (a FIFO)" in message
    assert not out.exists()

"""``skelact.progress``: a bar on a terminal only; clean lines (no ``\\r``, no empty bars) in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from synthetic import make_dataset, recipe

from skelact.progress import progress

REPO = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_clean_line_per_interval_and_a_last_line() -> None:
    log = io.StringIO()
    bar = progress(range(4), desc="epoch 2/9", unit="batch", stream=log, interval=0)
    bar.set_postfix(loss="0.500")
    assert list(bar) == [0, 1, 2, 3]
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"epoch 2/9: {n}/4 batch" for n in (1, 2, 3, 4)]
    assert lines[-1].startswith("epoch 2/9: 4/4 batch (100 %, ") and lines[-1].endswith(" batch/s), loss=0.500")
    assert "\r" not in log.getvalue() and "|" not in log.getvalue()


def test_a_loop_shorter_than_the_interval_writes_nothing_to_a_log() -> None:
    log = io.StringIO()
    for _ in progress(range(100), desc="epoch 61/93", stream=log):
        pass
    with progress(total=10, desc="extract", unit="video", stream=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""


@pytest.mark.parametrize(("value", "lines"), [("0", 3), ("3600", 0), ("-1", 0), ("nan", 0), ("soon", 0)])
def test_the_interval_of_a_log_comes_from_the_environment(value: str, lines: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``SKELACT_PROGRESS_INTERVAL=0``: a line per step; a value that is not a number >= 0: the default."""
    monkeypatch.setenv("SKELACT_PROGRESS_INTERVAL", value)
    log = io.StringIO()
    for _ in progress(range(3), desc="extract", unit="video", stream=log):
        pass
    assert len(log.getvalue().splitlines()) == lines


def test_counts_without_a_total_bytes_scaled_and_messages() -> None:
    log = io.StringIO()
    with progress(unit="frame", desc="v.mp4", stream=log, interval=0) as bar:
        bar.update(5)
        bar.write("failed: x.mp4: unreadable")
    with progress(total=3_000_000, unit="B", unit_scale=True, desc="downloading m", stream=log, interval=0) as bar:
        bar.update(1_500_000)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("v.mp4: 5 frame (") and lines[1] == "failed: x.mp4: unreadable"
    assert lines[2].startswith("downloading m: 1.5M/3M B (50 %, ")


def test_disabled_writes_nothing_anywhere() -> None:
    for stream in (io.StringIO(), _Terminal()):
        with progress(total=3, stream=stream, enabled=False, interval=0) as bar:
            bar.update(3)
            bar.set_postfix(loss=1)
        assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    tty = _Terminal()
    for _ in progress(range(3), desc="epoch 1/2", stream=tty):
        pass
    assert "\r" in tty.getvalue() and "epoch 1/2" in tty.getvalue()


@pytest.mark.usefixtures("one_thread")
def test_train_log_file_has_no_bars(tmp_path: Path) -> None:
    """The symptom of issue 28: `skelact train ... 2> log` wrote an empty bar before every epoch line."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(recipe(make_dataset(tmp_path / "tiny.pkl"))))
    log = tmp_path / "train.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "skelact.cli", "train", str(cfg), "--work-dir",
                               str(tmp_path / "run")], stdout=out, stderr=subprocess.STDOUT, env=env, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "epoch 2/2" in text
    assert "\r" not in text and "%|" not in text and "it/s]" not in text, text

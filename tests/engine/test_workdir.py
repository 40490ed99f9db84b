"""The training work dir: one run at a time, stale temporaries removed, resuming only the same run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import expect_error

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_stale_temporaries_of_a_killed_run_are_removed(run: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(run["work"], work)
    stale = [work / ".last.pt.0123456789ab.tmp", work / ".metrics.csv.ba9876543210.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    other = work / ".mine.tmp"  # not one of skelact's own temporaries: kept
    other.write_bytes(b"x")
    assert main(["train", str(run["recipe"]), "--work-dir", str(work), "--resume"]) == 0
    assert not any(p.exists() for p in stale) and other.exists()


def test_a_second_training_in_the_same_work_dir_refuses(run: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (work / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        expect_error(capsys, ["train", str(run["recipe"]), "--work-dir", str(work)],
                     [str(work), f"another training (PID {holder.pid})"], [work])
    finally:
        holder.kill()
        holder.wait()
    # Its process is gone: a stale lock is taken over, and released at the end.
    assert main(["train", str(run["recipe"]), "--work-dir", str(work), "--set", "optim.epochs=1"]) == 0
    assert not (work / ".lock").exists() and (work / "last.pt").is_file()

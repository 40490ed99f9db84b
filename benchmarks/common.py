"""What the benchmark scripts share: the repository root, the shared data folder and one step that
runs a skelact command as a user does (``python -m skelact.cli``, its output to a log, wall time)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class SkelactFailed(RuntimeError):
    """A skelact command exited non-zero; the message names it, its status, its log and the log's tail."""


def shared_default() -> Path:
    """``$SKELACT_SHARED``, else ``../shared`` beside the repository (the tests' setting)."""
    return Path(os.environ.get("SKELACT_SHARED", str(ROOT.parent / "shared")))


def cli(args: list[str], log: Path, threads: int | None = None) -> float:
    """Run ``python -m skelact.cli ARGS`` (stdout and stderr to ``log``); its wall time in seconds.

    Args:
        threads: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` of the run (None: the machine's default).

    Raises:
        SkelactFailed: The command exited non-zero.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "skelact.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                            cwd=ROOT, env=env).returncode
    seconds = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SkelactFailed(f"skelact {args[0]} failed (status {rc}), log {log}:\n" + "\n".join(tail))
    return seconds

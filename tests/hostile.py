"""Run ``skelact`` commands on hostile inputs the way a user does, in a fresh interpreter, and check
the promise: one line ``skelact: error: <file>: ...`` of at most 300 characters, exit status 1, no
traceback, seconds not minutes, memory bounded, and no new file.

All commands of one batch run in one child process (``skelact.cli.main``, one import of torch),
under an address-space limit, so a crash, a hang or a runaway allocation fails the test instead
of taking pytest (or the machine) down. ``expect_error`` checks the same promise for one command
run in-process (``skelact.cli.main``), where a crash is not the point.

Both bounds are measured above the interpreter's own footprint with torch imported: the limit is
set after the import, above the address space it left, and each command's peak is counted from
the resident memory before it. The CPU wheel's import adds ~0.2 GB resident and ~0.6 GB of address
space, the default (CUDA) wheel's much more; neither is what a command under test allocates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from skelact.cli import main

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import contextlib, io, json, os, resource, sys, time
extra = int(sys.argv[1])

def kib(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])

# The interpreter's own footprint first (torch's libraries and what its first use loads), so that
# the address-space limit and each case's peak count what the commands add, with either torch wheel.
import torch
torch.cuda.is_available()
torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4, requires_grad=True), torch.ones(1, 1, 3, 3)).sum().backward()
from skelact.cli import main
footprint = kib('VmSize') * 1024
resource.setrlimit(resource.RLIMIT_AS, (footprint + extra, footprint + extra))

def files(folder):
    return sorted(str(p) for p in __import__('pathlib').Path(folder).rglob('*') if p.is_file())

results = []
for case in json.load(sys.stdin):
    before = files(case['folder'])
    try:
        open('/proc/self/clear_refs', 'w').write('5')  # VmHWM := VmRSS, so the peak is this case's
        base = kib('VmRSS')
    except OSError:
        base = None
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(case['args'])
        except SystemExit as e:
            rc = e.code
    seconds = time.perf_counter() - t0
    peak = None if base is None else (kib('VmHWM') - base) * 1024
    new = sorted(set(files(case['folder'])) - set(before))
    results.append({'rc': rc, 'stdout': out.getvalue(), 'stderr': err.getvalue(), 'seconds': seconds,
                    'peak_bytes': peak, 'new_files': new})
    print(json.dumps(results[-1]), flush=True)
"""


@dataclass
class CliResult:
    """What one command did."""

    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int | None  # resident memory the command added at its peak (None: not measurable)
    new_files: list[str]


def run_cli_batch(cases: list[tuple[list[str], Path]], memory_limit: int = 8 << 30,
                  timeout: float = 300.0) -> list[CliResult]:
    """Run ``skelact ARGS`` for each ``(args, folder)`` in one fresh interpreter.

    ``folder`` holds the command's inputs (and outputs); files that appear in it are reported.
    ``memory_limit`` is the address space the commands may add to the interpreter's own (torch
    imported).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("SKELACT_DEBUG", None)
    payload = json.dumps([{"args": [str(a) for a in args], "folder": str(folder)} for args, folder in cases])
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(memory_limit)], input=payload, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == len(cases), (
        f"the child died (status {proc.returncode}) after {len(lines)} of {len(cases)} commands; next: "
        f"{cases[len(lines)][0] if len(lines) < len(cases) else None}; stderr: {proc.stderr[-2000:]}")
    return [CliResult(args=[str(a) for a in args], **json.loads(line))
            for (args, _), line in zip(cases, lines, strict=True)]


def assert_one_line_error(result: CliResult, names: str, pattern: str | None = None, max_seconds: float = 60.0,
                          max_peak_bytes: int = 400 << 20) -> str:
    """The command failed the way users are promised; returns the message after ``skelact: error: ``."""
    err = result.stderr
    where = f"{result.args}: {err[:400]!r}"
    assert result.rc == 1, where
    assert err.endswith("\n") and err.count("\n") == 1, where  # exactly one line
    line = err.rstrip("\n")
    assert line.startswith("skelact: error: ") and len(line) <= 300, where
    assert "unexpected" not in line and "Traceback" not in err, where
    assert names in line, where
    if pattern is not None:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert result.seconds < max_seconds, f"{where}: took {result.seconds:.1f} s"
    if result.peak_bytes is not None:
        assert result.peak_bytes < max_peak_bytes, f"{where}: peak +{result.peak_bytes / 2**20:.0f} MiB"
    assert not result.new_files, f"{where}: wrote {result.new_files}"
    return line[len("skelact: error: "):]


def _snapshot(folders: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in Path(f).rglob("*") if p.is_file()}


def expect_error(capsys: pytest.CaptureFixture[str], args: list[str], needles: Sequence[str],
                 watch: Sequence[Path] = (), status: int = 1) -> str:
    """Run ``skelact ARGS``; assert the one-line error promise and that ``watch`` is unchanged."""
    before = _snapshot(watch)
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as e:  # argparse's usage errors exit; the CLI's own (UsageError) return 2
        code = e.code
    err = capsys.readouterr().err
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("skelact: error: ") and len(line) <= 320 and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    assert _snapshot(watch) == before, "files were added or changed"
    return line

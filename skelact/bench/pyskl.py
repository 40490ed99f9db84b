"""PYSKL's own code, timed beside skelact's: a client for :mod:`skelact.bench.pyskl_worker`.

``skelact bench --pyskl PATH`` starts one worker process on a PYSKL checkout (with
``--pyskl-python``, under another interpreter, e.g. a venv holding mmcv 1.x) and asks it to
build PYSKL's ``GeneratePoseTarget`` and models from the checkout's configs. Its timings are
:data:`~skelact.bench.timing.Timer` s, so :func:`~skelact.bench.timing.interleave` runs them in
turn with skelact's. Nothing of PYSKL is imported into this process, and a failure on PYSKL's
side costs only PYSKL's rows.

PYSKL needs mmcv 1.x, which skelact never depends on. One way to set it up beside skelact's
environment (torch and numpy shared through a ``.pth`` file, mmcv without its compiled ops)::

    git clone https://github.com/kennymckormick/pyskl /work/pyskl
    python -m venv /work/pyskl-venv
    python -c "import site; print(site.getsitepackages()[0])" \
        > /work/pyskl-venv/lib/python3.11/site-packages/skelact_env.pth
    /work/pyskl-venv/bin/pip install wheel requests fvcore
    MMCV_WITH_OPS=0 /work/pyskl-venv/bin/pip install --no-build-isolation mmcv==1.7.2
    skelact bench --pyskl /work/pyskl --pyskl-python /work/pyskl-venv/bin/python --json bench.json

The worker shims the two things this PYSKL snapshot needs from an older stack: ``np.Inf`` (gone
in NumPy 2) and an importable ``torchvision`` (mmcv.runner imports it; nothing here uses it).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from skelact.errors import SkelactError

from .timing import Timer

__all__ = ["PysklError", "PysklWorker", "PYSKL_CONFIGS", "check_pyskl_root"]

#: skelact model -> PYSKL config (relative to the checkout) of the same network on NTU60 X-Sub joints.
PYSKL_CONFIGS = {
    "stgcnpp": "configs/stgcn++/stgcn++_ntu60_xsub_hrnet/j.py",
    "poseconv3d_c3d": "configs/posec3d/c3d_light_ntu60_xsub/joint.py",
    "poseconv3d_slowonly": "configs/posec3d/slowonly_r50_ntu60_xsub/joint.py",
}


class PysklError(SkelactError, RuntimeError):
    """PYSKL could not be loaded or a request to it failed."""


def check_pyskl_root(root: Path, option: str = "--pyskl") -> Path:
    """``root`` if it looks like a PYSKL checkout (``pyskl/__init__.py`` and the configs used here).

    Raises:
        PysklError: Naming the option and what is missing.
    """
    root = Path(root)
    missing = [p for p in ("pyskl/__init__.py", *PYSKL_CONFIGS.values()) if not (root / p).is_file()]
    if missing:
        raise PysklError(f"{option}: {root} is not a PYSKL checkout ({missing[0]} not found)")
    return root


class PysklWorker:
    """One PYSKL worker process; requests are answered one at a time.

    Args:
        root: PYSKL checkout.
        python: Interpreter for the worker (needs torch, numpy and mmcv 1.x); default this one.
        timeout: Seconds to wait for any one reply.
    """

    def __init__(self, root: Path, python: str | None = None, timeout: float = 900.0) -> None:
        self.root = check_pyskl_root(root)
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="skelact-pyskl-")
        self.log = open(Path(self.tmp.name) / "worker.log", "w+b")  # noqa: SIM115 - closed in close()
        skelact_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [skelact_root, str(self.root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONWARNINGS": "ignore"}
        try:
            self.proc = subprocess.Popen([python or sys.executable, "-m", "skelact.bench.pyskl_worker",
                                          str(self.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.log, env=env, text=True, bufsize=1)
        except OSError as e:
            self.close()
            raise PysklError(f"--pyskl-python: cannot start {python or sys.executable}: {e.strerror}") from None
        try:
            self.info = self.call("hello")
        except PysklError as e:
            self.close()
            raise PysklError(f"--pyskl: cannot load PYSKL from {self.root} with {python or sys.executable}: "
                             f"{str(e).removeprefix('PYSKL hello: ')}") from None

    def path(self, name: str) -> str:
        """A file in the worker's scratch folder (inputs and outputs passed by file)."""
        return str(Path(self.tmp.name) / name)

    def _log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        lines = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply.

        Raises:
            PysklError: The worker died, timed out or reported an error.
        """
        if self.proc is None or self.proc.poll() is not None:
            raise PysklError(f"PYSKL worker is not running ({self._log_tail() or 'no output'})")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise PysklError(f"PYSKL worker exited ({self._log_tail() or 'no output'})") from None
        deadline = time.monotonic() + self.timeout
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                line = self.proc.stdout.readline()
                break
            if time.monotonic() >= deadline:
                self.close()
                raise PysklError(f"PYSKL worker: no reply to {cmd!r} within {self.timeout:.0f} s")
        if not line:
            tail = self._log_tail()
            self.close()
            raise PysklError(f"PYSKL worker exited during {cmd!r}: {tail or 'no output'}")
        reply = json.loads(line)
        if not reply.pop("ok", False):
            raise PysklError(f"PYSKL {cmd}: {reply.get('error', 'failed')}")
        return reply

    def timer(self, name: str) -> Timer:
        """A :data:`Timer` for the job ``name`` registered in the worker."""
        return lambda number: float(self.call("time", name=name, number=number)["seconds"])

    def close(self) -> None:
        """Stop the worker and remove its scratch folder."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.flush()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, AssertionError):
                proc.kill()
                proc.wait()
        self.proc = None
        if not self.log.closed:
            self.log.close()
            self.tmp.cleanup()

    def __enter__(self) -> PysklWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""What every stage shares: the options, the machine's limits, the PYSKL worker, skipped rows."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..options import BenchOptions, Row
from ..pyskl import PysklError, PysklWorker

__all__ = ["Context", "skip_rows", "shared_root", "n_of", "repo_root"]


@dataclass
class Context:
    """State carried from stage to stage within one run.

    Attributes:
        opts: The options.
        limits: The machine stage's peaks, e.g. ``matmul_fp32`` (GFLOP/s at the run's threads),
            ``memset_1`` (GB/s on one thread); empty when that stage did not run or failed.
        pyskl_error: Why PYSKL's side is unavailable (``None`` when it is, or was not asked for).
    """

    opts: BenchOptions
    limits: dict[str, float] = field(default_factory=dict)
    pyskl_error: str | None = None
    #: Gets a long stage's rows so far (the driver saves them with the finished stages' rows).
    partial: Callable[[list[Row]], None] = lambda rows: None
    _worker: PysklWorker | None = None

    def pyskl(self) -> PysklWorker | None:
        """The PYSKL worker, started on first use; ``None`` without ``--pyskl`` or when it failed."""
        if self.opts.pyskl is None or self.pyskl_error is not None:
            return None
        if self._worker is None or self._worker.proc is None:
            try:
                self._worker = PysklWorker(self.opts.pyskl, self.opts.pyskl_python)
            except PysklError as e:
                self.pyskl_error = str(e)
                return None
        return self._worker

    def pyskl_failed(self, error: Exception) -> str:
        """Note a failed PYSKL request; returns its message.

        A request that failed inside a live worker costs only its own rows; a worker that died
        or hung ends PYSKL's side for the rest of the run.
        """
        if self._worker is None or self._worker.proc is None or self._worker.proc.poll() is not None:
            self.pyskl_error = str(error)
        return str(error)

    def close(self) -> None:
        """Stop the PYSKL worker, if any."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def skip_rows(stage: str, items: list[tuple[str, str]], reason: str) -> list[Row]:
    """Rows without values that say why they were not measured."""
    return [Row(stage, item, None, unit, f"skipped: {reason}") for item, unit in items]


def repo_root() -> Path:
    """The skelact checkout this package lives in."""
    return Path(__file__).resolve().parents[3]


def shared_root() -> Path:
    """``$SKELACT_SHARED``, default ``../shared`` beside the checkout."""
    return Path(os.environ.get("SKELACT_SHARED", repo_root().parent / "shared"))


def n_of(count: int, noun: str) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

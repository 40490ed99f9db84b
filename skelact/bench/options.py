"""What to measure (:class:`BenchOptions`) and what comes out (:class:`Row`, :class:`BenchReport`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "NEEDS_MACHINE", "BenchOptions", "Row", "BenchReport", "options_dict"]

STAGES = ("machine", "heatmap", "data", "models", "video", "memory")
#: Stages whose rows are given as fractions of the machine's limits (the machine stage runs first).
NEEDS_MACHINE = ("heatmap", "models")


@dataclass
class BenchOptions:
    """What to measure and how hard.

    Attributes:
        quick: Tiny sizes and few runs (a smoke test; figures are not comparable to full runs).
        repeats: Timed runs per figure, and interleaved rounds per ratio (medians reported);
            ``None``: 5, or 3 with ``quick``.
        threads: torch (and MoveNet) threads for the model and video stages; ``None``: torch's current.
        only: Stages to run (subset of :data:`STAGES`); ``None``: all. ``machine`` is added when a
            stage of :data:`NEEDS_MACHINE` is asked for.
        pose_model: MoveNet ``.tflite``; ``None``: ``$SKELACT_SHARED/models`` or the user cache.
        video: Video for the end-to-end stage; ``None``: ``$SKELACT_SHARED/data/videos/ntu_sample.avi``.
        model: Checkpoint (or shipped model name) for the video stage's action model; ``None``: a
            randomly initialised ``kpc3d``.
        pyskl: A PYSKL checkout: its own heatmap generator and models are timed beside skelact's.
        pyskl_python: Python interpreter with PYSKL's dependencies (mmcv 1.x) that runs PYSKL's
            side in a subprocess; ``None``: this interpreter.
    """

    quick: bool = False
    repeats: int | None = None
    threads: int | None = None
    only: tuple[str, ...] | None = None
    pose_model: Path | None = None
    video: Path | None = None
    model: str | None = None
    pyskl: Path | None = None
    pyskl_python: str | None = None

    def __post_init__(self) -> None:
        if self.only is not None:
            unknown = [s for s in self.only if s not in STAGES]
            if unknown:
                raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    @property
    def runs(self) -> int:
        """Timed runs per figure (interleaved rounds per ratio)."""
        return self.repeats if self.repeats is not None else (3 if self.quick else 5)

    @property
    def stages(self) -> tuple[str, ...]:
        """Stages to run, in table order (``machine`` first when a later stage needs its limits)."""
        wanted = set(STAGES if self.only is None else self.only)
        if wanted & set(NEEDS_MACHINE):
            wanted.add("machine")
        return tuple(s for s in STAGES if s in wanted)


@dataclass
class Row:
    """One line of the table.

    Attributes:
        stage: One of :data:`STAGES`.
        item: What was measured.
        value: The median (``None`` when the row was skipped or failed; ``note`` says why).
        unit: Unit of ``value``.
        note: Sizes, limits, ratios.
        runs: Every timed run's value (the median is ``value``).
        extra: Further figures by name (ms per clip, fractions of the machine's limits) for JSON readers.
        speedup: On a reference's row: how many times faster skelact's row ``speedup_of`` ran than
            this reference in the same run (median of the per-round ratios), else ``None``.
        speedup_runs: Every round's ratio.
        speedup_of: The skelact row the ratio is for.
    """

    stage: str
    item: str
    value: float | None
    unit: str
    note: str = ""
    runs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    speedup: float | None = None
    speedup_runs: list[float] = field(default_factory=list)
    speedup_of: str = ""


@dataclass
class BenchReport:
    """The machine, the options and the rows."""

    env: dict[str, Any]
    options: dict[str, Any]
    rows: list[Row]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``value`` None for skipped rows)."""
        return {"env": self.env, "options": self.options, "rows": [asdict(r) for r in self.rows]}


def options_dict(opts: BenchOptions) -> dict[str, Any]:
    """The options as JSON-ready values, with the resolved ``runs``."""
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    out["runs"] = opts.runs
    return out

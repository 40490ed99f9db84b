"""The benchmark's stages, in table order, and the driver that runs them.

Each stage is ``bench_<stage>(ctx) -> list[Row]`` in its own module. A stage that fails gets
one row saying so and the run goes on, so a long run never loses the other stages' rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ...errors import one_line
from ...runtime import keep_freed_memory
from ..options import BenchOptions, BenchReport, Row, options_dict
from ..report import environment
from .common import Context
from .data import bench_data
from .heatmap import bench_heatmaps
from .machine import bench_machine
from .memory import bench_memory
from .models import bench_models
from .video import bench_video

__all__ = ["BENCHES", "run_benchmarks", "Context"]

BENCHES: dict[str, Callable[[Context], list[Row]]] = {
    "machine": bench_machine, "heatmap": bench_heatmaps, "data": bench_data, "models": bench_models,
    "video": bench_video, "memory": bench_memory,
}


def run_benchmarks(opts: BenchOptions, log: Callable[[str], None] | None = None,
                   on_stage: Callable[[BenchReport], None] | None = None) -> BenchReport:
    """Run the selected stages and collect their rows.

    Args:
        opts: What to measure.
        log: Gets one line as each stage starts and ends.
        on_stage: Gets the report so far after every stage, and within the models stage after
            every model (e.g. to save partial results).
    """
    report = BenchReport(environment(opts.threads), options_dict(opts), [])
    # skelact's rows run as `skelact train` and `test` do (PYSKL's worker keeps the default).
    report.env["malloc_keeps_freed_memory"] = keep_freed_memory()
    ctx = Context(opts)
    if on_stage is not None:
        ctx.partial = lambda rows: on_stage(BenchReport(report.env, report.options, report.rows + rows))
    try:
        for stage in opts.stages:
            if log is not None:
                log(f"bench: {stage} ...")
            t0 = time.perf_counter()
            try:
                report.rows.extend(BENCHES[stage](ctx))
            except Exception as e:  # noqa: BLE001 - one stage's failure must not lose the others' rows
                report.rows.append(Row(stage, f"{stage} stage", None, "",
                                       f"failed: {type(e).__name__}: {one_line(e)}"))
            if log is not None:
                log(f"bench: {stage} done in {time.perf_counter() - t0:.1f} s")
            if on_stage is not None:
                on_stage(report)
    finally:
        ctx.close()
    if ctx.pyskl_error is not None:
        report.env["pyskl_error"] = ctx.pyskl_error
    if ctx._worker is not None or opts.pyskl is not None:
        report.env["pyskl"] = str(opts.pyskl)
    return report

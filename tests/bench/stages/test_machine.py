"""The machine stage (skelact.bench.stages.machine): its limits, and the heatmap rows measured against them."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.bench import BenchOptions
from skelact.bench.stages import Context
from skelact.bench.stages.heatmap import bench_heatmaps
from skelact.bench.stages.machine import bench_machine


def test_machine_rows_and_heatmap_bandwidth_fraction() -> None:
    ctx = Context(BenchOptions(quick=True, repeats=2, threads=1))
    rows = bench_machine(ctx)
    assert {"matmul_fp32", "matmul_bf16", "memset_1", "copy_1"} <= set(ctx.limits)
    for row in rows:
        assert row.value > 0 and row.extra["peak"] == max(row.runs) and row.unit in ("GFLOP/s", "GB/s")
    # A 512^2 matmul is 2 * 512^3 FLOPs: GFLOP/s times seconds gives it back.
    mm = next(r for r in rows if r.item == "matmul fp32, 1 thread")
    assert "512x512" in mm.note
    hm = bench_heatmaps(ctx)
    joint = next(r for r in hm if r.item == "joint heatmaps, 1 thread")
    assert joint.extra["output_bytes"] == 4 * 17 * 16 * 56 * 56
    assert joint.extra["output_gb_per_s"] == pytest.approx(joint.extra["output_bytes"] * joint.value / 1e9)
    assert joint.extra["fraction_of_memset_bandwidth"] == pytest.approx(
        joint.extra["output_gb_per_s"] / ctx.limits["memset_1"])
    ref = next(r for r in hm if r.item == "joint: numpy reference, PYSKL's algorithm")
    assert ref.speedup_of == "joint heatmaps, 1 thread" and len(ref.speedup_runs) == 2
    assert ref.speedup == pytest.approx(float(np.median(ref.speedup_runs)))

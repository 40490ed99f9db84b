"""The machine's own limits, measured in the same run: matmul GFLOP/s (fp32, bf16), memset / copy GB/s.

Later stages give their figures as fractions of these: a model row its achieved GFLOP/s over
the fp32 (or bf16) matmul peak at the same threads, a heatmap row its output bytes/s over the
one-thread memset bandwidth. A peak is the best of the runs (the least disturbed by other load).
"""

from __future__ import annotations

import statistics

from ..options import Row
from ..timing import Threads, rates, time_runs
from .common import Context, n_of

__all__ = ["bench_machine"]


def bench_machine(ctx: Context) -> list[Row]:
    """Matmul and memory-bandwidth rows; fills ``ctx.limits``."""
    import torch

    from skelact.runtime import native_bf16

    opts = ctx.opts
    runs = opts.runs
    rows: list[Row] = []
    with Threads(opts.threads):
        threads = torch.get_num_threads()
        native = native_bf16(torch.device("cpu"))
        for dtype, key in ((torch.float32, "matmul_fp32"), (torch.bfloat16, "matmul_bf16")):
            # Emulated bf16 runs at well under 1 GFLOP/s: a smaller product keeps the stage short.
            n = 512 if opts.quick or (dtype == torch.bfloat16 and not native) else 2048
            a = torch.randn(n, n).to(dtype)
            b = torch.randn(n, n).to(dtype)
            out = torch.empty(n, n, dtype=dtype)
            gflops = rates(time_runs(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), runs), 2 * n**3 / 1e9)
            ctx.limits[key] = max(gflops)
            kind = "fp32" if dtype == torch.float32 else "bf16" + ("" if native else " (emulated: no native bf16)")
            rows.append(Row("machine", f"matmul {kind.split()[0]}, {n_of(threads, 'thread')}",
                            statistics.median(gflops), "GFLOP/s",
                            f"{n}x{n} @ {n}x{n} {kind}; peak (best run) {max(gflops):.1f}", gflops,
                            {"peak": max(gflops)}))
            del a, b, out

        mib = 32 if opts.quick else 256  # far larger than the last-level cache: DRAM bandwidth
        numel = mib * 2**20 // 4
        src = torch.ones(numel)
        dst = torch.empty(numel)
        dst.zero_()  # fault the pages in before timing
        for n_threads in sorted({1, threads}):
            torch.set_num_threads(n_threads)
            for what, fn, moved in (("memset", dst.zero_, 1), ("copy", lambda d=dst, s=src: d.copy_(s), 2)):
                gbs = rates(time_runs(fn, runs), moved * numel * 4 / 1e9)
                ctx.limits[f"{what}_{n_threads}"] = max(gbs)
                bytes_note = "bytes written" if what == "memset" else "bytes read + written"
                rows.append(Row("machine", f"{what} {mib} MiB, {n_of(n_threads, 'thread')}",
                                statistics.median(gbs), "GB/s",
                                f"float32 buffer, {bytes_note}; peak (best run) {max(gbs):.1f}", gbs,
                                {"peak": max(gbs)}))
        del src, dst
    return rows

"""One table of every stage's speed on the current machine: ``skelact bench``.

Stages (``--only`` picks some; ``machine`` runs whenever ``heatmap`` or ``models`` does):

* ``machine``: this machine's limits in this run: fp32 / bf16 matmul GFLOP/s, memset / copy GB/s.
* ``heatmap``: joint / limb pseudo-heatmaps of one 2-person 48x17x56x56 clip on one thread,
  interleaved with a numpy reference of PYSKL's algorithm, PYSKL's own generator (``--pyskl``) and
  the cost of just writing the output; every output against the formula.
* ``data``: ``SkeletonDataset`` + ``DataLoader`` clips/s for each model's NTU60 input pipeline.
* ``models``: per registered model, parameters, GMACs, training (step and end to end) and
  inference clips/s, interleaved with PYSKL's same networks (``--pyskl``).
* ``video``: decode, MoveNet pose, tracking, the action model, and all of them end to end.
* ``memory``: load time and resident memory of a synthetic NTU60-sized pickle, in a fresh process.

Every "x faster" is a median of per-round ratios against a reference timed in the same run,
interleaved with skelact's figure (:func:`~skelact.bench.timing.interleave`); without a
reference in the run, no ratio is printed. ``--quick`` shrinks every size (a smoke test).

Package layout: :mod:`~skelact.bench.options` (what to run, rows), :mod:`~skelact.bench.synthetic`
(inputs), :mod:`~skelact.bench.reference` (heatmap formula and PYSKL-algorithm references),
:mod:`~skelact.bench.timing` (interleaving), :mod:`~skelact.bench.pyskl` and
:mod:`~skelact.bench.pyskl_worker` (PYSKL's side), :mod:`~skelact.bench.stages` (one module per
stage, the driver), :mod:`~skelact.bench.report` (environment, table, JSON).

    from skelact.bench import BenchOptions, run_benchmarks, format_table
    print(format_table(run_benchmarks(BenchOptions(quick=True))))
"""

from __future__ import annotations

from .options import STAGES, BenchOptions, BenchReport, Row
from .report import cpu_busy, environment, format_table, write_json
from .stages import run_benchmarks

__all__ = ["STAGES", "BenchOptions", "BenchReport", "Row", "cpu_busy", "environment", "format_table",
           "run_benchmarks", "write_json"]

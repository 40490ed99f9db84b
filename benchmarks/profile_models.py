"""Where a training step's time goes: torch.profiler on the models of `skelact bench`, same sizes and step.

    python benchmarks/profile_models.py                       # stgcnpp, poseconv3d_c3d, poseconv3d_slowonly
    python benchmarks/profile_models.py --models stgcnpp --steps 5 --rows 15

For each model: the benchmark's recipe and training step (skelact/bench/stages/models.py: NTU60
input, batch 8 x 100 frames for keypoint models, batch 2 x 48 frames of 56x56 maps for heatmap
models, forward + loss + backward + SGD), a warm-up step, then ``--steps`` profiled steps. Prints
the operators with the most self CPU time and their share of the step (the profiler's overhead
makes the steps slower than in `skelact bench`; the shares are what matter). `skelact bench`
gives each model's achieved GFLOP/s as a share of the machine's matmul peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing


def profile(name: str, steps: int, rows: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from skelact.bench.stages.models import ready_step

    # The bench's step and batch, labels 0..batch-1 (a batch of one label is learnt within a few
    # steps; its gradients then turn subnormal and the convolutions' backward runs 10x slower).
    _, step, x, y = ready_step(name)
    batch, frames = len(y), x.shape[2]  # x: (N, M, T, V, C)
    step(x, y)  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        wall = (time.perf_counter() - t0) / steps
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / steps / 1e6  # s per step, all threads' self time
    print(f"\n{name}: batch {batch}, T={frames}, fp32, {torch.get_num_threads()} threads: "
          f"{wall * 1e3:.0f} ms/step under the profiler ({batch / wall:.2f} clips/s)")
    print(f"{'operator':<44} {'self ms/step':>12} {'share':>6}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        ms = e.self_cpu_time_total / steps / 1e3
        print(f"{e.key[:44]:<44} {ms:>12.1f} {ms / 1e3 / total:>6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="stgcnpp,poseconv3d_c3d,poseconv3d_slowonly")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()
    for name in args.models.split(","):
        profile(name, args.steps, args.rows)


if __name__ == "__main__":
    main()

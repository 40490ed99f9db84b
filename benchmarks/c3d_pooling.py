"""C3D-light's pooling: ``SpatialAvgPool`` (channels-last kept) against ``nn.AvgPool3d``, interleaved in one process.

    python benchmarks/c3d_pooling.py
    python benchmarks/c3d_pooling.py --rounds 7 --steps 4

Two copies of the benchmark's C3D-light training step (``ready_step`` in skelact/bench/stages/
models.py: NTU60 input, batch 2 x 48 frames of 56x56 maps, fp32, torch's threads, malloc as in
`skelact train`), one with its pooling layers swapped back to ``nn.AvgPool3d((1, 2, 2))`` (torch's
CPU kernel has no channels-last path: it copies the volume to the default layout and back). Times
them interleaved (skelact/bench/timing.py: ``--steps`` steps each per round) and prints each
round's clips/s and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per side per round")
    args = parser.parse_args()

    import torch

    from skelact.bench.stages.models import ready_step
    from skelact.bench.timing import interleave, local_timer
    from skelact.models.poseconv3d import SpatialAvgPool
    from skelact.runtime import keep_freed_memory

    keep_freed_memory()  # as skelact train does, for both sides
    _, kept, x, y = ready_step("poseconv3d_c3d")
    model, plain, _, _ = ready_step("poseconv3d_c3d")
    batch = len(y)
    layers = model.backbone.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, SpatialAvgPool):
            layers[i] = torch.nn.AvgPool3d((1, 2, 2), (1, 2, 2))
    timers = {"AvgPool3d": local_timer(lambda: plain(x, y)), "SpatialAvgPool": local_timer(lambda: kept(x, y))}
    for timer in timers.values():
        timer(2)  # oneDNN primitives and the allocator warm up over the first steps
    result = interleave(timers, args.rounds, numbers=dict.fromkeys(timers, args.steps))
    median, per_round = result.speedup("SpatialAvgPool", "AvgPool3d")
    for r, ratio in enumerate(per_round):
        a, b = result.seconds["AvgPool3d"][r], result.seconds["SpatialAvgPool"][r]
        print(f"  round {r}: AvgPool3d {batch / a:.2f} clips/s, SpatialAvgPool {batch / b:.2f} clips/s, "
              f"{ratio:.3f}x", flush=True)
    print(f"C3D-light training step, SpatialAvgPool / AvgPool3d, median of {args.rounds} rounds: {median:.3f}x")


if __name__ == "__main__":
    main()

"""Does ``torch.compile`` speed up a training step? Eager and compiled, interleaved in one process.

    python benchmarks/compile_models.py                      # stgcnpp
    python benchmarks/compile_models.py --models stgcnpp poseconv3d_c3d --rounds 5

For each model: two copies of the benchmark's recipe, model and training step
(skelact/bench/stages/models.py: NTU60 input, fp32, 2 threads), one with ``nn.Module.compile()``
(inductor). Prints the compile time (the first two compiled steps), warms both up, then times
them interleaved (skelact/bench/timing.py: ``--steps`` steps each per round) and prints each
round's clips/s and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing


def compare(name: str, rounds: int, steps: int) -> float:
    """Median over ``rounds`` of eager step time / compiled step time."""
    from skelact.bench.stages.models import ready_step
    from skelact.bench.timing import interleave, local_timer

    _, eager, x, y = ready_step(name)
    model, compiled, _, _ = ready_step(name)
    batch = len(y)
    model.compile()
    timers = {"eager": local_timer(lambda: eager(x, y)), "compiled": local_timer(lambda: compiled(x, y))}

    print(f"{name}: compile and 2 steps {timers['compiled'](2):.1f} s", flush=True)
    timers["eager"](3)  # oneDNN primitives and the allocator warm up over the first few steps
    result = interleave(timers, rounds, numbers={"eager": steps, "compiled": steps})
    median, per_round = result.speedup("compiled", "eager")
    for r, ratio in enumerate(per_round):
        a, b = result.seconds["eager"][r], result.seconds["compiled"][r]
        print(f"  round {r}: eager {batch / a:.2f} clips/s, compiled {batch / b:.2f} clips/s, {ratio:.3f}x",
              flush=True)
    print(f"{name}: compiled step speed / eager, median of {rounds} rounds: {median:.3f}x", flush=True)
    return median


def main() -> None:
    from skelact.bench.timing import Threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stgcnpp"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with Threads(args.threads):
        for name in args.models:
            compare(name, args.rounds, args.steps)


if __name__ == "__main__":
    main()

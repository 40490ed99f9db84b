"""Does ``torch.compile`` speed up a training step? Eager and compiled, interleaved in one process.

    python benchmarks/compile_models.py                      # stgcnpp
    python benchmarks/compile_models.py --models stgcnpp poseconv3d_c3d --rounds 5

For each model: two copies of the benchmark's recipe, model and training step
(skelact/bench/stages/models.py: NTU60 input, fp32, 2 threads), one with ``nn.Module.compile()``
(inductor). Prints the compile time (the first two compiled steps), warms both up, then per round
the clips/s of three eager and three compiled steps, and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing


def compare(name: str, rounds: int, steps: int) -> float:
    """Median over ``rounds`` of eager step time / compiled step time."""
    import torch

    from skelact.bench.stages.models import _recipe, _sizes, _trainer
    from skelact.bench.synthetic import model_inputs
    from skelact.models import model_info

    sizes = _sizes(model_info(name).input_kind, False)
    cfg = _recipe(name, sizes)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, features=["joint"]))
    x = model_inputs(model_info(name).input_kind, sizes.train_batch, sizes.frames, seed=2)
    y = torch.arange(sizes.train_batch) % 60
    _, eager = _trainer(cfg, "none")
    model, compiled = _trainer(cfg, "none")
    model.compile()

    def seconds(step: Callable[[torch.Tensor, torch.Tensor], None], n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step(x, y)
        return (time.perf_counter() - t0) / n

    print(f"{name}: compile and 2 steps {seconds(compiled, 2) * 2:.1f} s", flush=True)
    seconds(eager, 3)  # oneDNN primitives and the allocator warm up over the first few steps
    seconds(compiled, 1)
    ratios = []
    for r in range(rounds):
        a, b = seconds(eager, steps), seconds(compiled, steps)
        ratios.append(a / b)
        print(f"  round {r}: eager {sizes.train_batch / a:.2f} clips/s, compiled {sizes.train_batch / b:.2f} "
              f"clips/s, {a / b:.3f}x", flush=True)
    median = statistics.median(ratios)
    print(f"{name}: compiled step speed / eager, median of {rounds} rounds: {median:.3f}x", flush=True)
    return median


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stgcnpp"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        compare(name, args.rounds, args.steps)


if __name__ == "__main__":
    main()

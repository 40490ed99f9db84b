"""What does ``skelact.runtime.keep_freed_memory`` buy a training step? Fresh processes, interleaved.

    python benchmarks/malloc_ab.py                                   # stgcnpp, poseconv3d_c3d
    python benchmarks/malloc_ab.py --models stgcnpp --rounds 7 --steps 10

The setting is process-wide and cannot be undone, so each side runs in its own fresh process:
per round one process with glibc's default malloc and one that calls ``keep_freed_memory()``
first (in alternating order), each running the benchmark's training step (``ready_step`` in
skelact/bench/stages/models.py: NTU60 input, fp32, torch's threads) twice untimed, then
``--steps`` timed. Prints each round's clips/s, page faults and peak RSS, and the median of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing


def child(name: str, keep: bool, steps: int) -> None:
    """One side: time ``steps`` training steps and print a JSON line."""
    import resource
    import time

    from skelact.runtime import keep_freed_memory

    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() did not apply here (not glibc, or MALLOC_* set)")
    from skelact.bench.stages.models import ready_step

    _, step, x, y = ready_step(name)
    step(x, y)
    step(x, y)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"clips_s": steps * len(y) / seconds, "faults": after.ru_minflt - before.ru_minflt,
                      "sys_s": after.ru_stime - before.ru_stime, "peak_rss_mib": after.ru_maxrss / 1024}))


def compare(name: str, rounds: int, steps: int) -> float:
    """Median over ``rounds`` of (clips/s with the setting) / (clips/s without)."""
    ratios = []
    for r in range(rounds):
        result = {}
        for keep in ([False, True] if r % 2 == 0 else [True, False]):
            out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps)]
                                 + (["--keep"] if keep else []), check=True, capture_output=True, text=True)
            result[keep] = json.loads(out.stdout.strip().splitlines()[-1])
        ratios.append(result[True]["clips_s"] / result[False]["clips_s"])
        print(f"  round {r}: " + ", ".join(
            f"{'kept' if k else 'default'} {v['clips_s']:.2f} clips/s, {v['faults']} page faults, "
            f"{v['sys_s']:.2f} s system, peak RSS {v['peak_rss_mib']:.0f} MiB" for k, v in result.items())
            + f"; {ratios[-1]:.3f}x", flush=True)
    median = statistics.median(ratios)
    print(f"{name}: keep_freed_memory / default, median of {rounds} rounds: {median:.3f}x", flush=True)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stgcnpp", "poseconv3d_c3d"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.keep, args.steps)
        return
    for name in args.models:
        compare(name, args.rounds, args.steps)


if __name__ == "__main__":
    main()

"""What the safe loader costs: plain ``pickle.load`` vs skelact's scan + restricted unpickler, in one run.

    python benchmarks/load_overhead.py                 # 10,000 synthetic NTU60-shaped clips (~290 MB)
    python benchmarks/load_overhead.py --clips 56578   # NTU60 size (1.6 GB)

Writes a synthetic PYSKL pickle (skelact.bench.synthetic.write_pickle: 2 persons, T ~ U[40, 110],
17 joints, float32 x, y + score) and times, interleaved round by round (skelact.bench.timing):
``pickle.load`` (unsafe: it would run any code in the file; the reference), ``safe_unpickle``
(opcode scan, then the restricted unpickler with its copy budget) and ``load_annotations`` (the
same plus clip-by-clip validation). Prints the median seconds and the median per-round slowdown
over plain pickle. ``--previous FILE`` adds another version's ``skelact/data/io.py`` (e.g.
``git show 3ef40ba:skelact/data/io.py > /tmp/old_io.py``, the loader before the opcode scan) as
a contender, to see what a change to the loader costs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.bench.synthetic import write_pickle  # noqa: E402
from skelact.bench.timing import interleave, local_timer  # noqa: E402
from skelact.data.io import load_annotations, safe_unpickle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--previous", type=Path, default=None, help="another version's skelact/data/io.py to time too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ntu_like.pkl"
        array_bytes = write_pickle(path, args.clips)

        def plain() -> None:
            with open(path, "rb") as f:
                pickle.load(f)  # noqa: S301 - the unsafe reference, on a file this script wrote

        timers = {"pickle.load": local_timer(plain), "safe_unpickle": local_timer(lambda: safe_unpickle(path)),
                  "load_annotations": local_timer(lambda: load_annotations(path))}
        if args.previous is not None:
            spec = importlib.util.spec_from_file_location("previous_io", args.previous)
            previous = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(previous)
            timers["previous load_annotations"] = local_timer(lambda: previous.load_annotations(path))
        result = interleave(timers, args.rounds, numbers={name: 1 for name in timers})
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{args.clips} clips, arrays {array_bytes / 2**20:.0f} MiB, {args.rounds} interleaved rounds")
    for name in timers:
        line = f"{name:<27} {result.median(name):7.2f} s"
        if name != "pickle.load":
            ratio, _ = result.speedup("pickle.load", name)
            line += f"   {ratio:.2f}x the time of pickle.load"
        if name == "load_annotations" and "previous load_annotations" in timers:
            ratio, _ = result.speedup("previous load_annotations", name)
            line += f", {ratio:.2f}x the previous version's"
        print(line)


if __name__ == "__main__":
    main()

"""Loading an NTU60-sized pickle: time and resident memory of load + pack, each run in a fresh process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..options import Row
from ..synthetic import NTU60_CLIPS, write_pickle
from .common import Context, repo_root

__all__ = ["bench_memory", "memory_child"]


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def memory_child(pkl: str, cache: str) -> None:
    """In a fresh process: load + pack ``pkl``, print times and RSS (KiB) as one JSON line."""
    import torch  # noqa: F401  (part of the baseline RSS, not of the measurement)

    from skelact.data.dataset import PackedClips
    from skelact.data.io import load_annotations

    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        exact = True
    except OSError:
        exact = False
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    data = load_annotations(pkl)
    t1 = time.perf_counter()
    packed = PackedClips.from_annotations(data)
    t2 = time.perf_counter()
    peak = _status_kib("VmHWM")
    del data
    after = _status_kib("VmRSS")
    packed.save(cache, force=True)
    t3 = time.perf_counter()
    opened = PackedClips.load(cache, mmap=True)
    opened.clip(len(opened) - 1)
    t4 = time.perf_counter()
    print(json.dumps({"exact": exact, "load_s": t1 - t0, "pack_s": t2 - t1, "peak_kib": peak - base,
                      "after_kib": after - base, "save_s": t3 - t2, "mmap_s": t4 - t3, "bytes": packed.nbytes}))


def bench_memory(ctx: Context) -> list[Row]:
    """Load + pack time and peak / final RSS of an NTU60-sized pickle, each run in a fresh process."""
    opts = ctx.opts
    clips = 2000 if opts.quick else NTU60_CLIPS
    runs, warmup = (1, 0) if opts.quick else (min(opts.runs, 3), 1)
    results = []
    with tempfile.TemporaryDirectory(prefix="skelact-bench-") as tmp:
        pkl, cache = Path(tmp) / "ntu60_synthetic.pkl", Path(tmp) / "packed"
        array_bytes = write_pickle(pkl, clips)
        file_bytes = pkl.stat().st_size
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(repo_root()), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        code = ("import sys; from skelact.bench.stages.memory import memory_child; "
                "memory_child(sys.argv[1], sys.argv[2])")
        for i in range(warmup + runs):
            out = subprocess.run([sys.executable, "-c", code, str(pkl), str(cache)], check=True,
                                 capture_output=True, text=True, env=env)
            if i >= warmup:
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    gib = 2**30
    size = f"{clips:,} clips, arrays {array_bytes / gib:.2f} GiB, file {file_bytes / gib:.2f} GiB"
    load = [r["load_s"] for r in results]
    pack = [r["pack_s"] for r in results]
    peak = [r["peak_kib"] * 1024 / gib for r in results]
    after = [r["after_kib"] * 1024 / gib for r in results]
    save = [r["save_s"] for r in results]
    mmap = [r["mmap_s"] * 1000 for r in results]
    peak_med = statistics.median(peak)
    exact = "" if all(r["exact"] for r in results) else "; VmHWM not resettable: includes imports"
    return [
        Row("memory", "load_annotations", statistics.median(load), "s", size, load),
        Row("memory", "PackedClips.from_annotations", statistics.median(pack), "s", "", pack),
        Row("memory", "peak RSS increase, load + pack", peak_med, "GiB",
            f"{peak_med * gib / array_bytes:.2f}x the array bytes{exact}", peak,
            {"array_gib": array_bytes / gib, "file_gib": file_bytes / gib, "clips": float(clips),
             "peak_over_arrays": peak_med * gib / array_bytes}),
        Row("memory", "RSS increase after packing", statistics.median(after), "GiB", "annotation dict freed", after),
        Row("memory", "write packed cache", statistics.median(save), "s", "", save),
        Row("memory", "open packed cache (mmap) + 1 clip", statistics.median(mmap), "ms", "", mmap),
    ]

"""Peak memory and time of loading an NTU60-sized PYSKL pickle and packing it.

Builds a synthetic pickle shaped like NTU60 HRNet 2D (56,578 clips, 2 persons, T ~ U[40, 110],
17 joints, float32 x, y + score) in a temporary folder, then in a *fresh* subprocess measures
``load_annotations`` + ``PackedClips.from_annotations``: wall time and the increase of peak RSS
(VmHWM) over the RSS after imports, compared with the bytes of the keypoint + score arrays.
Also times writing the packed cache and memory-mapping it back.

    python benchmarks/bench_dataset_memory.py            # full size (~1.7 GB of arrays)
    python benchmarks/bench_dataset_memory.py --clips 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_pickle(path: Path, clips: int, persons: int, joints: int, seed: int) -> int:
    """Write the synthetic annotation pickle; return the bytes of its keypoint + score arrays."""
    import numpy as np

    from skelact.data.io import save_annotations

    rng = np.random.default_rng(seed)
    frames = rng.integers(40, 111, size=clips)
    anns, total = [], 0
    for i, t in enumerate(frames.tolist()):
        kp = rng.random((persons, t, joints, 2), dtype=np.float32) * 1000
        score = rng.random((persons, t, joints), dtype=np.float32)
        total += kp.nbytes + score.nbytes
        anns.append({"frame_dir": f"S001C001P001R001A{i:06d}", "total_frames": t, "img_shape": (1080, 1920),
                     "original_shape": (1080, 1920), "label": i % 60, "keypoint": kp, "keypoint_score": score})
    names = [a["frame_dir"] for a in anns]
    data = {"split": {"xsub_train": names[: clips * 2 // 3], "xsub_val": names[clips * 2 // 3:]},
            "annotations": anns}
    save_annotations(data, path, force=True)
    return total


def child(pkl: Path, cache: Path) -> None:
    """Measure in this (fresh) process and print one JSON line."""
    import numpy as np  # noqa: F401  (imports are part of the baseline, not of the measurement)
    import torch  # noqa: F401

    from skelact.data.dataset import PackedClips
    from skelact.data.io import load_annotations

    exact = _reset_peak()
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    data = load_annotations(pkl)
    t1 = time.perf_counter()
    peak_load = _status_kib("VmHWM")
    packed = PackedClips.from_annotations(data)
    t2 = time.perf_counter()
    peak_pack = _status_kib("VmHWM")
    del data
    rss_after = _status_kib("VmRSS")
    packed.save(cache, force=True)
    t3 = time.perf_counter()
    loaded = PackedClips.load(cache, mmap=True)
    _ = loaded.clip(len(loaded) - 1)
    t4 = time.perf_counter()
    print(json.dumps({
        "exact_peak": exact, "base_kib": base, "peak_load_kib": peak_load, "peak_pack_kib": peak_pack,
        "rss_after_kib": rss_after, "array_bytes": packed.nbytes, "load_s": t1 - t0, "pack_s": t2 - t1,
        "save_cache_s": t3 - t2, "mmap_load_s": t4 - t3,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=56578)
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--joints", type=int, default=17)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmpdir", type=Path, default=None, help="where to write the pickle (default: system temp)")
    p.add_argument("--child", nargs=2, type=Path, metavar=("PKL", "CACHE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        pkl, cache = Path(tmp) / "ntu60_synthetic.pkl", Path(tmp) / "packed"
        t0 = time.perf_counter()
        total = make_pickle(pkl, args.clips, args.persons, args.joints, args.seed)
        made = time.perf_counter() - t0
        size = pkl.stat().st_size
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = subprocess.run([sys.executable, __file__, "--child", str(pkl), str(cache)],
                             check=True, capture_output=True, text=True, env=env)
        r = json.loads(out.stdout.strip().splitlines()[-1])

    gib = 2**30
    arrays = r["array_bytes"]
    assert arrays == total, (arrays, total)
    rows = [
        ("clips", f"{args.clips:,} x {args.persons} persons x {args.joints} joints, T ~ U[40, 110]"),
        ("keypoint + score arrays", f"{arrays / gib:.2f} GiB"),
        ("pickle file", f"{size / gib:.2f} GiB (written in {made:.0f} s)"),
        ("load_annotations", f"{r['load_s']:.1f} s, peak +{(r['peak_load_kib'] - r['base_kib']) * 1024 / gib:.2f} GiB"),
        ("+ PackedClips.from_annotations", f"{r['pack_s']:.1f} s"),
        ("peak RSS increase (load + pack)", f"{(r['peak_pack_kib'] - r['base_kib']) * 1024 / gib:.2f} GiB = "
                                            f"{(r['peak_pack_kib'] - r['base_kib']) * 1024 / arrays:.2f}x arrays"),
        ("RSS increase after packing", f"{(r['rss_after_kib'] - r['base_kib']) * 1024 / gib:.2f} GiB "
                                       "(annotation dict freed)"),
        ("save packed cache", f"{r['save_cache_s']:.1f} s"),
        ("open packed cache (mmap)", f"{r['mmap_load_s'] * 1000:.0f} ms"),
    ]
    if not r["exact_peak"]:
        rows.append(("note", "VmHWM could not be reset: peak includes the import phase"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()

"""Joint and limb pseudo-heatmaps on one thread, interleaved with their references in the same run.

Contenders, timed in turn every round on the same clip (2 persons, 48 frames, 17 COCO joints,
56x56 maps, sigma 0.6):

* skelact's :func:`~skelact.models.heatmap.joint_heatmaps` / ``limb_heatmaps`` as a user gets
  them: the compiled kernels where numba (the ``fast`` extra) is installed, else the torch path;
* skelact's torch path (what runs without numba, and the algorithm used on CUDA);
* the numpy reference of PYSKL's algorithm (:mod:`skelact.bench.reference`), at equal output;
* with ``--pyskl``, PYSKL's own ``GeneratePoseTarget`` (in its worker process);
* writing the output and nothing else (``torch.zeros`` of the output's size): the memory
  bandwidth limit of any implementation that returns a new volume.

Then every implementation's output on a short clip against the formula in float64.
"""

from __future__ import annotations

import numpy as np

from ..options import Row
from ..pyskl import PysklError
from ..reference import formula_joint_heatmaps, formula_limb_heatmaps, pyskl_joint_heatmaps, pyskl_limb_heatmaps
from ..synthetic import heatmap_clip
from ..timing import Threads, interleave, local_timer
from .common import Context

__all__ = ["bench_heatmaps", "TOLERANCE"]

TOLERANCE = 1e-5  # equal output: largest |difference| from the formula


def bench_heatmaps(ctx: Context) -> list[Row]:
    """Rows for joint and limb heatmaps: skelact, its references, the write limit, equality."""
    import torch

    from skelact.models import heatmap
    from skelact.models.heatmap import joint_heatmaps, limb_heatmaps
    from skelact.skeleton import get_layout

    opts = ctx.opts
    backend = "numba kernels" if heatmap._kernels() is not None else "torch path: numba not installed"
    frames, size, sigma = (16 if opts.quick else 48), 56, 0.6
    limbs = list(get_layout("coco17").limbs)
    kp, score = heatmap_clip(1, frames, size, seed=0)
    kn, sn = kp.numpy(), score.numpy()
    worker = ctx.pyskl()
    rows: list[Row] = []
    for kind in ("joint", "limb"):
        channels = 17 if kind == "joint" else len(limbs)
        numel = channels * frames * size * size
        out_bytes = 4 * numel
        shape = f"2x{frames}x{channels}x{size}x{size}"
        if kind == "joint":
            def ours() -> object:
                return joint_heatmaps(kp, score, size, sigma)

            def torch_path() -> object:
                return heatmap._joint_scatter(kp, score, (size, size), sigma, False, None, use_kernels=False)

            def ref() -> object:
                return pyskl_joint_heatmaps(kn, sn, size, sigma)
        else:
            def ours() -> object:
                return limb_heatmaps(kp, score, limbs, size, sigma)

            def torch_path() -> object:
                return heatmap._limbs(kp, score, limbs, (size, size), sigma, None, use_kernels=False)

            def ref() -> object:
                return pyskl_limb_heatmaps(kn, sn, limbs, size, sigma)

        ours()  # compiles the kernels on first use (numba): not part of the timing
        timers = {"skelact": local_timer(ours), "torch": local_timer(torch_path), "reference": local_timer(ref),
                  "write": local_timer(lambda n=numel: torch.zeros(n))}
        pyskl_note = ""
        if worker is not None:
            try:
                path = worker.path(f"{kind}.npz")
                np.savez(path, kp=kn, score=sn)
                worker.call("heatmap", name=kind, kind=kind, input=path, size=[size, size], sigma=sigma,
                            limbs=[list(limb) for limb in limbs])
                timers["pyskl"] = worker.timer(kind)
            except PysklError as e:
                pyskl_note = ctx.pyskl_failed(e)
        with Threads(1):
            try:
                result = interleave(timers, opts.runs, min_seconds=0.02 if opts.quick else 0.2)
            except PysklError as e:  # PYSKL died mid-run: time skelact's side alone
                pyskl_note = ctx.pyskl_failed(e)
                timers.pop("pyskl")
                result = interleave(timers, opts.runs, min_seconds=0.02 if opts.quick else 0.2)
        if worker is not None and "pyskl" in timers:
            try:
                worker.call("drop", name=kind)
            except PysklError as e:
                ctx.pyskl_failed(e)

        per_clip = {name: result.seconds[name] for name in result.names}
        ms = 1000 * result.median("skelact")
        gbs = out_bytes / result.median("skelact") / 1e9
        extra = {"ms_per_clip": ms, "output_bytes": float(out_bytes), "output_gb_per_s": gbs}
        bw = ctx.limits.get("memset_1")
        bw_note = ""
        if bw:
            extra["fraction_of_memset_bandwidth"] = gbs / bw
            bw_note = f"; writes {gbs:.2f} GB/s = {gbs / bw:.2f} of the 1-thread memset bandwidth ({bw:.1f} GB/s)"
        rows.append(Row("heatmap", f"{kind} heatmaps, 1 thread", 1 / result.median("skelact"), "clips/s",
                        f"skelact ({backend}), {ms:.2f} ms/clip {shape} float32 ({out_bytes / 1e6:.1f} MB), "
                        f"sigma {sigma}{bw_note}", [1 / s for s in per_clip["skelact"]], extra))
        labels = {
            "torch": f"{kind}: skelact's torch path",
            "reference": f"{kind}: numpy reference, PYSKL's algorithm",
            "pyskl": f"{kind}: PYSKL GeneratePoseTarget",
            "write": f"{kind}: write the output only",
        }
        notes = {
            "torch": "the same maps without numba (and the algorithm on CUDA)",
            "reference": "skelact.bench.reference, patches cut at 1e-6 of the peak (equal output)",
            "pyskl": f"PYSKL's own code from {opts.pyskl}, in its worker process (its own output: see |diff|)",
            "write": "torch.zeros of the output's size: the bandwidth limit of returning a new volume",
        }
        for name in ("torch", "reference", "pyskl", "write"):
            if name not in per_clip:
                if name == "pyskl" and opts.pyskl is not None:
                    rows.append(Row("heatmap", labels[name], None, "clips/s",
                                    f"skipped: {pyskl_note or ctx.pyskl_error}"))
                continue
            speed, per_round = result.speedup("skelact", name)
            ref_ms = 1000 * result.median(name)
            rows.append(Row("heatmap", labels[name], 1 / result.median(name), "clips/s",
                            f"{ref_ms:.2f} ms/clip; {notes[name]}", [1 / s for s in per_clip[name]],
                            {"ms_per_clip": ref_ms}, speed, per_round, f"{kind} heatmaps, 1 thread"))
    rows.extend(_equality_rows(ctx, size, sigma, limbs))
    return rows


def _equality_rows(ctx: Context, size: int, sigma: float, limbs: list[tuple[int, int]]) -> list[Row]:
    """Max |difference| from the float64 formula on a short clip, for each implementation."""
    from skelact.models import heatmap
    from skelact.models.heatmap import joint_heatmaps, limb_heatmaps

    kp, score = heatmap_clip(1, 4, size, seed=1)
    kn, sn = kp.numpy(), score.numpy()
    formula = {"joint": formula_joint_heatmaps(kn, sn, size, sigma),
               "limb": formula_limb_heatmaps(kn, sn, limbs, size, sigma)}
    outputs = {
        ("joint", "skelact"): joint_heatmaps(kp, score, size, sigma).numpy(),
        ("limb", "skelact"): limb_heatmaps(kp, score, limbs, size, sigma).numpy(),
        ("joint", "torch path"): heatmap._joint_scatter(kp, score, (size, size), sigma, False, None,
                                                        use_kernels=False).numpy(),
        ("limb", "torch path"): heatmap._limbs(kp, score, limbs, (size, size), sigma, None, use_kernels=False).numpy(),
        ("joint", "reference"): pyskl_joint_heatmaps(kn, sn, size, sigma),
        ("limb", "reference"): pyskl_limb_heatmaps(kn, sn, limbs, size, sigma),
    }
    worker = ctx.pyskl()
    if worker is not None:
        try:
            path = worker.path("check.npz")
            np.savez(path, kp=kn, score=sn)
            for kind in ("joint", "limb"):
                out = worker.path(f"check_{kind}.npy")
                worker.call("heatmap", name="check", kind=kind, input=path, size=[size, size], sigma=sigma,
                            limbs=[list(limb) for limb in limbs], output=out)
                outputs[(kind, "pyskl")] = np.load(out)
            worker.call("drop", name="check")
        except PysklError as e:
            ctx.pyskl_failed(e)
    rows = []
    for (kind, who), out in outputs.items():
        diff = float(np.abs(out - formula[kind]).max())
        if who == "pyskl":
            note = ("PYSKL's own output: patches cut at 3 sigma (up to exp(-4.5) = 1.1 % of the peak), "
                    "scores < 1e-3 skipped, limbs under 1 px drawn as a point")
        else:
            note = f"{'OK' if diff <= TOLERANCE else 'MISMATCH'} (<= {TOLERANCE:g})"
        rows.append(Row("heatmap", f"{kind} max |diff|: {who} vs formula", diff, "",
                        f"2x4x{out.shape[1]}x{size}x{size} clip vs the float64 formula on every pixel; {note}"))
    return rows

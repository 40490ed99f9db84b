"""One table of every stage's speed on the current machine: ``skelact bench``.

Stages (``--only`` picks some):

* ``heatmap``: joint / limb pseudo-heatmaps of one 2-person 48×17×56×56 clip on one thread, against
  PYSKL's generator timed on the reference machine class (DESIGN.md §3), and a check that the
  output equals the formula.
* ``data``: ``SkeletonDataset`` + ``DataLoader`` clips/s for each model's NTU60 input pipeline on a
  synthetic NTU60-like clip store, with 0 and 2 workers.
* ``models``: per registered model, parameters, GMACs, training and inference clips/s.
* ``video``: decode, MoveNet pose, tracking, the action model, and all of them end to end.
* ``memory``: load time and resident memory of a synthetic NTU60-sized pickle (56,578 clips),
  measured in a fresh process.

Every figure is the median of several timed runs after a warm-up. ``--quick`` shrinks every size so
that the whole table takes well under a minute (for smoke tests, not for reporting).

    from skelact.bench import BenchOptions, run_benchmarks, format_table
    print(format_table(run_benchmarks(BenchOptions(quick=True))))
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "STAGES",
    "PYSKL_JOINT_MS",
    "PYSKL_LIMB_MS",
    "BenchOptions",
    "Row",
    "BenchReport",
    "environment",
    "cpu_busy",
    "synthetic_poses",
    "reference_joint_heatmaps",
    "reference_limb_heatmaps",
    "time_runs",
    "bench_heatmaps",
    "bench_data",
    "bench_models",
    "PYSKL_MODELS",
    "bench_video",
    "bench_memory",
    "synthetic_store",
    "run_benchmarks",
    "format_table",
    "write_json",
]

STAGES = ("heatmap", "data", "models", "video", "memory")

#: PYSKL's heatmap generator on one core of the reference machine class (DESIGN.md §3), ms per
#: 2-person 48×17×56×56 clip.
PYSKL_JOINT_MS = 40.8
PYSKL_LIMB_MS = 179.0

NTU60_CLIPS = 56_578
_IMAGE = (1080, 1920)  # NTU colour frames (h, w)
_POSE_MODEL_FILE = "movenet_multipose_lightning_f16.tflite"


# ------------------------------------------------------------------------------------ options


@dataclass
class BenchOptions:
    """What to measure and how hard.

    Attributes:
        quick: Tiny sizes and few runs (a smoke test; figures are not comparable to full runs).
        repeats: Timed runs per figure (median reported); ``None``: 5, or 3 with ``quick``.
        threads: torch (and MoveNet) threads for the model and video stages; ``None``: torch's current.
        only: Stages to run (subset of :data:`STAGES`); ``None``: all.
        pose_model: MoveNet ``.tflite``; ``None``: ``$SKELACT_SHARED/models`` or the user cache.
        video: Video for the end-to-end stage; ``None``: ``$SKELACT_SHARED/data/videos/ntu_sample.avi``.
        model: Checkpoint (or shipped model name) for the video stage's action model; ``None``: a
            randomly initialised ``kpc3d``.
    """

    quick: bool = False
    repeats: int | None = None
    threads: int | None = None
    only: tuple[str, ...] | None = None
    pose_model: Path | None = None
    video: Path | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.only is not None:
            unknown = [s for s in self.only if s not in STAGES]
            if unknown:
                raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    @property
    def runs(self) -> int:
        """Timed runs per figure."""
        return self.repeats if self.repeats is not None else (3 if self.quick else 5)

    @property
    def stages(self) -> tuple[str, ...]:
        """Stages to run, in table order."""
        return tuple(s for s in STAGES if self.only is None or s in self.only)


@dataclass
class Row:
    """One line of the table.

    Attributes:
        stage: One of :data:`STAGES`.
        item: What was measured.
        value: The median (``None`` when the row was skipped; ``note`` says why).
        unit: Unit of ``value``.
        note: Sizes, reference figures, ratios.
        runs: Every timed run's value (the median is ``value``).
        extra: Further figures by name (ms per clip, reference values, ratios) for JSON readers.
    """

    stage: str
    item: str
    value: float | None
    unit: str
    note: str = ""
    runs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchReport:
    """The machine, the options and the rows."""

    env: dict[str, Any]
    options: dict[str, Any]
    rows: list[Row]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``value`` None for skipped rows)."""
        return {"env": self.env, "options": self.options, "rows": [asdict(r) for r in self.rows]}


# ------------------------------------------------------------------------------ environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all cores busy over the next ``seconds`` (other processes: the benchmark is idle)."""
    a = _cpu_times()
    time.sleep(seconds)  # the benchmark's own process is idle meanwhile
    b = _cpu_times()
    if a is None or b is None or b[1] <= a[1]:
        return None
    return 1.0 - (b[0] - a[0]) / (b[1] - a[1])


#: Above this fraction of busy cores before the run, the table carries a warning.
BUSY_LIMIT = 0.15


def environment(threads: int | None = None) -> dict[str, Any]:
    """Versions, threads, device, CPU model, memory, load, how busy the CPU was just before, and the date."""
    import torch

    mem = _mem_total_gib()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": threads or torch.get_num_threads(),
        "device": "cpu",
        "cuda_available": torch.cuda.is_available(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem, 1),
        "load_average": load,
        "cpu_busy_before": None if (busy := cpu_busy()) is None else round(busy, 3),
    }


# ---------------------------------------------------------------------------- synthetic data

# A standing person, COCO-17 order, x right / y down in units of the person's height, origin at
# the top of the head's centre line.
_TEMPLATE = np.array([
    [0.00, 0.06], [0.03, 0.04], [-0.03, 0.04], [0.06, 0.06], [-0.06, 0.06],  # nose, eyes, ears
    [0.12, 0.20], [-0.12, 0.20], [0.16, 0.37], [-0.16, 0.37], [0.18, 0.52], [-0.18, 0.52],  # arms
    [0.08, 0.53], [-0.08, 0.53], [0.09, 0.76], [-0.09, 0.76], [0.10, 0.98], [-0.10, 0.98],  # legs
], dtype=np.float64)
# Horizontal swing of each joint (fraction of height): arms and legs in opposite phase.
_SWING = np.array([0, 0, 0, 0, 0, 0, 0, 0.06, -0.06, 0.14, -0.14, 0, 0, -0.05, 0.05, -0.12, 0.12])


def synthetic_poses(
    num_clips: int,
    persons: int,
    frames: int,
    rng: np.random.Generator,
    image: tuple[int, int] = _IMAGE,
    missing: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Moving COCO-17 skeletons in image pixels, side by side, as a pose estimator would give them.

    Each person has a random height (35-60 % of the image), position, drift and limb swing, plus
    1 % pixel noise; scores are U[0.3, 1] and ``missing`` of the joints have score 0 at (0, 0).

    Returns:
        ``keypoint`` float32 ``(N, M, T, 17, 2)`` and ``score`` float32 ``(N, M, T, 17)``.
    """
    h_img, w_img = image
    shape = (num_clips, persons, 1, 1)
    height = rng.uniform(0.35, 0.6, shape) * h_img
    slot = (np.arange(persons).reshape(1, persons, 1, 1) + 0.5) / persons
    cx = (0.25 + 0.5 * slot + rng.uniform(-0.05, 0.05, shape)) * w_img
    top = rng.uniform(0.05, 0.35, shape) * h_img
    t = np.arange(frames).reshape(1, 1, frames, 1)
    swing = np.sin(rng.uniform(0.1, 0.4, shape) * t + rng.uniform(0, 2 * np.pi, shape))
    x = cx + rng.uniform(-2, 2, shape) * t + height * (_TEMPLATE[:, 0] + _SWING * swing)
    y = top + height * (_TEMPLATE[:, 1] + 0.02 * swing)
    kp = np.stack([x, y], axis=-1) + rng.normal(0, 0.01, (num_clips, persons, frames, 17, 2)) * height[..., None]
    score = rng.uniform(0.3, 1.0, (num_clips, persons, frames, 17))
    gone = rng.random(score.shape) < missing
    score[gone] = 0
    kp[gone] = 0
    return kp.astype(np.float32), score.astype(np.float32)


def _heatmap_clip(num_clips: int, frames: int, size: int, seed: int) -> tuple[Any, Any]:
    """Synthetic 2-person clips mapped into ``size``² output pixels the way PoseConv3D does (PoseCompact)."""
    import torch

    from skelact.models.heatmap import compact_boxes, crop_to_boxes

    kp, score = synthetic_poses(num_clips, 2, frames, np.random.default_rng(seed))
    kp_t, score_t = torch.from_numpy(kp), torch.from_numpy(score)
    return crop_to_boxes(kp_t, compact_boxes(kp_t, score_t), size), score_t


def reference_joint_heatmaps(kp: np.ndarray, score: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """The joint heatmap formula evaluated on every pixel (float64), max over persons: ``(N, V, T, H, W)``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx = xs - kp[..., 0, None, None]  # (N, M, T, V, H, W)
    dy = ys - kp[..., 1, None, None]
    g = score[..., None, None] * np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    g = np.where(score[..., None, None] > 0, g, 0.0)
    return g.max(axis=1).transpose(0, 2, 1, 3, 4)


def reference_limb_heatmaps(
    kp: np.ndarray, score: np.ndarray, limbs: list[tuple[int, int]] | tuple[tuple[int, int], ...], size: int,
    sigma: float,
) -> np.ndarray:
    """The limb formula (distance to the segment) on every pixel (float64), max over persons: ``(N, L, T, H, W)``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    ia, ib = np.array([a for a, _ in limbs]), np.array([b for _, b in limbs])
    a, b = kp[..., ia, :], kp[..., ib, :]  # (N, M, T, L, 2)
    s = np.minimum(score[..., ia], score[..., ib])
    ab = b - a
    len2 = (ab**2).sum(-1)[..., None, None]
    px, py = xs - a[..., 0, None, None], ys - a[..., 1, None, None]
    proj = px * ab[..., 0, None, None] + py * ab[..., 1, None, None]
    frac = np.clip(np.divide(proj, len2, out=np.zeros_like(proj), where=len2 > 0), 0, 1)
    d2 = (px - frac * ab[..., 0, None, None]) ** 2 + (py - frac * ab[..., 1, None, None]) ** 2
    g = np.where(s[..., None, None] > 0, s[..., None, None] * np.exp(-d2 / (2 * sigma**2)), 0.0)
    return g.max(axis=1).transpose(0, 2, 1, 3, 4)


# ------------------------------------------------------------------------------------ timing


def time_runs(fn: Callable[[], object], runs: int, warmup: int = 1, number: int = 1) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then ``runs`` timings of ``number`` calls each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return times


def _rate(times: list[float], per_call: float) -> tuple[float, list[float]]:
    """Median items/s and every run's items/s, for ``per_call`` items per timed call."""
    rates = [per_call / t for t in times]
    return statistics.median(rates), rates


class _Threads:
    """``with _Threads(n):`` runs torch on ``n`` threads, then restores the previous count."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old = 0

    def __enter__(self) -> _Threads:
        import torch

        self.old = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.old)


def _n(count: int, noun: str) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _shared_root() -> Path:
    return Path(os.environ.get("SKELACT_SHARED", Path(__file__).resolve().parents[2] / "shared"))


# ---------------------------------------------------------------------------------- heatmaps


def bench_heatmaps(opts: BenchOptions) -> list[Row]:
    """Joint and limb heatmaps of one 2-person clip on one thread, vs PYSKL; equality with the formula."""
    from skelact.models.heatmap import joint_heatmaps, limb_heatmaps
    from skelact.skeleton import get_layout

    frames, size, sigma = 48, 56, 0.6  # cheap enough for --quick too
    limbs = list(get_layout("coco17").limbs)
    kp, score = _heatmap_clip(1, frames, size, seed=0)
    shape = f"2x{frames}x17x{size}x{size}"
    number = 3 if opts.quick else 10
    rows = []
    with _Threads(1):
        for name, fn, ref_ms in (
            ("joint", lambda: joint_heatmaps(kp, score, size, sigma), PYSKL_JOINT_MS),
            ("limb", lambda: limb_heatmaps(kp, score, limbs, size, sigma), PYSKL_LIMB_MS),
        ):
            rate, rates = _rate(time_runs(fn, opts.runs, warmup=1, number=number), 1.0)
            ms = 1000 / rate
            vs = f"PYSKL {ref_ms:g} ms -> {ref_ms / ms:.1f}x faster"
            rows.append(Row("heatmap", f"{name} heatmaps, 1 thread", rate, "clips/s",
                            f"{ms:.2f} ms/clip {shape}, sigma {sigma}; {vs}", rates,
                            {"ms_per_clip": ms, "pyskl_ms_per_clip": ref_ms, "speedup_vs_pyskl": ref_ms / ms}))

    # Equality with the formula on a short clip of the same kind.
    kp_s, score_s = _heatmap_clip(1, 4, size, seed=1)
    kn, sn = kp_s.double().numpy(), score_s.double().numpy()
    diff_j = float(np.abs(joint_heatmaps(kp_s, score_s, size, sigma).numpy()
                          - reference_joint_heatmaps(kn, sn, size, sigma)).max())
    diff_l = float(np.abs(limb_heatmaps(kp_s, score_s, limbs, size, sigma).numpy()
                          - reference_limb_heatmaps(kn, sn, limbs, size, sigma)).max())
    for name, diff in (("joint", diff_j), ("limb", diff_l)):
        verdict = "OK" if diff <= 1e-5 else "MISMATCH"
        rows.append(Row("heatmap", f"{name} max |diff| vs formula", diff, "",
                        f"2x4x17x{size}x{size} clip vs float64 formula on every pixel; {verdict} (<= 1e-5)"))
    return rows


# -------------------------------------------------------------------------------------- data


def synthetic_store(num_clips: int, seed: int = 0) -> Any:
    """An NTU60-like :class:`~skelact.data.dataset.PackedClips`: 2 persons, T ~ U[40, 110], COCO-17 pixels."""
    from skelact.data.dataset import PackedClips

    rng = np.random.default_rng(seed)
    anns = []
    for i, t in enumerate(rng.integers(40, 111, size=num_clips).tolist()):
        kp, score = synthetic_poses(1, 2, t, rng)
        anns.append({"frame_dir": f"clip{i:06d}", "total_frames": t, "img_shape": _IMAGE, "original_shape": _IMAGE,
                     "label": i % 60, "keypoint": kp[0], "keypoint_score": score[0]})
    names = [a["frame_dir"] for a in anns]
    return PackedClips.from_annotations({"split": {"train": names}, "annotations": anns, "layout": "coco17"})


def _pipelines() -> list[tuple[str, Any]]:
    """(description, DataConfig) of each model family's NTU60 training input pipeline."""
    from skelact.config import DataConfig

    kp_len, hm_len = 100, 48
    return [
        (f"stgcnpp: T={kp_len}, image-normalised joint+score",
         DataConfig(clip_len=kp_len, normalize="image", features=["joint"])),
        (f"kpc3d: T={kp_len}, image-normalised joint+bone+score",
         DataConfig(clip_len=kp_len, normalize="image", features=["joint", "bone"])),
        (f"poseconv3d: T={hm_len}, raw pixels+score",
         DataConfig(clip_len=hm_len, normalize="none", features=["joint"])),
    ]


def bench_data(opts: BenchOptions) -> list[Row]:
    """SkeletonDataset + DataLoader clips/s per input pipeline, batch 32, with 0 and 2 workers."""
    import torch
    from torch.utils.data import DataLoader

    from skelact.data.dataset import SkeletonDataset
    from skelact.engine.builders import build_pipeline
    from skelact.skeleton import get_layout

    num_clips, per_run = (256, 128) if opts.quick else (2000, 1024)
    store = synthetic_store(num_clips)
    layout = get_layout("coco17")
    rows = []
    for desc, data_cfg in _pipelines():
        pipe = build_pipeline(data_cfg, layout, coord_dims=2, train=True)
        dataset = SkeletonDataset(store, np.arange(num_clips), pipe, train=True, seed=0)
        for workers in (0, 2):
            loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers, drop_last=True,
                                persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
            batches = per_run // 32
            state: dict[str, Any] = {"it": iter(loader)}

            def run(loader: DataLoader = loader, state: dict[str, Any] = state, batches: int = batches) -> None:
                for _ in range(batches):
                    try:
                        next(state["it"])
                    except StopIteration:
                        state["it"] = iter(loader)
                        next(state["it"])

            rate, rates = _rate(time_runs(run, opts.runs, warmup=1), batches * 32.0)
            del state["it"]
            rows.append(Row("data", f"{desc}, {workers} workers", rate, "clips/s",
                            f"batch 32, {num_clips} synthetic 2-person clips", rates))
            del loader
    return rows


# ------------------------------------------------------------------------------------ models


def _model_inputs(kind: str, batch: int, frames: int, seed: int) -> Any:
    """``(N, 2, T, 17, 3)``: image-normalised (x, y, score) for keypoint models, raw pixels for heatmap models."""
    import torch

    kp, score = synthetic_poses(batch, 2, frames, np.random.default_rng(seed))
    if kind == "keypoint":
        h, w = _IMAGE
        kp = np.where(score[..., None] > 0, kp / np.array([w, h], np.float32) * 2 - 1, 0).astype(np.float32)
    return torch.from_numpy(np.concatenate([kp, score[..., None]], axis=-1))


#: PYSKL's figures (DESIGN.md §3): params (M), GMACs per NTU60 clip, and its models' train / inference
#: clips/s measured on the reference machine class (torch 2.13 CPU, 2 threads).
PYSKL_MODELS: dict[str, dict[str, str]] = {
    "stgcnpp": {"params": "1.39", "GMACs": "1.93", "train": "3.6", "inference": "11"},
    "poseconv3d_slowonly": {"params": "2.0", "GMACs": "15.6", "train": "0.37", "inference": "1.1-1.9"},
    "poseconv3d_c3d": {"params": "3.4", "train": "1.0", "inference": "2.3-4.1"},
}


def _pyskl(name: str, what: str, quick: bool) -> str:
    ref = PYSKL_MODELS.get(name, {}).get(what)
    if ref is None or (quick and what != "params"):
        return ""
    return f"; PYSKL {ref}"


def bench_models(opts: BenchOptions) -> list[Row]:
    """Params, GMACs, training and inference clips/s of every registered model."""
    import torch
    import torch.nn.functional as F

    from skelact.models import count_macs, count_params, create_model, list_models, model_info
    from skelact.runtime import autocast_context, native_bf16

    device = torch.device("cpu")
    precisions = ("none", "bf16") if native_bf16(device) else ("none",)

    if opts.quick:
        sizes = {"keypoint": {"frames": 16}, "heatmap": {"frames": 8, "size": 32, "test_size": 32}}
        train_batch, infer_batch = {"keypoint": 2, "heatmap": 2}, 2
    else:
        sizes = {"keypoint": {"frames": 100}, "heatmap": {"frames": 48, "size": 56, "test_size": 64}}
        train_batch, infer_batch = {"keypoint": 8, "heatmap": 2}, 8
    rows = []
    with _Threads(opts.threads):
        threads = torch.get_num_threads()
        for name in list_models():
            kind = model_info(name).input_kind
            frames = sizes[kind]["frames"]
            kwargs = {k: v for k, v in sizes[kind].items() if k != "frames"}
            torch.manual_seed(0)
            model = create_model(name, num_classes=60, layout="coco17", in_channels=3, **kwargs)
            params = count_params(model)
            rows.append(Row("models", f"{name} params", params / 1e6, "M",
                            f"{kind} input, 60 classes{_pyskl(name, 'params', opts.quick)}"))

            # MACs of one clip at the training map size (eval mode draws test_size maps).
            mac_model = model
            if kind == "heatmap":
                mac_model = create_model(name, num_classes=60, layout="coco17", in_channels=3,
                                         **{**kwargs, "test_size": kwargs["size"]})
            mac_model.eval()
            x1 = _model_inputs(kind, 1, frames, seed=1)
            hw = f", {kwargs['size']}x{kwargs['size']} maps" if kind == "heatmap" else ""
            macs = count_macs(mac_model, x1)
            rows.append(Row("models", f"{name} GMACs", macs / 1e9, "GMAC",
                            f"1 clip (1, 2, {frames}, 17, 3){hw}; convs + matmuls only"
                            f"{_pyskl(name, 'GMACs', opts.quick)}"))
            del mac_model

            # Training (forward + backward + SGD step) and inference, in float32 and, where the
            # hardware has native bf16, under bf16 autocast (the recipes' `optim.amp: auto`).
            tb = train_batch[kind]
            x = _model_inputs(kind, tb, frames, seed=2)
            y = torch.arange(tb) % 60
            xi = _model_inputs(kind, infer_batch, frames, seed=3)
            test_hw = f", {kwargs['test_size']}x{kwargs['test_size']} maps" if kind == "heatmap" else ""
            for amp in precisions:
                tag = "" if amp == "none" else " bf16"
                torch.manual_seed(0)
                model = create_model(name, num_classes=60, layout="coco17", in_channels=3, **kwargs).train()
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

                def step(model: torch.nn.Module = model, x: torch.Tensor = x, y: torch.Tensor = y,
                         opt: torch.optim.Optimizer = opt, amp: str = amp) -> None:
                    opt.zero_grad(set_to_none=True)
                    with autocast_context(amp, device):
                        loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()

                rate, rates = _rate(time_runs(step, opts.runs, warmup=1), float(tb))
                rows.append(Row("models", f"{name} train{tag}", rate, "clips/s",
                                f"batch {tb}, T={frames}{hw}, fwd+bwd+SGD, {_n(threads, 'thread')}"
                                f"{_pyskl(name, 'train', opts.quick)}", rates))

                model.eval()

                def infer(model: torch.nn.Module = model, xi: torch.Tensor = xi, amp: str = amp) -> None:
                    with torch.inference_mode(), autocast_context(amp, device):
                        model(xi)

                rate, rates = _rate(time_runs(infer, opts.runs, warmup=1), float(infer_batch))
                rows.append(Row("models", f"{name} inference{tag}", rate, "clips/s",
                                f"batch {infer_batch}, T={frames}{test_hw}, inference_mode, {_n(threads, 'thread')}"
                                f"{_pyskl(name, 'inference', opts.quick)}", rates))
            del model, opt
    return rows


# ------------------------------------------------------------------------------------- video


def _skip(stage: str, items: list[tuple[str, str]], reason: str) -> list[Row]:
    return [Row(stage, item, None, unit, f"skipped: {reason}") for item, unit in items]


_VIDEO_ITEMS = [("decode", "frames/s"), ("MoveNet pose, input 256", "frames/s"), ("tracking", "frames/s"),
                ("action model, 1 clip", "clips/s"), ("end to end: decode+pose+track+action", "frames/s")]


def _random_predictor() -> Any:
    """A randomly initialised kpc3d behind :class:`~skelact.inference.Predictor` (NTU-style recipe)."""
    import torch

    from skelact.config import Config, DataConfig, ModelConfig
    from skelact.inference import Predictor
    from skelact.models import create_model
    from skelact.skeleton import get_layout

    cfg = Config(data=DataConfig(clip_len=100, normalize="image", features=["joint"], num_clips_test=10),
                 model=ModelConfig(name="kpc3d"))
    torch.manual_seed(0)
    model = create_model("kpc3d", num_classes=60, layout="coco17", in_channels=3).eval()
    return Predictor(model, cfg, [f"class_{i}" for i in range(60)], get_layout("coco17"), 3, "random kpc3d",
                     torch.device("cpu"))


def bench_video(opts: BenchOptions) -> list[Row]:
    """Frames/s of decoding, MoveNet, tracking, the action model and the whole video pipeline."""
    video = opts.video or _shared_root() / "data" / "videos" / "ntu_sample.avi"
    if not Path(video).is_file():
        return _skip("video", _VIDEO_ITEMS, f"no video at {video} (use --video)")
    try:
        from skelact.pose import MoveNet, PoseModelError, PoseTracker, extract_video, iter_frames
    except ImportError as e:
        return _skip("video", _VIDEO_ITEMS, str(e))
    pose_path = opts.pose_model
    if pose_path is None:
        shared = _shared_root() / "models" / _POSE_MODEL_FILE
        pose_path = shared if shared.is_file() else None
    try:
        pose = MoveNet(pose_path, input_size=256, num_threads=opts.threads, download=False)
    except (ImportError, PoseModelError) as e:
        return _skip("video", _VIDEO_ITEMS, f"{e} (use --pose-model)")
    if opts.model:
        from skelact.inference import load_model

        predictor = load_model(opts.model)
    else:
        predictor = _random_predictor()
    runs, warmup = (1, 0) if opts.quick else (min(opts.runs, 3), 1)
    rows = []
    with _Threads(opts.threads):
        state: dict[str, Any] = {}

        def decode() -> None:
            state["frames"] = sum(1 for _ in iter_frames(video, prefetch=0))

        rate_fn = _rate(time_runs(decode, runs, warmup=warmup), 1.0)  # calls/s; frames known after a run
        n_frames = state["frames"]
        rate, rates = rate_fn[0] * n_frames, [r * n_frames for r in rate_fn[1]]
        frames = []
        for frame in iter_frames(video):
            frames.append(frame)
            if opts.quick and len(frames) == 8:
                break
        h, w = frames[0].shape[:2]
        rows.append(Row("video", "decode", rate, "frames/s", f"{Path(video).name}, {w}x{h}, {n_frames} frames, "
                        "OpenCV", rates))

        results: list[Any] = []

        def detect() -> None:
            results[:] = [pose(f) for f in frames]

        rate, rates = _rate(time_runs(detect, runs, warmup=1), float(len(frames)))
        rows.append(Row("video", "MoveNet pose, input 256", rate, "frames/s",
                        f"on {len(frames)} decoded frames, {_n(pose.num_threads, 'thread')}", rates))
        frames.clear()  # free the decoded frames

        def track() -> None:
            tracker = PoseTracker()
            for t, people in enumerate(results):
                tracker.update(t, people)
            tracker.arrays(len(results), 2)

        rate, rates = _rate(time_runs(track, opts.runs, warmup=1, number=5), float(len(results)))
        people = sum(len(r) for r in results) / max(1, len(results))
        rows.append(Row("video", "tracking", rate, "frames/s", f"{people:.1f} people/frame", rates))

        def end_to_end() -> None:
            state["ann"] = extract_video(video, pose, max_persons=2, progress=False)
            predictor.predict_clip(state["ann"], layout="coco17")

        rate_fn = _rate(time_runs(end_to_end, runs, warmup=warmup), 1.0)
        ann = state["ann"]
        total = ann["total_frames"]
        e2e = Row("video", "end to end: decode+pose+track+action", rate_fn[0] * total, "frames/s",
                  f"extract_video + predict_clip, {total} frames", [r * total for r in rate_fn[1]])

        views = predictor.cfg.data.num_clips_test
        rate, rates = _rate(time_runs(lambda: predictor.predict_clip(ann, layout="coco17"), opts.runs, warmup=1), 1.0)
        rows.append(Row("video", "action model, 1 clip", rate, "clips/s",
                        f"{predictor.source}, {views} views x T={predictor.clip_len}", rates))
        rows.append(e2e)
    return rows


# ------------------------------------------------------------------------------------ memory


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def _memory_child(pkl: str, cache: str) -> None:
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


def _write_pickle(path: Path, clips: int, seed: int = 0) -> int:
    """A synthetic NTU60-shaped pickle (2 persons, T ~ U[40, 110], 17 joints); returns its array bytes."""
    from skelact.data.io import save_annotations

    rng = np.random.default_rng(seed)
    anns, total = [], 0
    for i, t in enumerate(rng.integers(40, 111, size=clips).tolist()):
        kp = rng.random((2, t, 17, 2), dtype=np.float32) * 1000
        score = rng.random((2, t, 17), dtype=np.float32)
        total += kp.nbytes + score.nbytes
        anns.append({"frame_dir": f"S001C001P001R001A{i:06d}", "total_frames": t, "img_shape": _IMAGE,
                     "original_shape": _IMAGE, "label": i % 60, "keypoint": kp, "keypoint_score": score})
    names = [a["frame_dir"] for a in anns]
    split = clips * 2 // 3
    save_annotations({"split": {"xsub_train": names[:split], "xsub_val": names[split:]}, "annotations": anns},
                     path, force=True)
    return total


def bench_memory(opts: BenchOptions) -> list[Row]:
    """Load + pack time and peak / final RSS of an NTU60-sized pickle, each run in a fresh process."""
    clips = 2000 if opts.quick else NTU60_CLIPS
    runs, warmup = (1, 0) if opts.quick else (min(opts.runs, 3), 1)
    results = []
    with tempfile.TemporaryDirectory(prefix="skelact-bench-") as tmp:
        pkl, cache = Path(tmp) / "ntu60_synthetic.pkl", Path(tmp) / "packed"
        array_bytes = _write_pickle(pkl, clips)
        file_bytes = pkl.stat().st_size
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        code = "import sys; from skelact.bench import _memory_child; _memory_child(sys.argv[1], sys.argv[2])"
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


# ------------------------------------------------------------------------------------- driver

_BENCHES: dict[str, Callable[[BenchOptions], list[Row]]] = {
    "heatmap": bench_heatmaps, "data": bench_data, "models": bench_models, "video": bench_video,
    "memory": bench_memory,
}


def run_benchmarks(opts: BenchOptions, log: Callable[[str], None] | None = None) -> BenchReport:
    """Run the selected stages and collect their rows (``log`` gets one line per stage)."""
    env = environment(opts.threads)
    rows: list[Row] = []
    for stage in opts.stages:
        if log is not None:
            log(f"bench: {stage} ...")
        t0 = time.perf_counter()
        rows.extend(_BENCHES[stage](opts))
        if log is not None:
            log(f"bench: {stage} done in {time.perf_counter() - t0:.1f} s")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    options["runs"] = opts.runs
    return BenchReport(env, options, rows)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{min(digits, 3)}f}"


def format_table(report: BenchReport) -> str:
    """The report as aligned plain text: a header naming the machine, then one line per row."""
    e = report.env
    load = "" if e.get("load_average") is None else f", load average {e['load_average'][0]:g} at start"
    mode = "quick (smoke-test sizes, not for reporting)" if report.options.get("quick") else "full"
    head = [
        f"skelact bench, {mode}, {e['date']}",
        f"{e['cpu']}, {e['cores']} cores, {e['memory_gib']} GiB{load}",
        f"Python {e['python']}, torch {e['torch']}, numpy {e['numpy']}, device {e['device']}, "
        f"torch on {_n(e['threads'], 'thread')}, median of {report.options['runs']} runs after a warm-up",
    ]
    busy = e.get("cpu_busy_before")
    if busy is not None and busy > BUSY_LIMIT:
        head.append(f"WARNING: {100 * busy:.0f} % of the CPU was busy with other processes just before the run: "
                    "these figures are not valid measurements of this machine")
    cells = [(r.stage, r.item, _fmt(r.value), r.unit, r.note) for r in report.rows]
    titles = ("stage", "what", "value", "unit", "notes")
    widths = [max(len(t), *(len(c[i]) for c in cells)) if cells else len(t) for i, t in enumerate(titles)]

    def line(c: tuple[str, ...]) -> str:
        return (f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:>{widths[2]}}  {c[3]:<{widths[3]}}  "
                f"{c[4]}").rstrip()

    body = [line(titles), line(tuple("-" * w for w in widths))]
    prev = None
    for c in cells:
        if prev is not None and c[0] != prev:
            body.append("")
        body.append(line(c))
        prev = c[0]
    return "\n".join(head + [""] + body)


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report as JSON (``value`` null for skipped rows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return path

"""Models: parameters, GMACs, and training / inference clips/s, with PYSKL's same networks interleaved.

For every registered model:

* ``train step``: forward + backward + the recipe's optimizer step on a ready batch, in float32
  and (where the CPU has native bf16) under bf16 autocast. skelact's heatmap models draw their
  heatmaps inside the step; PYSKL's take them ready-made (its pipeline draws them).
* ``train end to end``: the recipe's training data pipeline on synthetic NTU60-like clips, the
  collate, then the step, with each side's default precision (skelact's ``optim.amp: auto``,
  PYSKL's float32), and skelact in float32 as well.
* ``inference``: a batch under ``inference_mode`` (PYSKL: ``no_grad``), at the test map size.

With ``--pyskl``, ST-GCN++, C3D-light and SlowOnly-R50 are also built from PYSKL's configs
(:data:`~skelact.bench.pyskl.PYSKL_CONFIGS`) and timed in turn with skelact's (same input sizes,
batch and threads); their rows carry skelact's speed-up. Every row gives the achieved GFLOP/s
(matmuls and convolutions, by torch's FLOP counter) as a fraction of the machine stage's matmul peak.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ...errors import one_line
from ..options import Row
from ..pyskl import PYSKL_CONFIGS, PysklError, PysklWorker
from ..synthetic import model_inputs, synthetic_annotations
from ..timing import Interleaved, Threads, interleave, local_timer
from .common import Context, n_of, repo_root

__all__ = ["bench_models", "RECIPES", "ReadyStep", "ready_step"]

#: Shortest timing of a model row (seconds): a timing repeats its call (a batch) until it lasts this long.
MIN_SECONDS = 2.0

#: A row whose round timings (or its reference's) spread more than this is marked UNSTEADY: e.g. a
#: model trained over and over on one fixed batch can drift into subnormal floats, which slowed
#: single steps of PYSKL's C3D-light 30x (BENCHMARKS.md); or the machine was busy for some rounds.
UNSTEADY = 3.0

#: The NTU60 X-Sub recipe (configs/) whose data pipeline and optimizer each model's rows use.
RECIPES = {
    "stgcnpp": "ntu60_xsub_stgcnpp_j.yaml",
    "kpc3d": "ntu60_xsub_kpc3d.yaml",
    "poseconv3d_c3d": "ntu60_xsub_poseconv3d_c3d.yaml",
    "poseconv3d_slowonly": "ntu60_xsub_poseconv3d_slowonly.yaml",
}


@dataclasses.dataclass
class _Sizes:
    frames: int
    train_batch: int
    infer_batch: int
    size: int = 0  # heatmap models: training and test map sizes
    test_size: int = 0
    clips: int = 0  # synthetic clips behind the end-to-end rows


def _sizes(kind: str, quick: bool) -> _Sizes:
    if kind == "keypoint":
        return _Sizes(16, 2, 2, clips=8) if quick else _Sizes(100, 8, 8, clips=64)
    return _Sizes(8, 2, 2, 32, 32, clips=8) if quick else _Sizes(48, 2, 8, 56, 64, clips=32)


def _recipe(name: str, sizes: _Sizes) -> Any:
    """The model's recipe :class:`~skelact.config.Config` at the benchmark's sizes (defaults without one)."""
    from skelact.config import Config, ModelConfig, load_config

    path = repo_root() / "configs" / RECIPES.get(name, "")
    cfg = load_config(path) if name in RECIPES and path.is_file() else Config(model=ModelConfig(name=name))
    data = dataclasses.replace(cfg.data, clip_len=sizes.frames, layout="coco17")
    kwargs = dict(cfg.model.kwargs)
    if sizes.size:
        kwargs.update(size=sizes.size, test_size=sizes.test_size)
    return dataclasses.replace(cfg, data=data, model=dataclasses.replace(cfg.model, name=name, kwargs=kwargs))


def _trainer(cfg: Any, amp: str, in_channels: int = 3) -> tuple[Any, Callable[[Any, Any], None]]:
    """The recipe's model and a training step ``step(x, y)``: forward, loss, backward, clip, optimizer."""
    import torch
    import torch.nn.functional as F

    from skelact.engine.builders import build_model, build_optimizer
    from skelact.runtime import autocast_context
    from skelact.skeleton import get_layout

    torch.manual_seed(0)
    model = build_model(cfg, 60, get_layout("coco17"), in_channels).train()
    optimizer = build_optimizer(cfg.optim, model)
    device = torch.device("cpu")

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        # The step of skelact.engine.train._train_one_epoch, without its logging.
        with autocast_context(amp, device):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.optim.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        optimizer.step()

    return model, step


class ReadyStep(NamedTuple):
    """A model's benchmark training step and the ready batch it takes (``step(x, y)``)."""

    model: Any
    step: Callable[[Any, Any], None]
    x: Any
    y: Any


def ready_step(name: str, amp: str = "none", quick: bool = False) -> ReadyStep:
    """What the "train step" rows time: the model's recipe at the benchmark's sizes on the joint stream,
    its training step under ``amp``, and a ready synthetic NTU60 batch (the scripts in benchmarks/ time it too).
    """
    import torch

    from skelact.models import model_info

    kind = model_info(name).input_kind
    sizes = _sizes(kind, quick)
    cfg = _recipe(name, sizes)
    # Ready batches are (x, y, score): the step rows use the joint stream alone.
    model, step = _trainer(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, features=["joint"])), amp)
    x = model_inputs(kind, sizes.train_batch, sizes.frames, seed=2)
    return ReadyStep(model, step, x, torch.arange(sizes.train_batch) % 60)


def _flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


class _Rows:
    """Builds a group of rows from one interleaved measurement."""

    def __init__(self, ctx: Context, name: str, threads: int) -> None:
        self.ctx, self.name, self.threads = ctx, name, threads
        self.rows: list[Row] = []

    def add(self, result: Interleaved, contender: str, item: str, note: str, flops_per_clip: float | None,
            bf16: bool = False, vs: str | None = None, vs_item: str = "") -> None:
        seconds = result.seconds[contender]
        clips_s = 1 / result.median(contender)
        extra: dict[str, float] = {}
        if flops_per_clip:
            gflops = flops_per_clip * clips_s / 1e9
            extra["gflop_per_s"] = gflops
            peak = self.ctx.limits.get("matmul_bf16" if bf16 else "matmul_fp32")
            note += f"; {gflops:.1f} GFLOP/s"
            if peak:
                extra["fraction_of_matmul_peak"] = gflops / peak
                note += f" = {gflops / peak:.2f} of the {'bf16' if bf16 else 'fp32'} matmul peak"
        speed, per_round = (None, []) if vs is None else result.speedup(vs, contender)
        spread = max(max(t) / min(t) for t in [seconds] + ([result.seconds[vs]] if vs else []))
        extra["spread"] = spread
        if spread > UNSTEADY:
            note += (f"; UNSTEADY: round timings spread {spread:.1f}x, "
                     f"{'the ratio' if vs else 'the figure'} is not a measure")
        self.rows.append(Row("models", f"{self.name} {item}", clips_s, "clips/s",
                             f"{note}, {n_of(self.threads, 'thread')}", [1 / s for s in seconds], extra, speed,
                             per_round, f"{self.name} {vs_item}" if vs else ""))

        self.pyskl_note = ""  # why the last PYSKL contender is missing

    def skipped(self, item: str) -> None:
        """A PYSKL row that could not be measured."""
        why = self.pyskl_note or self.ctx.pyskl_error or "PYSKL unavailable"
        self.rows.append(Row("models", f"{self.name} {item}", None, "clips/s", f"skipped: {why}"))

    def pyskl_setup(self, worker: PysklWorker | None, job: str, **args: Any) -> dict[str, Any] | None:
        """Register a PYSKL job; ``None`` when there is no worker or the request failed."""
        self.pyskl_note = ""
        if worker is None or self.ctx.pyskl_error is not None:
            return None
        try:
            return worker.call("model", name=job, **args)
        except PysklError as e:
            self.pyskl_note = self.ctx.pyskl_failed(e)
            return None

    def measure(self, timers: dict[str, Any], items: float) -> Interleaved:
        """Interleave the contenders, each timing lasting about :data:`MIN_SECONDS` (one call or more).

        Single ~1 s steps on a shared VM spread by 30 % from round to round; timings of a few
        steps each steady the per-round ratios. A PYSKL failure drops only PYSKL's contender.
        """
        items_of = dict.fromkeys(timers, items)
        least = 0.05 if self.ctx.opts.quick else MIN_SECONDS
        try:
            return interleave(timers, self.ctx.opts.runs, min_seconds=least, items=items_of)
        except PysklError as e:
            self.pyskl_note = self.ctx.pyskl_failed(e)
            rest = {k: v for k, v in timers.items() if k != "pyskl"}
            return interleave(rest, self.ctx.opts.runs, min_seconds=least, items=items_of)


def _bench_one(ctx: Context, name: str, native: bool, threads: int) -> list[Row]:
    import torch

    from skelact.models import count_macs, count_params, create_model, model_info
    from skelact.runtime import resolve_amp

    kind = model_info(name).input_kind
    sizes = _sizes(kind, ctx.opts.quick)
    cfg = _recipe(name, sizes)
    kwargs = cfg.model.kwargs
    out = _Rows(ctx, name, threads)
    # Parameters, and MACs of one clip at the training map size (eval mode draws test_size maps).
    model = create_model(name, num_classes=60, layout="coco17", in_channels=3, **kwargs)
    x1 = model_inputs(kind, 1, sizes.frames, seed=1)
    mac_kwargs = {**kwargs, "test_size": sizes.size} if kind == "heatmap" else kwargs
    macs = count_macs(create_model(name, num_classes=60, layout="coco17", in_channels=3, **mac_kwargs).eval(), x1)
    hw = f", {sizes.size}x{sizes.size} maps" if kind == "heatmap" else ""
    out.rows += [Row("models", f"{name} params", count_params(model) / 1e6, "M", f"{kind} input, 60 classes"),
                 Row("models", f"{name} GMACs", macs / 1e9, "GMAC",
                     f"1 clip (1, 2, {sizes.frames}, 17, 3){hw}; convs + matmuls only")]
    del model

    worker = ctx.pyskl() if name in PYSKL_CONFIGS else None
    config = PYSKL_CONFIGS.get(name, "")
    draw = "draws its heatmaps inside the step" if kind == "heatmap" else ""
    amps = ["none", "bf16"] if native else ["none"]
    default_amp = resolve_amp(cfg.optim.amp, torch.device("cpu"))
    tag = {"none": "fp32", "bf16": "bf16"}

    # ---- train step on a ready batch
    tb = sizes.train_batch
    timers: dict[str, Any] = {}
    flops: dict[str, float] = {}
    for amp in amps:
        model, step, x, y = ready_step(name, amp, ctx.opts.quick)  # the same batch for every amp
        timers[amp] = local_timer(lambda step=step, x=x, y=y: step(x, y))
        if amp == "none":
            flops[amp] = _flops(lambda step=step, x=x, y=y: step(x, y)) / tb
            with torch.no_grad():  # PYSKL gets the heatmaps skelact's training mode draws
                ready = model.heatmap(x).unsqueeze(1).numpy() if kind == "heatmap" else x.unsqueeze(1).numpy()
    if worker is not None:
        np.savez(worker.path("step.npz"), x=ready)
        info = out.pyskl_setup(worker, f"{name}_step", config=config, mode="step", batch=tb,
                            input=worker.path("step.npz"))
        if info is not None:
            timers["pyskl"] = worker.timer(f"{name}_step")
            flops["pyskl"] = info["flops"] / tb
    result = out.measure(timers, tb)
    shape = f"batch {tb}, T={sizes.frames}{hw}, fwd+bwd+{cfg.optim.name.upper()}"
    for amp in amps:
        out.add(result, amp, f"train step {tag[amp]}", f"{shape}{'; ' + draw if draw else ''}", flops["none"],
                bf16=amp == "bf16")
    if "pyskl" in result.seconds:
        ready_made = ", heatmaps ready-made" if kind == "heatmap" else ""
        out.add(result, "pyskl", "train step: PYSKL fp32", f"{shape}; PYSKL {config}{ready_made}",
                flops["pyskl"], vs="none", vs_item="train step fp32")
    elif config and ctx.opts.pyskl is not None:
        out.skipped("train step: PYSKL fp32")
    del timers, result

    # ---- train end to end: data pipeline + collate + step
    if name in RECIPES and (repo_root() / "configs" / RECIPES[name]).is_file():
        try:
            _end_to_end(ctx, out, cfg, name, kind, sizes, amps, default_amp, worker, config, flops["none"],
                        flops.get("pyskl", flops["none"]))
        except Exception as e:  # noqa: BLE001 - keep the step rows measured above, and go on
            out.rows.append(Row("models", f"{name} train end to end", None, "clips/s",
                                f"failed: {type(e).__name__}: {one_line(e)}"))

    # ---- inference
    ib = sizes.infer_batch
    xi = model_inputs(kind, ib, sizes.frames, seed=3)
    timers = {}
    from skelact.runtime import autocast_context

    for amp in amps:
        torch.manual_seed(0)
        model = create_model(name, num_classes=60, layout="coco17", in_channels=3, **kwargs).eval()

        def infer(model: torch.nn.Module = model, amp: str = amp) -> None:
            with torch.inference_mode(), autocast_context(amp, torch.device("cpu")):
                model(xi)

        timers[amp] = local_timer(infer)
        if amp == "none":
            flops["infer"] = _flops(infer) / ib
            with torch.no_grad():
                ready = model.heatmap(xi).unsqueeze(1).numpy() if kind == "heatmap" else xi.unsqueeze(1).numpy()
    if worker is not None and ctx.pyskl_error is None:
        np.savez(worker.path("infer.npz"), x=ready)
        info = out.pyskl_setup(worker, f"{name}_infer", config=config, mode="infer", batch=ib,
                            input=worker.path("infer.npz"))
        if info is not None:
            timers["pyskl"] = worker.timer(f"{name}_infer")
            flops["pyskl_infer"] = info["flops"] / ib
    result = out.measure(timers, ib)
    test_hw = f", {sizes.test_size}x{sizes.test_size} maps" if kind == "heatmap" else ""
    shape = f"batch {ib}, T={sizes.frames}{test_hw}"
    for amp in amps:
        out.add(result, amp, f"inference {tag[amp]}",
                f"{shape}, inference_mode{'; draws its heatmaps' if draw else ''}", flops["infer"],
                bf16=amp == "bf16")
    if "pyskl" in result.seconds:
        ready_made = ", heatmaps ready-made" if kind == "heatmap" else ""
        out.add(result, "pyskl", "inference: PYSKL fp32", f"{shape}, no_grad; PYSKL{ready_made}",
                flops["pyskl_infer"], vs="none", vs_item="inference fp32")
    elif config and ctx.opts.pyskl is not None:
        out.skipped("inference: PYSKL fp32")
    if worker is not None and ctx.pyskl_error is None:
        try:
            for job in ("step", "e2e", "infer"):
                worker.call("drop", name=f"{name}_{job}")
        except PysklError as e:
            ctx.pyskl_failed(e)
    return out.rows


def _end_to_end(ctx: Context, out: _Rows, cfg: Any, name: str, kind: str, sizes: _Sizes, amps: list[str],
                default_amp: str, worker: PysklWorker | None, config: str, flops_per_clip: float,
                pyskl_flops_per_clip: float) -> None:
    """Rows of the recipe's pipeline + collate + step, for skelact (each precision) and PYSKL."""
    from torch.utils.data import default_collate

    from skelact.data.dataset import PackedClips, SkeletonDataset
    from skelact.data.io import save_annotations
    from skelact.engine.builders import build_pipeline
    from skelact.skeleton import get_layout

    anns = synthetic_annotations(sizes.clips, seed=4, frames=(max(8, sizes.frames // 2), 2 * sizes.frames))
    names = [a["frame_dir"] for a in anns]
    data = {"split": {"train": names}, "annotations": anns}
    pkl = None
    if worker is not None and ctx.pyskl_error is None:
        pkl = worker.path("e2e.pkl")
        save_annotations(data, pkl, force=True)  # before packing, which takes the arrays over
    store = PackedClips.from_annotations({**data, "layout": "coco17"})
    pipe = build_pipeline(cfg.data, get_layout("coco17"), coord_dims=2, train=True)
    dataset = SkeletonDataset(store, np.arange(len(store)), pipe, train=True, seed=0)
    in_channels = int(dataset[0][0].shape[-1])  # C of [M, T, V, C], as skelact.engine.train finds it
    tb = sizes.train_batch
    timers: dict[str, Any] = {}
    for amp in amps:
        _, step = _trainer(cfg, amp, in_channels)
        state = {"next": 0}

        def e2e(step: Callable[[Any, Any], None] = step, state: dict[str, int] = state) -> None:
            start = state["next"]
            state["next"] = (start + tb) % len(dataset)
            xb, yb = default_collate([dataset[(start + i) % len(dataset)] for i in range(tb)])
            step(xb, yb)

        timers[amp] = local_timer(e2e)
    if worker is not None and pkl is not None:
        if out.pyskl_setup(worker, f"{name}_e2e", config=config, mode="e2e", batch=tb, ann_file=pkl,
                           clip_len=sizes.frames, size=sizes.size or None) is not None:
            timers["pyskl"] = worker.timer(f"{name}_e2e")
    result = out.measure(timers, tb)
    what = (f"batch {tb}, {sizes.clips} synthetic 2-person clips, recipe {RECIPES[name]}: pipeline "
            f"(T={sizes.frames}) + collate + step, 0 loader workers")
    for amp in amps:
        label = {"none": "fp32", "bf16": "bf16"}[amp]
        default = " (amp: auto)" if amp == default_amp else ""
        out.add(result, amp, f"train end to end {label}{default}",
                f"{what}{'; the model draws the heatmaps' if kind == 'heatmap' else ''}", flops_per_clip,
                bf16=amp == "bf16")
    if "pyskl" in result.seconds:
        auto = {"none": "fp32", "bf16": "bf16"}[default_amp]
        out.add(result, "pyskl", "train end to end: PYSKL fp32",
                f"{what.replace(RECIPES[name], config)}; its pipeline draws the heatmaps" if kind == "heatmap"
                else f"{what.replace(RECIPES[name], config)}", pyskl_flops_per_clip, vs=default_amp,
                vs_item=f"train end to end {auto} (amp: auto)")
        if default_amp != "none":
            fp32, _ = result.speedup("none", "pyskl")
            out.rows[-1].extra["speedup_fp32"] = fp32
            out.rows[-1].note += f"; skelact fp32 {fp32:.2f}x faster"
    elif config and ctx.opts.pyskl is not None:
        out.skipped("train end to end: PYSKL fp32")


def bench_models(ctx: Context) -> list[Row]:
    """Every registered model's rows (a model that fails gets one row saying so; the others go on)."""
    import torch

    from skelact.models import list_models
    from skelact.runtime import native_bf16

    native = native_bf16(torch.device("cpu"))
    rows: list[Row] = []
    with Threads(ctx.opts.threads):
        threads = torch.get_num_threads()
        for name in list_models():
            try:
                rows += _bench_one(ctx, name, native, threads)
            except Exception as e:  # noqa: BLE001 - one model's failure must not lose the others' rows
                rows.append(Row("models", f"{name}", None, "", f"failed: {type(e).__name__}: {one_line(e)}"))
            ctx.partial(rows)  # minutes per model: an interrupted run keeps the models done
    return rows

"""Memory a model will need, estimated before it is built, and the memory this machine has.

A layout's joint count reaches every model: ST-GCN++ learns a V x V adjacency per block and
keeps N * M * C * T * V activations per layer, the keypoint 3D-CNN orders 2V - 1 joints, and a
heatmap model draws one map per joint or limb. A 630 KB data file with a 2000-joint layout asks
ST-GCN++ for about 20 GB; it is refused here, with one line, instead of by the kernel's OOM killer.

The estimate does not hard-code any model: it builds the recipe's model (its ``model.kwargs``
included) for three small chain layouts of ``V0 < V1 < V2`` joints, counts its parameters and,
in one real forward of one clip of a few frames, the bytes autograd saves for the backward pass.
Parameters are then extrapolated to the real joint count as a quadratic in V (exact for the
registered models: an adjacency is V², everything else linear), activations as linear in V and
in frames. Measured at V = 2000 (one thread, on a busy 2-core machine): ST-GCN++ 1.5 s and +82 MB
peak resident memory, kpc3d 0.4 s and +23 MB, the PoseConv3D models 5-7 s and +300-460 MB, most
of it their heatmap kernels' first use, which training pays anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from skelact.errors import SkelactError
from skelact.skeleton import Layout

__all__ = ["MemoryEstimate", "MemoryLimitError", "available_memory", "estimate_model_memory", "check_fits",
           "format_bytes"]

# Joint counts of the proxy layouts: parameters at three (a quadratic), activations at the two larger.
_PROXY_JOINTS = (6, 12, 24)
# Frames of the proxy clips: activations are fitted as a + b V + c T + d V T over these.
_PROXY_FRAMES = (4, 8)
# Activation memory at its peak is what autograd saves plus the backward's transient gradients
# and the allocator's slack. Measured (one CPU training step, peak RSS increase, fp32, 1 thread):
# ST-GCN++ V=17 T=100 N=16 3.1 GB and V=100 T=100 N=4 4.4 GB, kpc3d V=17 T=100 N=16 250 MB,
# PoseConv3D-C3D V=17 T=48 N=8 977 MB: 1.0-1.25x the saved bytes x 1.5 for the keypoint models,
# 0.7x for C3D. 2x the saved bytes stays above each.
_TRAIN_SLACK = 2.0
# Without autograd a forward keeps about its few largest activations alive at a time.
_INFER_LIVE = 4


class MemoryLimitError(SkelactError):
    """A run would need more memory than the machine has; the message names the layout and the limit."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs: the model's (weights, gradients, optimiser state) and one batch's activations."""

    model_bytes: int
    batch_bytes: int

    @property
    def total(self) -> int:
        return self.model_bytes + self.batch_bytes


def format_bytes(n: float) -> str:
    """``n`` bytes as ``12.3 GB`` / ``456 MB`` / ``64 KB`` (powers of 1024)."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB"
    return f"{n / 2**10:.0f} KB"


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device`` (None: unknown).

    CPU: the smallest of ``MemAvailable`` in /proc/meminfo (what the kernel can give without
    swapping; else the free pages from ``os.sysconf``), what this process's cgroup (v2
    ``memory.max``, a container's limit) has left, and what an address-space limit (``ulimit -v``)
    leaves. CUDA: the free memory ``torch.cuda.mem_get_info`` reports.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    limits = [x for x in (_meminfo_available(), _cgroup_left(), _address_space_left()) if x is not None]
    return min(limits) if limits else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_left() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), None without a limit."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, StopIteration):
        return None


def _address_space_left() -> int | None:
    """What ``RLIMIT_AS`` leaves above this process's current address space, None without a limit."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError):
        pass
    return None


def _chain(v: int) -> Layout:
    return Layout(name=f"proxy{v}", joints=tuple(f"j{i}" for i in range(v)),
                  edges=tuple((i, i + 1) for i in range(v - 1)), root=0)


def _build(model_name: str, kwargs: dict, num_classes: int, in_channels: int, v: int) -> torch.nn.Module:
    from skelact.models import create_model

    return create_model(model_name, num_classes=num_classes, layout=_chain(v), in_channels=in_channels, **kwargs)


def _saved(model: torch.nn.Module, persons: int, frames: int, in_channels: int, v: int) -> tuple[int, int]:
    """(bytes autograd saves for the backward, the largest of them) in a forward of one clip."""
    storages: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[(s.data_ptr(), s.nbytes())] = s.nbytes()  # a tensor saved twice costs once
        return t

    # Pixel-like coordinates and scores: heatmap models draw them, keypoint models only do
    # arithmetic on them. One clip: BatchNorm over (T, V) or (T, H, W) has values enough.
    x = torch.rand(1, persons, frames, v, in_channels) * 32
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x)
    return sum(storages.values()), max(storages.values(), default=0)


def estimate_model_memory(model_name: str, kwargs: dict, num_classes: int, in_channels: int, joints: int,
                          persons: int, frames: int, batch: int, training: bool = True,
                          optimizer_states: int = 1, weight_copies: int = 0) -> MemoryEstimate | None:
    """Estimate a run's memory from the layout's joint count and the recipe, before building the model.

    Args:
        model_name, kwargs: The recipe's model.
        num_classes, in_channels: The head's classes and the input's channels (C).
        joints: The layout's joint count (V).
        persons, frames: M and T of one clip as the model sees it.
        batch: Clips per forward (views included).
        training: Weights, gradients and optimiser state plus saved activations; else weights and
            the live activations of a forward without autograd.
        optimizer_states: Tensors the optimiser keeps per parameter (SGD momentum 1, AdamW 2).
        weight_copies: Extra copies of the weights (an EMA, a resumed checkpoint).

    Returns:
        The estimate, or None when the model cannot be measured on the proxy layouts (the run
        then goes ahead unchecked; its own errors are clearer than a failed estimate).
    """
    try:
        with torch.random.fork_rng(devices=[]):  # the run's seeded RNG stream stays as it was
            torch.manual_seed(0)
            params, saved = [], {}
            for v in _PROXY_JOINTS:
                model = _build(model_name, kwargs, num_classes, in_channels, v)
                params.append(float(sum(p.numel() * p.element_size() for p in model.parameters())))
                if v in _PROXY_JOINTS[1:]:
                    for t in _PROXY_FRAMES:
                        saved[v, t] = _saved(model, persons, t, in_channels, v)
                del model
    except Exception:  # noqa: BLE001 - a model the proxies cannot run is not the user's error
        return None
    param_bytes = _quadratic_at(params, joints)
    per_sample = _bilinear_at({k: float(s[0]) for k, s in saved.items()}, joints, frames)
    if training:
        model_bytes = param_bytes * (2 + optimizer_states + weight_copies)
        batch_bytes = batch * per_sample * _TRAIN_SLACK
    else:
        largest = _bilinear_at({k: float(s[1]) for k, s in saved.items()}, joints, frames)
        model_bytes = param_bytes * (1 + weight_copies)
        batch_bytes = batch * min(per_sample, largest * _INFER_LIVE)
    return MemoryEstimate(int(model_bytes), int(batch_bytes))


def _quadratic_at(ys: list[float], x: int) -> float:
    """The quadratic through ``(_PROXY_JOINTS[i], ys[i])`` at ``x`` (Lagrange form), at least ``ys[-1]``
    beyond the last proxy."""
    xs = _PROXY_JOINTS
    total = 0.0
    for i in range(3):
        term = ys[i]
        for j in range(3):
            if j != i:
                term *= (x - xs[j]) / (xs[i] - xs[j])
        total += term
    return max(total, ys[-1]) if x >= xs[-1] else max(total, 0.0)


def _bilinear_at(values: dict[tuple[int, int], float], v: int, t: int) -> float:
    """``a + b V + c T + d V T`` through the four proxy measurements, at ``(v, t)``; never below the
    largest measurement when ``(v, t)`` is beyond the proxies in both."""
    (v1, v2), (t1, t2) = _PROXY_JOINTS[1:], _PROXY_FRAMES
    fv, ft = (v - v1) / (v2 - v1), (t - t1) / (t2 - t1)
    out = (values[v1, t1] * (1 - fv) * (1 - ft) + values[v2, t1] * fv * (1 - ft)
           + values[v1, t2] * (1 - fv) * ft + values[v2, t2] * fv * ft)
    return max(out, 0.0) if v < v2 or t < t2 else max(out, values[v2, t2])


def check_fits(estimate: MemoryEstimate | None, device: torch.device | str, where: str, layout: Layout,
               what: str, advice: str) -> None:
    """Refuse a run whose estimate exceeds the memory ``device`` has available.

    Raises:
        MemoryLimitError: ``<where>: layout '<name>' (<V> joints): <what> needs about X, more than
            the Y available on <device>; <advice>``.
    """
    if estimate is None:
        return
    limit = available_memory(device)
    if limit is None or estimate.total <= limit:
        return
    dev = "the GPU" if torch.device(device).type == "cuda" else "this machine"
    raise MemoryLimitError(f"{where}: layout '{layout.name[:40]}' ({layout.num_joints} joints): {what} needs about "
                           f"{format_bytes(estimate.total)}, more than the {format_bytes(limit)} available on {dev}; "
                           f"{advice}")


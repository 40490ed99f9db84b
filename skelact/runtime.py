"""Where and how tensors run: device choice, mixed precision, seeding and RNG state.

Shared by training, evaluation, inference and the benchmark, so none of them imports another's
module for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import random
import sys
from typing import Any

import numpy as np
import torch

from skelact.errors import SkelactError, one_line, short_repr

__all__ = ["DeviceError", "resolve_device", "native_bf16", "resolve_amp", "autocast_context", "seed_everything",
           "rng_state", "set_rng_state", "keep_freed_memory"]


class DeviceError(SkelactError, ValueError):
    """A device or precision that this machine cannot provide."""


def resolve_device(device: str | torch.device, option: str = "--device") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine.

    Args:
        device: The requested device.
        option: The option or config key named in errors.

    Raises:
        DeviceError: Not a device name, or CUDA (or that CUDA device) is not available here.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{option}: {short_repr(str(device), 40)} is not a device; use auto, cpu, cuda or "
                          "cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"{option}: device type {dev.type!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{option}: {device!s} was asked for, but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{option}: {device!s} does not exist ({torch.cuda.device_count()} CUDA devices)")
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA, or a CPU with AVX512-BF16 or AMX.

    Elsewhere torch emulates bf16 on the CPU, which is slower than float32.
    """
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    """The CPU probe behind :func:`native_bf16`, once per process (autocast asks every batch)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the getattr
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_amp(amp: str, device: torch.device, option: str = "optim.amp", strict: bool = True) -> str:
    """``optim.amp`` for ``device``: ``auto`` becomes ``bf16`` where :func:`native_bf16`, else ``none``.

    Args:
        amp: ``none``, ``bf16``, ``fp16`` or ``auto``.
        device: Where the run is.
        option: The key named in errors.
        strict: Refuse fp16 off CUDA (training); else fall back to ``auto`` (evaluating a model
            trained in fp16 on a machine without CUDA).

    Raises:
        DeviceError: ``fp16`` on a device other than CUDA, when ``strict``.
    """
    if amp == "fp16" and device.type != "cuda" and not strict:
        amp = "auto"
    if amp == "auto":
        return "bf16" if native_bf16(device) else "none"
    if amp == "fp16" and device.type != "cuda":
        raise DeviceError(f"{option}: fp16 needs CUDA and this run is on {device.type}; use bf16 or auto")
    if amp not in ("none", "bf16", "fp16"):
        raise DeviceError(f"{option}: {amp!r} is not one of none, bf16, fp16, auto")
    return amp


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision context for ``optim.amp`` (see :func:`resolve_amp`)."""
    amp = resolve_amp(amp, device)
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


# glibc mallopt() parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the system.

    A training or evaluation step allocates and frees the same large activations every step.
    glibc serves blocks above its mmap threshold with fresh mappings and returns freed memory at
    the top of the heap (trim), so each step faults in and zeroes those pages again. With the
    threshold at its maximum (32 MiB) and no trimming, they stay mapped and are reused: ST-GCN++ and
    C3D-light training steps ran 1.03x faster on the CPU benchmark machine, with 2-9x fewer page
    faults (``benchmarks/malloc_ab.py``, BENCHMARKS.md). The process's resident memory then stays
    near its peak instead of shrinking between steps.

    Process-wide; the first call decides. Does nothing (returns False) off Linux/glibc, or when
    the user tunes malloc through ``GLIBC_TUNABLES`` or ``MALLOC_*_`` variables.

    Returns:
        Whether the setting was applied.
    """
    if not sys.platform.startswith("linux") or any(k == "GLIBC_TUNABLES" or k.startswith("MALLOC_")
                                                   for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the global RNG
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The torch / numpy / Python global RNG states, as weights-only-safe containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (missing parts are left alone).

    Raises:
        ValueError: A part of ``state`` is not what :func:`rng_state` writes (nothing is restored).
    """
    if not isinstance(state, dict):
        raise ValueError("the RNG state is not a mapping")
    # Build every part first, so a malformed state restores nothing at all.
    restore = []
    try:
        if "torch" in state:
            t = state["torch"]
            if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
                raise ValueError("torch state is not a uint8 tensor")
            restore.append(lambda: torch.set_rng_state(t.cpu()))
        if "numpy" in state:
            n = state["numpy"]
            keys = n["keys"]
            if not isinstance(keys, torch.Tensor) or keys.shape != (624,):
                raise ValueError("numpy state keys are not 624 integers")
            np_state = (str(n["kind"]), keys.numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                        float(n["cached"]))
            np.random.RandomState().set_state(np_state)  # noqa: NPY002 - validates without touching the global
            restore.append(lambda: np.random.set_state(np_state))  # noqa: NPY002
        if "python" in state:
            p = state["python"]
            py_state = (int(p["version"]), tuple(int(x) for x in p["internal"]), p["gauss_next"])
            random.Random().setstate(py_state)
            restore.append(lambda: random.setstate(py_state))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            cuda = [s.cpu() for s in state["cuda"]]
            restore.append(lambda: torch.cuda.set_rng_state_all(cuda))
        for fn in restore:
            fn()
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AttributeError) as e:
        raise ValueError(f"malformed RNG state ({type(e).__name__}: {one_line(e)})") from None

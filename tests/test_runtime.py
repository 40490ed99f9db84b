"""Runtime settings (skelact.runtime): mixed precision choices and the allocator setting."""

from __future__ import annotations

import contextlib
import os
import platform
import sys

import pytest
import torch

import skelact.runtime as runtime_module
from skelact.runtime import autocast_context


def test_autocast_context_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert isinstance(autocast_context("none", cpu), contextlib.nullcontext)
    with autocast_context("bf16", cpu):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        autocast_context("fp16", cpu)
    monkeypatch.setattr(runtime_module, "native_bf16", lambda device: False)
    assert isinstance(autocast_context("auto", cpu), contextlib.nullcontext)  # emulated bf16 is slow
    monkeypatch.setattr(runtime_module, "native_bf16", lambda device: True)
    with autocast_context("auto", cpu):
        assert torch.is_autocast_enabled("cpu")


def test_keep_freed_memory_applies_on_glibc_and_steps_aside_for_user_malloc_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The allocator setting of training and evaluation: applied on Linux/glibc, never over the user's own."""
    apply = runtime_module.keep_freed_memory.__wrapped__  # the uncached function: each call decides anew
    for var in [k for k in os.environ if k == "GLIBC_TUNABLES" or k.startswith("MALLOC_")]:
        monkeypatch.delenv(var)
    libc = sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver())
    assert apply() is bool(libc)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert apply() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert apply() is False

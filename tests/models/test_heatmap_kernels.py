"""The compiled kernels' own helpers (the `fast` extra); their maps are tested in test_heatmap.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")


def test_kernel_exp_is_float32_accurate() -> None:
    """The limb loop's vectorizable exp: within 3e-7 relative over [-20, 0], where it is used."""
    from skelact.models.heatmap_kernels import _exp

    xs = np.concatenate([np.linspace(-20, 0, 20001), -np.log(2) * np.arange(29) / 2]).astype(np.float32)
    got = np.array([_exp(x) for x in xs], np.float64)
    want = np.exp(xs.astype(np.float64))
    assert np.abs(got / want - 1).max() <= 3e-7

"""``validation_carve``: the validation share a recipe with ``data.val_fraction`` sets aside from its
training split (stratified, seeded, disjoint, deterministic across processes)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from skelact.data.splits import SplitError, validation_carve

REPO = Path(__file__).resolve().parents[2]


def _clips(sizes: dict[int, int]) -> tuple[list[str], list[int]]:
    """Names ``c<label>_<i>`` and labels for classes of the given sizes, interleaved as a file lists them."""
    items = [(f"c{c}_{i:03d}", c) for c, n in sizes.items() for i in range(n)]
    items.sort(key=lambda kv: kv[0][::-1])  # not grouped by class
    return [k for k, _ in items], [c for _, c in items]


def test_the_carve_is_stratified_and_leaves_every_class_a_training_clip() -> None:
    sizes = {0: 40, 1: 20, 2: 10, 3: 5, 4: 2, 5: 1}
    names, labels = _clips(sizes)
    val = validation_carve(names, labels, 0.1, seed=0)
    assert val.dtype == bool and val.shape == (len(names),)
    per_class = Counter(c for c, v in zip(labels, val, strict=True) if v)
    # 10 % rounded half up, at least one from two clips, never the last training clip.
    assert dict(per_class) == {0: 4, 1: 2, 2: 1, 3: 1, 4: 1}
    kept = Counter(c for c, v in zip(labels, val, strict=True) if not v)
    assert all(kept[c] >= 1 for c in sizes)  # the single clip of class 5 stays for training


def test_the_carve_is_disjoint_seeded_and_independent_of_order() -> None:
    names, labels = _clips({0: 30, 1: 30, 2: 30})
    val = validation_carve(names, labels, 0.2, seed=0)
    carved = {n for n, v in zip(names, val, strict=True) if v}
    rest = {n for n, v in zip(names, val, strict=True) if not v}
    assert carved and not carved & rest and carved | rest == set(names)
    assert np.array_equal(validation_carve(names, labels, 0.2, seed=0), val)
    other = validation_carve(names, labels, 0.2, seed=1)
    assert other.sum() == val.sum() and not np.array_equal(other, val)  # same sizes, other clips
    # The same clips whatever order the file lists them in.
    order = np.random.default_rng(3).permutation(len(names))
    shuffled = validation_carve([names[i] for i in order], [labels[i] for i in order], 0.2, seed=0)
    assert {names[i] for i, v in zip(order, shuffled, strict=True) if v} == carved
    # A larger share keeps the smaller one's clips (the ranking is per clip, not per call).
    more = validation_carve(names, labels, 0.4, seed=0)
    assert carved <= {n for n, v in zip(names, more, strict=True) if v}


def test_the_carve_is_the_same_in_another_process() -> None:
    names, labels = _clips({0: 25, 1: 17, 2: 9})
    here = [n for n, v in zip(names, validation_carve(names, labels, 0.15, seed=7), strict=True) if v]
    code = ("import sys; from skelact.data.splits import validation_carve as v; "
            f"n, l = {names!r}, {labels!r}; print(','.join(k for k, c in zip(n, v(n, l, 0.15, 7)) if c))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"}, timeout=120)
    assert out.stdout.strip().split(",") == here


def test_zero_carves_nothing_and_bad_fractions_are_refused() -> None:
    names, labels = _clips({0: 10, 1: 10})
    assert not validation_carve(names, labels, 0.0).any()
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(SplitError, match="must be in"):
            validation_carve(names, labels, bad)
    with pytest.raises(SplitError, match="2 keys but 1 labels"):
        validation_carve(["a", "b"], [0], 0.5)


def test_the_carve_sets_aside_what_skelact_split_moves() -> None:
    # One rule: `skelact split --val-fraction F --seed S` writes the clips a recipe with
    # data.val_fraction F and seed S validates on (so a carve can be written out and shared).
    from skelact.data.splits import carve_split

    names, labels = _clips({0: 13, 1: 8, 2: 3})
    data = {"split": {"train": names, "test": []},
            "annotations": [{"frame_dir": n, "label": c} for n, c in zip(names, labels, strict=True)]}
    moved = carve_split(data, "train", 0.2, seed=4)["split"]["val"]
    assert moved == [n for n, v in zip(names, validation_carve(names, labels, 0.2, seed=4), strict=True) if v]

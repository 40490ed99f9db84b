"""`convert numpy` on .npz zip bombs: refused from the headers, before anything is inflated, by the same
rule `fuse` applies to score files (skelact.data.npz.ArrayBudget) (issue 27, item 7)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_one_line_error, run_cli_batch

from skelact.data.convert.numpy import charge_arrays
from skelact.data.npz import GROWTH, MIN_BYTES, ArrayBudget


def _bomb(path: Path, frames: int, joints: int = 17, persons: int = 1) -> Path:
    """An .npz whose 'keypoint' is a float32 [persons, frames, joints, 2] array of zeros, deflated:
    written in chunks, so the test never holds the array."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (persons, frames, joints, 2)}
    nbytes = persons * frames * joints * 2 * 4
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z, \
            z.open("keypoint.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, nbytes, len(chunk)):
            f.write(chunk[:min(len(chunk), nbytes - start)])
    return path


def test_three_small_bombs_are_refused_before_inflating(tmp_path: Path) -> None:
    """Three files of ~100 KB claiming 100 MB each: the third crosses the conversion's 256 MB; nothing
    is inflated (the peak stays below the 200 MB that inflating the first two takes) and no output is written."""
    src = tmp_path / "arrays"
    src.mkdir()
    frames = (100 << 20) // (17 * 2 * 4)  # 100 MB of float32 per file
    for name in ("a", "b", "c"):
        _bomb(src / f"{name}.npz", frames)
    total = sum(p.stat().st_size for p in src.iterdir())
    assert total * GROWTH < MIN_BYTES < 3 * frames * 17 * 2 * 4  # the floor is what refuses here
    out = tmp_path / "out.pkl"
    result, = run_cli_batch([(["convert", "numpy", str(src), "-o", str(out)], tmp_path)], timeout=120)
    message = assert_one_line_error(result, str(src / "c.npz"), max_peak_bytes=150 << 20, max_seconds=30)
    assert f"'keypoint': claims a [1, {frames}, 17, 2] array (100 MB), with the arrays before it, over " \
           f"{MIN_BYTES >> 20} MB and {GROWTH}x the size of their files" in message
    assert not out.exists()


def test_one_file_within_the_floor_converts(tmp_path: Path) -> None:
    """A compressed file of zeros claiming 8 MB (well under the 256 MB floor) still converts: the rule
    refuses what a conversion adds up to, not compression as such."""
    src = tmp_path / "arrays"
    src.mkdir()
    _bomb(src / "zeros.npz", (8 << 20) // (17 * 2 * 4))
    result, = run_cli_batch([(["convert", "numpy", str(src), "-o", str(tmp_path / "out.pkl")], tmp_path)],
                            timeout=120)
    assert result.rc == 0, result.stderr
    assert (tmp_path / "out.pkl").exists()


def test_budget_is_shared_and_charged_in_order(tmp_path: Path) -> None:
    """The library rule: files are charged in order, against GROWTH x their total size (or the floor)."""
    for name in ("a", "b"):
        _bomb(tmp_path / f"{name}.npz", (MIN_BYTES // 2 + (1 << 20)) // (17 * 2 * 4))
    files = sorted(tmp_path.glob("*.npz"))
    budget = ArrayBudget(sum(p.stat().st_size for p in files))
    assert budget.limit == MIN_BYTES
    with pytest.raises(Exception, match=r"b\.npz: 'keypoint': claims a \["):
        charge_arrays(files, budget)
    charge_arrays(files[:1])  # one alone fits

"""Score files and their fusion (skelact.engine.evaluate): a weighted average of good files; bad files
and weights (issue #13, item 18) are one line naming the file or option, exit 1, nothing written."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import assert_one_line_error, run_cli_batch

from skelact.engine import metrics
from skelact.engine.evaluate import ScoreFileError, fuse, load_scores, save_scores

NAMES, CLASSES, LABELS = ["a", "b", "c"], ["x", "y"], np.array([0, 1, 1])
PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])


def _npz(path: Path, **arrays: object) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _good(**changed: object) -> dict:
    return {"probs": PROBS, "labels": LABELS, "names": np.array(NAMES), "classes": np.array(CLASSES), **changed}


def _huge_header(path: Path) -> Path:
    """probs.npy whose header claims 10^9 x 1000 float64 and holds 8 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 1000)})
    with zipfile.ZipFile(path, "w") as z:
        for key, value in _good().items():
            z.writestr(f"{key}.npy", buf.getvalue() + bytes(8) if key == "probs" else _npy(value))
    return path


def _npy(value: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value))
    return buf.getvalue()


def _deflate_bomb(path: Path, nbytes: int) -> Path:
    """A compressed .npz whose probs member inflates to ``nbytes`` of zeros (a few hundred KB on disk)."""
    rows = nbytes // 16
    block = bytes(16 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("probs.npy", "w", force_zip64=True) as f:  # streamed: never held in memory
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (rows, 2)})
            for start in range(0, rows * 16, len(block)):
                f.write(block[: rows * 16 - start])
        for key, value in _good().items():
            if key != "probs":
                zf.writestr(f"{key}.npy", _npy(value))
    return path


def test_bad_score_files_and_weights_are_one_line_errors(tmp_path: Path) -> None:
    good = save_scores(tmp_path / "good.npz", PROBS, LABELS, NAMES, CLASSES)
    other = save_scores(tmp_path / "other.npz", PROBS[::-1], LABELS, NAMES, CLASSES)
    blob = good.read_bytes()
    bad_files = {
        "missing": (lambda p: _npz(p, probs=PROBS), r"not a skelact score file \(no labels, names, classes array\)"),
        "object": (lambda p: _npz(p, **_good(names=np.array(NAMES, dtype=object))), r"'names' is an object array"),
        "reordered": (lambda p: save_scores(p, PROBS, LABELS, ["a", "c", "b"], CLASSES),
                      r"its clips differ from .*good\.npz \(names or order\)"),
        "shapes": (lambda p: _npz(p, **_good(labels=LABELS[:2])), r"inconsistent shapes probs \[3, 2\], labels \[2\]"),
        "text": (lambda p: p.write_text("probs,labels\n0.9,0\n"), r"not a \.npz score file"),
        "empty": (lambda p: p.write_bytes(b""), r"not a \.npz score file"),
        "truncated": (lambda p: p.write_bytes(blob[: len(blob) * 2 // 3]), r"not a \.npz score file|cannot read"),
        "torch": (lambda p: torch.save({"probs": torch.zeros(3, 2)}, p), r"not a skelact score file \(no probs"),
        "nan": (lambda p: _npz(p, **_good(probs=np.where(PROBS > 0.85, np.nan, PROBS))),
                r"clip 'a' has probabilities that are not finite values in \[0, 1\] summing to 1 \(1 of 3"),
        "unnormalised": (lambda p: _npz(p, **_good(probs=PROBS * 3)), r"clip 'a' has probabilities that are not"),
        "label range": (lambda p: _npz(p, **_good(labels=np.array([0, 1, 7]))), r"clip 'c' has label 7, expected 0..1"),
        "float labels": (lambda p: _npz(p, **_good(labels=LABELS.astype(float))), r"expected float probs, integer"),
        "huge header": (_huge_header, r"'probs' claims \[1000000000, 1000\] float64 values, more than the file holds"),
        "deflate bomb": (lambda p: _deflate_bomb(p, 260 << 20),
                         r"'probs' claims \[17039360, 2\] float64 values: its arrays would take over 16x"),
    }
    cases, expect = [], []
    for i, (name, (make, pattern)) in enumerate(bad_files.items()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        path = folder / ("scores.pt" if name == "torch" else "scores.npz")
        make(path)
        with pytest.raises(ScoreFileError, match=pattern):
            fuse([good, path])
        cases.append((["fuse", good, path, "--out-dir", folder / "out"], folder))
        expect.append((path.name, pattern))
    weights = {
        "count": (["1", "2", "3"], r"weights: 3 weights for 2 score files"),
        "negative": (["1", "-1"], r"weights: must be finite, non-negative and not all zero, got '1 -1'"),
        "nan": (["nan", "1"], r"weights: must be finite.*got 'nan 1'"),
        "inf": (["inf", "1"], r"weights: must be finite.*got 'inf 1'"),
        "zero": (["0", "0"], r"weights: must be finite, non-negative and not all zero"),
    }
    for i, (given, pattern) in enumerate(weights.values()):
        folder = tmp_path / f"weights{i}"
        folder.mkdir()
        with pytest.raises(ScoreFileError, match=pattern):
            fuse([good, other], [float(w) for w in given])
        cases.append((["fuse", good, other, "--weights", *given, "--out-dir", folder / "out"], folder))
        expect.append(("weights: ", pattern))
    for result, (named, pattern) in zip(run_cli_batch(cases, memory_limit=4 << 30), expect, strict=True):
        assert_one_line_error(result, named, pattern=pattern)
    # The good files still fuse, with weights 3:1.
    res = fuse([good, other], [3, 1])  # fused [[.725, .275], [.6, .4], [.375, .625]]: clips a and c right
    assert res["top1"] == pytest.approx(2 / 3) and res["per_stream_top1"] == [pytest.approx(2 / 3), 0.0]
    assert load_scores(good)["probs"].dtype == np.float64


def test_score_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ScoreFileError, match=r"nope\.npz: score file not found"):
        load_scores(tmp_path / "nope.npz")
    assert issubclass(ScoreFileError, ValueError)  # callers catching ValueError keep working


def test_fuse_weighted_average_and_mismatch_error(tmp_path: Path) -> None:
    names, classes, labels = ["a", "b", "c"], ["x", "y"], np.array([0, 1, 1])
    p1 = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    p2 = np.array([[0.3, 0.7], [0.1, 0.9], [0.6, 0.4]])
    f1 = save_scores(tmp_path / "j.npz", p1, labels, names, classes)
    f2 = save_scores(tmp_path / "b.npz", p2, labels, names, classes)
    res = fuse([f1, f2], [2, 1], tmp_path / "fused")
    fused = load_scores(tmp_path / "fused" / "scores.npz")
    np.testing.assert_allclose(fused["probs"], (2 * p1 + p2) / 3)
    # Alone, stream 1 gets clips a and c right and stream 2 only b; fused, all three are right.
    assert res["top1"] == 1.0 and res["per_stream_top1"] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    assert (tmp_path / "fused" / "confusion.png").is_file()
    assert json.loads((tmp_path / "fused" / "metrics.json").read_text())["inputs"][1]["weight"] == 1.0
    equal = fuse([f1, f2])  # equal weights, nothing written
    assert equal["loss"] == pytest.approx(metrics.cross_entropy((p1 + p2) / 2, labels))
    bad = save_scores(tmp_path / "bad.npz", p2, labels, ["a", "c", "b"], classes)
    with pytest.raises(ValueError, match="bad.npz"):
        fuse([f1, bad])
    with pytest.raises(ValueError, match="2 weights for 1"):
        fuse([f1], [1, 2])

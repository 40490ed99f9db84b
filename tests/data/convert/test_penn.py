"""The Penn Action converter (skelact.data.convert.penn) on the real files, and on bombs and NaNs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hostile import assert_one_line_error, run_cli_batch

from skelact.data.convert import ConvertError, ConvertSummary, convert_penn
from skelact.data.convert.penn import read_penn_mat


@pytest.fixture(scope="module")
def penn(data_root: Path) -> tuple[dict, ConvertSummary]:
    return convert_penn(data_root / "penn_action")


def test_penn_counts_and_shapes(check_converted: Callable[..., None], penn: tuple[dict, ConvertSummary]) -> None:
    data, summary = penn
    assert len(data["annotations"]) == summary.converted == 2326
    assert {k: len(v) for k, v in data["split"].items()} == {"train": 1258, "test": 1068}
    assert summary.splits == {"train": 1258, "test": 1068}
    assert len(data["classes"]) == 15 and data["classes"] == sorted(data["classes"])
    assert {a["label"] for a in data["annotations"]} == set(range(15))
    assert "2326 clips" in str(summary) and "train" in str(summary)
    check_converted(data, "penn13", 13, 2, scores=True)


def test_penn_values_match_mat(penn: tuple[dict, ConvertSummary], data_root: Path) -> None:
    data, _ = penn
    ann = next(a for a in data["annotations"] if a["frame_dir"] == "0001")
    m = scipy.io.loadmat(data_root / "penn_action" / "labels" / "0001.mat")
    np.testing.assert_allclose(ann["keypoint"][0, :, :, 0], m["x"], atol=1e-4)
    np.testing.assert_allclose(ann["keypoint"][0, :, :, 1], m["y"], atol=1e-4)
    np.testing.assert_array_equal(ann["keypoint_score"][0], m["visibility"].astype(np.float32))
    h, w, t = (int(d) for d in m["dimensions"].reshape(-1))
    assert ann["img_shape"] == (h, w) and ann["total_frames"] == t
    assert data["classes"][ann["label"]] == str(m["action"][0])
    assert ("0001" in data["split"]["train"]) == (int(m["train"][0, 0]) == 1)


def test_penn_accepts_labels_folder_and_rejects_bad_file(data_root: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copy(data_root / "penn_action" / "labels" / "0001.mat", labels / "0001.mat")
    data, _ = convert_penn(labels)
    assert [a["frame_dir"] for a in data["annotations"]] == ["0001"]
    (labels / "0002.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(ConvertError, match="0002.mat"):
        convert_penn(tmp_path)


def _penn_copy(data_root: Path, folder: Path, name: str, **fields: object) -> Path:
    """Penn Action's 0001.mat with some fields replaced, compressed like the originals."""
    m = scipy.io.loadmat(data_root / "penn_action" / "labels" / "0001.mat")
    m = {k: v for k, v in m.items() if not k.startswith("__")}
    m.update(fields)
    path = folder / f"{name}.mat"
    scipy.io.savemat(path, m, do_compression=True)
    return path


def _penn_zlib_bomb(path: Path, nbytes: int) -> Path:
    """A MATLAB v5 file whose one compressed element inflates to ``nbytes`` (x: doubles of zeros)."""
    import struct
    import zlib

    rows = nbytes // (13 * 8)
    head = (struct.pack("<II", 6, 8) + struct.pack("<II", 6, 0) + struct.pack("<II", 5, 8)
            + struct.pack("<ii", rows, 13) + struct.pack("<II", 1, 1) + b"x" + b"\0" * 7
            + struct.pack("<II", 9, rows * 13 * 8))
    z = zlib.compressobj(9)
    packed = z.compress(struct.pack("<II", 14, len(head) + rows * 13 * 8) + head)
    block = bytes(1 << 20)
    packed += b"".join(z.compress(block) for _ in range(rows * 13 * 8 >> 20)) + z.flush()
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    path.write_bytes(header + struct.pack("<II", 15, len(packed)) + packed)
    return path


def test_penn_files_claiming_too_much_or_holding_nan_are_one_error(data_root: Path, tmp_path: Path) -> None:
    copies = {  # 0001.mat with these fields
        "nan_dims": {"dimensions": np.array([[np.nan, 480, 151]])},
        "huge_dims": {"dimensions": np.array([[1e300, 480, 151]])},
        "nan_train": {"train": np.array([[np.nan]])},
        "huge_x": {"x": np.full((151, 13), 1e300)},
    }
    cases = {
        "bomb": (lambda folder: _penn_zlib_bomb(folder / "bomb.mat", 72 << 20),
                 r"bomb\.mat: its variables take more than 64 MiB once decompressed"),
        "v4": (lambda folder: (folder / "v4.mat").write_bytes(bytes(200)) and folder / "v4.mat",
               r"v4\.mat: not a MATLAB v5 file"),
        **{name: ((lambda folder, name=name: _penn_copy(data_root, folder, name, **copies[name])), pattern)
           for name, pattern in (("nan_dims", r"nan_dims\.mat: Penn Action field 'dimensions' must be three numbers"),
                                 ("huge_dims", r"huge_dims\.mat: bad image size 1e\+300x480"),
                                 ("nan_train", r"nan_train\.mat: Penn Action field 'train' must be a finite number"),
                                 ("huge_x", r"huge_x\.mat: non-finite joint coordinates"))},
    }
    batch = []
    for name, (make, pattern) in cases.items():
        folder = tmp_path / name / "labels"
        folder.mkdir(parents=True)
        path = make(folder)
        with pytest.raises(ConvertError, match=pattern):
            read_penn_mat(path)
        batch.append((["convert", "penn", folder.parent, "-o", folder.parent / "out.pkl"], folder.parent))
    for result, (name, (_, pattern)) in zip(run_cli_batch(batch, memory_limit=2 << 30), cases.items(), strict=True):
        assert_one_line_error(result, f"{name}.mat: ", pattern=pattern)

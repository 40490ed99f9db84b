"""``skelact convert numpy`` on .npy / .npz files written from real NW-UCLA (3D) and Penn Action
(2D) clips: exact values, labels and splits from a CSV, stored layouts, and refused inputs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from skelact.cli import main
from skelact.data.convert import ConvertError, convert_numpy
from skelact.data.convert.penn import read_penn_mat
from skelact.data.convert.ucla import UCLA_ACTIONS, UCLA_CLASSES, read_ucla_json
from skelact.data.io import load_annotations
from skelact.skeleton import get_layout, resolve_layout

pytestmark = pytest.mark.usefixtures("one_thread")

UCLA = ("a01_s01_e00_v01", "a02_s01_e00_v03", "a04_s02_e00_v02", "a12_s01_e01_v03")


def _ucla(data_root: Path, name: str) -> np.ndarray:
    return read_ucla_json(data_root / "nwucla" / "all_sqe" / f"{name}.json")[1]  # [T, 20, 3]


def _class_of(name: str) -> str:
    return UCLA_CLASSES[UCLA_ACTIONS.index(int(name[1:3]))]


@pytest.fixture(scope="module")
def ucla_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Three one-person clips as [T, 20, 3] .npy / .npz, one two-person clip [2, T, 20, 3] (two clips
    cut to the shorter), and a labels CSV with the action as class and the view's split."""
    root = tmp_path_factory.mktemp("numpy") / "ucla"
    root.mkdir()
    expected = {}
    for name in UCLA[:3]:
        sk = _ucla(data_root, name)
        expected[name] = sk[None]
        if name == UCLA[2]:
            np.savez_compressed(root / f"{name}.npz", keypoint=sk)
        else:
            np.save(root / f"{name}.npy", sk)
    a, b = _ucla(data_root, UCLA[3]), _ucla(data_root, UCLA[0])
    t = min(len(a), len(b))
    expected[UCLA[3]] = np.stack([a[:t], b[:t]])
    np.save(root / f"{UCLA[3]}.npy", expected[UCLA[3]])
    labels = root.parent / "labels.csv"
    names = [f"{n}.npy" for n in UCLA[:2]] + list(UCLA[2:])  # a file name or a stem
    splits = ["test" if n.endswith("v03") else "train" for n in UCLA]
    rows = [f'{f},"{_class_of(n)}",{s}' for f, n, s in zip(names, UCLA, splits, strict=True)]
    labels.write_text("name,label,split\n" + "\n".join(rows) + "\n")
    return root, labels, expected


def test_ucla_npy_npz_exact_with_labels_and_splits(ucla_dir, tmp_path: Path, capsys) -> None:
    root, labels, expected = ucla_dir
    out = tmp_path / "u.pkl"
    assert main(["convert", "numpy", str(root), "-o", str(out), "--labels", str(labels)]) == 0
    text = capsys.readouterr().out
    assert "numpy (ucla20, 3D): 4 clips converted from 4 files" in text and "img_shape" not in text
    data = load_annotations(out)
    assert data["layout"] == "ucla20" and data["classes"] == sorted({_class_of(n) for n in UCLA})
    assert data["split"] == {"train": [UCLA[0], UCLA[2]], "test": [UCLA[1], UCLA[3]]}
    for ann in data["annotations"]:
        name = ann["frame_dir"]
        np.testing.assert_array_equal(ann["keypoint"], expected[name])
        assert ann["keypoint"].dtype == np.float32 and ann["total_frames"] == expected[name].shape[1]
        assert data["classes"][ann["label"]] == _class_of(name) and "keypoint_score" not in ann
    assert [a["keypoint"].shape[0] for a in data["annotations"]] == [1, 1, 1, 2]
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "clips: 4" in info and "persons: min 1, max 2" in info and "test: 2 clips" in info


def test_penn_2d_with_scores_and_img_shape(data_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "penn"
    src.mkdir()
    anns = {n: read_penn_mat(data_root / "penn_action" / "labels" / f"{n}.mat")[0] for n in ("0001", "0002")}
    a, b = anns["0001"], anns["0002"]
    np.savez(src / "0001.npz", keypoint=a["keypoint"].astype(np.float64), keypoint_score=a["keypoint_score"])
    np.save(src / "0002.npy", np.concatenate([b["keypoint"][0], b["keypoint_score"][0][..., None]], -1))  # [T, 13, 3]
    with pytest.raises(ConvertError, match="0001.npz: has a 'keypoint_score' array and --with-score"):
        convert_numpy(src, with_score=True)
    (src / "0001.npz").unlink()
    np.savez(src / "0001.npz", keypoint=np.concatenate([a["keypoint"], a["keypoint_score"][..., None]], -1),
             fps=np.array(30))
    data, summary = convert_numpy(src, with_score=True, img_shape=(480, 640))
    assert data["layout"] == "penn13" and summary.dataset == "numpy (penn13, 2D)" and "classes" not in data
    assert summary.notes == {"files with arrays other than keypoint and keypoint_score (ignored)": 1}
    for ann in data["annotations"]:
        want = anns[ann["frame_dir"]]
        np.testing.assert_array_equal(ann["keypoint"], want["keypoint"])
        np.testing.assert_array_equal(ann["keypoint_score"], want["keypoint_score"])
        assert ann["img_shape"] == (480, 640) and ann["label"] == -1


def test_yaml_layout_is_stored_whole(ucla_dir, tmp_path: Path, capsys) -> None:
    root, _, _ = ucla_dir
    spec = get_layout("ucla20").to_dict()
    spec["name"] = "kinect_v1"
    good, bad = tmp_path / "kinect.yaml", tmp_path / "penn_like.yaml"
    good.write_text(json.dumps(spec))
    bad.write_text(json.dumps({**get_layout("penn13").to_dict(), "name": "penn_like"}))
    out = tmp_path / "u.pkl"
    assert main(["convert", "numpy", str(root), "-o", str(out), "--layout", str(good)]) == 0
    capsys.readouterr()
    data = load_annotations(out, allow_unlabeled=True)
    assert data["layout"] == spec and {a["label"] for a in data["annotations"]} == {-1}
    # A later step needs no YAML: the file's layout is the whole layout.
    assert resolve_layout(None, data["layout"], 20, str(out)).to_dict() == spec
    assert main(["convert", "numpy", str(root), "-o", str(tmp_path / "v.pkl"), "--layout", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{UCLA[0]}.npy: layout 'penn_like' has 13 joints but the data has 20" in err and err.count("\n") == 1
    assert not (tmp_path / "v.pkl").exists()


def _npy_header(path: Path, shape: tuple[int, ...], descr: str = "<f4", payload: bytes = b"\0" * 64) -> None:
    """A .npy file whose header says ``shape`` / ``descr``, followed by ``payload``."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)


BAD = {
    "nan": ("nan.npy", "NaN or inf"),
    "inf_score": ("s.npz", "keypoint_score values include NaN or inf"),
    "ndim": ("flat.npy", "expected [T, V, C] or [M, T, V, C]"),
    "channels": ("c5.npy", "C = 5 channels"),
    "object_npy": ("obj.npy", "an object array"),
    "object_npz": ("obj.npz: 'keypoint': an object array", "refused"),
    "huge_header": ("huge.npy", "larger than the 256 MB"),
    "truncated": ("short.npy", "truncated or corrupt"),
    "joints": ("b.npy", "[V, C] = [13, 3] but a.npy has [20, 3]"),
    "dims": ("b.npy", "[V, C] = [20, 2] but a.npy has [20, 3]"),
    "empty_array": ("e.npy", "is empty"),
    "not_npz": ("junk.npz", "not a valid .npz file"),
    "no_keypoint": ("k.npz", "no 'keypoint' array (it holds joints)"),
    "bool": ("bool.npy", "dtype bool is not a plain integer or float type"),
    "score_shape": ("s.npz", "keypoint_score has shape [1, 5, 19]"),
    "same_stem": ("a.npz", "clip name 'a' is also used by a.npy"),
    "empty_dir": ("in", "empty folder"),
    "no_arrays": ("in", "no .npy or .npz files"),
    "img_shape_3d": ("a.npy", "keypoints are 3D"),
    "unknown_joints": ("a.npy", "no built-in layout has 21 joints"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arrays_are_one_line(case: str, ucla_dir, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    good = ucla_dir[2][UCLA[0]][0]  # [T, 20, 3] real metres
    np.save(src / "a.npy", good)
    extra: list[str] = []
    if case == "nan":
        np.save(src / "nan.npy", np.where(np.arange(good.size).reshape(good.shape) == 7, np.nan, good))
    elif case == "inf_score":
        np.savez(src / "s.npz", keypoint=good, keypoint_score=np.full(good.shape[:2], np.inf))
    elif case == "ndim":
        np.save(src / "flat.npy", good[0])
    elif case == "channels":
        np.save(src / "c5.npy", np.ones((4, 20, 5), np.float32))
    elif case == "object_npy":
        np.save(src / "obj.npy", np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    elif case == "object_npz":
        np.savez(src / "obj.npz", keypoint=np.array([None, 1], dtype=object))
    elif case == "huge_header":
        _npy_header(src / "huge.npy", (10**12, 20, 3))
    elif case == "truncated":
        _npy_header(src / "short.npy", (100, 20, 3), payload=b"\0" * 1000)
    elif case == "joints":
        np.save(src / "b.npy", np.ones((4, 13, 3), np.float32))
    elif case == "dims":
        np.save(src / "b.npy", good[..., :2])
    elif case == "empty_array":
        np.save(src / "e.npy", np.zeros((0, 20, 3), np.float32))
    elif case == "not_npz":
        (src / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    elif case == "no_keypoint":
        np.savez(src / "k.npz", joints=good)
    elif case == "bool":
        np.save(src / "bool.npy", np.ones((4, 20, 3), bool))
    elif case == "score_shape":
        np.savez(src / "s.npz", keypoint=good[:5], keypoint_score=np.ones((5, 19), np.float32))
    elif case == "same_stem":
        np.savez(src / "a.npz", keypoint=good)
    elif case == "empty_dir":
        (src / "a.npy").unlink()
    elif case == "no_arrays":
        (src / "a.npy").unlink()
        (src / "a.txt").write_text("x")
    elif case == "img_shape_3d":
        extra = ["--img-shape", "480", "640"]
    elif case == "unknown_joints":
        np.save(src / "a.npy", np.ones((4, 21, 2), np.float32))
    out = tmp_path / "out.pkl"
    assert main(["convert", "numpy", str(src), "-o", str(out), *extra]) == 1
    err = capsys.readouterr().err
    where, what = BAD[case]
    assert err.startswith("skelact: error: ") and err.count("\n") == 1 and "unexpected" not in err, err
    assert where in err and what in err, err
    assert not out.exists() and not list(tmp_path.glob(".out.pkl*"))


def test_npz_member_header_is_checked_before_reading(tmp_path: Path) -> None:
    # A compressed member whose header claims 4 TB: refused from its header, nothing allocated.
    path = tmp_path / "bomb.npz"
    _npy_header(tmp_path / "m.npy", (10**12, 1000), payload=b"")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(tmp_path / "m.npy", "keypoint.npy")
    (tmp_path / "m.npy").unlink()
    with pytest.raises(ConvertError, match=r"bomb.npz: 'keypoint': its header claims an array of shape"):
        convert_numpy(path)

"""Annotation I/O: the restricted unpickler, validation errors, dtypes and atomic saving."""

from __future__ import annotations

import codecs
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from skelact.data.io import (
    AnnotationError,
    atomic_path,
    atomic_write,
    load_annotations,
    save_annotations,
    summarize,
    validate_annotations,
)


def make_clip(name: str = "c0", m: int = 2, t: int = 5, v: int = 17, label: int = 1, dtype=np.float32) -> dict:
    rng = np.random.default_rng(0)
    return {
        "frame_dir": name,
        "total_frames": t,
        "img_shape": (1080, 1920),
        "original_shape": (1080, 1920),
        "label": label,
        "keypoint": rng.uniform(0, 1000, (m, t, v, 2)).astype(dtype),
        "keypoint_score": rng.uniform(0, 1, (m, t, v)).astype(dtype),
    }


def make_data(n: int = 3, **kw) -> dict:
    anns = [make_clip(f"c{i}", label=i % 2, **kw) for i in range(n)]
    return {"split": {"train": ["c0", "c1"], "val": ["c2"]}, "annotations": anns, "classes": ["a", "b"]}


def dump(obj, path: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_load_any_float_dtype_and_protocol(tmp_path, protocol, dtype):
    data = make_data(dtype=dtype)
    expect = data["annotations"][1]["keypoint"].astype(np.float32)
    out = load_annotations(dump(data, tmp_path / "a.pkl", protocol))
    kp = out["annotations"][1]["keypoint"]
    assert kp.dtype == np.float32 and out["annotations"][1]["keypoint_score"].dtype == np.float32
    np.testing.assert_array_equal(kp, expect)
    assert out["split"] == {"train": ["c0", "c1"], "val": ["c2"]}


def test_numpy_scalar_fields_accepted(tmp_path):
    data = make_data()
    data["annotations"][0]["label"] = np.int64(1)
    data["annotations"][0]["total_frames"] = np.int32(5)
    out = load_annotations(dump(data, tmp_path / "a.pkl"))
    assert out["annotations"][0]["label"] == 1 and type(out["annotations"][0]["label"]) is int


class _Payload:
    """Unpickling this runs os.system, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    data = make_data()
    data["annotations"][0]["keypoint"] = _Payload(marker)
    path = dump(data, tmp_path / "evil.pkl")
    with pytest.raises(AnnotationError, match=r"evil\.pkl: refused to unpickle '(posix|os|nt)\.system'"):
        load_annotations(path)
    assert not marker.exists()
    # Sanity check of the test itself: plain pickle *would* have run the payload.
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


_reconstruct = np.zeros(1).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct


class _CraftedDtype:
    """Pickles as numpy.dtype('V8') whose state declares an object field but none of the flags
    that make numpy treat it as a reference: numpy's dtype.__setstate__ accepts that."""

    def __reduce__(self):
        return (np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))


class _PointerArray:
    """An array of that dtype whose 8 data bytes would be read as a PyObject pointer."""

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"),
                (1, (1,), _CraftedDtype(), False, (0x4141414141414141).to_bytes(8, "little")))


def test_crafted_dtype_cannot_build_a_pointer_array(tmp_path):
    # With numpy's own dtype/ndarray reconstruction this loads, and str(), repr() or indexing the
    # array dereferences 0x4141414141414141 (a segfault, or code execution with a prepared heap).
    data = make_data()
    data["extra"] = _PointerArray()
    with pytest.raises(AnnotationError, match=r"a\.pkl: refused to unpickle numpy dtype \|V8"):
        load_annotations(dump(data, tmp_path / "a.pkl", protocol=2))


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize(
    "payload, message",
    [
        (_Reduce(bytes, 2**62), r"refused to unpickle bytes\(\) of a size"),
        (_Reduce(bytearray, 2**62), r"refused to unpickle bytearray\(\) of a size"),
        (_Reduce(np.bytes_, 2**62), r"refused to unpickle a call of 'numpy.bytes_'"),
        (_Reduce(codecs.encode, "abc", "rot13"), r"refused to unpickle codecs.encode with encoding 'rot13'"),
        (_Reduce(_reconstruct, np.ma.MaskedArray, (0,), b"b"), r"refused to unpickle 'numpy\.ma\."),
        (_Reduce(np.dtype, "O"), r"refused to unpickle numpy dtype object"),
        (_Reduce(np.dtype, "f4,O"), r"refused to unpickle numpy dtype"),
        (_Reduce(np.dtype, "U0"), r"refused to unpickle numpy dtype <U0 of size 0"),
    ],
    ids=["bytes", "bytearray", "np.bytes_", "codec", "ndarray subclass", "object dtype", "structured dtype",
         "zero-size dtype"],
)
def test_allowed_globals_cannot_be_abused(tmp_path, payload, message):
    path = dump({"annotations": [], "x": payload}, tmp_path / "p.pkl", protocol=2)
    with pytest.raises(AnnotationError, match=r"p\.pkl: " + message):
        load_annotations(path)


def test_deeply_nested_pickle_is_an_annotation_error(tmp_path):
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".")  # [[[...]]] 200k deep
    with pytest.raises(AnnotationError, match=r"deep\.pkl: not a valid annotation pickle"):
        load_annotations(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_numpy_content_round_trips_through_the_safe_loader(tmp_path, protocol):
    shared = np.arange(3.0)
    extra = {
        "be": np.arange(4, dtype=">f8"), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        # dense but neither C nor F order, like np.stack of two Fortran arrays (the Penn converter's output)
        "permuted": np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1),
        "zero_d": np.array(3.5), "str": np.array(["ab", "cde"]), "bytes": np.array([b"ab", b"c"]),
        "bool": np.array([True, False]), "u8": np.arange(3, dtype=np.uint8),
        "scalars": [np.float32(1.5), np.int64(-7), np.bool_(True), np.str_("x")],
        "dtypes": [np.dtype("f4"), np.dtype(">i2"), np.dtype("U7")], "types": [np.float32, np.int64, np.bool_],
        "od": OrderedDict(a=1), "set": {1, 2}, "raw": b"\x00\xff", "shared": [shared, shared], "tup": (shared, 1j),
    }
    data = make_data()
    data["extra"] = extra
    path = dump(data, tmp_path / "a.pkl", protocol)
    out = load_annotations(path)["extra"]
    with open(path, "rb") as f:
        ref = pickle.load(f)["extra"]  # what numpy itself makes of the file (>f8 becomes native below protocol 5)
    for key in ("be", "fortran", "permuted", "zero_d", "str", "bytes", "bool", "u8"):
        assert type(out[key]) is np.ndarray and out[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(out[key], extra[key])
    assert out["fortran"].flags.f_contiguous
    assert [type(x) for x in out["scalars"]] == [type(x) for x in extra["scalars"]]
    assert out["scalars"] == extra["scalars"]
    assert out["dtypes"] == extra["dtypes"] and out["types"] == extra["types"]
    assert out["od"] == extra["od"] and out["set"] == {1, 2} and out["raw"] == b"\x00\xff"
    assert out["shared"][0] is out["shared"][1] is out["tup"][0] and type(out["tup"][0]) is np.ndarray


def test_other_globals_refused(tmp_path):
    path = dump({"annotations": [Path("x")]}, tmp_path / "p.pkl")
    with pytest.raises(AnnotationError, match=r"p\.pkl: refused to unpickle 'pathlib"):
        load_annotations(path)


def test_not_a_pickle_and_missing_file(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"this is not a pickle")
    with pytest.raises(AnnotationError, match=r"bad\.pkl: not a valid annotation pickle"):
        load_annotations(bad)
    with pytest.raises(AnnotationError, match=r"nope\.pkl: file not found"):
        load_annotations(tmp_path / "nope.pkl")


def _mutate(fn):
    data = make_data()
    fn(data)
    return data


BAD_CASES = [
    ("missing key", lambda d: d["annotations"][1].pop("label"), r"clip 'c1': missing key\(s\) 'label'"),
    ("keypoint ndim", lambda d: d["annotations"][0].__setitem__("keypoint", np.zeros((5, 17, 2), np.float32)),
     r"clip 'c0': 'keypoint' must be \[M, T, V, C\], got shape \[5, 17, 2\]"),
    ("score shape", lambda d: d["annotations"][2].__setitem__("keypoint_score", np.zeros((2, 4, 17), np.float32)),
     r"clip 'c2': 'keypoint_score' shape \[2, 4, 17\] does not match"),
    ("score ndim", lambda d: d["annotations"][2].__setitem__("keypoint_score", np.zeros((2, 5), np.float32)),
     r"clip 'c2': 'keypoint_score' must be \[M, T, V\]"),
    ("T != total_frames", lambda d: d["annotations"][1].__setitem__("total_frames", 7),
     r"clip 'c1': 'total_frames' is 7 but keypoint has T = 5"),
    ("nan", lambda d: d["annotations"][0]["keypoint"].__setitem__((0, 1, 2, 0), np.nan),
     r"clip 'c0': 'keypoint' has non-finite values"),
    ("inf score", lambda d: d["annotations"][0]["keypoint_score"].__setitem__((0, 1, 2), np.inf),
     r"clip 'c0': 'keypoint_score' has non-finite values"),
    ("negative label", lambda d: d["annotations"][1].__setitem__("label", -1), r"clip 'c1': 'label' -1 is negative"),
    ("label too big", lambda d: d["annotations"][1].__setitem__("label", 2),
     r"clip 'c1': 'label' 2 is out of range for 2 classes"),
    ("empty T", lambda d: d["annotations"][0].update(keypoint=np.zeros((1, 0, 17, 2), np.float32),
                                                     keypoint_score=np.zeros((1, 0, 17), np.float32), total_frames=0),
     r"clip 'c0': empty clip"),
    ("empty M", lambda d: d["annotations"][0].update(keypoint=np.zeros((0, 5, 17, 2), np.float32),
                                                     keypoint_score=np.zeros((0, 5, 17), np.float32)),
     r"clip 'c0': empty clip"),
    ("unknown split clip", lambda d: d["split"]["val"].append("ghost"), r"split 'val' names unknown clip 'ghost'"),
    ("duplicate clip", lambda d: d["annotations"][1].__setitem__("frame_dir", "c0"), r"clip 'c0': duplicate frame_dir"),
    ("mixed joints", lambda d: d["annotations"].append(make_clip("c9", v=13, label=0)),
     r"clip 'c9': keypoint has \[V, C\] = \[13, 2\] but earlier clips have \[17, 2\]"),
    ("split member not a name", lambda d: d["split"]["val"].append(["c0"]),
     r"split 'val' holds a list of 1 item, not a clip name"),
    ("no annotations", lambda d: d.__setitem__("annotations", []), r"no annotations"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validation_errors_name_file_and_clip(tmp_path, case):
    _, mutate, pattern = case
    path = dump(_mutate(mutate), tmp_path / "ann.pkl")
    with pytest.raises(AnnotationError, match=r"ann\.pkl: " + pattern):
        load_annotations(path)


def test_object_array_refused_on_load_and_named_in_memory(tmp_path):
    data = make_data()
    data["annotations"][0]["keypoint"] = np.empty((1, 5, 17, 2), object)
    with pytest.raises(AnnotationError, match=r"ann\.pkl: refused to unpickle .*object arrays are not allowed"):
        load_annotations(dump(data, tmp_path / "ann.pkl"))
    with pytest.raises(AnnotationError, match=r"clip 'c0': 'keypoint' has non-numeric dtype object"):
        validate_annotations(data)


def test_num_classes_argument_bounds_labels():
    data = make_data()
    del data["classes"]
    with pytest.raises(AnnotationError, match="out of range for 1 classes"):
        validate_annotations(data, num_classes=1)


def test_unlabeled_allowed_only_when_asked():
    data = make_data()
    data["annotations"][0]["label"] = -1
    validate_annotations(data, allow_unlabeled=True)
    with pytest.raises(AnnotationError, match="negative"):
        validate_annotations(data)


def test_save_is_atomic_and_refuses_overwrite(tmp_path):
    out = tmp_path / "out.pkl"
    save_annotations(make_data(), out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="out.pkl: already exists"):
        save_annotations(make_data(), out)
    bad = make_data()
    bad["annotations"][0]["label"] = 5
    with pytest.raises(AnnotationError):
        save_annotations(bad, out, force=True)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.pkl"]  # no temporary file left behind
    save_annotations(make_data(n=4), out, force=True)
    assert len(load_annotations(out)["annotations"]) == 4


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "f.bin"
    atomic_write(out, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(out, fail)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with pytest.raises(FileExistsError, match="f.bin: already exists"):
        atomic_write(out, lambda f: f.write(b"new"), force=False)
    assert out.read_bytes() == b"old"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_write_gives_new_files_the_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = atomic_write(tmp_path / "sub" / "f.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_path_yields_a_fresh_file_with_the_suffix(tmp_path):
    out = tmp_path / "video.mp4"
    with atomic_path(out, suffix=".tmp.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.mp4") and tmp.read_bytes() == b""
        assert not out.exists()
        tmp.write_bytes(b"frames")
    assert out.read_bytes() == b"frames" and not tmp.exists()


def test_summary_counts():
    text = summarize(validate_annotations(make_data(n=3)))
    assert "clips: 3" in text
    assert "train: 2 clips" in text and "val: 1 clips" in text
    assert "frames: min 5, median 5, max 5" in text
    assert "17 joints, 2D, with scores" in text

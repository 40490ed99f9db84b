"""Hostile and careless annotation pickles (issue #13, data part): each is built here, refused with
one line naming the file, fast and in bounded memory, through the API and through the CLI
(``info``, ``train``, ``test``, ``predict``); legitimate files keep loading."""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import struct
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import yaml
from hostile import assert_one_line_error, run_cli_batch
from synthetic import TINY_MODEL, penn_clip

from skelact.checkpoint import Checkpoint
from skelact.data.io import AnnotationError, load_annotations, save_annotations, validate_annotations
from skelact.data.pickle_scan import MAX_DEPTH
from skelact.models.weights import DEFAULT_PRETRAINED, get_weights
from skelact.skeleton import get_layout

SHIPPED = get_weights(DEFAULT_PRETRAINED)

# ------------------------------------------------------------------------------- building files


def valid_data(n: int = 4, frames: int = 20) -> dict:
    """Penn-like 2D clips (13 joints, scores, 480x360), splits train/test, two classes."""
    rng = np.random.default_rng(0)
    anns = [penn_clip(f"c{i}", i % 2, frames, rng) for i in range(n)]
    names = [a["frame_dir"] for a in anns]
    return {"split": {"train": names[: n // 2], "test": names[n // 2:]}, "annotations": anns,
            "classes": ["a", "b"], "layout": "penn13"}


def _unicode(text: str) -> bytes:  # BINUNICODE
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _put(i: int) -> bytes:  # LONG_BINPUT
    return b"r" + struct.pack("<I", i)


def _get(i: int) -> bytes:  # LONG_BINGET
    return b"j" + struct.pack("<I", i)


def _memo_size(blob: bytes) -> int:
    return sum(op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE") for op, _, _ in pickletools.genops(blob))


def replace_top(data: dict, key: str, value_ops: bytes) -> bytes:
    """``data`` pickled (protocol 2) with ``data[key]`` then set to the value ``value_ops`` build:
    opcodes written by hand, appended before STOP while the top dict is on the stack."""
    blob = pickle.dumps(data, protocol=2)
    assert blob.endswith(b".")
    return blob[:-1] + _unicode(key) + value_ops + b"s."


def deep_tuple(depth: int) -> bytes:
    """('a',) nested ``depth`` times with TUPLE1 (the C unpickler builds it without recursing)."""
    return _unicode("a") + b"\x85" * depth


def shared_tuple(base: int, fan_out: int = 10, depth: int = 9) -> bytes:
    """T_0 = ('x',), T_k = (T_{k-1},) * fan_out through the memo: a few hundred bytes, and hashing
    T_depth visits fan_out ** depth tuples. ``base``: the memo entries already in use."""
    ops = _unicode("x") + b"\x85" + _put(base) + b"0"  # memoised, then popped (POP)
    for k in range(1, depth + 1):
        ops += b"(" + _get(base + k - 1) * fan_out + b"t" + _put(base + k) + (b"0" if k < depth else b"")
    return ops


def memo_nested_lists(depth: int) -> bytes:
    """[[[...]]] ``depth`` deep, built through the memo with a stack two slots high (so the scan's
    depth count, which follows the stack, does not see it): L_k is appended to L_{k-1} by GETs."""
    levels = (b"]" + _put(k) + b"0" + _get(k - 1) + _get(k) + b"a0" for k in range(1, depth + 1))
    return b"\x80\x02]" + _put(0) + b"".join(levels) + b"."


def memo_bomb(fan_out: int = 10, depth: int = 6) -> list:
    """A list shared through the pickle's memo: printing it writes fan_out ** depth zeros."""
    bomb: list = [0]
    for _ in range(depth):
        bomb = [bomb] * fan_out
    return bomb


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


_SHARED_LIST = list(range(10_000))
_SHARED_BYTES = bytearray(1 << 20)


def _with(mutate) -> dict:
    data = valid_data()
    mutate(data)
    return data


def _shared_tuple_split() -> bytes:
    data = valid_data()
    base = _memo_size(pickle.dumps(data, protocol=2))
    return replace_top(data, "split", b"}" + shared_tuple(base) + b"]" + _unicode("c0") + b"as")


# name -> (file content, the message after the file name)
HOSTILE: dict[str, tuple[object, str]] = {
    # 1. a tuple nested 10^6 deep used as a dict key: the C unpickler's hash overflowed the stack
    "deep tuple key (1 MB)": (b"\x80\x02}X\x01\x00\x00\x00a" + b"\x85" * 10**6 + b"]s.",
                              rf"nested deeper than {MAX_DEPTH} levels"),
    # 2. a tuple nested 5,000 deep as a split name in an otherwise valid file
    "deep tuple split name": (replace_top(valid_data(), "split", b"}" + deep_tuple(5000) + b"]s"),
                              rf"nested deeper than {MAX_DEPTH} levels"),
    "tuple split name": (replace_top(valid_data(), "split", b"}" + deep_tuple(3) + b"]s"),
                         r"refused to unpickle a container or tuple as a dict key"),
    "list nested 10^5 deep through the memo": (memo_nested_lists(100_000), r"nested too deeply"),
    # 3. memo bombs: 10 ** 6 and 10 ** 9 leaves in a few kilobytes
    "memo bomb label (depth 6)": (_with(lambda d: d["annotations"][1].__setitem__("label", memo_bomb(10, 6))),
                                  r"clip 'c1': 'label' must be an integer, got a list of 10 items$"),
    "memo bomb label (depth 9)": (_with(lambda d: d["annotations"][1].__setitem__("label", memo_bomb(10, 9))),
                                  r"clip 'c1': 'label' must be an integer, got a list of 10 items$"),
    "memo bomb total_frames": (_with(lambda d: d["annotations"][0].__setitem__("total_frames", memo_bomb(10, 9))),
                               r"clip 'c0': 'total_frames' must be an integer, got a list of 10 items$"),
    "memo bomb split member": (_with(lambda d: d["split"]["test"].append(memo_bomb(10, 9))),
                               r"split 'test' holds a list of 10 items, not a clip name$"),
    "shared tuple split name": (_shared_tuple_split(), r"refused to unpickle a container or tuple as a dict key"),
    # 4. the annotations list as a label
    "label is the annotations": (_with(lambda d: d["annotations"][2].__setitem__("label", d["annotations"])),
                                 r"clip 'c2': 'label' must be an integer, got a list of 4 items$"),
    # 5. sizes given as a pickled numpy.int64, and a large bytes value
    "bytearray(np.int64(2e9))": (_with(lambda d: d["annotations"][0].__setitem__(
        "original_shape", _Reduce(bytearray, np.int64(2_000_000_000)))),
        r"refused to unpickle bytearray\(\) of a size"),
    "list(bytes(np.int64(3e8)))": (_with(lambda d: d["annotations"][0].__setitem__(
        "original_shape", _Reduce(list, _Reduce(bytes, np.int64(300_000_000))))),
        r"refused to unpickle a call of 'builtins.list'"),
    "bytes(np.int64(2e9))": (_with(lambda d: d["annotations"][0].__setitem__(
        "original_shape", _Reduce(bytes, np.int64(2_000_000_000)))), r"refused to unpickle bytes\(\) of a size"),
    "8 MB bytes as original_shape": (_with(lambda d: d["annotations"][0].__setitem__("original_shape", bytes(8 << 20))),
                                     r"clip 'c0': 'original_shape' must be \(height, width\) in pixels, got b'\\x00"),
    # 6. arrays where numbers belong
    "one-hot label": (_with(lambda d: d["annotations"][1].__setitem__("label", np.eye(2)[1])),
                      r"clip 'c1': 'label' must be an integer, got an array of shape \[2\] \(float64\)$"),
    "30x2 img_shape": (_with(lambda d: d["annotations"][1].__setitem__("img_shape", np.ones((30, 2), int))),
                       r"clip 'c1': 'img_shape' must be \(height, width\) in pixels, got an array of shape \[30, 2\]"),
    # 7. careless files: one clip without scores
    "one clip without keypoint_score": (_with(lambda d: d["annotations"][2].pop("keypoint_score")),
                                        r"clip 'c2': has no 'keypoint_score' but earlier clips have one"),
    "only a later clip with keypoint_score": (
        _with(lambda d: [a.pop("keypoint_score") for a in d["annotations"][:3]]),
        r"clip 'c3': has a 'keypoint_score' but earlier clips have none"),
    "float64 keypoint beyond float32": (_with(lambda d: d["annotations"][1].__setitem__(
        "keypoint", np.full((1, 20, 13, 2), 1e300))), r"clip 'c1': 'keypoint' has non-finite values"),  # no warning
    # sizes a small file claims: the memo, a byte string, a frame
    "memo index 2**32-1": (b"\x80\x02]r\xff\xff\xff\xff.", r"memo index 4294967295 beyond the 0 entries"),
    "bytes of 2**40": (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"\x00.", r"ends in the middle of it"),
    "frame of 2**40": (b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"N.", r"ends inside the frame"),
    "str() of a memo bomb": (_with(lambda d: d.__setitem__("extra", _Reduce(str, memo_bomb(10, 9)))),
                             r"refused to unpickle a call of 'builtins.str'"),
    "numpy.float32() of a memo bomb": (_with(lambda d: d.__setitem__("extra", _Reduce(np.float32, memo_bomb(10, 9)))),
                                       r"refused to unpickle a call of 'numpy.float32'"),
    "set of tuples": (_with(lambda d: d.__setitem__("extra", _Reduce(set, [(1, 2)]))),
                      r"refused to unpickle a set of anything but plain values"),
    "state of a class (BUILD)": (b"\x80\x02c__builtin__\nlist\n}X\x01\x00\x00\x00aK\x01sb.",
                                 r"refused to unpickle object state \(BUILD\) for anything but a numpy array"),
    "numpy scalar without data": (_with(lambda d: d.__setitem__(
        "extra", _Reduce(np.zeros(1).sum().__reduce__()[0], np.dtype("S2000000000")))),
        r"refused to unpickle a numpy scalar whose data is not the 2000000000 bytes"),
    # one large value handed to many calls (or split names) through the memo
    "set() of one shared list, 10^4 times": (_with(lambda d: d.__setitem__(
        "extra", [_Reduce(set, _SHARED_LIST) for _ in range(10_000)])), r"more than 4x its size in copies"),
    "bytes() of one shared 1 MB bytearray, 1000 times": (_with(lambda d: d.__setitem__(
        "extra", [_Reduce(bytes, _SHARED_BYTES) for _ in range(1000)])), r"more than 4x its size in copies"),
    "one split list under 10^5 names": (_with(lambda d: d.__setitem__(
        "split", {f"s{i}": d["split"]["train"] for i in range(100_000)})),
        r"its splits list more than 64 clip names per clip \(100,000 splits for 4 clips\)"),
    "INST opcode": (b"(i__builtin__\nlist\n.", r"refused to unpickle class instances \(INST\)"),
    "protocol 9": (b"\x80\x09N.", r"unsupported protocol 9"),
    "empty file": (b"", r"empty file"),
}


def _content(value: object) -> bytes:
    return value if isinstance(value, bytes) else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pickle_is_one_short_error(tmp_path: Path, name: str) -> None:
    content, pattern = HOSTILE[name]
    path = tmp_path / "hostile.pkl"
    path.write_bytes(_content(content))
    t0 = time.perf_counter()
    with pytest.raises(AnnotationError) as info:
        load_annotations(path)
    message = str(info.value)
    assert time.perf_counter() - t0 < 10
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) <= 300, message
    assert re.search(pattern, message[len(str(path)) + 2:]), message


def test_hostile_pickles_through_skelact_info(tmp_path: Path) -> None:
    cases = []
    for i, (content, _) in enumerate(HOSTILE.values()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        (folder / "ann.pkl").write_bytes(_content(content))
        cases.append((["info", folder / "ann.pkl"], folder))
    for result, (_, pattern) in zip(run_cli_batch(cases), HOSTILE.values(), strict=True):
        assert_one_line_error(result, "ann.pkl: ", pattern=pattern, max_seconds=30)  # the args name the case


def _recipe(folder: Path, ann: Path) -> Path:
    """A tiny ST-GCN++ recipe on ``ann`` (normalize: image, the default, spelled out)."""
    cfg = {"data": {"ann_file": str(ann), "clip_len": 8, "max_persons": 1, "features": ["joint"],
                    "normalize": "image", "batch_size": 2, "num_workers": 0, "num_clips_val": 1},
           "model": TINY_MODEL, "optim": {"name": "sgd", "lr": 0.05, "epochs": 2}, "seed": 0, "device": "cpu"}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _missing_img_shape_late() -> dict:
    """Valid for `info`; the last training clip lacks img_shape (it crashed training in epoch 2)."""
    data = valid_data(n=8)
    data["split"] = {"train": [f"c{i}" for i in range(6)], "test": ["c6", "c7"]}
    del data["annotations"][5]["img_shape"]
    return data


def test_train_test_predict_refuse_hostile_and_careless_files(tmp_path: Path) -> None:
    """Items 1, 2 and 7 under train, test and predict: refused before any work, nothing written."""
    penn = get_layout("penn13")
    files = {
        "deep_key": HOSTILE["deep tuple key (1 MB)"][0],
        "deep_split": HOSTILE["deep tuple split name"][0],
        "no_score": _content(HOSTILE["one clip without keypoint_score"][0]),
        "no_img_shape": _content(_missing_img_shape_late()),
    }
    # A Penn-classed copy for `test` with the shipped Penn model (its 15 classes, penn13 layout).
    penn_like = valid_data(n=8)  # c7, in the test split, lacks img_shape
    del penn_like["annotations"][7]["img_shape"]
    penn_like["classes"] = Checkpoint.load(SHIPPED).classes
    penn_like["layout"] = penn.name
    files["penn_no_img_shape"] = _content(penn_like)
    cases, expect = [], []
    for name, content in files.items():
        folder = tmp_path / name
        folder.mkdir()
        ann = folder / "ann.pkl"
        ann.write_bytes(content)
        recipe = _recipe(folder, ann)
        if name == "penn_no_img_shape":
            cases.append((["test", "--checkpoint", SHIPPED, "--set", f"data.ann_file={ann}", "data.val_split=test",
                           "data.normalize=image", "--out-dir", folder / "out"], folder))
            expect.append(r"clip 'c7' has no 'img_shape' \(h, w\), which data.normalize: image needs")
            continue
        pattern = {"deep_key": "nested deeper", "deep_split": "nested deeper",
                   "no_score": "clip 'c2': has no 'keypoint_score'",
                   "no_img_shape": r"clip 'c5' has no 'img_shape' \(h, w\), which data.normalize: image needs "
                                   r"\(1 of 6 clips lack it\)"}[name]
        cases.append((["train", recipe, "--work-dir", folder / "work"], folder))
        expect.append(pattern)
        if name != "no_img_shape":
            cases.append((["predict", ann, "--clip", "c0"], folder))
            expect.append(pattern)
            cases.append((["test", "--checkpoint", SHIPPED, "--set", f"data.ann_file={ann}", "data.val_split=test",
                           "--out-dir", folder / "out"], folder))
            expect.append(pattern)
    for result, pattern in zip(run_cli_batch(cases), expect, strict=True):
        assert_one_line_error(result, "ann.pkl", pattern=pattern)


# ------------------------------------------------------------------------------------ the API


def test_shared_arrays_beyond_the_file_are_refused(tmp_path: Path) -> None:
    """300 clips holding one 416 KB array through the memo: 125 MB of clips from a 450 KB file."""
    data = valid_data(n=300)
    shared = np.ones((1, 2000, 13, 2), np.float64)  # 416 KB
    for ann in data["annotations"]:
        ann.update(keypoint=shared, total_frames=2000, keypoint_score=None)
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(AnnotationError, match=r"shared\.pkl: clip 'c\d+': its 'keypoint' is one array shared with "
                                              r"other clips"):
        load_annotations(path)
    # A few clips sharing a placeholder array are fine.
    small = valid_data(n=3)
    score = small["annotations"][0]["keypoint_score"]
    for ann in small["annotations"]:
        ann["keypoint_score"] = score
    path.write_bytes(pickle.dumps(small, protocol=4))
    out = load_annotations(path)
    np.testing.assert_array_equal(out["annotations"][2]["keypoint_score"], score.astype(np.float32))


def test_legitimate_files_keep_loading(tmp_path: Path) -> None:
    """OrderedDicts, numpy scalars, a layout dict, types and sets as values, every protocol (also
    after pickletools.optimize), numpy 1.x module names."""
    data = valid_data(n=3)
    expect = [a["keypoint"].copy() for a in data["annotations"]]
    data["annotations"][0] = OrderedDict(data["annotations"][0])
    data["annotations"][1]["label"] = np.int64(1)
    data["annotations"][1]["total_frames"] = np.int32(20)
    data["layout"] = get_layout("penn13").to_dict()
    data["split"] = OrderedDict(data["split"])
    data["extra"] = [set, complex, OrderedDict, bytes, frozenset({3}), {1, 2}, 1j, bytearray(b"ab"), np.float32]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        blob = pickle.dumps(data, protocol=protocol)
        for i, content in enumerate((blob, pickletools.optimize(blob))):
            path = tmp_path / f"p{protocol}_{i}.pkl"
            path.write_bytes(content)
            out = load_annotations(path)
            assert [a["label"] for a in out["annotations"]] == [0, 1, 0] and out["layout"]["joints"][0] == "head"
            assert out["extra"] == data["extra"] and type(out["annotations"][0]) is OrderedDict
            for ann, kp in zip(out["annotations"], expect, strict=True):
                np.testing.assert_array_equal(ann["keypoint"], kp)
    # NumPy 1.x wrote numpy.core.multiarray (PYSKL's files): protocol 2 names globals in text lines.
    old = pickle.dumps(valid_data(n=2), protocol=2).replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"numpy.core.multiarray" in old
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(old)
    np.testing.assert_array_equal(load_annotations(path)["annotations"][1]["keypoint"],
                                  valid_data(n=2)["annotations"][1]["keypoint"])


def test_save_annotations_refuses_mixed_scores_and_writes_nothing(tmp_path: Path) -> None:
    data = valid_data()
    data["annotations"][3]["keypoint_score"] = None
    with pytest.raises(AnnotationError, match=r"out\.pkl: clip 'c3': has no 'keypoint_score' but earlier clips"):
        save_annotations(data, tmp_path / "out.pkl")
    assert not list(tmp_path.iterdir())
    validate_annotations(valid_data())  # the unmodified data is fine


def test_special_files_are_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.pkl"
    os.mkfifo(fifo)  # open() would block until someone writes
    for path, message in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                          (tmp_path, "is a directory")):
        with pytest.raises(AnnotationError, match=f"{path}: {message}"):
            load_annotations(path)

"""Checkpoints (skelact.checkpoint): pickled payloads, damaged and foreign files, and resuming from
them are one line, a non-zero exit, no traceback, nothing written.

Each case builds its bad input itself and runs the command the way a user does (``test``,
``predict``, ``export``, ``train --resume``); ``hostile.expect_error`` checks the promise.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import expect_error
from synthetic import make_dataset

from skelact.checkpoint import Checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


class _Payload:
    """Pickles as a call that would create ``marker`` (it must never run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _pickled_payloads(folder: Path, good: Path) -> dict[str, Path]:
    marker = folder / "PWNED"
    out = {}
    for name, obj, legacy in (("top.pt", _Payload(marker), False),
                              ("nested.pt", {"model": {"w": _Payload(marker)}, "classes": ["a"]}, False),
                              ("legacy.pt", {"model": _Payload(marker)}, True)):
        path = folder / name
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        out[name] = path
    # A real checkpoint whose data.pkl was replaced by a payload.
    swapped = folder / "swapped.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(swapped, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(_Payload(marker), protocol=2)
            dst.writestr(item, data)
    out["swapped.pt"] = swapped
    return out


def test_pickled_payloads_are_refused_naming_the_global(run: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name, path in _pickled_payloads(tmp_path, run["ckpt"]).items():
        for args in (["test", "--checkpoint", str(path), "--out-dir", str(tmp_path / "t")],
                     ["predict", str(run["data"]), "--clip", "c0_00", "--model", str(path)],
                     ["export", str(path), "-o", str(tmp_path / "x.onnx")]):
            line = expect_error(capsys, args, [name, "refused to load", "could run code"], [tmp_path])
            assert "system" in line, line  # the refused global is named (posix.system / os.system)
    assert not (tmp_path / "PWNED").exists()


def _state(run: dict[str, Path]) -> dict:
    return torch.load(run["ckpt"], weights_only=True)


def _variants(run: dict[str, Path], folder: Path) -> dict[str, tuple[bytes | object, str]]:
    """name -> (file content or object to torch.save, expected text in the error)."""
    good = run["ckpt"].read_bytes()
    state = _state(run)

    def edit(**changes: object) -> dict:
        s = dict(state)
        for k, v in changes.items():
            if v is None:
                s.pop(k)
            else:
                s[k] = v
        return s

    kpc = Checkpoint(torch.nn.Linear(2, 2).state_dict(), Checkpoint.from_state(state).config, ["a", "b", "c"],
                     Checkpoint.from_state(state).layout, 5).to_state()
    return {
        "truncated.pt": (good[: len(good) // 2], "truncated or not a PyTorch file"),
        "random.pt": (np.random.default_rng(0).bytes(4096), "not a readable checkpoint"),
        "empty.pt": (b"", "empty file"),
        "text.pt": (b"model: yes\nclasses: [a, b]\n", "not a readable checkpoint"),
        "dict.pt": ({"a": 1}, "missing model, config, classes, layout, in_channels"),
        "list.pt": ([1, 2, 3], "not a mapping"),
        "classes_int.pt": (edit(classes=3), "'classes' must be a non-empty list"),
        "in_channels_str.pt": (edit(in_channels="five"), "'in_channels' must be an integer"),
        "epoch_str.pt": (edit(epoch="two"), "'epoch' must be an integer"),
        "layout_bad.pt": (edit(layout={"joints": ["a"], "edges": 5}), "'edges' must be a list"),
        "config_bad.pt": (edit(config={"optim": {"lr": "fast"}}), "invalid stored config"),
        "other_weights.pt": (kpc, "weights do not fit"),
        "other_classes.pt": (edit(classes=["a", "b"]), "weights do not fit"),
    }


def _write_variant(path: Path, content: bytes | object) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


def test_bad_checkpoints_one_line_for_test_predict_export(run: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for name, (content, needle) in _variants(run, tmp_path).items():
        path = _write_variant(tmp_path / name, content)
        for args in (["test", "--checkpoint", str(path), "--out-dir", str(tmp_path / "t")],
                     ["predict", str(run["data"]), "--clip", "c0_00", "--model", str(path)],
                     ["export", str(path), "-o", str(tmp_path / "x.onnx")]):
            expect_error(capsys, args, [name, needle], [tmp_path])


def _resume_dir(run: dict[str, Path], folder: Path, content: bytes | object) -> Path:
    work = folder / "work"
    shutil.copytree(run["work"], work)
    _write_variant(work / "last.pt", content)
    return work


def test_resume_refuses_bad_or_foreign_checkpoints(run: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    state = _state(run)
    cases = {
        **{k: v for k, v in _variants(run, tmp_path).items() if k in ("truncated.pt", "dict.pt", "epoch_str.pt")},
        "other_weights.pt": ({**state, "model": torch.nn.Linear(2, 2).state_dict()}, "weights do not fit"),
        "no_optimizer.pt": ({k: v for k, v in state.items() if k != "optimizer"}, "no training state"),
        "bad_rng.pt": ({**state, "rng": {"torch": torch.zeros(3, dtype=torch.uint8)}}, "malformed RNG state"),
        "bad_opt.pt": ({**state, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}}, "cannot resume"),
    }
    for i, (content, needle) in enumerate(cases.values()):
        work = _resume_dir(run, tmp_path / str(i), content)
        args = ["train", str(run["recipe"]), "--work-dir", str(work), "--resume"]
        expect_error(capsys, args, ["last.pt", needle], [work])


def test_resume_with_another_recipe_names_what_differs(run: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    work = _resume_dir(run, tmp_path, run["ckpt"].read_bytes())
    base = ["train", str(run["recipe"]), "--work-dir", str(work), "--resume"]
    expect_error(capsys, [*base, "--set", "optim.lr=0.01"], ["cannot resume", "optim.lr (0.05 -> 0.01)"], [work])
    expect_error(capsys, [*base, "--set", "data.features=[joint]"], ["cannot resume", "C=5"], [work])
    # Other classes in the data: a file with four classes.
    data4 = make_dataset(tmp_path / "four.pkl", classes=4)
    expect_error(capsys, [*base, "--set", f"data.ann_file={data4}"], ["cannot resume", "3 classes", "4"], [work])


def test_pickle_text_for_checkpoints_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A huge value in a foreign checkpoint is quoted briefly."""
    path = tmp_path / "huge.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "config": {}, "classes": "x" * 100_000, "layout": "penn13",
                "in_channels": 3}, path)
    buf = io.StringIO()
    with pytest.raises(Exception) as e:
        Checkpoint.load(path)
    print(e.value, file=buf)
    assert len(str(e.value)) < 300 and "classes" in str(e.value)

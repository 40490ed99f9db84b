"""Bad checkpoints, recipes, options and outputs: one line, a non-zero exit, no traceback, nothing written.

Each case builds its bad input itself and runs the command the way a user does. ``expect_error``
checks the shared promise: exit status, a single line starting ``skelact: error:`` that names the
file or option at fault, at most ~300 characters, and no file added to or changed in the folders
watched.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from synthetic import make_dataset, penn_clip, recipe

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.config import config_from_dict
from skelact.data.io import save_annotations
from skelact.engine.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


def _snapshot(folders: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in Path(f).rglob("*") if p.is_file()}


def expect_error(capsys: pytest.CaptureFixture[str], args: list[str], needles: Sequence[str],
                 watch: Sequence[Path] = (), status: int = 1) -> str:
    """Run ``skelact ARGS``; assert the one-line error promise and that ``watch`` is unchanged."""
    before = _snapshot(watch)
    capsys.readouterr()
    if status == 2:
        with pytest.raises(SystemExit) as e:
            main(args)
        code = e.value.code
    else:
        code = main(args)
    err = capsys.readouterr().err
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("skelact: error: ") and len(line) <= 320 and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    assert _snapshot(watch) == before, "files were added or changed"
    return line


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished 2-epoch training: its data, recipe file and work dir."""
    root = tmp_path_factory.mktemp("run")
    data = make_dataset(root / "tiny.pkl")
    raw = recipe(data)
    cfg_file = root / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    work = root / "work"
    train(config_from_dict(raw), work)
    return {"data": data, "recipe": cfg_file, "work": work, "ckpt": work / "last.pt"}


# ------------------------------------------------------------------------------ checkpoints (8, 9)


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


# --------------------------------------------------------------------------- work dir (10, 11)


def test_stale_temporaries_of_a_killed_run_are_removed(run: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(run["work"], work)
    stale = [work / ".last.pt.0123456789ab.tmp", work / ".metrics.csv.ba9876543210.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    other = work / ".mine.tmp"  # not one of skelact's own temporaries: kept
    other.write_bytes(b"x")
    assert main(["train", str(run["recipe"]), "--work-dir", str(work), "--resume"]) == 0
    assert not any(p.exists() for p in stale) and other.exists()


def test_a_second_training_in_the_same_work_dir_refuses(run: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (work / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        expect_error(capsys, ["train", str(run["recipe"]), "--work-dir", str(work)],
                     [str(work), f"another training (PID {holder.pid})"], [work])
    finally:
        holder.kill()
        holder.wait()
    # Its process is gone: a stale lock is taken over, and released at the end.
    assert main(["train", str(run["recipe"]), "--work-dir", str(work), "--set", "optim.epochs=1"]) == 0
    assert not (work / ".lock").exists() and (work / "last.pt").is_file()


# ------------------------------------------------------------------------------------ configs (12)


def test_bad_recipes_and_overrides(run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = recipe(run["data"])
    work = tmp_path / "w"

    def recipe_file(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    good = recipe_file("good.yaml", yaml.safe_dump(raw))
    layout5 = recipe_file("edges5.yaml", "joints: [a, b]\nedges: 5\n")
    latin1_layout = recipe_file("latin1_layout.yaml", b"joints: [caf\xe9]\n")
    cases: list[tuple[list[str], list[str]]] = [
        ([str(recipe_file("model.yaml", yaml.safe_dump({**raw, "model": {"name": "nope"}})))],
         ["model.name: unknown model 'nope'"]),
        ([str(good), "--set", "model.name=nope"], ["unknown model 'nope'"]),
        ([str(good), "--set", "optim.lr=[1,"], ["--set 'optim.lr=[1,'", "not valid YAML"]),
        ([str(good), "--set", "optim.lr=!!python/object/apply:os.system [ls]"], ["!!python", "not allowed"]),
        ([str(good), "--set", f"data.layout={layout5}"], ["edges5.yaml", "'edges' must be a list"]),
        ([str(recipe_file("latin1.yaml", b"data:\n  ann_file: caf\xe9.pkl\n"))], ["latin1.yaml", "not a UTF-8"]),
        ([str(good), "--set", f"data.layout={latin1_layout}"], ["latin1_layout.yaml", "not a UTF-8"]),
        ([str(good), "--set", "model.kwargs={bogus: 1}"], ["model 'stgcnpp' has no option 'bogus'"]),
        ([str(good), "--set", "model.kwargs={channels: 5}"], ["model 'stgcnpp'", "wrong type"]),
        ([str(good), "--set", "optim.lr=.nan"], ["optim.lr", "finite"]),
        ([str(good), "--set", "optim.lr=.inf"], ["optim.lr", "finite"]),
        ([str(good), "--set", "optim.lr=1e12"], ["optim.lr", "(0, 10]"]),
        ([str(good), "--set", "optim.clip_grad=-1"], ["optim.clip_grad", "> 0"]),
        ([str(good), "--set", "optim.warmup_epochs=-2"], ["optim.warmup_epochs", ">= 0"]),
        ([str(recipe_file("syntax.yaml", "data: {clip_len: [1,\n"))], ["syntax.yaml", "not valid YAML at line"]),
    ]
    if not torch.cuda.is_available():
        cases += [([str(good), "--set", "optim.amp=fp16"], ["optim.amp: fp16 needs CUDA"]),
                  ([str(good), "--set", "device=cuda"], ["device: cuda", "CUDA is not available"])]
    for extra, needles in cases:
        expect_error(capsys, ["train", *extra, "--work-dir", str(work)], needles, [tmp_path])
        assert not work.exists()


def test_bad_option_values_are_one_line_usage_errors(run: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, data, video = str(run["ckpt"]), str(run["data"]), str(tmp_path / "v.mp4")
    cases = [
        (["train", str(run["recipe"]), "--work-dir", str(tmp_path / "w"), "--overfit", "0"], "--overfit"),
        (["train", str(run["recipe"]), "--work-dir", str(tmp_path / "w"), "--overfit", "-3"], "--overfit"),
        (["test", "--checkpoint", ckpt, "--num-clips", "-2"], "--num-clips"),
        (["test", "--checkpoint", ckpt, "--num-clips", "0"], "--num-clips"),
        (["predict", video, "--input-size", "0"], "--input-size"),
        (["predict", video, "--input-size", "-64"], "--input-size"),
        (["predict", video, "--input-size", "33"], "--input-size"),
        (["viz", data, "--out", str(tmp_path / "x.mp4"), "--fps", "0"], "--fps"),
        (["train"], "required"),
    ]
    for args, needle in cases:
        line = expect_error(capsys, args, [needle], [tmp_path], status=2)
        assert "--help" in line
    expect_error(capsys, ["predict", data, "--clip", "c0_00", "--model", ckpt, "--device", "banana"],
                 ["--device", "'banana' is not a device"], [tmp_path])


# ------------------------------------------------------------------------------- outputs (14, 15, 19)


def test_an_output_that_is_an_input_is_refused_whatever_the_flags(run: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "model.pt"
    shutil.copy(run["ckpt"], ckpt)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 64)
    data = tmp_path / "d.pkl"
    shutil.copy(run["data"], data)
    src = tmp_path / "ucla"
    src.mkdir()
    (src / "a01_s01_e00_v01.json").write_text("{}")
    cases = [
        ["predict", str(video), "--out", str(video)],
        ["predict", str(data), "--clip", "c0_00", "--model", str(ckpt), "--out", str(data)],
        ["export", str(ckpt), "-o", str(ckpt), "--force"],
        ["convert", "ucla", str(src), "-o", str(src / "a01_s01_e00_v01.json"), "--force"],
        ["viz", str(data), "--clip", "c0_00", "--out", str(data)],
    ]
    for args in cases:
        expect_error(capsys, args, ["is also an input" if "ucla" not in args else "inside the input folder"],
                     [tmp_path])


def test_viz_bad_layout_extension_and_fps(run: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = str(run["data"])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--layout", "coco17", "--out", str(tmp_path / "a.mp4")],
                 ["layout 'coco17' has 17 joints but the data has 13"], [tmp_path])
    expect_error(capsys, ["viz", data, "--clip", "c0_00", "--out", str(tmp_path / "x.txt")],
                 ["x.txt", "unsupported video extension '.txt'"], [tmp_path])


def test_video_errors_name_the_users_path_not_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skelact.viz import video as video_module

    def no_codec(path: Path, fps: float, size: tuple[int, int]) -> None:
        raise video_module.VideoWriteError(f"{path}: OpenCV cannot write .mp4 videos here (tried avc1)")

    monkeypatch.setattr(video_module, "open_video_writer", no_codec)
    out = tmp_path / "out.mp4"
    with pytest.raises(video_module.VideoWriteError) as e:
        video_module.write_skeleton_video(out, np.ones((1, 3, 13, 2), np.float32), layout="penn13", img_shape=(64, 64))
    assert str(e.value).startswith(f"{out}: ") and ".tmp" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- catch-all


def test_unexpected_errors_are_one_line_with_the_debug_hint(run: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import skelact.data.io as io_module

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(io_module, "summarize", broken)
    line = expect_error(capsys, ["info", str(run["data"])], ["unexpected ZeroDivisionError: a bug over two lines",
                                                             "SKELACT_DEBUG=1"])
    assert line.endswith("for the traceback)")
    monkeypatch.setenv("SKELACT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", str(run["data"])])


def test_the_console_script_exit_codes(tmp_path: Path) -> None:
    """Through a real process: 2 for a usage error, 1 for a bad file, one line on stderr each."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"junk")
    for args, code in ((["info"], 2), (["info", str(bad)], 1)):
        out = subprocess.run([sys.executable, "-m", "skelact.cli", *args], capture_output=True, text=True, env=env)
        assert out.returncode == code and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_clip_data_without_keypoint_score_predicts(tmp_path: Path, run: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A clip file the project did not write (no scores, no classes, no layout) still predicts."""
    clip = penn_clip("x", 0, 30, np.random.default_rng(9))
    clip.pop("keypoint_score")
    path = save_annotations({"annotations": [clip]}, tmp_path / "x.pkl")
    assert main(["predict", str(path), "--model", str(run["ckpt"]), "--json"]) == 1  # trained with a score channel
    assert "input channels" in capsys.readouterr().err


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

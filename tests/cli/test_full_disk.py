"""A full file system through every writer: train, test, calibrate, convert, export, predict, viz,
extract, live; and a read-only one.

Each command writes into a small tmpfs filled to the brim (mounted by the test where it may mount
one: root on Linux), and must fail with one line naming the user's output — never a hidden
temporary — exit status 1, no traceback, and no file left behind. Where mounting is not allowed the
same commands run under a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): every write past it
fails in the kernel with EFBIG, as a full disk fails with ENOSPC, for Python, torch and OpenCV alike.

A video writer gets the hardest case: some space left, so the first frames are written and the
rest are silently dropped by OpenCV ("Failed to write frame"); the file must be read back and refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hostile import _CHILD, REPO, CliResult, assert_one_line_error
from synthetic import make_dataset, recipe

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

POSE_MODEL = "movenet_multipose_lightning_f16.tflite"
FULL = r"no space left on device|file too large|not written completely"
# SKELACT_TEST_FULL_DISK=limit runs the fallback (the file-size limit) even where a tmpfs can be mounted.
FORCE_FALLBACK = os.environ.get("SKELACT_TEST_FULL_DISK") == "limit"

# Before the cases: the file-size limit of the fallback (argv[2], "none" on a tmpfs).
_PRELUDE = r"""
import resource, signal, sys
try:  # it probes a semaphore file at import and warns if it cannot: not what is tested here
    import joblib  # noqa: F401
except ImportError:
    pass
if sys.argv[2] != "none":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
"""


def _fill(folder: Path, free: int) -> None:
    """Fill ``folder``'s file system, then give ``free`` bytes back."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    os.truncate(filler, max(0, filler.stat().st_size - free))


@contextlib.contextmanager
def small_fs(base: Path, free: int) -> Iterator[tuple[Path, int | None]]:
    """A folder with ``free`` bytes left on its file system, and the file-size limit the commands run
    under (None on a real full tmpfs; ``free`` in the fallback, where nothing could be mounted)."""
    folder = base / "fs"
    folder.mkdir(parents=True)
    mounted = False
    if sys.platform == "linux" and os.geteuid() == 0 and shutil.which("mount") and not FORCE_FALLBACK:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    try:
        if mounted:
            _fill(folder, free)
        yield folder, None if mounted else free
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def _run(cases: list[list[str]], folder: Path, fsize: int | None) -> list[CliResult]:
    """Each command in one fresh interpreter (hostile.py's runner), under the file-size limit if any."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SKELACT_DEBUG", None)
    payload = json.dumps([{"args": [str(a) for a in args], "folder": str(folder)} for args in cases])
    limit = "none" if fsize is None else str(fsize)
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + _CHILD, str(8 << 30), limit], input=payload,
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == len(cases), proc.stderr[-3000:]
    return [CliResult(args=[str(a) for a in args], **json.loads(line)) for args, line in zip(cases, lines, strict=True)]


def _check(results: list[CliResult], names: list[Path], folder: Path) -> None:
    for result, name in zip(results, names, strict=True):
        result.stderr = re.sub(r"[^\n]*\r", "", result.stderr)  # a progress bar, erased on a terminal
        line = assert_one_line_error(result, str(name), FULL, max_seconds=120, max_peak_bytes=4 << 30)
        assert ".tmp" not in line and "/." not in line, line  # never a hidden temporary or lock file
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "filler" and p.is_file())
    assert not left, left


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny dataset, its recipe, a trained checkpoint, and a folder of .npy poses with labels."""
    import numpy as np

    root = tmp_path_factory.mktemp("inputs")
    data = make_dataset(root / "tiny.pkl")
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(recipe(data, epochs=1)))
    assert main(["train", str(cfg), "--work-dir", str(root / "work")]) == 0
    npy = root / "npy"
    npy.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(npy / f"c{i}.npy", rng.uniform(10, 300, (20, 17, 2)).astype(np.float32))
    labels = root / "labels.csv"
    labels.write_text("name,label\n" + "".join(f"c{i},{'ab'[i % 2]}\n" for i in range(4)))
    return {"data": data, "recipe": cfg, "ckpt": root / "work" / "last.pt", "npy": npy, "labels": labels}


def test_every_writer_on_a_full_disk(inputs: dict[str, Path], tmp_path: Path) -> None:
    with small_fs(tmp_path, free=0) as (fs, fsize):
        outs = {"train": fs / "work", "test": fs / "eval", "convert": fs / "conv.pkl", "export": fs / "m.onnx",
                "predict": fs / "pred.mp4", "viz": fs / "viz.webm", "calibrate": fs / "cal.pt"}
        cases = [["train", inputs["recipe"], "--work-dir", outs["train"]],
                 ["test", "--checkpoint", inputs["ckpt"], "--out-dir", outs["test"]],
                 ["convert", "numpy", inputs["npy"], "-o", outs["convert"], "--labels", inputs["labels"]],
                 ["export", inputs["ckpt"], "-o", outs["export"]],
                 ["predict", inputs["data"], "--clip", "c0_00", "--model", inputs["ckpt"], "--out", outs["predict"]],
                 ["viz", inputs["data"], "--clip", "c0_00", "--out", outs["viz"]],
                 # torch.save wraps the failed write in "RuntimeError: [enforce fail at inline_container.cc]"
                 ["calibrate", inputs["ckpt"], "-o", outs["calibrate"]]]
        results = _run(cases, fs, fsize)
        for r in results:
            assert "wrote" not in r.stdout + r.stderr, r  # never reported as written
        _check(results, list(outs.values()), fs)


def test_train_on_a_disk_that_fills_mid_run(inputs: dict[str, Path], tmp_path: Path) -> None:
    """Room for the small files of a work dir but not for a checkpoint: torch.save's failure ("RuntimeError:
    [enforce fail at inline_container.cc]") is one line naming the checkpoint; no checkpoint, no
    temporary and no lock are left, only whole small files (config, log, metrics)."""
    with small_fs(tmp_path, free=24 << 10) as (fs, fsize):
        work = fs / "work"
        [result] = _run([["train", inputs["recipe"], "--work-dir", work]], fs, fsize)
        result.stderr = re.sub(r"[^\n]*\r", "", result.stderr)
        assert result.rc == 1 and result.stderr.count("\n") == 1, result.stderr
        assert re.fullmatch(rf"skelact: error: {re.escape(str(work))}/(best|last)\.pt: ({FULL})\n",
                            result.stderr), result.stderr
        assert {p.name for p in work.iterdir()} <= {"config.yaml", "log.txt", "metrics.csv"}


def test_video_writers_on_a_full_disk(labelled_videos: Path, models_root: Path, tmp_path: Path) -> None:
    """extract with no space at all; live and viz over real frames with some space, so the writer
    starts and OpenCV drops the rest of the frames without an error."""
    pytest.importorskip("ai_edge_litert")
    pose = models_root / POSE_MODEL
    clip = labelled_videos / "forward" / "clip_0.avi"
    with small_fs(tmp_path / "a", free=0) as (fs, fsize):
        out = fs / "poses.pkl"
        results = _run([["extract", labelled_videos, "-o", out, "--pose-model", pose, "--quiet",
                         "--val-fraction", "0.5"]], fs, fsize)
        _check(results, [out], fs)
    with small_fs(tmp_path / "b", free=96 << 10) as (fs, fsize):
        outs = [fs / "live.avi", fs / "over.avi"]
        results = _run([["live", "--source", clip, "--out", outs[0], "--quiet", "--pose-model", pose],
                        ["viz", inputs_pkl(tmp_path), "--out", outs[1], "--video", clip]], fs, fsize)
        for r in results:
            assert "wrote" not in r.stderr, r
        _check(results, outs, fs)


def inputs_pkl(tmp_path: Path) -> Path:
    """A one-clip pose file as long as the 18-frame clip, for ``viz --video``."""
    import numpy as np

    from skelact.data.io import save_annotations

    rng = np.random.default_rng(1)
    ann = {"frame_dir": "clip_0", "total_frames": 18, "img_shape": (360, 640), "original_shape": (360, 640),
           "label": 0, "keypoint": rng.uniform(50, 300, (1, 18, 17, 2)).astype(np.float32),
           "keypoint_score": np.ones((1, 18, 17), np.float32)}
    path = tmp_path / "one.pkl"
    save_annotations({"split": {}, "annotations": [ann], "classes": ["a"], "layout": "coco17"}, path)
    return path


def test_read_only_folder_names_the_output(inputs: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only file system (a tmpfs mounted ro), else a folder without write permission (as a user
    who is not root): the error names the output, not the hidden temporary the write tried to create."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = sys.platform == "linux" and os.geteuid() == 0 and shutil.which("mount") is not None and \
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                       capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions and no read-only tmpfs could be mounted")
        folder.chmod(0o555)
    try:
        for args, out in ((["convert", "numpy", inputs["npy"], "--labels", inputs["labels"], "-o"], folder / "c.pkl"),
                          (["export", inputs["ckpt"], "-o"], folder / "m.onnx"),
                          (["calibrate", inputs["ckpt"], "-o"], folder / "cal.pt"),
                          (["viz", inputs["data"], "--clip", "c0_00", "--out"], folder / "v.mp4")):
            assert main([*map(str, args), str(out)]) == 1
            err = re.sub(r"[^\n]*\r", "", capsys.readouterr().err)
            assert re.fullmatch(rf"skelact: error: {re.escape(str(out))}: (read-only file system|permission denied)"
                                r"( \(.*\))?\n", err), err
        assert not list(folder.iterdir())
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_live_recording_fails_when_the_disk_fills_not_at_the_end(labelled_videos: Path, models_root: Path,
                                                                 tmp_path: Path) -> None:
    """A recording that stops growing on a full file system ends the run then (every 64 frames the
    file's size is checked), instead of running for hours towards a file that cannot be kept."""
    pytest.importorskip("ai_edge_litert")
    clip = labelled_videos / "forward" / "clip_0.avi"
    with small_fs(tmp_path, free=96 << 10) as (fs, fsize):
        out = fs / "rec.avi"
        [result] = _run([["live", "--source", clip, "--loop", "--out", out, "--quiet", "--max-frames", "600",
                          "--pose-model", models_root / POSE_MODEL]], fs, fsize)
        _check([result], [out], fs)
        if fsize is None:  # a real full disk (the fallback's size limit leaves the disk with room)
            assert "no space left on device (the video stopped growing after 128 frames)" in result.stderr

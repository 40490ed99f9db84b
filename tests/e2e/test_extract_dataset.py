"""`skelact extract ROOT`: labelled folders → a dataset (classes, splits, shards, --resume, --workers,
failures report), run as a user runs it, on clips cut from the real NTU video (decode, MoveNet, tracker)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skelact.cli import main
from skelact.data.io import load_annotations
from skelact.data.splits import stratified_split
from skelact.pose.movenet import MODEL_FILENAME
from skelact.pose.resume import failures_path, progress_folder

cv2 = pytest.importorskip("cv2")
pytest.importorskip("ai_edge_litert")

REPO = Path(__file__).resolve().parents[2]
NAMES = [f"{c}/clip_{i}" for c in ("forward", "reversed") for i in range(4)]  # sorted, as extracted
SPLIT = ["--val-fraction", "0.25", "--seed", "0"]


@pytest.fixture(scope="module")
def pose_model(models_root: Path) -> Path:
    return models_root / MODEL_FILENAME


@pytest.fixture(scope="module")
def run(pose_model: Path):
    def run(inputs: Path | list[Path], out: Path, *extra: str) -> int:
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return main(["extract", *map(str, inputs), "-o", str(out), "--pose-model", str(pose_model), "--quiet",
                     *extra])

    return run


@pytest.fixture(scope="module")
def baseline(labelled_videos: Path, run, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("baseline") / "data.pkl"
    assert run(labelled_videos, out, *SPLIT) == 0
    assert not progress_folder(out).exists() and not failures_path(out).exists()
    return load_annotations(out)


def assert_same_dataset(a: dict, b: dict, ordered: bool = True) -> None:
    """Same classes, layout, splits and clips, keypoints and scores bit for bit."""
    assert a["classes"] == b["classes"] and a.get("layout") == b.get("layout")
    if ordered:
        assert [x["frame_dir"] for x in a["annotations"]] == [x["frame_dir"] for x in b["annotations"]]
        assert a["split"] == b["split"]
    else:
        assert {k: set(v) for k, v in a["split"].items()} == {k: set(v) for k, v in b["split"].items()}
    clips_b = {x["frame_dir"]: x for x in b["annotations"]}
    assert len(a["annotations"]) == len(clips_b)
    for x in a["annotations"]:
        y = clips_b[x["frame_dir"]]
        assert set(x) == set(y)
        for key in x:
            if isinstance(x[key], np.ndarray):
                assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), (x["frame_dir"], key)
            else:
                assert x[key] == y[key], (x["frame_dir"], key)


def test_labels_classes_and_split_from_the_folders(baseline: dict, labelled_videos: Path) -> None:
    anns = baseline["annotations"]
    assert baseline["classes"] == ["forward", "reversed"] and baseline["layout"] == "coco17"
    assert [a["frame_dir"] for a in anns] == NAMES
    assert [a["label"] for a in anns] == [0] * 4 + [1] * 4
    for a in anns:
        assert a["total_frames"] == 18 and a["img_shape"] == a["original_shape"] == (360, 640)
        assert a["keypoint"].shape == (2, 18, 17, 2) and a["keypoint_score"].shape == (2, 18, 17)
    split = baseline["split"]
    assert sorted(split) == ["train", "val"]
    assert sorted(split["train"] + split["val"]) == NAMES and not set(split["train"]) & set(split["val"])
    for cls in ("forward", "reversed"):  # 4 videos, fraction 0.25: one val video per class
        assert sum(n.startswith(cls) for n in split["val"]) == 1
    # The split is the stratified split of the files' paths relative to ROOT (with extension).
    keys = [f"{n}.avi" for n in NAMES]
    expected = stratified_split(keys, [0] * 4 + [1] * 4, 0.25, seed=0)
    assert split == {k: [p[:-4] for p in v] for k, v in expected.items()}


def test_clips_hold_the_poses_of_their_own_videos(baseline: dict, labelled_videos: Path, pose_model: Path, run,
                                                  tmp_path: Path) -> None:
    from skelact.pose import extract_video
    from skelact.pose.options import PoseOptions

    # The whole-frame front end poses each frame on its own, so reversed/clip_i, which plays forward/clip_(3-i)
    # backwards, holds the same people at every inner frame (the first and last frame of each file are encoded
    # differently, see synthetic.labelled_video_folder). The default top-down front end follows people from
    # frame to frame, so its poses depend on the order of the frames.
    whole = tmp_path / "whole.pkl"
    assert run(labelled_videos, whole, *SPLIT, "--front-end", "whole-frame") == 0
    clips = {a["frame_dir"]: a for a in load_annotations(whole)["annotations"]}
    for i in range(4):
        fwd, rev = clips[f"forward/clip_{3 - i}"], clips[f"reversed/clip_{i}"]
        assert (fwd["keypoint_score"].sum(-1) > 0).all() and (rev["keypoint_score"].sum(-1) > 0).all()

        def by_x(kp: np.ndarray) -> np.ndarray:  # [M, T, V, 2] -> [T, M, V, 2], people left to right
            kp = kp.transpose(1, 0, 2, 3)
            return np.take_along_axis(kp, np.argsort(kp[..., 0].mean(-1), axis=1)[..., None, None], 1)

        np.testing.assert_array_equal(by_x(fwd["keypoint"])[::-1][1:-1], by_x(rev["keypoint"])[1:-1])
    # With the default front end both people are in every frame of every clip, and a clip of the dataset is
    # what extract_video makes of its file.
    default = {a["frame_dir"]: a for a in baseline["annotations"]}
    assert all((a["keypoint_score"].sum(-1) > 0).all() for a in default.values())
    model = PoseOptions(model=pose_model, threads=1, download=False).build()
    direct = extract_video(labelled_videos / "forward" / "clip_2.avi", model, progress=False)
    np.testing.assert_array_equal(direct["keypoint"], default["forward/clip_2"]["keypoint"])
    np.testing.assert_array_equal(direct["keypoint_score"], default["forward/clip_2"]["keypoint_score"])


def test_workers_2_equal_workers_1(baseline: dict, labelled_videos: Path, run, tmp_path: Path) -> None:
    out = tmp_path / "w2.pkl"
    assert run(labelled_videos, out, *SPLIT, "--workers", "2") == 0
    assert_same_dataset(load_annotations(out), baseline)


def _children(pid: int) -> list[int]:
    """PIDs of the live child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_resume_after_sigkill(baseline: dict, labelled_videos: Path, run, pose_model: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data.pkl"
    progress = progress_folder(out)
    cmd = [sys.executable, "-m", "skelact.cli", "extract", str(labelled_videos), "-o", str(out), *SPLIT,
           "--pose-model", str(pose_model), "--quiet", "--workers", "2"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(progress.glob("*.pkl"))) < 2:
            assert proc.poll() is None, "the extraction ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if Path("/proc").is_dir():  # the pose processes notice that their parent is gone and end
        assert len(workers) >= 2
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, "pose processes outlived the killed extraction"
            time.sleep(0.05)
    done = len(list(progress.glob("*.pkl")))
    assert 2 <= done < 8 and not out.exists()
    (progress / ".0123456789abcdef0123.pkl.0123456789ab.tmp").write_bytes(b"half an entry")  # a killed write

    assert run(labelled_videos, out, *SPLIT) == 1
    err = capsys.readouterr().err.strip()
    assert str(progress) in err and "--resume" in err and "\n" not in err
    assert run(labelled_videos, out, *SPLIT, "--resume", "--input-size", "192") == 1
    err = capsys.readouterr().err.strip()
    assert "--input-size 256, this run has 192" in err and "\n" not in err
    assert run(labelled_videos, out, *SPLIT, "--resume", "--max-persons", "1") == 1
    assert "--max-persons 2, this run has 1" in capsys.readouterr().err
    assert run(labelled_videos, out, *SPLIT, "--resume", "--front-end", "whole-frame") == 1
    assert "--front-end 'topdown', this run has 'whole-frame'" in capsys.readouterr().err
    assert run(labelled_videos, out, *SPLIT, "--resume", "--min-person-height", "0.25") == 1
    assert "--min-person-height 0.125, this run has 0.25" in capsys.readouterr().err
    settings = progress / "settings.json"
    recorded = settings.read_text()
    stored = json.loads(recorded)
    settings.write_text(json.dumps({**stored, "pose_model_sha256": "0" * 64}))  # as if another model began it
    assert run(labelled_videos, out, *SPLIT, "--resume") == 1
    assert f"was started with the pose model of sha256 '{'0' * 64}'" in capsys.readouterr().err
    settings.write_text(recorded)

    assert run(labelled_videos, out, *SPLIT, "--resume") == 0
    text = capsys.readouterr().out
    assert f"{8 - done} video(s) extracted" in text and f"{done} done by an earlier run" in text
    assert not progress.exists()
    assert_same_dataset(load_annotations(out), baseline)


def test_shards_then_merge_equal_the_unsharded_run(baseline: dict, labelled_videos: Path, run, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    parts = [tmp_path / f"part_{k}.pkl" for k in range(3)]
    for k, part in enumerate(parts):
        assert run(labelled_videos, part, "--shard", f"{k}/3", *SPLIT) == 0
        data = load_annotations(part)
        assert [a["frame_dir"] for a in data["annotations"]] == NAMES[k::3]  # every 3rd of the sorted list
        assert data["classes"] == baseline["classes"]
        for name, members in data["split"].items():  # the whole folder's split, restricted to the shard
            assert members == [m for m in baseline["split"][name] if m in NAMES[k::3]]
    assert "(shard 2/3 of 8 videos)" in capsys.readouterr().out
    merged = tmp_path / "all.pkl"
    assert main(["merge", *map(str, parts), "-o", str(merged)]) == 0
    assert "8 clips from 3 files" in capsys.readouterr().out
    assert_same_dataset(load_annotations(merged), baseline, ordered=False)


def test_split_file(labelled_videos: Path, run, tmp_path: Path) -> None:
    lines = ["# relative path, split", ""]
    lines += [f"{n}.avi {'test' if n.endswith('3') else 'val' if n.endswith('2') else 'train'}" for n in NAMES]
    lines[2] = "./" + lines[2]  # "./forward/clip_0.avi" is the same path
    split_file = tmp_path / "split.txt"
    split_file.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    out = tmp_path / "s.pkl"
    # Shard 1/4 (forward/clip_1, reversed/clip_1) keeps the file's split of those two.
    assert run(labelled_videos, out, "--split-file", str(split_file), "--shard", "1/4") == 0
    data = load_annotations(out)
    assert [a["frame_dir"] for a in data["annotations"]] == ["forward/clip_1", "reversed/clip_1"]
    assert data["split"] == {"train": ["forward/clip_1", "reversed/clip_1"], "val": [], "test": []}


def _write(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def test_failed_videos_are_reported_and_the_rest_written(labelled_videos: Path, run, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from skelact.pose import iter_frames

    root = tmp_path / "root"
    for d in ("good", "bad", "empty"):
        (root / d).mkdir(parents=True)
    shutil.copy(labelled_videos / "forward" / "clip_1.avi", root / "good" / "clip_1.avi")
    (root / "good" / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    (root / "good" / "notes.txt").write_text("not a video")
    _write(root / "bad" / "black.avi", [np.zeros((360, 640, 3), np.uint8)] * 10)
    _write(root / "bad" / "short.avi", list(iter_frames(labelled_videos / "forward" / "clip_0.avi"))[:4])
    out = tmp_path / "out" / "data.pkl"

    assert run(root, out) == 0
    captured = capsys.readouterr()
    assert f"{root / 'empty'}: no videos, class skipped" in captured.err
    assert f"3 video(s) failed, listed in {failures_path(out)}" in captured.out
    data = load_annotations(out)
    assert data["classes"] == ["bad", "good"]  # the empty class folder is skipped
    assert [(a["frame_dir"], a["label"]) for a in data["annotations"]] == [("good/clip_1", 1)]
    assert data["split"] == {"train": ["good/clip_1"]}
    with open(failures_path(out), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"]
    reasons = {Path(p).relative_to(root).as_posix(): r for p, r in rows[1:]}
    assert sorted(reasons) == ["bad/black.avi", "bad/short.avi", "good/junk.mp4"]
    assert reasons["bad/black.avi"] == ("no person detected in any frame (for small, distant people lower "
                                        "--min-person-height)")
    assert reasons["bad/short.avi"] == "too short, 4 frame(s) (at least 8 needed)"
    assert reasons["good/junk.mp4"]
    assert not progress_folder(out).exists()

    # Nothing extracted: a one-line error, the report, and no dataset.
    only = tmp_path / "only"
    (only / "x").mkdir(parents=True)
    shutil.copy(root / "good" / "junk.mp4", only / "x" / "junk.mp4")
    out2 = tmp_path / "none.pkl"
    assert run(only, out2) == 1
    err = capsys.readouterr().err.strip()
    assert "none of the 1 video(s) could be extracted" in err and "junk.mp4" in err and "\n" not in err
    assert failures_path(out2).exists() and not out2.exists() and not progress_folder(out2).exists()


def test_bad_inputs_fail_before_any_work(labelled_videos: Path, run, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.pkl"
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    (mixed / "a").mkdir(parents=True)
    for p in (mixed / "x.mp4", mixed / "a" / "y.mp4"):
        p.write_bytes(b"x")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "v.avi").write_bytes(b"x")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("\n".join(f"{n}.avi train" for n in NAMES) + "\nforward/nope.avi val\n")
    video = labelled_videos / "forward" / "clip_0.avi"
    cases = [  # (inputs, extra options, what the one-line error says)
        (tmp_path / "missing", [], "missing: no such file or folder"),
        (empty, [], f"{empty}: no videos found"),
        (mixed, [], "holds videos directly (x.mp4) and in class folders (a/)"),
        (flat, ["--val-fraction", "0.2"], "a split needs labelled videos in class folders"),
        (labelled_videos, ["--split-file", str(unknown)], f"{unknown}:9: 'forward/nope.avi' is not a video of"),
        (labelled_videos, ["--shard", "8/9"], "shard 8/9 has no videos (there are 8"),
    ]
    for inputs, extra, message in cases:
        assert run(inputs, out, *extra) == 1, message
        err = capsys.readouterr().err.strip()
        assert err.startswith("skelact: error: ") and message in err and "\n" not in err, err
    for inputs, bad_out, message in ((labelled_videos, labelled_videos / "forward" / "new.mp4", "looks like a video"),
                                     (video, video, "is also an input of this command"),
                                     (labelled_videos, video, "lies inside the input folder")):
        assert run(inputs, bad_out) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert not (labelled_videos / "forward" / "new.mp4").exists()
    usage = [(["--shard", "3/2"], "K must be in [0, N)"), (["--shard", "a/b"], "expected K/N"),
             (["--shard=-1/4"], "expected K/N"), (["--shard", "-1/4"], "argument --shard: expected one argument"),
             (["--shard", "0/0"], "K must be in [0, N)"),
             (["--val-fraction", "1"], "must be in [0, 1)"), (["--val-fraction", "-0.1"], "must be in [0, 1)"),
             (["--val-fraction", "0.1", "--split-file", str(unknown)], "not allowed with argument")]
    for extra, message in usage:
        with pytest.raises(SystemExit) as e:
            run(labelled_videos, out, *extra)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "flat", "mixed", "unknown.txt"]

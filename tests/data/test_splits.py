"""Splits (stratified, split files), shards and the scan of a video folder, without decoding any video."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from skelact.data.splits import SplitError, read_split_file, stratified_split, val_count
from skelact.pose.dataset import dataset_split, parse_shard, scan_videos, shard_items
from skelact.pose.extract import VideoError

REPO = Path(__file__).resolve().parents[2]


def test_val_count() -> None:
    cases = {(1, 0.25): 0, (2, 0.25): 1, (2, 0.01): 1, (4, 0.25): 1, (10, 0.25): 3, (10, 0.15): 2, (10, 0.1): 1,
             (3, 0.9): 2, (5, 0.0): 0, (100, 0.1): 10}  # half rounds up; >= 1 from 2 videos; >= 1 train
    assert {k: val_count(*k) for k in cases} == cases
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(SplitError, match="must be in"):
            val_count(5, bad)


def _keys() -> tuple[list[str], list[int]]:
    sizes = {"walk": 10, "run": 5, "sit": 1}
    keys = [f"{c}/v{i:02d}.mp4" for c, n in sizes.items() for i in range(n)]
    labels = [j for j, n in enumerate(sizes.values()) for _ in range(n)]
    return keys, labels


def test_stratified_split_is_per_class_and_keeps_order() -> None:
    keys, labels = _keys()
    split = stratified_split(keys, labels, 0.2, seed=0)
    assert set(split) == {"train", "val"}
    assert sorted(split["train"] + split["val"]) == sorted(keys) and not set(split["train"]) & set(split["val"])
    assert [k for k in keys if k in split["val"]] == split["val"]  # input order
    assert [sum(k.startswith(c) for k in split["val"]) for c in ("walk", "run", "sit")] == [2, 1, 0]
    vals = {tuple(stratified_split(keys, labels, 0.2, seed=s)["val"]) for s in range(6)}
    assert len(vals) > 1  # the seed matters
    assert stratified_split(keys, labels, 0.0)["val"] == []


def test_stratified_split_depends_only_on_keys_labels_and_seed() -> None:
    keys, labels = _keys()
    here = stratified_split(keys, labels, 0.3, seed=7)
    # Another process with another hash seed, given the items in reverse order: the same members.
    code = ("import json, sys; from skelact.data.splits import stratified_split; k, l = json.load(sys.stdin); "
            "print(json.dumps(stratified_split(k, l, 0.3, seed=7)))")
    env = {"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps([keys[::-1], labels[::-1]]), env=env,
                         capture_output=True, text=True, check=True)
    there = json.loads(out.stdout)
    assert {k: set(v) for k, v in there.items()} == {k: set(v) for k, v in here.items()}
    # One more video in a class moves at most one old video of that class, and no video of the others.
    grown = stratified_split([*keys, "run/v99.mp4"], [*labels, 1], 0.3, seed=7)
    old_val = set(here["val"])
    new_val = set(grown["val"]) - {"run/v99.mp4"}
    assert {k for k in old_val ^ new_val if not k.startswith("run/")} == set()
    assert len(old_val ^ new_val) <= 1


def test_read_split_file(tmp_path: Path) -> None:
    keys = ["a/x.mp4", "a/y z.mp4", "b/w.avi"]
    f = tmp_path / "split.txt"
    f.write_bytes("\ufeff# comment\r\n\r\n./a/x.mp4 train\r\na/y z.mp4   val\r\nb\\w test\r\n".encode())
    split = read_split_file(f, keys, aliases={"b/w": "b/w.avi"}, where="ROOT")
    assert split == {"train": ["a/x.mp4"], "val": ["a/y z.mp4"], "test": ["b/w.avi"]}
    bad = {
        "a/x.mp4 train\na/y z.mp4 dev\n": f"{f}:2: unknown split 'dev' (use train, val or test)",
        "a/x.mp4 train\nc/q.mp4 val\n": f"{f}:2: 'c/q.mp4' is not a video of ROOT",
        "a/x.mp4 train\n\na/x.mp4 val\n": f"{f}:3: 'a/x.mp4' is already listed on line 1",
        "a/x.mp4\n": f"{f}:1: expected 'relative/path.mp4 train|val|test', got 'a/x.mp4'",
        "a/x.mp4 train\na/y z.mp4 val\n": f"{f}: 1 video(s) of ROOT are not listed, e.g. 'b/w.avi'",
        "x" * 5000: f"{f}:1: line longer than 4096 characters",
    }
    for text, message in bad.items():
        f.write_text(text, encoding="utf-8")
        with pytest.raises(SplitError) as e:
            read_split_file(f, keys, where="ROOT")
        assert message in str(e.value) and "\n" not in str(e.value)
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SplitError, match="not a UTF-8 text file"):
        read_split_file(f, keys)
    with pytest.raises(SplitError, match="split file not found"):
        read_split_file(tmp_path / "missing.txt", keys)


def test_parse_shard_and_shard_items() -> None:
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 3 / 10 ") == (3, 10)
    for bad, message in (("3/2", "K must be in"), ("2/2", "K must be in"), ("0/0", "K must be in"),
                         ("a/b", "expected K/N"), ("-1/4", "expected K/N"), ("1", "expected K/N"),
                         ("1/2/3", "expected K/N"), ("9" * 20 + "/1", "expected K/N")):
        with pytest.raises(ValueError, match=message):
            parse_shard(bad)
    items = list(range(10))
    parts = [shard_items(items, (k, 4)) for k in range(4)]
    assert parts == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert shard_items(items, None) == items


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_scan_labelled_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    e_decomposed = unicodedata.normalize("NFD", "café")
    _touch(root / "b" / "x.mp4", root / "a" / "sub" / "y.MP4", root / "a" / "z.mp4", root / "a" / "z.avi",
           root / "a" / ".hidden.mp4", root / "a" / "notes.txt", root / ".data.pkl.progress" / "k.pkl",
           root / e_decomposed / "v.mkv", root / "data.pkl")
    (root / "empty").mkdir()
    videos = scan_videos(root)
    assert videos.classes == ["a", "b", "café"] and videos.root == root
    assert [(it.key, it.frame_dir, it.label) for it in videos.items] == [
        ("a/sub/y.MP4", "a/sub/y", 0), ("a/z.avi", "a/z.avi", 0), ("a/z.mp4", "a/z.mp4", 0),
        ("b/x.mp4", "b/x", 1), ("café/v.mkv", "café/v", 2)]
    assert videos.items[-1].path == root / e_decomposed / "v.mkv"  # the file as it is on disk
    assert videos.warnings == [f"{root / 'empty'}: no videos, class skipped"]
    assert videos.ignored == 2  # notes.txt, data.pkl
    split, notes = dataset_split(videos, 0.3, seed=0)
    assert sum(k.startswith("a/") for k in split["val"]) == 1 and len(split["val"]) == 1  # a: 3 videos; b, café: 1
    assert notes == ["2 class(es) with a single video, in train only (no val video): b, café"]
    assert dataset_split(videos) == ({"train": [it.key for it in videos.items]}, [])


def test_scan_flat_folder_and_file_lists(tmp_path: Path) -> None:
    _touch(tmp_path / "flat" / "b.mp4", tmp_path / "flat" / "a.avi", tmp_path / "other" / "b.mp4",
           tmp_path / "other" / "c.webm")
    flat = scan_videos(tmp_path / "flat")
    assert flat.classes is None and [(it.key, it.frame_dir, it.label) for it in flat.items] == [
        ("a.avi", "a", -1), ("b.mp4", "b", -1)]
    assert dataset_split(flat) == (None, [])
    with pytest.raises(SplitError, match="a split needs labelled videos"):
        dataset_split(flat, 0.1)
    listed = scan_videos([tmp_path / "other" / "c.webm", tmp_path / "flat" / "a.avi"])
    assert [it.frame_dir for it in listed.items] == ["c", "a"] and listed.root is None
    with pytest.raises(VideoError, match="has the same file name as"):
        scan_videos([tmp_path / "flat", tmp_path / "other"])
    with pytest.raises(VideoError, match="given twice"):
        scan_videos([tmp_path / "flat" / "a.avi", tmp_path / "flat" / ".." / "flat" / "a.avi"])


def test_scan_refuses_names_equal_up_to_unicode_form(tmp_path: Path) -> None:
    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    _touch(tmp_path / "r1" / "a" / f"{nfc}.mp4", tmp_path / "r1" / "a" / f"{nfd}.mp4")
    with pytest.raises(VideoError, match="in another Unicode form"):
        scan_videos(tmp_path / "r1")
    _touch(tmp_path / "r2" / nfc / "x.mp4", tmp_path / "r2" / nfd / "y.mp4")
    with pytest.raises(VideoError, match="another class folder has the same name"):
        scan_videos(tmp_path / "r2")


def test_split_command_carves_a_stratified_validation_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthetic import make_dataset

    from skelact.cli import main
    from skelact.data.io import load_annotations

    src = make_dataset(tmp_path / "tiny.pkl", classes=3, per_class=8)  # train: 6 a class, test: 2
    out = tmp_path / "val.pkl"
    assert main(["split", str(src), "-o", str(out), "--val-fraction", "0.34", "--seed", "3"]) == 0
    data = load_annotations(out)
    label = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    assert [sorted(label[n] for n in data["split"]["val"]).count(c) for c in range(3)] == [2, 2, 2]
    assert len(data["split"]["train"]) == 12 and len(data["split"]["test"]) == 6
    assert not set(data["split"]["val"]) & set(data["split"]["train"])
    again = tmp_path / "again.pkl"
    assert main(["split", str(src), "-o", str(again), "--val-fraction", "0.34", "--seed", "3"]) == 0
    assert load_annotations(again)["split"] == data["split"]  # deterministic
    for args, needle in ((["--from", "nope"], "no split 'nope'"), (["--name", "test"], "has a split 'test'")):
        assert main(["split", str(src), "-o", str(tmp_path / "x.pkl"), "--val-fraction", "0.2", *args]) == 1
        assert needle in capsys.readouterr().err
    assert main(["split", str(src), "-o", str(src), "--val-fraction", "0.2", "--force"]) == 1
    assert "is also an input" in capsys.readouterr().err
    assert not (tmp_path / "x.pkl").exists()

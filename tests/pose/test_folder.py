"""The scan of a video folder, shards and the dataset split (skelact.pose.folder), without decoding any video."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from skelact.data.splits import SplitError
from skelact.pose.extract import VideoError
from skelact.pose.folder import dataset_split, parse_shard, scan_videos, shard_items


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

"""Splits (stratified, split files) and `skelact split`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skelact.data.splits import SplitError, read_split_file, stratified_split, val_count

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

"""The labels file (name,label[,split]) and classes file shared by the converters."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelact.data.convert._common import (
    ConvertError,
    assign_labels,
    read_classes_file,
    read_labels_csv,
    sort_class_names,
)


def test_read_labels_csv_spreadsheet_style(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes('\ufeffLabel, NAME ,Subject\r\n"jump, high",walk\\v1,3\r\n\r\nsit,./v2/,,\r\n,v3,\r\n'
                     .encode())
    lab = read_labels_csv(path)
    assert [(r.line, r.name, r.label, r.split) for r in lab.rows] == [
        (2, "walk/v1", "jump, high", ""), (4, "v2", "sit", ""), (5, "v3", "", "")]
    assert lab.ignored == ("Subject",)


@pytest.mark.parametrize(("text", "needle"), [
    (b"", "empty labels file"),
    (b"name,label\n", "no rows after the header"),
    (b"name,split\na,train\n", "no 'label' column"),
    (b"name,label,Name\na,x,b\n", "column 'name' appears twice"),
    (b"name,label\n ,x\n", "line 2: empty name"),
    (b"name,label\na,x,y\n", "line 2 has 3 field(s), the header 2"),
    (b"name,label\na,x\na,y\n", "line 3: 'a' is also on line 2"),
    (b"name,label\n\xff\xfe,x\n", "not UTF-8 text"),
    (b'name,label\n"' + b"a" * 200_000 + b'",x\n', "not a valid CSV file"),
])
def test_bad_labels_csv(text: bytes, needle: str, tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes(text)
    with pytest.raises(ConvertError, match="l.csv") as e:
        read_labels_csv(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_classes_file_and_default_order(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("b\n\n a \nc\n")
    assert read_classes_file(path) == ["b", "a", "c"]
    path.write_text("b\na\nb\n")
    with pytest.raises(ConvertError, match="line 3: class 'b' is also on line 1"):
        read_classes_file(path)
    assert sort_class_names(["10", "2", "0", "2"]) == ["0", "2", "10"]  # integer labels keep their values
    assert sort_class_names(["walk", "10", "2"]) == ["10", "2", "walk"]
    with pytest.raises(ConvertError, match="missing.txt: classes file not found"):
        read_classes_file(tmp_path / "missing.txt")


def test_assign_labels_folders_aliases_and_splits(tmp_path: Path) -> None:
    clips = {"v1": ("walk/v1",), "v2": ("run/v2",), "v3": ("run/v3",)}
    folders = {"v1": "walk", "v2": "run", "v3": "run"}
    got = assign_labels(clips, folder_labels=folders)
    assert got.classes == ["run", "walk"] and got.labels == {"v1": 1, "v2": 0, "v3": 0} and got.splits == {}
    none = assign_labels(clips)
    assert none.classes is None and none.label("v1") == -1
    csv = tmp_path / "l.csv"
    csv.write_text("name,label,split\nwalk/v1,walk,train\nv2,walk,val\nrun/v3,,val\n")
    got = assign_labels(clips, csv, ["walk", "run", "sit"], folders)
    assert got.classes == ["walk", "run", "sit"] and got.labels == {"v1": 0, "v2": 0}
    assert got.label("v3") == -1 and got.split_of(["v1", "v3"]) == {"train": ["v1"], "val": ["v3"]}
    assert sum(n for reason, n in got.notes.items() if "differs from their class folder" in reason) == 1
    csv.write_text("name,label\nwalk/v1,walk\nv1,walk\nv2,run\nv3,run\n")
    with pytest.raises(ConvertError, match="lines 2 and 3 both name clip 'v1'"):
        assign_labels(clips, csv)
    with pytest.raises(ConvertError, match="class folder of clip 'v1': label 'walk' is not one of the classes"):
        assign_labels(clips, classes=["run"], folder_labels=folders)

"""A timeline whose class names are not valid UTF-8 (issue 27, item 1): its CSV, JSON and PNG are
written whole, the names escaped, instead of an unexpected UnicodeEncodeError (or matplotlib's
TypeError) and a missing file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from skelact.stream.timeline import build_timeline
from skelact.stream.tracks import Window


def test_timeline_files_escape_class_names_that_are_not_utf8(tmp_path: Path) -> None:
    bad = os.fsdecode(b"r\xffun")
    wins = {1: (0, 10, [Window(0, 10, np.array([0.9, 0.05, 0.05]))])}
    tl = build_timeline(wins, frames=10, fps=10.0, classes=[bad, "jump", "sit"], is_unknown=lambda p: False)
    csv_path, json_path, png_path = tl.write(tmp_path / "t")
    assert "r\\xffun" in csv_path.read_text(encoding="utf-8")
    assert json.loads(json_path.read_text(encoding="utf-8"))["classes"][0] == bad
    assert png_path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json", "t.png"]

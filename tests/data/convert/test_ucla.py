"""The NW-UCLA converter (skelact.data.convert.ucla) on the real files, and on bad JSON."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile import assert_one_line_error, run_cli_batch

from skelact.data.convert import ConvertError, ConvertSummary, convert_ucla
from skelact.data.io import safe_unpickle


@pytest.fixture(scope="module")
def ucla(data_root: Path) -> tuple[dict, ConvertSummary]:
    return convert_ucla(data_root / "nwucla")


def test_ucla_counts_and_shapes(check_converted: Callable[..., None], ucla: tuple[dict, ConvertSummary]) -> None:
    data, summary = ucla
    assert len(data["annotations"]) == summary.converted == 1484
    assert {k: len(v) for k, v in data["split"].items()} == {"train": 1020, "test": 464}
    assert data["classes"][0] == "pick up with one hand" and len(data["classes"]) == 10
    assert {a["label"] for a in data["annotations"]} == set(range(10))
    assert not summary.skipped and not summary.notes  # stored labels agree with the file names
    check_converted(data, "ucla20", 20, 3, scores=False)


def test_ucla_test_split_matches_val_label(ucla: tuple[dict, ConvertSummary], data_root: Path) -> None:
    data, _ = ucla
    val = {d["file_name"]: d for d in safe_unpickle(data_root / "nwucla" / "val_label.pkl")}
    assert set(data["split"]["test"]) == set(val)
    by_name = {a["frame_dir"]: a for a in data["annotations"]}
    for name, ref in val.items():
        assert by_name[name]["label"] == ref["label"] - 1
        assert by_name[name]["total_frames"] == ref["length"]
    assert all(name.endswith(("_v01", "_v02")) for name in data["split"]["train"])


def test_ucla_rejects_bad_json(data_root: Path, tmp_path: Path) -> None:
    shutil.copy(data_root / "nwucla" / "all_sqe" / "a01_s01_e00_v01.json", tmp_path)
    (tmp_path / "a02_s01_e00_v03.json").write_text('{"file_name": "a02_s01_e00_v03", "skeletons": [[[1, 2')
    with pytest.raises(ConvertError, match="a02_s01_e00_v03.json"):
        convert_ucla(tmp_path)


def test_ucla_json_nested_200k_deep_is_one_error(data_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "all_sqe"
    src.mkdir()
    shutil.copy(data_root / "nwucla" / "all_sqe" / "a01_s01_e00_v01.json", src)
    (src / "a02_s01_e00_v03.json").write_text('{"skeletons": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(ConvertError, match=r"a02_s01_e00_v03\.json: not valid NW-UCLA JSON \(nested too deeply\)"):
        convert_ucla(tmp_path)
    (result,) = run_cli_batch([(["convert", "ucla", tmp_path, "-o", tmp_path / "out.pkl"], tmp_path)])
    assert_one_line_error(result, "a02_s01_e00_v03.json: not valid NW-UCLA JSON (nested too deeply)")
    # Values beyond float32: refused as non-finite, without a RuntimeWarning on stderr.
    (src / "a02_s01_e00_v03.json").write_text('{"skeletons": ' + str([[[1e300] * 3] * 20] * 2) + "}")
    (result,) = run_cli_batch([(["convert", "ucla", tmp_path, "-o", tmp_path / "out.pkl"], tmp_path)])
    assert_one_line_error(result, "a02_s01_e00_v03.json: 'skeletons' has non-finite values")
    # A file_name that is not a string is ignored (not printed): the file stem names the clip.
    (src / "a02_s01_e00_v03.json").write_text('{"file_name": [[1, 2]], "skeletons": ' + str([[[0.5] * 3] * 20] * 4)
                                              + ', "label": 2}')
    data, summary = convert_ucla(tmp_path)
    assert [a["frame_dir"] for a in data["annotations"]][1] == "a02_s01_e00_v03" and not summary.notes

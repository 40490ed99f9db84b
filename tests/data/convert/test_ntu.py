"""The NTU RGB+D converter (skelact.data.convert.ntu) on the raw NTU files, small synthetic ones and files
that claim too much."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_one_line_error, run_cli_batch

from skelact.data.convert import ConvertError, ConvertSummary, convert_ntu
from skelact.data.convert.ntu import NTU60_CLASSES, NTU120_CLASSES, read_skeleton_file
from skelact.data.io import AnnotationError

NTU60_SPLITS = {"xsub_train", "xsub_val", "xview_train", "xview_val"}


@pytest.fixture(scope="module")
def ntu_raw(data_root: Path) -> Path:
    return data_root / "ntu_raw"


@pytest.fixture(scope="module")
def ntu2d(ntu_raw: Path) -> tuple[dict, ConvertSummary]:
    return convert_ntu(ntu_raw, dims=2)


@pytest.fixture(scope="module")
def ntu3d(ntu_raw: Path) -> tuple[dict, ConvertSummary]:
    return convert_ntu(ntu_raw, dims=3)


def _raw_joint(path: Path, frame: int, joint: int) -> list[float]:
    """The 12 values of one joint of the only body, parsed line by line (independent of the converter)."""
    lines = path.read_text().splitlines()
    # Line 0: frame count; per frame with one body: body count, body header, joint count, 25 joints.
    base = 1 + frame * 28
    assert lines[base].strip() == "1" and lines[base + 2].strip() == "25"
    return [float(v) for v in lines[base + 3 + joint].split()]


def test_ntu_counts_splits_labels(check_converted: Callable[..., None], ntu2d: tuple[dict, ConvertSummary],
                                  ntu_raw: Path) -> None:
    data, summary = ntu2d
    assert summary.dataset == "ntu60" and summary.converted == 12 and not summary.skipped
    assert set(data["split"]) == NTU60_SPLITS and data["classes"] == list(NTU60_CLASSES)
    names = sorted(p.stem for p in ntu_raw.glob("*.skeleton"))
    assert sorted(a["frame_dir"] for a in data["annotations"]) == names
    for pair in ("xsub", "xview"):
        train, val = set(data["split"][f"{pair}_train"]), set(data["split"][f"{pair}_val"])
        assert not train & val and train | val == set(names)
    split = data["split"]
    # P001, C001: training subject, validation camera.
    assert "S001C001P001R001A001" in split["xsub_train"] and "S001C001P001R001A001" in split["xview_val"]
    # P003, C002: validation subject, training camera.
    assert "S004C002P003R001A017" in split["xsub_val"] and "S004C002P003R001A017" in split["xview_train"]
    # P008 trains, C003 trains; P020 validates.
    assert "S001C003P008R002A058" in split["xsub_train"] and "S001C003P008R002A058" in split["xview_train"]
    assert "S017C003P020R002A054" in split["xsub_val"]
    for ann in data["annotations"]:
        assert ann["label"] == int(ann["frame_dir"][-3:]) - 1
        assert ann["keypoint"].shape[0] <= 2
    by_name = {a["frame_dir"]: a for a in data["annotations"]}
    assert by_name["S001C001P001R001A001"]["keypoint"].shape[0] == 1
    assert by_name["S001C001P001R001A050"]["keypoint"].shape[0] == 2  # a two-person action
    check_converted(data, "ntu25", 25, 2, scores=True)


def test_ntu_2d_and_3d_values_match_raw_text(
    check_converted: Callable[..., None], ntu2d: tuple[dict, ConvertSummary], ntu3d: tuple[dict, ConvertSummary],
    ntu_raw: Path,
) -> None:
    path = ntu_raw / "S001C001P001R001A001.skeleton"
    first_line = int(path.read_text().split("\n", 1)[0])
    ann2 = next(a for a in ntu2d[0]["annotations"] if a["frame_dir"] == path.stem)
    ann3 = next(a for a in ntu3d[0]["annotations"] if a["frame_dir"] == path.stem)
    assert ann2["total_frames"] == ann3["total_frames"] == first_line == ann2["keypoint"].shape[1]
    assert ann2["keypoint"].shape[2] == ann3["keypoint"].shape[2] == 25
    assert ann2["img_shape"] == (1080, 1920)
    for frame, joint in ((0, 3), (10, 7), (first_line - 1, 24)):
        vals = _raw_joint(path, frame, joint)
        np.testing.assert_allclose(ann2["keypoint"][0, frame, joint], vals[5:7], atol=1e-4)
        np.testing.assert_allclose(ann3["keypoint"][0, frame, joint], vals[0:3], atol=1e-4)
        assert ann2["keypoint_score"][0, frame, joint] == {2: 1.0, 1: 0.5, 0: 0.0}[int(vals[11])]

    # Colour coordinates of tracked joints lie inside the 1920x1080 frame.
    for ann in ntu2d[0]["annotations"]:
        xy = ann["keypoint"][ann["keypoint_score"] > 0]
        assert len(xy) and (xy[:, 0] >= 0).all() and (xy[:, 0] <= 1920).all()
        assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= 1080).all()
    check_converted(ntu3d[0], "ntu25", 25, 3, scores=False)


def test_ntu120_benchmark_and_workers(ntu_raw: Path, ntu2d: tuple[dict, ConvertSummary]) -> None:
    data, summary = convert_ntu(ntu_raw, dims=2, benchmark="ntu120", workers=2)
    assert summary.dataset == "ntu120" and data["classes"] == list(NTU120_CLASSES)
    assert set(data["split"]) == {"xsub_train", "xsub_val", "xset_train", "xset_val"}
    assert "S004C002P003R001A017" in data["split"]["xset_train"]  # even setup trains
    assert "S001C001P001R001A001" in data["split"]["xset_val"]
    assert data["split"]["xsub_train"] == ntu2d[0]["split"]["xsub_train"]  # same subjects for P <= 40
    for a, b in zip(data["annotations"], ntu2d[0]["annotations"], strict=True):  # parallel == serial
        assert a["frame_dir"] == b["frame_dir"]
        np.testing.assert_array_equal(a["keypoint"], b["keypoint"])


def test_ntu_missing_list_skips(ntu_raw: Path, tmp_path: Path) -> None:
    listing = tmp_path / "missing.txt"
    listing.write_text("S001C001P001R001A011\nS999C001P001R001A001\n")
    data, summary = convert_ntu(ntu_raw, dims=3, missing=listing)
    assert summary.converted == 11 and summary.num_skipped == 1
    assert "S001C001P001R001A011" not in {a["frame_dir"] for a in data["annotations"]}
    assert "missing skeletons" in str(summary)
    _, summary = convert_ntu(ntu_raw, dims=3, missing=["S001C001P001R001A011.skeleton", "S001C001P001R001A001"])
    assert summary.converted == 10


def test_ntu_garbled_and_truncated_files_name_the_file(ntu_raw: Path, tmp_path: Path) -> None:
    src = ntu_raw / "S001C001P001R001A001.skeleton"
    text = src.read_text()
    truncated = tmp_path / "trunc" / "S001C001P001R001A002.skeleton"
    truncated.parent.mkdir()
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(AnnotationError, match="S001C001P001R001A002.skeleton") as err:
        convert_ntu(truncated.parent)
    assert "\n" not in str(err.value)

    garbled = tmp_path / "garbled" / "S001C001P001R001A003.skeleton"
    garbled.parent.mkdir()
    lines = text.splitlines()
    lines[10] = lines[10].replace(" ", " x?", 1)
    garbled.write_text("\n".join(lines))
    with pytest.raises(ConvertError, match="S001C001P001R001A003.skeleton.*non-numeric"):
        convert_ntu(garbled.parent)

    # A NaN joint value is not an error: the joint becomes an untracked zero and the summary says so.
    nan_file = tmp_path / "nan" / "S001C001P001R001A004.skeleton"
    nan_file.parent.mkdir()
    values = text.splitlines()[4].split()  # frame 0, joint 0
    values[5] = "nan"
    nan_lines = text.splitlines()
    nan_lines[4] = " ".join(values)
    nan_file.write_text("\n".join(nan_lines))
    data, summary = convert_ntu(nan_file.parent)
    ann = data["annotations"][0]
    assert not ann["keypoint"][0, 0, 0].any() and ann["keypoint_score"][0, 0, 0] == 0
    assert sum(summary.notes.values()) == 1

    with pytest.raises(ConvertError, match="nowhere"):
        convert_ntu(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match="empty"):
        convert_ntu(tmp_path / "empty")


def _body_text(body_id: int, joints: np.ndarray) -> list[str]:
    """Lines of one body: header, joint count, 25 joint lines (x y z from ``joints``, fixed rest)."""
    out = [f"{body_id} 0 1 1 1 1 0 0.0 0.0 2", "25"]
    for x, y, z in joints:
        out.append(f"{x:.6f} {y:.6f} {z:.6f} 250 150 {900 + 100 * x:.4f} {500 + 100 * y:.4f} 0 0 0 0 2")
    return out


def test_ntu_body_selection_empty_frames_and_skips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(25, 3))
    t_len = 8
    lines = [str(t_len)]
    for t in range(t_len):
        if t == 3:  # a frame without anybody
            lines.append("0")
            continue
        bodies = [
            (111, base),  # still: activity 0
            (222, base + 0.01 * t),  # slow
            (333, base + 0.2 * t),  # fast, absent in the first two frames
        ]
        if t < 2:
            bodies = bodies[:2]
        lines.append(str(len(bodies)))
        for bid, xyz in bodies:
            lines += _body_text(bid, xyz)
    (tmp_path / "S001C002P002R001A051.skeleton").write_text("\n".join(lines) + "\n")
    (tmp_path / "S001C002P002R001A052.skeleton").write_text("0\n")  # no frames
    (tmp_path / "S001C002P002R001A053.skeleton").write_text("3\n0\n0\n0\n")  # no body

    data, summary = convert_ntu(tmp_path, dims=3, max_bodies=2)
    assert summary.converted == 1 and summary.num_skipped == 2
    assert summary.skipped["file has 0 frames"] == 1 and summary.skipped["no body in any frame"] == 1
    (ann,) = data["annotations"]
    kp = ann["keypoint"]
    assert kp.shape == (2, t_len, 25, 3) and ann["total_frames"] == t_len
    np.testing.assert_allclose(kp[0, 5], base + 1.0, atol=1e-5)  # fastest body first
    np.testing.assert_allclose(kp[1, 5], base + 0.05, atol=1e-5)  # then the slow one; still one dropped
    assert not kp[:, 3].any()  # empty frame stays zeros
    assert not kp[0, :2].any()  # fast body absent in frames 0, 1

    data2, _ = convert_ntu(tmp_path, dims=2, max_bodies=1)
    score = data2["annotations"][0]["keypoint_score"]
    assert score.shape == (1, t_len, 25)
    assert (score[0, :2] == 0).all() and (score[0, 3] == 0).all() and (score[0, 4:] == 1).all()

    num_frames, ids, frame_idx, body_idx, joints = read_skeleton_file(tmp_path / "S001C002P002R001A051.skeleton")
    assert num_frames == t_len and ids == ["111", "222", "333"] and joints.shape == (len(frame_idx), 25, 6)
    with pytest.raises(ConvertError, match="no clip converted"):
        convert_ntu(tmp_path, missing=["S001C002P002R001A051"])


# ------------------------------------------------------------------ hostile and careless sources


def _ntu_claiming_frames(path: Path, frames: int, bodies: int) -> Path:
    """A .skeleton file whose first frame holds ``bodies`` bodies and whose other ``frames - 1``
    frames hold none: 2 bytes a frame, 300 bytes a frame of [2, T, 25, 2] keypoints and scores."""
    joints = np.zeros((25, 3))
    first = [str(bodies)] + [line for b in range(bodies) for line in _body_text(100 + b, joints + b)]
    path.write_text(f"{frames}\n" + "\n".join(first) + "\n" + "0\n" * (frames - 1))
    return path


def test_ntu_file_claiming_millions_of_frames_is_refused_before_allocating(tmp_path: Path) -> None:
    # 2 MB claiming 1,000,000 frames of 10 bodies: the old densification asked for 11 GiB (for the
    # issue's 4 MB and 2,000,000 frames, 22 GiB).
    src = tmp_path / "src"
    src.mkdir()
    path = _ntu_claiming_frames(src / "S001C001P001R001A001.skeleton", 1_000_000, 10)
    assert 1_900_000 < path.stat().st_size < 2_200_000
    results = run_cli_batch([(["convert", "ntu", src, "-o", tmp_path / "out.pkl"], tmp_path)], memory_limit=2 << 30)
    assert_one_line_error(results[0], "S001C001P001R001A001.skeleton: not a valid NTU .skeleton file: its "
                          "1,000,000 frames of 2 bodies would take 572 MiB, more than 8x the file's size")
    # The same body with a few empty frames converts: zeros where no body is.
    small = tmp_path / "small"
    small.mkdir()
    _ntu_claiming_frames(small / "S001C001P001R001A001.skeleton", 30, 1)
    data, summary = convert_ntu(small, dims=3)
    kp = data["annotations"][0]["keypoint"]
    assert kp.shape == (1, 30, 25, 3) and not kp[:, 1:].any()
    assert summary.notes["clips with frames without any body (kept as zeros)"] == 1



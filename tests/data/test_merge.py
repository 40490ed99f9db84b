"""`skelact merge` / ``merge_annotations``: joining annotation files, and the mismatches it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import penn_clip

from skelact.cli import main
from skelact.data.io import load_annotations, save_annotations
from skelact.data.merge import MergeError, merge_annotations
from skelact.skeleton import get_layout

CLASSES = ["clap", "jump", "wave"]


def _write(path: Path, names: list[str], split: dict[str, list[str]] | None = None, classes: list[str] | None = CLASSES,
           layout: object = "penn13", dims: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    anns = [penn_clip(n, i % 3, 10 + i, rng) for i, n in enumerate(names)]
    if dims == 3:
        for a in anns:
            a["keypoint"] = np.concatenate([a["keypoint"], a["keypoint"][..., :1]], -1)
    data: dict = {"split": split or {}, "annotations": anns}
    if classes is not None:
        data["classes"] = classes
    else:
        for a in anns:
            a["label"] = -1
    if layout is not None:
        data["layout"] = layout
    save_annotations(data, path, allow_unlabeled=classes is None)
    return path


def test_merge_concatenates_clips_and_unions_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.pkl", ["a0", "a1"], {"train": ["a0"], "test": ["a1"]})
    b = _write(tmp_path / "b.pkl", ["b0", "b1"], {"train": ["b1", "b0"]}, seed=1)
    out = tmp_path / "all.pkl"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    assert f"wrote {out}: 4 clips from 2 files (train 3, test 1)" in capsys.readouterr().out
    merged = load_annotations(out)
    assert [x["frame_dir"] for x in merged["annotations"]] == ["a0", "a1", "b0", "b1"]
    assert merged["split"] == {"train": ["a0", "b1", "b0"], "test": ["a1"]}
    assert merged["classes"] == CLASSES and merged["layout"] == "penn13"
    sources = load_annotations(a)["annotations"] + load_annotations(b)["annotations"]
    for x, y in zip(merged["annotations"], sources, strict=True):
        assert x["label"] == y["label"] and x["total_frames"] == y["total_frames"]
        np.testing.assert_array_equal(x["keypoint"], y["keypoint"])
        np.testing.assert_array_equal(x["keypoint_score"], y["keypoint_score"])

    # Unlabelled files without a layout field (inferred from the joint count on both sides) merge too.
    u1 = _write(tmp_path / "u1.pkl", ["x"], classes=None, layout=None)
    u2 = _write(tmp_path / "u2.pkl", ["y"], classes=None, layout=None)
    data = merge_annotations([u1, u2])
    assert [x["label"] for x in data["annotations"]] == [-1, -1]
    assert "classes" not in data and "layout" not in data and data["split"] == {}


def test_merge_refuses_what_does_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.pkl", ["a0", "a1"])
    penn = get_layout("penn13").to_dict()
    other = _write(tmp_path / "other.pkl", ["o0"], layout={**penn, "flip_pairs": []})
    coco = tmp_path / "coco.pkl"
    data = load_annotations(_write(coco, ["c0"], layout=None))
    for ann in data["annotations"]:  # 17 joints: COCO-17
        ann["keypoint"] = np.concatenate([ann["keypoint"], ann["keypoint"][:, :, :4]], 2)
        ann["keypoint_score"] = np.concatenate([ann["keypoint_score"], ann["keypoint_score"][:, :, :4]], 2)
    data["layout"] = "coco17"
    save_annotations(data, coco, force=True)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    cases = [
        ([a, _write(tmp_path / "dup.pkl", ["b0", "a1"])], f"{tmp_path / 'dup.pkl'}: clip 'a1' is also in {a}"),
        ([a, coco], f"{coco}: layout 'coco17' (17 joints) differs from 'penn13' (13 joints) of {a}"),
        ([a, other], f"{other}: layout 'penn13' (13 joints) differs from 'penn13' (13 joints) of {a} (same name, "
                     "different definition)"),
        ([a, _write(tmp_path / "order.pkl", ["r0"], classes=["jump", "clap", "wave"])],
         f"{tmp_path / 'order.pkl'}: has class 0 'jump' but {a} has class 0 'clap'"),
        ([a, _write(tmp_path / "more.pkl", ["m0"], classes=[*CLASSES, "run"])],
         f"{tmp_path / 'more.pkl'}: has 4 classes but {a} has 3 classes"),
        ([a, _write(tmp_path / "none.pkl", ["n0"], classes=None)],
         f"{tmp_path / 'none.pkl'}: has no class list but {a} has 3 classes"),
        ([a, _write(tmp_path / "d3.pkl", ["d0"], dims=3)], f"{tmp_path / 'd3.pkl'}: has 3D keypoints, {a} has 2D"),
        ([a, tmp_path / "." / "a.pkl"], "a.pkl: given twice (also as"),
        ([a, garbage], f"{garbage}: not a valid annotation pickle"),
    ]
    out = tmp_path / "out.pkl"
    for inputs, message in cases:
        with pytest.raises(MergeError):
            merge_annotations(inputs)
        assert main(["merge", *map(str, inputs), "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("skelact: error: ") and message in err and "\n" not in err, err
        assert not out.exists()
    before = a.read_bytes()
    assert main(["merge", str(a), str(other), "-o", str(a), "--force"]) == 1
    assert f"{a}: is also an input of this command" in capsys.readouterr().err
    assert a.read_bytes() == before

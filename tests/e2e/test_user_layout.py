"""A user's own layout through every step, on real NW-UCLA skeletons: convert → info → train → test →
fuse → predict → export → viz, with the layout's YAML file deleted before the steps after training.

The layout names NW-UCLA's 20 joints its own way (nothing matches a built-in name), so nothing
after conversion can find it by name: it must travel inside the data file and the checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.convert.ucla import UCLA_ACTIONS, UCLA_CLASSES, read_ucla_json
from skelact.skeleton import get_layout

pytestmark = pytest.mark.usefixtures("one_thread")

#: NW-UCLA's joints in storage order, renamed (Kinect v1 order, see skelact.skeleton.UCLA20).
NAMES = ["pelvis", "torso", "chest", "crown", "l_sho", "l_elb", "l_wri", "l_pal", "r_sho", "r_elb", "r_wri",
         "r_pal", "l_hip", "l_kne", "l_ank", "l_toe", "r_hip", "r_kne", "r_ank", "r_toe"]


def _layout_yaml(path: Path) -> Path:
    ucla = get_layout("ucla20")
    spec = {"name": "kinect_v1_mine", "joints": NAMES, "root": NAMES[ucla.root],
            "edges": [[NAMES[a], NAMES[b]] for a, b in ucla.edges],
            "flip_pairs": [[NAMES[a], NAMES[b]] for a, b in ucla.flip_pairs]}
    path.write_text(yaml.safe_dump(spec))
    return path


def test_user_layout_without_its_yaml_after_training(data_root: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # ---- a user's arrays: 3 actions x 6 clips of real NW-UCLA skeletons, views 1-2 train, 3 test
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    rows = []
    files = sorted((data_root / "nwucla" / "all_sqe").glob("a0[124]_s0[1-4]_e0[0-1]_v0[13].json"))
    per_class: dict[int, int] = {}
    for f in files:
        name, sk, _ = read_ucla_json(f)
        action = int(name[1:3])
        if per_class.get(action, 0) >= 6 or len(sk) < 16:
            continue
        per_class[action] = per_class.get(action, 0) + 1
        np.save(arrays / f"{name}.npy", sk)
        rows.append(f"{name},{UCLA_CLASSES[UCLA_ACTIONS.index(action)]},{'test' if name.endswith('v03') else 'train'}")
    assert sorted(per_class.values()) == [6, 6, 6]
    labels = tmp_path / "labels.csv"
    labels.write_text("name,label,split\n" + "\n".join(rows) + "\n")
    layout = _layout_yaml(tmp_path / "mine.yaml")
    data = tmp_path / "mine.pkl"
    assert main(["convert", "numpy", str(arrays), "-o", str(data), "--labels", str(labels),
                 "--layout", str(layout)]) == 0
    assert main(["info", str(data)]) == 0
    out = capsys.readouterr().out
    assert "layout: kinect_v1_mine (stored in the file) (20 joints, 3D)" in out and "l_sho" not in out

    # ---- two streams, zero-config, a short schedule
    common = ["--set", "optim.epochs=3", "data.num_workers=0", "device=cpu", "data.num_clips_test=2"]
    for stream in ("joint", "bone"):
        assert main(["train", str(data), "--model", "kpc3d", "--work-dir", str(tmp_path / stream), *common,
                     f"data.features=[{stream}]"]) == 0
    layout.unlink()  # from here on nothing may need the YAML

    ckpt = Checkpoint.load(tmp_path / "joint" / "last.pt")
    assert ckpt.layout.name == "kinect_v1_mine" and ckpt.layout.joints == tuple(NAMES)
    for stream in ("joint", "bone"):
        assert main(["test", "--checkpoint", str(tmp_path / stream / "last.pt"),
                     "--out-dir", str(tmp_path / stream / "test")]) == 0
    scores = [str(tmp_path / s / "test" / "scores.npz") for s in ("joint", "bone")]
    assert main(["fuse", *scores, "--out-dir", str(tmp_path / "fused")]) == 0
    assert json.loads((tmp_path / "fused" / "metrics.json").read_text())["num_clips"] > 0
    capsys.readouterr()
    clip = rows[0].split(",")[0]
    assert main(["predict", str(data), "--clip", clip, "--model", str(tmp_path / "joint" / "last.pt"), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["true_label"] in pred["probabilities"]
    assert main(["export", str(tmp_path / "joint" / "last.pt"), "-o", str(tmp_path / "mine.onnx")]) == 0
    from skelact.export import read_metadata

    meta = read_metadata(tmp_path / "mine.onnx")
    assert meta["layout"] == "kinect_v1_mine" and meta["layout_spec"]["joints"] == NAMES
    assert main(["viz", str(data), "--clip", clip, "--out", str(tmp_path / "clip.mp4")]) == 0
    out = tmp_path / "pred.mp4"
    assert main(["predict", str(data), "--clip", clip, "--model", str(tmp_path / "bone" / "last.pt"),
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and (tmp_path / "clip.mp4").stat().st_size > 0

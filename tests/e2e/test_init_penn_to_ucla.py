"""Fine-tuning across datasets on real skeletons: a keypoint 3D-CNN trained on a few Penn Action clips
(2D pixels + scores, penn13) starts a NW-UCLA run (3D metres, no scores, Kinect v1's ucla20) through
``skelact train UCLA.pkl --init PENN/last.pt``: joints matched by name, channels by meaning, head rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.convert import convert_penn, convert_ucla
from skelact.data.io import save_annotations

pytestmark = pytest.mark.usefixtures("one_thread")


def _subset(data: dict, classes: int, train: int, test: int, path: Path) -> Path:
    """The first ``train`` + ``test`` clips of each of the first ``classes`` classes, splits kept."""
    split_of = {n: s for s, names in data["split"].items() for n in names}
    wanted = {"train": train, "test": test}
    picked: dict[str, list[str]] = {"train": [], "test": []}
    taken: dict[tuple[str, int], int] = {}
    anns = []
    for ann in data["annotations"]:
        side, key = split_of.get(ann["frame_dir"]), (split_of.get(ann["frame_dir"]), ann["label"])
        if side in wanted and ann["label"] < classes and taken.get(key, 0) < wanted[side]:
            taken[key] = taken.get(key, 0) + 1
            picked[side].append(ann["frame_dir"])
            anns.append(ann)
    save_annotations({**data, "split": picked, "annotations": anns, "classes": data["classes"][:classes]}, path)
    return path


def test_penn_model_fine_tunes_on_nw_ucla(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    penn = _subset(convert_penn(data_root / "penn_action")[0], 3, 6, 2, tmp_path / "penn.pkl")
    ucla = _subset(convert_ucla(data_root / "nwucla")[0], 3, 6, 2, tmp_path / "ucla.pkl")
    fast = ["--set", "optim.epochs=1", "data.num_workers=0", "device=cpu", "data.num_clips_test=2",
            "data.clip_len=24"]
    assert main(["train", str(penn), "--model", "kpc3d_small", "--streams", "j", "--work-dir", str(tmp_path / "penn"),
                 *fast]) == 0
    source = tmp_path / "penn" / "last.pt"
    capsys.readouterr()
    assert main(["train", str(ucla), "--init", str(source), "--backbone-lr-mult", "0.1",
                 "--work-dir", str(tmp_path / "ucla"), *fast]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index(f"init: weights of {source} (kpc3d_small, 3 classes, layout penn13)")
    assert out[start + 1] == ("  joints: penn13 -> ucla20: 13 of 20 matched by name; new (zero weights): hip_center, "
                              "spine, shoulder_center, left_hand, right_hand, left_foot, right_foot")
    assert out[start + 2] == "  channels: joint.x, joint.y kept; new (zero weights): joint.z; dropped: score"
    assert out[start + 3].startswith("  joint-collapse positions: ")
    assert out[start + 4] == "  head: rebuilt, 3 -> 3 classes (fresh weights)"
    assert out[start + 6] == "  backbone: learning rate x0.1 (optim.backbone_lr_mult)"
    assert any(line.startswith("epoch 1/1 ") for line in out[start:])

    got = Checkpoint.load(tmp_path / "ucla" / "last.pt")
    assert got.layout.name == "ucla20" and got.in_channels == 3 and len(got.classes) == 3
    assert got.config.init == str(source) and got.config.model.name == "kpc3d_small"
    assert all(torch.isfinite(t).all() for t in got.model.values() if t.is_floating_point())
    assert main(["test", "--checkpoint", str(tmp_path / "ucla" / "last.pt"), "--out-dir", str(tmp_path / "t")]) == 0

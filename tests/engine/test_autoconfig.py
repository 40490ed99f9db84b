"""Zero-config training: the recipe chosen from a data file, its reasons, and the CLI path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic import make_dataset, penn_clip

from skelact.cli import main
from skelact.config import ConfigError, load_config
from skelact.data.convert import convert_penn, convert_ucla
from skelact.data.dataset import PackedClips
from skelact.data.io import load_annotations, save_annotations
from skelact.engine.autoconfig import FAMILIES, auto_config, pick_splits

pytestmark = pytest.mark.usefixtures("one_thread")


def _splits(*names: str) -> dict[str, np.ndarray]:
    return {n: np.arange(3) for n in names}


@pytest.mark.parametrize(("names", "expect"), [
    (("train", "val", "test"), ("train", "val")),
    (("train", "test"), ("train", "test")),
    (("train", "validation"), ("train", "validation")),
    (("xsub_train", "xsub_val", "xview_val"), ("xsub_train", "xsub_val")),
    (("Train", "Test"), ("Train", "Test")),
])
def test_pick_splits(names: tuple[str, ...], expect: tuple[str, str]) -> None:
    assert pick_splits(_splits(*names), "f.pkl")[:2] == expect


@pytest.mark.parametrize(("names", "needle"), [
    ((), "has no split"),
    (("xsub_train", "xview_train", "xsub_val"), "cannot tell which split trains"),
    (("train",), "no validation split"),
])
def test_pick_splits_errors(names: tuple[str, ...], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        pick_splits(_splits(*names), "f.pkl")


@pytest.fixture(scope="module")
def penn(data_root: Path) -> PackedClips:
    return PackedClips.from_annotations(convert_penn(data_root / "penn_action")[0])


@pytest.fixture(scope="module")
def ucla(data_root: Path) -> PackedClips:
    return PackedClips.from_annotations(convert_ucla(data_root / "nwucla")[0])


def test_choices_on_penn_action(penn: PackedClips) -> None:
    # --val-fraction 0: the hand-written recipes' splits (validated on test) and lengths.
    auto = auto_config(penn, "penn.pkl", "kpc3d", val_fraction=0.0)
    d, o = auto.config.data, auto.config.optim
    assert (d.train_split, d.val_split, d.max_persons, d.features) == ("train", "test", 1, ["joint"])
    assert d.clip_len == 32 and d.normalize == "bbox" and d.with_score  # median 57 frames, capped at 32
    assert d.augment.flip == 0.5 and d.augment.rotate == 10.0 and auto.layout.name == "penn13"
    steps_per_epoch = 1258 // 32
    assert o.epochs == -(-FAMILIES["kpc3d"].steps // steps_per_epoch) and o.amp == "auto" and 0.99 <= o.ema < 1
    assert auto.config.calibration.enabled
    keys = [k for k, _, _ in auto.notes]
    assert "data.clip_len" in keys and all(why for _, _, why in auto.notes)
    assert auto.config.eval_interval == 3  # 31 epochs: 10 validations (at 3, 6, ..., 30 and 31)
    hm = auto_config(penn, "penn.pkl", "poseconv3d_c3d", val_fraction=0.0).config
    assert hm.data.normalize == "none" and hm.model.kwargs["size"] == 32 and hm.optim.clip_grad == 40.0
    # The hand-written recipes' lengths on Penn Action (configs/penn_poseconv3d_c3d.yaml: 12 epochs of
    # batch 8; penn_stgcnpp_j.yaml: 40 of batch 16), and no more validation than ~10 % of the training's
    # compute: 12 epochs x 3 x 1,258 training clips / 1,068 validation clips x 0.1 = 4.2 -> 4 passes.
    assert (hm.optim.epochs, hm.data.batch_size, hm.eval_interval) == (12, 8, 3)
    gcn = auto_config(penn, "penn.pkl", "stgcnpp", val_fraction=0.0).config
    assert (gcn.optim.epochs, gcn.data.batch_size, gcn.eval_interval) == (40, 16, 4)


@pytest.mark.parametrize(("epochs", "n_train", "n_val", "interval"), [
    (31, 1258, 1068, 3),   # 10 validations: the cap
    (12, 1258, 1068, 3),   # 4: ~10 % of the compute
    (200, 8, 4, 20),       # tiny data, long schedule: 10
    (10, 100, 1000, 10),   # a validation split 10x the training split: only the last epoch
    (10, 1000, 100, 1),
])
def test_validation_count(epochs: int, n_train: int, n_val: int, interval: int) -> None:
    from skelact.engine.autoconfig import _eval_interval

    assert _eval_interval(epochs, n_train, n_val) == interval


def test_choices_on_nw_ucla(ucla: PackedClips) -> None:
    auto = auto_config(ucla, "ucla.pkl", "stgcnpp", val_fraction=0.0)
    d = auto.config.data
    assert d.normalize == "center3d" and not d.with_score and d.augment.rotate3d == 15.0
    assert d.augment.rotate == 0.0 and d.clip_len == 32 and auto.layout.name == "ucla20"
    assert auto.config.optim.epochs == -(-FAMILIES["stgcnpp"].steps_3d // (1020 // 16))  # 3D: the longer budget
    with pytest.raises(ConfigError, match="draws heatmaps from 2D pixel keypoints; these clips are 3D"):
        auto_config(ucla, "ucla.pkl", "poseconv3d_c3d")


def test_small_two_person_data_and_unknown_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    anns = []
    for i in range(12):
        clip = penn_clip(f"p{i}", i % 2, 90, rng)
        if i < 11:  # all but one clip show two people
            clip["keypoint"] = np.concatenate([clip["keypoint"], clip["keypoint"] + 5])
            clip["keypoint_score"] = np.concatenate([clip["keypoint_score"]] * 2)
        anns.append(clip)
    names = [a["frame_dir"] for a in anns]
    packed = PackedClips.from_annotations({"split": {"train": names[:8], "val": names[8:]}, "annotations": anns,
                                           "layout": "penn13"})
    cfg = auto_config(packed, "x.pkl", "stgcnpp").config
    assert cfg.data.max_persons == 2 and cfg.data.clip_len == 48 and cfg.data.batch_size == 4
    assert cfg.data.features == ["joint", "partner"]  # two people: their relation too
    assert auto_config(packed, "x.pkl", "poseconv3d_c3d").config.data.features == ["joint"]  # heatmaps: no
    assert cfg.optim.epochs == 200  # 8 clips: the longest schedule
    with pytest.raises(ConfigError, match="--model: unknown model 'nope'"):
        auto_config(packed, "x.pkl", "nope")
    # kpc3d on small data: four streams, each with the partner offset; the ensemble's input is the joint clip.
    small = auto_config(packed, "x.pkl", "kpc3d").config
    assert [(s.name, s.features) for s in small.model.streams] == [
        ("j+p", ["joint", "partner"]), ("b+p", ["bone", "partner"]), ("jm+p", ["joint_motion", "partner"]),
        ("bm+p", ["bone_motion", "partner"])]
    assert small.data.features == ["joint"] and all(s.weight is None for s in small.model.streams)
    assert auto_config(packed, "x.pkl", "kpc3d", streams=False).config.model.streams == []
    assert cfg.model.streams == []  # ST-GCN++: streams not measured, one network


def test_four_streams_up_to_small_data_clips(penn: PackedClips, monkeypatch: pytest.MonkeyPatch) -> None:
    """Penn Action's 1,258 training clips are small data (four streams); above the bound, one network."""
    import skelact.engine.autoconfig as autoconfig

    auto = auto_config(penn, "penn.pkl", "kpc3d", val_fraction=0.0)
    assert [s.name for s in auto.config.model.streams] == ["j", "b", "jm", "bm"]
    assert ("model.streams", "j, b, jm, bm") in [(k, v) for k, v, _ in auto.notes]
    monkeypatch.setattr(autoconfig, "SMALL_DATA_CLIPS", 1257)
    assert auto_config(penn, "penn.pkl", "kpc3d", val_fraction=0.0).config.model.streams == []


def test_cli_zero_config_prints_writes_and_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "tiny.pkl")
    work = tmp_path / "w"
    args = ["train", str(data), "--model", "stgcnpp", "--work-dir", str(work),
            "--set", "optim.epochs=1", "model.kwargs={channels: [8, 8], strides: [1, 2], dilations: [1, 2]}",
            "data.num_workers=0", "device=cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "recipe chosen for stgcnpp" in out and "data.clip_len = 24" in out and "then --set optim.epochs=1" in out
    cfg = load_config(work / "config.yaml")  # the run can be repeated and edited
    assert cfg.optim.epochs == 1 and cfg.data.normalize == "bbox" and cfg.model.kwargs["channels"] == [8, 8]
    assert main(["train", str(work / "config.yaml"), "--work-dir", str(tmp_path / "again")]) == 0
    again = load_config(tmp_path / "again" / "config.yaml")
    assert again == cfg
    # The recipe path takes no --model; unlabeled training clips are refused.
    assert main(["train", str(work / "config.yaml"), "--model", "kpc3d", "--work-dir", str(tmp_path / "x")]) == 1
    assert "--model applies to a data file" in capsys.readouterr().err
    clip = penn_clip("u", 0, 30, np.random.default_rng(1))
    clip["label"] = -1
    path = save_annotations({"split": {"train": ["u"], "val": ["u"]}, "annotations": [clip]}, tmp_path / "u.pkl",
                            allow_unlabeled=True)
    assert main(["train", str(path), "--work-dir", str(tmp_path / "u")]) == 1
    assert "holds unlabeled clips" in capsys.readouterr().err


def test_cli_zero_config_with_a_user_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "tiny.pkl")
    plain = load_annotations(data)
    del plain["layout"]  # a file without a stored layout: --layout names it (a conflict is refused)
    save_annotations(plain, data, force=True)
    names = ["top", "ls", "rs", "le", "re", "lw", "rw", "lh", "rh", "lk", "rk", "la", "ra"]
    layout = tmp_path / "my13.yaml"
    layout.write_text(yaml.safe_dump({"joints": names, "edges": [[1, 0], [2, 0], [3, 1], [4, 2], [5, 3], [6, 4],
                                                                 [7, 1], [8, 2], [9, 7], [10, 8], [11, 9], [12, 10]],
                                      "flip_pairs": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]]}))
    args = ["train", str(data), "--layout", str(layout), "--work-dir", str(tmp_path / "w"), "--overfit", "6",
            "--set", "overfit.epochs=1", "data.num_workers=0", "device=cpu"]
    assert main(args) == 0
    assert "layout my13" in capsys.readouterr().out

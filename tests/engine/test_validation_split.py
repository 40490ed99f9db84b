"""Which clips validate and which `skelact test` evaluates: ``data.val_split`` / ``data.val_fraction``
/ ``data.test_split``, the zero-config choice between them, bad combinations through the CLI, and
recipes and checkpoints from before the keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hostile import expect_error
from synthetic import TINY_MODEL, make_dataset, penn_clip, recipe

from skelact.cli import main
from skelact.config import load_config
from skelact.data.dataset import PackedClips
from skelact.data.io import load_annotations, save_annotations
from skelact.engine import builders
from skelact.engine.autoconfig import auto_config

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


def _file(path: Path, sizes: dict[str, list[int]]) -> Path:
    """A file whose split ``name`` holds clips of the listed classes (one clip per entry)."""
    rng = np.random.default_rng(1)
    anns, split = [], {}
    for name, labels in sizes.items():
        split[name] = []
        for i, c in enumerate(labels):
            anns.append(penn_clip(f"{name}_{i:03d}", c, 20, rng))
            split[name].append(anns[-1]["frame_dir"])
    classes = max(max(v) for v in sizes.values()) + 1
    save_annotations({"split": split, "annotations": anns, "classes": [f"a{c}" for c in range(classes)],
                      "layout": "penn13"}, path)
    return path


def _auto(path: Path, **kw: object):  # noqa: ANN202 - an AutoConfig
    return auto_config(PackedClips.from_pickle(path), path, "kpc3d", **kw)


def test_zero_config_uses_a_validation_split_when_the_file_has_one(tmp_path: Path) -> None:
    three = _auto(_file(tmp_path / "a.pkl", {"train": [0, 1] * 6, "val": [0, 1], "test": [0, 1] * 2}))
    d = three.config.data
    assert (d.val_split, d.val_fraction, d.test_split) == ("val", 0.0, "test")
    two = _auto(_file(tmp_path / "b.pkl", {"train": [0, 1] * 6, "val": [0, 1] * 2})).config.data
    assert (two.val_split, two.val_fraction, two.test_split) == ("val", 0.0, "val")  # as before: test = val
    # Asked for, a carve replaces the validation split; `skelact test` then evaluates the test split.
    carved = _auto(tmp_path / "a.pkl", val_fraction=0.25).config.data
    assert (carved.val_split, carved.val_fraction, carved.test_split) == (None, 0.25, "test")


def test_zero_config_carves_from_train_and_off_validates_on_test(tmp_path: Path) -> None:
    path = _file(tmp_path / "t.pkl", {"train": [0] * 9 + [1] * 2 + [2], "test": [0, 1, 2]})
    auto = _auto(path)
    d = auto.config.data
    assert (d.val_split, d.val_fraction, d.test_split) == (None, 0.1, "test")
    why = dict((k, w) for k, _, w in auto.notes)
    # 9 clips give 1, 2 give 1, the class of one clip keeps it for training (and is not validated).
    assert "2 of the 12 'train' clips" in why["data.val_fraction"]
    assert "1 class(es) of one clip keep it for training" in why["data.val_fraction"]
    assert "--val-fraction 0 turns it off" in why["data.val_fraction"]
    assert "data.batch_size" in why and "10 training clips" in why["data.batch_size"]
    train_idx, val_idx = builders.validation_split(auto.config, PackedClips.from_pickle(path), 3)
    packed = PackedClips.from_pickle(path)
    assert sorted(packed.labels[val_idx].tolist()) == [0, 1] and len(train_idx) == 10
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    off = _auto(path, val_fraction=0.0)
    o = off.config.data
    assert (o.val_split, o.val_fraction, o.test_split) == ("test", 0.0, "test")
    assert "--val-fraction 0: validated on the test split" in dict((k, w) for k, _, w in off.notes)["data.val_split"]


def test_bad_validation_settings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "tiny.pkl")
    work = tmp_path / "work"

    def recipe_file(name: str, **data_keys: object) -> Path:
        raw = recipe(data)
        raw["data"].update(data_keys)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    both = recipe_file("both.yaml", val_split="test", val_fraction=0.1)
    expect_error(capsys, ["train", str(both), "--work-dir", str(work)],
                  [str(both), "data.val_split: 'test' and data.val_fraction 0.1 both choose", "null"], [tmp_path])
    neither = recipe_file("neither.yaml", val_split=None)
    expect_error(capsys, ["train", str(neither), "--work-dir", str(work)],
                  [str(neither), "data.val_split: null needs data.val_fraction > 0"], [tmp_path])
    no_test = recipe_file("no_test.yaml", val_split=None, val_fraction=0.2)
    expect_error(capsys, ["train", str(no_test), "--work-dir", str(work)],
                  [str(no_test), "data.test_split: name the split"], [tmp_path])
    share = recipe_file("share.yaml", val_split=None, val_fraction=1.0, test_split="test")
    expect_error(capsys, ["train", str(share), "--work-dir", str(work)],
                  [str(share), "data.val_fraction: a share in [0, 1), got 1.0"], [tmp_path])
    ok = recipe_file("ok.yaml")
    # `--val-fraction` is a zero-config option; a recipe says data.val_fraction.
    line = expect_error(capsys, ["train", str(ok), "--work-dir", str(work), "--val-fraction", "0.2"],
                        ["data.val_fraction"], [tmp_path])
    assert line.startswith("skelact: error: --val-fraction applies to a data file"), line
    expect_error(capsys, ["train", str(data), "--work-dir", str(work), "--val-fraction", "1"],
                  ["--val-fraction", "must be in [0, 1), got 1"], [tmp_path], status=2)
    # Every class of the training split a single clip: nothing to carve.
    singles = _file(tmp_path / "singles.pkl", {"train": [0, 1, 2], "test": [0, 1, 2]})
    expect_error(capsys, ["train", str(singles), "--work-dir", str(work)],
                  [str(singles), "no class of the training split has two clips to share with validation",
                   "--val-fraction 0"], [tmp_path])
    assert not work.exists()


def test_hand_written_recipes_name_their_splits_as_before() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        d = cfg.data
        assert d.val_fraction == 0.0 and d.val_split is not None, path
        assert builders.evaluated_split(d) == (d.val_split, "data.val_split"), path


def test_an_old_checkpoint_tests_its_val_split_and_a_recipe_opts_in(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "tiny.pkl")
    names = load_annotations(data)["split"]
    raw = recipe(data, epochs=1)
    raw["model"] = TINY_MODEL
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path), "--work-dir", str(tmp_path / "old")]) == 0
    assert f"({len(names['test'])} clips: 'test')" in capsys.readouterr().out
    # A checkpoint written before data.val_fraction / data.test_split: its config lacks them.
    state = torch.load(tmp_path / "old" / "last.pt", weights_only=True)
    del state["config"]["data"]["val_fraction"], state["config"]["data"]["test_split"]
    torch.save(state, tmp_path / "before.pt")
    out = tmp_path / "before_test"
    assert main(["test", "--checkpoint", str(tmp_path / "before.pt"), "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_clips"] == len(names["test"])

    # The same recipe opting in to the carve: validated on a share of train, tested on test.
    work = tmp_path / "carved"
    assert main(["train", str(path), "--work-dir", str(work), "--set", "data.val_split=null",
                 "data.val_fraction=0.25", "data.test_split=test"]) == 0
    # 6 training clips per class: 25 % is 1.5, rounded half up to 2.
    assert "12 train / 6 validation clips (25% of 'train' (seed 0))" in capsys.readouterr().out
    assert main(["test", "--checkpoint", str(work / "last.pt"), "--out-dir", str(work / "t")]) == 0
    metrics = json.loads((work / "t" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_clips"] == len(names["test"])
    # `calibrate --split` still fits on the named split.
    assert main(["calibrate", str(work / "last.pt"), "-o", str(tmp_path / "on_test.pt"), "--split", "test"]) == 0
    assert "ECE on 'test'" in capsys.readouterr().out


def test_zero_config_on_penn_action_validates_on_a_tenth_of_train(data_root: Path) -> None:
    from skelact.data.convert import convert_penn
    from skelact.data.splits import val_count
    from skelact.engine.autoconfig import FAMILIES

    packed = PackedClips.from_annotations(convert_penn(data_root / "penn_action")[0])
    auto = auto_config(packed, "penn.pkl", "kpc3d")
    d = auto.config.data
    assert (d.train_split, d.val_split, d.val_fraction, d.test_split) == ("train", None, 0.1, "test")
    labels = packed.labels[packed.indices("train")]
    n_val = sum(val_count(int(n), 0.1) for n in np.bincount(labels))
    train_idx, val_idx = builders.validation_split(auto.config, packed, len(packed.classes))
    assert len(val_idx) == n_val and len(train_idx) == len(labels) - n_val
    assert not set(val_idx.tolist()) & set(packed.indices("test").tolist())
    # The step budget counts the clips actually trained on.
    assert d.batch_size == 32 and auto.config.optim.epochs == -(-FAMILIES["kpc3d"].steps // (len(train_idx) // 32))

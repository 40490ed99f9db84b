"""A layout given for a data file that stores another layout of the same joint count (issue 27, item 20).

Decided once, in ``skelact.skeleton.resolve_layout``: a file's stored layout is fixed at conversion,
and a different one given for it (``--set data.layout=``, zero-config ``--layout``, ``viz --layout``)
is refused with one line naming both. What is trained is then in the file's layout, so test, export
and predict on the training file agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from synthetic import make_dataset, recipe

from skelact.checkpoint import Checkpoint
from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

# penn13's joints, renamed: the same count (13), a different layout
NAMES = ["top", "ls", "rs", "le", "re", "lw", "rw", "lh", "rh", "lk", "rk", "la", "ra"]


def _renamed(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"name": "penn_renamed", "joints": NAMES,
                                    "edges": [[1, 0], [2, 0], [3, 1], [4, 2], [5, 3], [6, 4], [7, 1], [8, 2], [9, 7],
                                              [10, 8], [11, 9], [12, 10]]}))
    return path


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("skelact: error: ") and "Traceback" not in err, err
    return err.strip()


def test_conflicting_layout_is_refused_and_the_trained_model_predicts_its_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "penn.pkl", per_class=4)  # stores layout penn13
    other = _renamed(tmp_path / "k13.yaml")
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({**recipe(data), "optim": {**recipe(data)["optim"], "epochs": 1}}))
    before = data.read_bytes()

    conflict = (f"{data}: the file's layout 'penn13' and {{}} 'penn_renamed' differ (both 13 joints); use the "
                "file's layout, or convert the data again with the other one")
    runs = {
        "data.layout": ["train", str(cfg), "--work-dir", str(tmp_path / "a"), "--set", f"data.layout={other}"],
        "--layout": ["train", str(data), "--model", "kpc3d", "--layout", str(other), "--work-dir", str(tmp_path / "b")],
    }
    for given_by, argv in runs.items():
        assert main(argv) == 1, given_by
        assert _one_error(capsys) == "skelact: error: " + conflict.format(given_by)
    assert main(["viz", str(data), "--clip", "c0_00", "--layout", str(other), "--out", str(tmp_path / "v.avi")]) == 1
    assert _one_error(capsys) == "skelact: error: " + conflict.format("--layout")
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".pt", ".avi", ".csv", ".json")]
    assert data.read_bytes() == before

    # the same layout given explicitly is no conflict; training on the file's layout, then every
    # command on the training file agrees
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run"), "--set", "data.layout=penn13"]) == 0
    last = tmp_path / "run" / "last.pt"
    assert Checkpoint.load(last).layout.name == "penn13"
    assert main(["test", "--checkpoint", str(last), "--out-dir", str(tmp_path / "test")]) == 0
    assert main(["predict", str(data), "--clip", "c0_00", "--model", str(last)]) == 0
    capsys.readouterr()


def test_checkpoint_layout_against_another_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`test` of a penn13 model on a file that stores a different 13-joint layout: the same rule, one line."""
    from skelact.data.io import load_annotations, save_annotations

    data = make_dataset(tmp_path / "penn.pkl", per_class=4)
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({**recipe(data), "optim": {**recipe(data)["optim"], "epochs": 1}}))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run")]) == 0
    renamed = load_annotations(data)
    renamed["layout"] = yaml.safe_load(_renamed(tmp_path / "k13.yaml").read_text())
    save_annotations(renamed, tmp_path / "renamed.pkl")
    other_cfg = tmp_path / "r2.yaml"
    other_cfg.write_text(yaml.safe_dump({**recipe(tmp_path / "renamed.pkl")}))
    capsys.readouterr()
    assert main(["test", str(other_cfg), "--checkpoint", str(tmp_path / "run" / "last.pt"),
                 "--out-dir", str(tmp_path / "t")]) == 1
    assert _one_error(capsys) == (f"skelact: error: {tmp_path / 'renamed.pkl'}: the file's layout 'penn_renamed' and "
                                  "the checkpoint's layout 'penn13' differ (both 13 joints); use the file's layout, "
                                  "or convert the data again with the other one")
    assert not (tmp_path / "t").exists()

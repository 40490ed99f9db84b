"""``skelact train --unknown-data``: outlier exposure with real clips of other activities (raw NTU RGB+D
skeletons), what it changes in the model, and a bad file or setting refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hostile import expect_error
from synthetic import make_dataset, raw_ntu_file, recipe

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.io import load_outside, save_annotations
from skelact.inference import Predictor, load_predictor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Penn-like data and a 20-epoch recipe of it, and six real raw NTU clips in 2D (layout ntu25,
    mapped to penn13 by joint names)."""
    root = tmp_path_factory.mktemp("unknown")
    data = make_dataset(root / "tiny.pkl")
    rec = recipe(data, epochs=20, lr=0.2)  # fits its training clips: confident where it should not be
    rec["data"]["augment"] = {}
    rec["calibration"] = {"enabled": False}
    (root / "tiny.yaml").write_text(yaml.safe_dump(rec))
    return {"ntu": raw_ntu_file(data_root, root, 6), "data": data, "recipe": root / "tiny.yaml"}


def _outside_confidence(predictor: Predictor, ntu: Path) -> float:
    """Mean top-1 probability of the model on each body of the NTU clips (as penn13)."""
    clips = load_outside(ntu, predictor.layout)
    probs = [predictor.predict_clip({**c, "keypoint": c["keypoint"][m:m + 1],
                                     "keypoint_score": c["keypoint_score"][m:m + 1]}).probs.max()
             for c in clips for m in range(c["keypoint"].shape[0])]
    return float(np.mean(probs))


def test_unknown_data_teaches_unsureness_outside_the_classes(files: dict[str, Path], tmp_path: Path) -> None:
    plain, exposed = tmp_path / "plain", tmp_path / "exposed"
    assert main(["train", str(files["recipe"]), "--work-dir", str(plain)]) == 0
    assert main(["train", str(files["recipe"]), "--work-dir", str(exposed), "--unknown-data", str(files["ntu"]),
                 "--set", "data.augment.unknown=0.5"]) == 0
    cfg = Checkpoint.load(exposed / "last.pt").config
    assert cfg.data.unknown_file == str(files["ntu"]) and cfg.data.augment.unknown == 0.5
    written = yaml.safe_load((exposed / "config.yaml").read_text())["data"]
    assert written["unknown_file"] == str(files["ntu"])  # the run can be repeated from its recipe
    before = _outside_confidence(load_predictor(str(plain / "last.pt"), device="cpu"), files["ntu"])
    after = _outside_confidence(load_predictor(str(exposed / "last.pt"), device="cpu"), files["ntu"])
    # 3 classes: a uniform prediction has top-1 1/3.
    assert after < before - 0.05 and after < 0.5, (before, after)


def test_unknown_data_default_share(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    work = tmp_path / "w"
    assert main(["train", str(files["data"]), "--work-dir", str(work), "--unknown-data", str(files["ntu"]),
                 "--set", "optim.epochs=1", "data.num_workers=0"]) == 0
    cfg = Checkpoint.load(work / "last.pt").config
    from skelact.cli.train import UNKNOWN_SHARE

    assert cfg.data.augment.unknown == UNKNOWN_SHARE and cfg.data.unknown_file == str(files["ntu"])


def _file(path: Path, keypoint: np.ndarray, layout: str | None) -> Path:
    anns = [{"frame_dir": "x", "label": 0, "total_frames": keypoint.shape[1], "keypoint": keypoint}]
    data = {"annotations": anns, "split": {"all": ["x"]}, "classes": ["other"]}
    if layout is not None:
        data["layout"] = layout
    return save_annotations(data, path)


def test_bad_unknown_data_is_one_line(files: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "w"
    base = ["train", str(files["recipe"]), "--work-dir", str(work), "--unknown-data"]
    rng = np.random.default_rng(0)
    missing = tmp_path / "missing.pkl"
    expect_error(capsys, [*base, str(missing)], [str(missing), "not found"])
    seven = _file(tmp_path / "seven.pkl", rng.uniform(0, 100, (1, 30, 7, 2)).astype(np.float32), None)
    expect_error(capsys, [*base, str(seven)], [str(seven), "7 joints"])
    deep = _file(tmp_path / "deep.pkl", rng.uniform(0, 1, (1, 30, 25, 3)).astype(np.float32), "ntu25")
    expect_error(capsys, [*base, str(deep)], [f"{deep}: 3D keypoints, the training clips are 2D"])
    assert not (work / "last.pt").exists()
    # A share without a file, a share out of range.
    expect_error(capsys, ["train", str(files["recipe"]), "--work-dir", str(work), "--set", "data.augment.unknown=0.3"],
                 ["data.augment.unknown", "data.unknown_file"])
    expect_error(capsys, [*base, str(files["ntu"]), "--set", "data.augment.unknown=1.5"],
                 ["data.augment.unknown: a probability in [0, 1), got 1.5"])
    # The run's outputs may not overwrite it.
    inside = tmp_path / "w2" / "last.pt"
    inside.parent.mkdir()
    shutil.copy(files["ntu"], inside)
    expect_error(capsys, ["train", str(files["recipe"]), "--work-dir", str(inside.parent), "--unknown-data",
                          str(inside)], [str(inside), "is also an input"], [inside.parent])

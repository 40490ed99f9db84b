"""Calibration: the fitted temperature, the unknown threshold, what training
stores and what `skelact predict` / `test` / `calibrate` show."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_dataset, penn_clip, recipe

from skelact.checkpoint import Calibration, Checkpoint
from skelact.cli import main
from skelact.config import config_from_dict
from skelact.data.io import save_annotations
from skelact.engine.calibrate import calibrate, fit_temperature, unknown_threshold
from skelact.engine.train import train
from skelact.inference import load_predictor, view_probs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    """Labels drawn from softmax(z / 2.5): the NLL-optimal temperature of z is close to 2.5."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, size=(4000, 1, 6))
    p = view_probs(z, 2.5)
    labels = np.array([rng.choice(6, p=row) for row in p])
    t = fit_temperature(z, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    c = calibrate(z, labels, "val")
    assert c.temperature == t and c.ece_after < c.ece_before and c.split == "val"
    assert c.accept_rate == pytest.approx(0.95, abs=0.01)


def test_threshold_accepts_the_asked_fraction() -> None:
    probs = np.stack([np.linspace(0.5, 1.0, 101), 1 - np.linspace(0.5, 1.0, 101)], 1)  # top-1 from 0.5 to 1
    thr = unknown_threshold(probs, 0.9)
    assert (probs.max(1) >= thr).mean() == pytest.approx(0.9, abs=0.011)
    with pytest.raises(ValueError):
        unknown_threshold(probs, 0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cal")
    data = make_dataset(root / "tiny.pkl")
    raw = recipe(data, epochs=3)
    raw["data"]["num_clips_test"] = 3
    raw["eval_interval"] = 1
    work = root / "work"
    train(config_from_dict(raw), work)
    return {"data": data, "work": work}


def test_training_stores_the_calibration_in_both_checkpoints(trained: dict[str, Path]) -> None:
    last = Checkpoint.load(trained["work"] / "last.pt", require_train_state=True)
    best = Checkpoint.load(trained["work"] / "best.pt")
    for ckpt in (last, best):
        c = ckpt.calibration
        assert c is not None and c.split == "test" and 0.05 <= c.temperature <= 20
        assert 0 <= c.threshold <= 1 and c.accept_rate >= 0.95 and c.ece_after <= c.ece_before + 1e-9
    assert "calibrated last.pt on 'test'" in (trained["work"] / "log.txt").read_text()
    # The stored threshold is the 5 % quantile of what the test-time prediction gives on that split.
    predictor = load_predictor(trained["work"] / "last.pt")
    assert predictor.calibration == last.calibration


def test_skelact_test_reports_ece_and_unknown_rate(trained: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--checkpoint", str(trained["work"] / "last.pt"), "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ECE:" in out and "unknown:" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    c = Checkpoint.load(trained["work"] / "last.pt").calibration
    assert metrics["temperature"] == c.temperature and metrics["unknown_threshold"] == c.threshold
    assert metrics["unknown_rate"] <= 0.05 + 1e-9  # the split it was fitted on, with the same views


def test_unknown_is_shown_in_text_and_json(trained: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = Checkpoint.load(trained["work"] / "best.pt")
    ckpt.calibration = Calibration(temperature=1.0, threshold=0.999, split="test")  # nothing is that sure
    path = ckpt.save(tmp_path / "strict.pt")
    clip = save_annotations({"annotations": [penn_clip("one", 1, 30, np.random.default_rng(5))],
                             "layout": "penn13"}, tmp_path / "one.pkl", allow_unlabeled=False)
    assert main(["predict", str(clip), "--model", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unknown"] is True and result["label"] is None and result["topk"][0]["label"].startswith("action")
    assert main(["predict", str(clip), "--model", str(path)]) == 0
    assert "unknown action (closest: action" in capsys.readouterr().out
    pred = load_predictor(path).predict_clip(penn_clip("two", 1, 30, np.random.default_rng(6)))
    assert pred.unknown and pred.describe().startswith("unknown action (closest: ")


def test_calibrate_command(trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = trained["work"] / "last.pt"
    out = tmp_path / "cal.pt"
    assert main(["calibrate", str(src), "-o", str(out), "--accept", "0.8"]) == 0
    assert "temperature" in capsys.readouterr().out
    c = Checkpoint.load(out).calibration
    assert c.accept_rate >= 0.8 and math.isfinite(c.temperature)
    assert main(["calibrate", str(src), "-o", str(src), "--force"]) == 1
    assert "is also an input" in capsys.readouterr().err
    assert main(["calibrate", str(src), "-o", str(out)]) == 1  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", str(src), "-o", str(tmp_path / "x.pt"), "--accept", "1.5"])


def test_calibrate_and_test_refuse_a_data_file_of_other_classes(trained: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The recipe's data file now holds other classes (rewritten since training): one line, no output."""
    ckpt = Checkpoint.load(trained["work"] / "last.pt")
    other = make_dataset(tmp_path / "four.pkl", classes=4)
    ckpt.config = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, ann_file=str(other)))
    moved = ckpt.save(tmp_path / "moved.pt")
    assert main(["calibrate", str(moved), "-o", str(tmp_path / "cal.pt")]) == 1
    err = capsys.readouterr().err
    assert "four.pkl: its classes differ from those" in err and "(4 vs 3 classes)" in err
    assert not (tmp_path / "cal.pt").exists()
    assert main(["test", "--checkpoint", str(moved)]) == 1
    assert "its classes differ" in capsys.readouterr().err


def test_no_temperature_from_too_few_or_all_right_clips() -> None:
    """Six validation clips, all right (a 10 % share of a small dataset): the NLL only falls as T shrinks, and
    the fit used to stop at the bound, 0.05, with an unknown threshold of 1.0 that rejected every later clip."""
    rng = np.random.default_rng(0)
    labels = np.arange(6) % 3
    z = rng.normal(0, 1, (6, 2, 3))
    z[np.arange(6), :, labels] += 4.0  # every clip right
    assert fit_temperature(z, labels) == 1.0
    c = calibrate(z, labels, "val")
    assert c.temperature == 1.0 and c.threshold < 0.99
    many = np.tile(z, (5, 1, 1))  # 30 clips, still all right: still no sharpening
    assert fit_temperature(many, np.tile(labels, 5)) == 1.0
    wrong = many.copy()
    wrong[0, :, :] = wrong[0, :, ::-1]  # one clip wrong: a fit is well posed again
    assert fit_temperature(wrong, np.tile(labels, 5)) != 1.0

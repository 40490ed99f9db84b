"""Zero-config training on a file with only train and test splits: validation, best.pt and the
calibration come from a share carved out of the training split, and nothing before `skelact test`
reads a test clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import make_dataset

from skelact import pipeline
from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.dataset import PackedClips
from skelact.data.io import load_annotations
from skelact.data.splits import validation_carve
from skelact.engine import builders

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--set", "data.num_workers=0", "optim.epochs=2", "device=cpu", "data.num_clips_test=2"]


@pytest.fixture
def clips_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the clips read so far: every clip reaches the autoconfig, the datasets and the
    calibration through ``PackedClips.clip``."""
    seen: list[str] = []
    clip = PackedClips.clip

    def spy(self: PackedClips, i: int) -> dict:
        seen.append(self.names[i])
        return clip(self, i)

    monkeypatch.setattr(PackedClips, "clip", spy)
    return seen


@pytest.fixture
def datasets_built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, set[str]]]:
    """``(train, clip names)`` of every dataset built (the engine's, and those scored by inference)."""
    built: list[tuple[bool, set[str]]] = []
    build = pipeline.build_dataset

    def spy(cfg, packed, layout, indices, train, **kw):  # noqa: ANN001, ANN202 - a pass-through
        built.append((train, {packed.names[int(i)] for i in indices}))
        return build(cfg, packed, layout, indices, train, **kw)

    monkeypatch.setattr(builders, "build_dataset", spy)
    monkeypatch.setattr(pipeline, "build_dataset", spy)
    return built


def test_zero_config_validates_on_a_carve_and_only_test_reads_the_test_split(
        tmp_path: Path, clips_read: list[str], datasets_built: list[tuple[bool, set[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "tiny.pkl", classes=3, per_class=12)  # train 9 / test 3 per class
    raw = load_annotations(data)
    train_names, test_names = raw["split"]["train"], raw["split"]["test"]
    label = {a["frame_dir"]: a["label"] for a in raw["annotations"]}
    carve = validation_carve(train_names, [label[n] for n in train_names], 0.1, seed=0)
    val_names = {n for n, v in zip(train_names, carve, strict=True) if v}
    fit_names = set(train_names) - val_names
    assert len(val_names) == 3  # one of each class's 9

    work = tmp_path / "work"
    assert main(["train", str(data), "--model", "kpc3d_small", "--work-dir", str(work), *FAST]) == 0
    out = capsys.readouterr().out
    assert not set(clips_read) & set(test_names)  # not one test clip read before `skelact test`
    assert set(clips_read) == set(train_names)
    # Small data: the zero-config trains four streams; each trains on the fit clips and validates on the carve
    # (the ensemble also reads one validation clip to size its input).
    assert {frozenset(names) for train, names in datasets_built if train} == {frozenset(fit_names)}
    validated = {frozenset(names) for train, names in datasets_built if not train}
    assert frozenset(val_names) in validated and all(names <= val_names for names in validated)
    # Printed as validation, with its size, and how to turn it off.
    assert "data.val_fraction = 0.1" in out and "3 of the 27 'train' clips" in out and "--val-fraction 0" in out
    assert "data.test_split = test" in out and "data.val_split" not in out
    assert "24 train / 3 validation clips (10% of 'train' (seed 0))" in out
    assert "model.streams = j, b, jm, bm" in out
    assert "the ensemble's validation top-1 " in out and "(3 clips: 10% of 'train' (seed 0))" in out
    assert "best top-1" not in out
    assert "calibrated the ensemble of the last.pt on 10% of 'train' (seed 0)" in (work / "log.txt").read_text()
    ckpt = Checkpoint.load(work / "last.pt")
    d = ckpt.config.data
    assert (d.train_split, d.val_split, d.val_fraction, d.test_split) == ("train", None, 0.1, "test")
    assert ckpt.calibration is not None and ckpt.calibration.split == "10% of 'train' (seed 0)"

    # `skelact calibrate` defaults to the same clips: the same temperature and threshold.
    clips_read.clear()
    datasets_built.clear()
    assert main(["calibrate", str(work / "last.pt"), "-o", str(tmp_path / "again.pt")]) == 0
    assert set(clips_read) == val_names and [names for _, names in datasets_built] == [val_names]
    again = Checkpoint.load(tmp_path / "again.pt").calibration
    # (Training fused the streams' logits in numpy, the ensemble's forward sums them in torch: float rounding.)
    assert again is not None and again.temperature == pytest.approx(ckpt.calibration.temperature, rel=1e-3)
    assert again.threshold == pytest.approx(ckpt.calibration.threshold, rel=1e-3)

    # `skelact test` evaluates the test split, and only it.
    clips_read.clear()
    assert main(["test", "--checkpoint", str(work / "best.pt"), "--out-dir", str(tmp_path / "test")]) == 0
    assert set(clips_read) == set(test_names)
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_clips"] == len(test_names)
    assert metrics["calibrated_on"] == "10% of 'train' (seed 0)"

"""skelact.engine.ensemble: streams trained one by one, weights chosen on validation, one checkpoint that
is the weighted sum of the streams' own models; --resume, bad --streams, the memory estimate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hostile import expect_error
from synthetic import recipe

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.config import config_from_dict, parse_streams
from skelact.engine import builders
from skelact.engine.ensemble import choose_weights, stream_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe_file(ann_file: Path, folder: Path, **model: object) -> Path:
    raw = recipe(ann_file)
    raw["data"]["features"] = ["joint"]
    raw["data"]["num_clips_test"] = 3
    raw["model"] = {**raw["model"], **model}
    path = folder / "ens.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def ensemble(ann_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``skelact train RECIPE --streams j,b,bm`` on the tiny data file (2 epochs a stream)."""
    root = tmp_path_factory.mktemp("ensemble")
    cfg = _recipe_file(ann_file, root)
    work = root / "work"
    assert main(["train", str(cfg), "--work-dir", str(work), "--streams", "j,b,bm"]) == 0
    return {"recipe": cfg, "work": work, "data": ann_file}


def test_choose_weights_finds_the_combination_that_beats_each_stream() -> None:
    # Stream 0 is right on clips 0-1 (by 1) and wrong on 2-3 (by 0.5); stream 1 the other way round.
    labels = np.array([0, 0, 0, 0])
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 0.5]])
    b = np.array([[0.0, 0.5], [0.0, 0.5], [1.0, 0.0], [1.0, 0.0]])
    logits = np.stack([a, b])[:, :, None, :].astype(np.float32)  # [S, N, K=1, C]
    weights, top1 = choose_weights(logits, labels)
    assert weights == (0.5, 0.5) and top1 == 1.0  # each alone: 50 %
    weights, top1 = choose_weights(np.stack([a, -a])[:, :, None, :].astype(np.float32), np.array([0, 0, 1, 1]))
    assert weights == (1.0, 0.0) and top1 == 1.0  # a stream that is always wrong gets weight 0


def test_choose_weights_keeps_equal_weights_within_noise() -> None:
    """One clip of 20 more for a weighting is noise (two standard errors: 0.13): equal weights stay."""
    rng = np.random.default_rng(0)
    labels = np.zeros(20, np.int64)
    a = np.tile([[1.0, 0.0]], (20, 1))
    b = np.tile([[1.0, 0.0]], (20, 1))
    a[:3], b[:3] = [0.0, 1.0], [0.0, 1.0]  # both wrong on clips 0-2
    a[3], b[3] = [0.6, 0.0], [0.0, 1.0]  # clip 3: a right by 0.6, b wrong by 1: only a weighting towards a fixes it
    logits = np.stack([a, b])[:, :, None, :].astype(np.float32) + rng.normal(0, 1e-4, (2, 20, 1, 2)).astype(np.float32)
    weights, top1 = choose_weights(logits, labels)
    assert weights == (0.5, 0.5) and top1 == pytest.approx(16 / 20)  # 17/20 with a weighting: within noise


@pytest.mark.parametrize("which", ["best", "last"])
def test_the_checkpoint_is_the_weighted_sum_of_the_streams_models(ensemble: dict[str, Path], which: str) -> None:
    """``best.pt`` fuses the streams' ``best.pt``, ``last.pt`` their ``last.pt``; each calibrated on validation."""
    work = ensemble["work"]
    ckpt = Checkpoint.load(work / f"{which}.pt")
    streams = ckpt.config.model.streams
    assert [s.name for s in streams] == ["j", "b", "bm"] and ckpt.config.data.features == ["joint"]
    assert all(s.weight is not None for s in streams) and abs(sum(s.weight for s in streams) - 1) < 1e-5
    assert ckpt.calibration is not None and ckpt.calibration.split == "test"
    assert ckpt.train is None
    log = (work / "log.txt").read_text()
    assert f"ensemble of the {which}.pt: weights j " in log and "validation top-1" in log
    assert f"calibrated the ensemble of the {which}.pt" in log

    # The ensemble on the joint clips == each stream's own checkpoint on its own pipeline, weighted.
    packed = builders.load_clips(ckpt.config.data)
    idx = builders.split_indices(packed, "test", len(ckpt.classes), "test")[:5]
    ds = builders.build_dataset(ckpt.config, packed, ckpt.layout, idx, train=False, num_clips=2)
    x = torch.stack([ds[i][0] for i in range(len(ds))]).flatten(0, 1)
    with torch.no_grad():
        got = ckpt.build_model()(x)
        want = torch.zeros_like(got)
        for s in streams:
            own = Checkpoint.load(work / "streams" / s.name / f"{which}.pt")
            assert own.config == stream_config(ckpt.config, s)  # what the stream was trained with
            sds = builders.build_dataset(own.config, packed, own.layout, idx, train=False, num_clips=2)
            xs = torch.stack([sds[i][0] for i in range(len(sds))]).flatten(0, 1)
            want += s.weight * own.build_model()(xs)
    assert torch.allclose(got, want, atol=1e-5)


def test_resume_skips_finished_streams_and_trains_the_missing_one(ensemble: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    work = tmp_path / "work"
    shutil.copytree(ensemble["work"], work)
    shutil.rmtree(work / "streams" / "bm")
    kept = {s: (work / "streams" / s / "last.pt").stat().st_mtime_ns for s in ("j", "b")}
    capsys.readouterr()
    assert main(["train", str(ensemble["recipe"]), "--work-dir", str(work), "--streams", "j,b,bm", "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("nothing to do") == 2 and "epoch 2/2" in out  # j, b finished; bm trained
    assert {s: (work / "streams" / s / "last.pt").stat().st_mtime_ns for s in ("j", "b")} == kept
    assert Checkpoint.load(work / "streams" / "bm" / "last.pt").epoch == 2
    assert Checkpoint.load(work / "best.pt").config.model.streams[2].name == "bm"


def test_weights_given_by_the_recipe_are_kept(ann_file: Path, tmp_path: Path) -> None:
    streams = [{"name": "j", "features": ["joint"], "weight": 2.0}, {"name": "jm", "features": ["joint_motion"],
                                                                      "weight": 1.0}]
    cfg = _recipe_file(ann_file, tmp_path, streams=streams)
    work = tmp_path / "w"
    assert main(["train", str(cfg), "--work-dir", str(work), "--set", "optim.epochs=1"]) == 0
    assert [s.weight for s in Checkpoint.load(work / "best.pt").config.model.streams] == [2.0, 1.0]
    assert "(given by the recipe)" in (work / "log.txt").read_text()


@pytest.mark.parametrize("value,needle", [("j,x", "unknown stream 'x'"), ("j,j", "used twice"), ("j,joint", "repeats"),
                                          ("", "unknown stream ''")])
def test_bad_streams_are_a_usage_error(ann_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       value: str, needle: str) -> None:
    work = tmp_path / "w"
    line = expect_error(capsys, ["train", str(ann_file), "--work-dir", str(work), "--streams", value],
                        ["--streams", needle], watch=[tmp_path], status=2)
    assert "argument --streams" in line
    assert not work.exists()


def test_overfit_with_streams_is_a_usage_error(ann_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "w"
    code = main(["train", str(ann_file), "--work-dir", str(work), "--streams", "j,b", "--overfit", "4"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("skelact: error: --overfit: ")
    assert not work.exists()


def test_a_recipe_with_streams_and_other_features_is_refused(ann_file: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    raw = recipe(ann_file)  # data.features: [joint, bone]
    raw["model"]["streams"] = [{"name": "j", "features": ["joint"]}]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    expect_error(capsys, ["train", str(path), "--work-dir", str(tmp_path / "w")],
                 ["r.yaml", "data.features: an ensemble's input is the joint clip"], watch=[tmp_path])
    assert not (tmp_path / "w").exists()


def test_memory_estimate_counts_every_streams_weights(ann_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streams run one at a time (one stream's activations), but every stream's weights are loaded."""
    from skelact.engine import memory
    from skelact.skeleton import get_layout

    raw = recipe(ann_file)
    raw["data"]["features"] = ["joint"]
    single = config_from_dict(raw)
    ens = dataclasses.replace(single, model=dataclasses.replace(single.model, streams=parse_streams("j,b,jm,bm")))
    layout = get_layout("penn13")
    one = memory.estimate_model_memory(single.model.name, dict(single.model.kwargs), 3, 3, 13, 1, 16, 8,
                                       training=False)
    assert one is not None
    limit = one.total + 2 * one.model_bytes  # room for three streams' weights, not four
    monkeypatch.setattr(memory, "available_memory", lambda device: limit)
    builders.check_memory(single, 3, layout, 3, (1, 16), 8, "cpu", "tiny.pkl", training=False)
    with pytest.raises(memory.MemoryLimitError, match="tiny.pkl: layout 'penn13'"):
        builders.check_memory(ens, 3, layout, 3, (1, 16), 8, "cpu", "tiny.pkl", training=False)
    monkeypatch.setattr(memory, "available_memory", lambda device: limit + one.model_bytes)
    builders.check_memory(ens, 3, layout, 3, (1, 16), 8, "cpu", "tiny.pkl", training=False)


@pytest.mark.parametrize("streams,needle", [
    ([{"name": "j", "weight": 1.0}, {"name": "b", "features": ["bone"]}], "give every stream a weight, or none"),
    ([{"name": "j", "weight": -1.0}], "model.streams[0].weight: must be >= 0"),
    ([{"name": "j", "weight": 0.0}, {"name": "b", "features": ["bone"], "weight": 0.0}], "the weights are all 0"),
    ([{"name": "../x"}], "model.streams[0].name: '../x' is not 1-32 letters"),
    ([{"name": "j", "features": ["speed"]}], "unknown feature 'speed'"),
    ([{"name": "j"}, {"name": "j", "features": ["bone"]}], "the name 'j' is used twice"),
])
def test_bad_streams_in_a_recipe(ann_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 streams: list, needle: str) -> None:
    cfg = _recipe_file(ann_file, tmp_path, streams=streams)
    expect_error(capsys, ["train", str(cfg), "--work-dir", str(tmp_path / "w")], ["ens.yaml", needle],
                 watch=[tmp_path])
    assert not (tmp_path / "w").exists()


def test_a_checkpoint_of_streams_without_weights_is_refused(ensemble: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    state = torch.load(ensemble["work"] / "best.pt", weights_only=True)
    for s in state["config"]["model"]["streams"]:
        s["weight"] = None
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    expect_error(capsys, ["test", "--checkpoint", str(bad), "--out-dir", str(tmp_path / "t")],
                 ["bad.pt: its ensemble of 3 streams has no fusion weights"], watch=[tmp_path])
    state["config"]["model"]["streams"] = state["config"]["model"]["streams"][:2]  # weights of a third stream
    for s in state["config"]["model"]["streams"]:
        s["weight"] = 1.0
    torch.save(state, bad)
    expect_error(capsys, ["test", "--checkpoint", str(bad), "--out-dir", str(tmp_path / "t")],
                 ["bad.pt: its weights do not fit an ensemble of 2 'stgcnpp' streams", "unexpected"], watch=[tmp_path])


def test_a_recipe_inside_a_streams_folder_is_not_overwritten(ensemble: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`train WORK/streams/j/config.yaml --work-dir WORK --streams j`: stream j would write over its input."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(ensemble["work"], work)
    expect_error(capsys, ["train", str(work / "streams" / "j" / "config.yaml"), "--work-dir", str(work), "--streams",
                          "j,b"], ["streams/j/config.yaml"], watch=[work])


def test_an_ensemble_under_torchrun_is_refused(ann_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    expect_error(capsys, ["train", str(ann_file), "--work-dir", str(tmp_path / "w"), "--streams", "j,b"],
                 ["model.streams: an ensemble trains in one process"], watch=[tmp_path])
    assert not (tmp_path / "w").exists()

"""Training (skelact.engine.train) on a tiny synthetic dataset: per-epoch data in workers, outputs, resume,
SIGKILL, DDP, and evaluating what it wrote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from synthetic import TINY_MODEL, recipe

from skelact.checkpoint import Checkpoint, CheckpointError
from skelact.config import config_from_dict, config_to_dict, load_config
from skelact.engine import builders, metrics
from skelact.engine.distributed import state_digest
from skelact.engine.evaluate import evaluate, load_scores
from skelact.engine.train import CSV_FIELDS, train
from skelact.skeleton import get_layout

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(ann_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """A 2-epoch run shared by the tests that only read its outputs."""
    work = tmp_path_factory.mktemp("run")
    cfg = config_from_dict(recipe(ann_file))
    return train(cfg, work), work


def _csv_epochs(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(CSV_FIELDS)
    return [int(line.split(",")[0]) for line in lines[1:]]


def _run(args: list[str], **kw: object) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


# ------------------------------------------------------------------------------------ data in workers


def test_persistent_workers_follow_the_epoch(ann_file: Path) -> None:
    """Each (epoch, index) pair reaches the worker's copy of the dataset: augmentation changes per epoch
    and equals what the dataset gives in the main process for that epoch."""
    from torch.utils.data import DataLoader, DistributedSampler

    from skelact.engine.train import _EpochDataset, _EpochIndexSampler

    cfg = config_from_dict(recipe(ann_file))
    packed = builders.load_clips(cfg.data)
    layout = builders.resolve_layout(cfg.data, packed)
    ds = builders.build_dataset(cfg, packed, layout, packed.indices("train"), train=True)
    sampler = _EpochIndexSampler(DistributedSampler(ds, num_replicas=1, rank=0, shuffle=False))
    loader = DataLoader(_EpochDataset(ds), batch_size=4, sampler=sampler, num_workers=1, persistent_workers=True)
    got = []
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        got.append(next(iter(loader))[0])  # [4, M, T, V, C]
    assert not torch.equal(got[0], got[1])
    for epoch, batch in zip((1, 2), got, strict=True):
        ds.set_epoch(epoch)
        torch.testing.assert_close(batch, torch.stack([ds[i][0] for i in range(4)]))


# ------------------------------------------------------------------------------------- training


def test_train_writes_checkpoints_csv_and_curves(trained: tuple[dict, Path]) -> None:
    result, work = trained
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png", "config.yaml", "log.txt"):
        assert (work / name).is_file(), name
    assert _csv_epochs(work / "metrics.csv") == [1, 2]
    raw = torch.load(work / "last.pt", weights_only=True)  # plain containers and tensors only
    assert raw["format"] == "skelact-checkpoint" and raw["layout"] == get_layout("penn13").to_dict()
    ckpt = Checkpoint.load(work / "last.pt", require_train_state=True)
    assert ckpt.epoch == 2 and ckpt.layout == get_layout("penn13")
    assert ckpt.classes == ["action0", "action1", "action2"]
    assert config_to_dict(ckpt.config)["model"] == {**TINY_MODEL, "streams": []}
    assert ckpt.in_channels == 5  # joint + bone + score
    assert result["epoch"] == 2 and 0.0 <= result["val_top1"] <= 1.0
    assert result["best_epoch"] in (1, 2)
    # The digest covers exactly the weights saved in last.pt.
    assert state_digest(ckpt.build_model()) == result["weights_digest"]


def test_bf16_training_keeps_float32_weights(ann_file: Path, tmp_path: Path) -> None:
    result = train(config_from_dict(recipe(ann_file, amp="bf16")), tmp_path)
    assert result["epoch"] == 2
    weights = [v for v in Checkpoint.load(tmp_path / "last.pt").model.values() if v.is_floating_point()]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights)


def test_join_augmentation_trains_on_soft_targets(ann_file: Path, tmp_path: Path) -> None:
    rec = recipe(ann_file)
    rec["data"]["augment"]["join"] = 0.5
    result = train(config_from_dict(rec), tmp_path)
    assert result["epoch"] == 2
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    train_top1 = float(rows[-1].split(",")[list(CSV_FIELDS).index("train_top1")])
    assert 0.0 <= train_top1 <= 1.0  # accuracy against the larger share
    with pytest.raises(Exception, match=r"data.augment.join: a probability"):
        rec["data"]["augment"]["join"] = 1.5
        config_from_dict(rec)


def test_resume_refuses_another_recipe_and_keeps_the_rows(ann_file: Path, tmp_path: Path) -> None:
    """A resume must be the same run: a changed recipe is refused, naming the key, before any work;
    the same recipe on a finished run has nothing to do and keeps the CSV rows."""
    cfg2 = config_from_dict(recipe(ann_file))
    train(cfg2, tmp_path)
    rows_before = (tmp_path / "metrics.csv").read_text().splitlines()
    before = (tmp_path / "last.pt").read_bytes()
    cfg3 = config_from_dict(recipe(ann_file, epochs=3))
    with pytest.raises(CheckpointError, match=r"cannot resume: the config differs in optim\.epochs \(2 -> 3\)"):
        train(cfg3, tmp_path, resume=True)
    assert (tmp_path / "last.pt").read_bytes() == before
    result = train(cfg2, tmp_path, resume=True)
    assert result["epoch"] == 2
    assert (tmp_path / "metrics.csv").read_text().splitlines() == rows_before
    log = (tmp_path / "log.txt").read_text()
    assert "resumed from" in log and "nothing to do" in log


def test_ema_checkpoint_holds_the_average_and_resumes_exactly(ann_file: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With optim.ema, "model" is the average (what validation and `skelact test` use) and "train_model"
    the raw weights; resuming from epoch 2 of 3 ends where the uninterrupted run ends."""
    cfg = config_from_dict(recipe(ann_file, epochs=3, ema=0.9))
    saved = Checkpoint.save
    (tmp_path / "resumed").mkdir()

    def keep_epoch_2(self: Checkpoint, path: Path) -> Path:
        out = saved(self, path)
        if self.epoch == 2 and Path(path).name == "last.pt":
            shutil.copy(out, tmp_path / "resumed" / "last.pt")
        return out

    monkeypatch.setattr(Checkpoint, "save", keep_epoch_2)
    straight = train(cfg, tmp_path / "straight")
    ckpt = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    steps = 3 * (18 // 6)  # 18 training clips, batch 6
    assert ckpt["ema_updates"] == steps
    avg, raw = ckpt["model"], ckpt["train_model"]
    assert avg.keys() == raw.keys()
    assert any(not torch.allclose(avg[k], raw[k]) for k in avg if avg[k].is_floating_point())

    resumed = train(cfg, tmp_path / "resumed", resume=True)
    end = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for key in ("model", "train_model"):
        for k in ckpt[key]:
            torch.testing.assert_close(end[key][k], ckpt[key][k], rtol=1e-4, atol=1e-5, msg=f"{key}.{k}")
    assert end["ema_updates"] == steps
    assert resumed["val_top1"] == pytest.approx(straight["val_top1"])


def test_sigkill_then_resume_matches_an_uninterrupted_run(ann_file: Path, tmp_path: Path) -> None:
    epochs = 6
    raw = recipe(ann_file, epochs=epochs)
    raw["data"]["batch_size"] = 3  # more steps per epoch: a kill lands mid-run
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    work = tmp_path / "killed"
    proc = _run(["-m", "skelact.cli", "train", str(cfg_file), "--work-dir", str(work)])
    deadline = time.monotonic() + 120
    while not (work / "last.pt").exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training finished before the kill; make epochs slower"
    done = Checkpoint.load(work / "last.pt").epoch
    assert 1 <= done < epochs

    resumed = train(load_config(cfg_file), work, resume=True)
    assert _csv_epochs(work / "metrics.csv") == list(range(1, epochs + 1))
    assert Checkpoint.load(work / "last.pt").epoch == epochs
    straight = train(load_config(cfg_file), tmp_path / "straight")
    # Same epoch-seeded data order and augmentation, restored optimiser / schedule / RNG: same run.
    a, b = Checkpoint.load(work / "last.pt").model, Checkpoint.load(tmp_path / "straight" / "last.pt").model
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert resumed["val_top1"] == pytest.approx(straight["val_top1"])


def test_ddp_two_cpu_processes_end_with_identical_weights(ann_file: Path, tmp_path: Path) -> None:
    cfg_file = tmp_path / "cfg.yaml"
    raw = recipe(ann_file)
    raw["data"]["batch_size"] = 4
    cfg_file.write_text(yaml.safe_dump(raw))
    work = tmp_path / "ddp"
    proc = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                 "skelact.cli", "train", str(cfg_file), "--work-dir", str(work),
                 "--result", str(tmp_path / "result_{rank}.json")])
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    r0 = json.loads((tmp_path / "result_0.json").read_text())
    r1 = json.loads((tmp_path / "result_1.json").read_text())
    assert r0["weights_digest"] == r1["weights_digest"]
    assert r0["val_top1"] == r1["val_top1"]  # metrics are gathered / all-reduced, not per rank
    assert _csv_epochs(work / "metrics.csv") == [1, 2]  # only rank 0 writes
    assert out.count("epoch 2/2 lr") == 1
    assert Checkpoint.load(work / "last.pt").epoch == 2


# ----------------------------------------------------------------------------------- evaluation


def test_evaluate_writes_outputs_that_agree_with_metrics(trained: tuple[dict, Path], ann_file: Path,
                                                         tmp_path: Path) -> None:
    _, work = trained
    cfg = config_from_dict(recipe(ann_file))
    res = evaluate(cfg, work / "best.pt", num_clips=3, flip=True, out_dir=tmp_path)
    for name in ("scores.npz", "report.txt", "confusion.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    s = load_scores(tmp_path / "scores.npz")
    assert s["probs"].shape == (6, 3)
    np.testing.assert_allclose(s["probs"].sum(axis=1), 1.0, rtol=1e-6)
    assert s["names"].tolist() == [f"c{c}_{i:02d}" for c in range(3) for i in (0, 4)]
    assert s["classes"].tolist() == ["action0", "action1", "action2"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    expected = metrics.summarize(s["probs"], s["labels"])
    for k, v in expected.items():
        assert saved[k] == pytest.approx(v) and res[k] == pytest.approx(v), k
    assert saved["views"] == 6 and saved["flip"] is True
    assert "action2" in (tmp_path / "report.txt").read_text()
    # cfg=None takes the checkpoint's own config; no flip -> a different average, same clips.
    res2 = evaluate(None, work / "best.pt", num_clips=1, flip=False, out_dir=None)
    assert res2["num_clips"] == 6 and res2["views"] == 1


def test_best_pt_is_the_latest_epoch_within_noise_of_the_peak(ann_file: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """best.pt: the latest validated epoch whose top-1 is within ``noise_margin`` of the best seen,
    not the strict maximum (which on a few validation clips picks noise)."""
    scripted = iter([0.5, 0.9, 0.85, 0.6, 0.88, 0.80])
    margins = []

    def summarize(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {"loss": 1.0, "top1": next(scripted), "top5": 1.0, "mean_class_acc": 0.5}

    def margin(peak: float, clips: int) -> float:
        margins.append((peak, clips))
        return 0.05

    monkeypatch.setattr(metrics, "summarize", summarize)
    monkeypatch.setattr(metrics, "noise_margin", margin)
    cfg = config_from_dict({**recipe(ann_file, epochs=6), "eval_interval": 1})
    result = train(cfg, tmp_path / "w")
    # 0.85 is within 0.05 of the peak 0.9 (epoch 3), 0.6 is not, 0.88 is (epoch 5), 0.80 is not.
    assert (result["best_epoch"], result["best_top1"]) == (5, 0.88)
    assert Checkpoint.load(tmp_path / "w" / "best.pt").epoch == 5
    assert [p for p, _ in margins] == [0.5, 0.9, 0.9, 0.9, 0.9, 0.9]  # against the peak so far
    monkeypatch.undo()
    assert metrics.noise_margin(0.9, 15) == pytest.approx(0.1549, abs=1e-4)  # 2 sqrt(0.9 * 0.1 / 15)
    assert metrics.noise_margin(1.0, 10) == metrics.noise_margin(0.95, 10)  # a perfect score on 10 clips is not exact

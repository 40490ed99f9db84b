"""``skelact train --init CKPT|NAME`` and ``--backbone-lr-mult`` (recipe keys ``init``,
``optim.backbone_lr_mult``) through the CLI: the printout, the weights it trains from, frozen
backbones, a resume, and every refusal as one line with nothing written."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from hostile import expect_error

from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.config import Config, ModelConfig, OptimConfig, config_from_dict
from skelact.engine.builders import build_optimizer
from skelact.models import create_model
from skelact.skeleton import layout_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--set", "optim.epochs=1", "data.num_clips_test=2"]


def _out(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_recipe_init_with_a_frozen_backbone(run: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, work = run["ckpt"], tmp_path / "frozen"
    raw = yaml.safe_load(run["recipe"].read_text())
    recipe = tmp_path / "fine_tune.yaml"  # the recipe keys, no options
    recipe.write_text(yaml.safe_dump({**raw, "init": str(ckpt), "optim": {**raw["optim"], "backbone_lr_mult": 0}}))
    capsys.readouterr()
    assert main(["train", str(recipe), "--work-dir", str(work), *FAST]) == 0
    out = _out(capsys)
    start = out.index(f"init: weights of {ckpt} (stgcnpp, 3 classes, layout penn13)")
    block = out[start:start + 6]
    assert block[1:4] == ["  joints: penn13 -> penn13: 13 of 13 matched by name",
                          "  channels: joint.x, joint.y, bone.x, bone.y, score kept",
                          "  head: kept (3 classes, the same list)"]
    assert block[4].endswith(" kept, 0 remapped, 0 new, 0 dropped")
    assert block[5] == "  backbone: frozen (optim.backbone_lr_mult 0: only the head trains)"
    src, got = Checkpoint.load(ckpt), Checkpoint.load(work / "last.pt")
    assert got.config.init == str(ckpt) and got.config.optim.backbone_lr_mult == 0
    names = [n for n, _ in create_model("stgcnpp", 3, "penn13", 5, **src.config.model.kwargs).named_parameters()]
    backbone = [n for n in names if not n.startswith("fc.")]
    assert backbone and all(torch.equal(got.model[n], src.model[n]) for n in backbone)  # frozen
    assert not torch.equal(got.model["fc.weight"], src.model["fc.weight"])  # the head trained
    # BatchNorm statistics follow the new run's data even when frozen (documented).
    assert not torch.equal(got.model["data_bn.running_mean"], src.model["data_bn.running_mean"])


def test_zero_config_init_takes_the_checkpoints_model_and_maps_channels(
        run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, work = run["ckpt"], tmp_path / "auto"
    capsys.readouterr()
    assert main(["train", str(run["data"]), "--init", str(ckpt), "--work-dir", str(work), *FAST,
                 "data.num_workers=0", "device=cpu", "optim.ema=null"]) == 0
    out = _out(capsys)
    assert f"  model: stgcnpp with the model.kwargs of {ckpt} (--init)" in out
    # The zero-config recipe streams joints only: the checkpoint's bone channels are dropped.
    assert "  channels: joint.x, joint.y, score kept; dropped: bone.x, bone.y" in out
    assert "  backbone: learning rate x1 (optim.backbone_lr_mult)" in out
    src = Checkpoint.load(ckpt)
    cfg = config_from_dict(yaml.safe_load((work / "config.yaml").read_text()))
    assert cfg.init == str(ckpt) and cfg.model.name == "stgcnpp" and cfg.model.kwargs == src.config.model.kwargs


def test_resume_continues_its_own_weights_not_the_init(run: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "w"
    args = ["train", str(run["recipe"]), "--init", str(run["ckpt"]), "--work-dir", str(work), *FAST]
    assert main(args) == 0
    before = Checkpoint.load(work / "last.pt").model
    capsys.readouterr()
    assert main([*args[:-3], "--resume", *FAST]) == 0
    out = capsys.readouterr().out
    assert "init: weights of" not in out and f"nothing to do: {work / 'last.pt'} already holds epoch 1" in out
    after = Checkpoint.load(work / "last.pt").model
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_python_api_starts_from_a_shipped_name(run: dict[str, Path], tmp_path: Path) -> None:
    """``train()`` resolves a shipped model's name in ``cfg.init`` as the CLI does (it once took paths only)."""
    from skelact.engine.train import train

    raw = yaml.safe_load(run["recipe"].read_text())
    cfg = config_from_dict({**raw, "init": "penn_kpc3d", "model": {"name": "kpc3d"},
                            "optim": {**raw["optim"], "epochs": 1}, "data": {**raw["data"], "num_clips_test": 2}})
    train(cfg, tmp_path / "w")
    log = (tmp_path / "w" / "log.txt").read_text()
    assert "init: weights of penn_kpc3d (kpc3d, 15 classes, layout penn13)" in log
    assert "  head: rebuilt, 15 -> 3 classes (fresh weights)" in log


def test_backbone_lr_mult_makes_two_parameter_groups() -> None:
    model = create_model("kpc3d_small", 4, "penn13", 3)
    opt = build_optimizer(OptimConfig(lr=0.1, backbone_lr_mult=0.25), model)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.025]  # the head first: its lr is the one logged
    assert [len(g["params"]) for g in opt.param_groups] == [2, len(list(model.parameters())) - 2]
    frozen = build_optimizer(OptimConfig(lr=0.1, backbone_lr_mult=0.0), model)
    assert len(frozen.param_groups) == 1 and frozen.param_groups[0]["params"] == [model.fc.weight, model.fc.bias]
    assert not model.data_bn.weight.requires_grad and model.fc.weight.requires_grad
    plain = build_optimizer(OptimConfig(lr=0.1), create_model("kpc3d_small", 4, "penn13", 3))
    assert len(plain.param_groups) == 1  # without the multiplier: as before (resumes of older runs)


# ------------------------------------------------------------------------------------------ refusals


def _variant(src: Path, out: Path, **changes: object) -> Path:
    ckpt = Checkpoint.load(src)
    replace(ckpt, **changes).released().save(out)
    return out


def test_refusals(run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, ckpt = str(run["recipe"]), run["ckpt"]
    work = tmp_path / "never"
    base = ["train", recipe, "--work-dir", str(work)]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all\n" * 4)
    src = Checkpoint.load(ckpt)
    renamed = layout_from_dict({**src.layout.to_dict(), "name": "mine", "joints": [f"j{i}" for i in range(13)]})
    no_common = _variant(ckpt, tmp_path / "mine.pt", layout=renamed)
    unknown = _variant(ckpt, tmp_path / "unknown.pt",
                       config=replace(src.config, model=replace(src.config.model, name="no_such_net")))
    kp = create_model("kpc3d_small", 3, "penn13", 5)
    other = tmp_path / "kpc3d.pt"
    Checkpoint(kp.state_dict(), Config(model=ModelConfig(name="kpc3d_small")), src.classes, src.layout, 5).save(other)
    watch = [tmp_path]
    cases = [
        (["--init", str(tmp_path / "nope.pt")], ["--init: ", "nope.pt: checkpoint not found"], 2),
        (["--init", "no_such_shipped_model"],
         ["--init: 'no_such_shipped_model' is neither a checkpoint file nor a shipped model (shipped: "], 2),
        (["--init", str(junk)], [f"{junk}: not a readable checkpoint"], 1),
        (["--init", str(no_common)], [f"{no_common}: no joint of its layout 'mine' (j0, j1, j2, j3 (+9 more)) is "
                                      "named like one of the data's layout 'penn13'"], 1),
        (["--init", str(unknown)], [f"{unknown}: holds a 'no_such_net' model, which this skelact does not have"], 1),
        (["--init", str(other)], [f"{other}: holds a 'kpc3d_small' model, the run trains 'stgcnpp'"], 1),
        (["--backbone-lr-mult", "0.5"], ["--backbone-lr-mult: applies to a backbone loaded with --init"], 2),
        (["--init", str(ckpt), "--backbone-lr-mult", "-1"],
         ["argument --backbone-lr-mult: must be a finite number >= 0, got -1"], 2),
        # A frozen first layer would keep the channels the start has no weights for at zero.
        (["--init", str(ckpt), "--backbone-lr-mult", "0", "--set", "data.features=[joint,bone,partner]"],
         [f"{ckpt}: optim.backbone_lr_mult 0 freezes the first layer, and the run's input channels partner.x, "
          "partner.y are new to it"], 1),
    ]
    for extra, needles, status in cases:
        expect_error(capsys, [*base, *extra], needles, watch=watch, status=status)
        assert not work.exists(), extra
    # A data file and the shipped ensemble start of another family: refused before a stream's folder is made.
    expect_error(capsys, ["train", str(run["data"]), "--init", "pretrain_kpc3d", "--model", "stgcnpp", "--work-dir",
                          str(work)], ["pretrain_kpc3d: holds a 'kpc3d' model, the run trains 'stgcnpp'"], watch=watch)
    assert not work.exists()


def test_recipe_refusals(run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = yaml.safe_load(run["recipe"].read_text())
    bad_name = tmp_path / "bad_name.yaml"
    bad_name.write_text(yaml.safe_dump({**raw, "init": "no_such_shipped_model"}))
    mult = tmp_path / "mult.yaml"
    mult.write_text(yaml.safe_dump({**raw, "optim": {**raw["optim"], "backbone_lr_mult": 0.5}}))
    work = tmp_path / "never"
    expect_error(capsys, ["train", str(bad_name), "--work-dir", str(work)],
                 [f"{bad_name}: init: 'no_such_shipped_model' is neither a checkpoint file nor a shipped model"],
                 watch=[tmp_path])
    expect_error(capsys, ["train", str(mult), "--work-dir", str(work)],
                 [f"{mult}: optim.backbone_lr_mult: 0.5 applies to a backbone loaded with init (--init CKPT|NAME)"],
                 watch=[tmp_path])
    assert not work.exists()


def test_a_work_dir_that_would_overwrite_the_init_checkpoint(run: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "prev"
    shutil.copytree(run["work"], work)
    for name in ("last.pt", "best.pt"):
        expect_error(capsys, ["train", str(run["recipe"]), "--init", str(work / name), "--work-dir", str(work)],
                     [f"{work / name}: is also an input of this command"], watch=[work])

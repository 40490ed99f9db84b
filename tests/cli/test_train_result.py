"""``skelact train --result FILE``: the final metrics as JSON, refused before training when FILE is an input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from synthetic import make_dataset, recipe

from skelact.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_result_writes_the_final_metrics_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(recipe(make_dataset(tmp_path / "tiny.pkl"), epochs=1)))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run"),
                 "--result", str(tmp_path / "result_{rank}.json")]) == 0
    result = json.loads((tmp_path / "result_0.json").read_text())
    assert {"best_top1", "best_epoch", "val_top1"} <= result.keys()
    assert f"best.pt: validation top-1 {100 * result['best_top1']:.2f} %" in capsys.readouterr().out


def test_result_that_is_the_recipe_is_refused_before_training(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(recipe(make_dataset(tmp_path / "tiny.pkl"))))
    before = cfg.read_bytes()
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run"), "--result", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err == f"skelact: error: {cfg}: is also an input of this command; write the output to another file\n"
    assert cfg.read_bytes() == before
    assert not (tmp_path / "run").exists()

"""`skelact train` (and `test`) at the command line: bad recipes, overrides and data files are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hostile import expect_error
from synthetic import recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bad_recipes_and_overrides(run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = recipe(run["data"])
    work = tmp_path / "w"

    def recipe_file(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    good = recipe_file("good.yaml", yaml.safe_dump(raw))
    layout5 = recipe_file("edges5.yaml", "joints: [a, b]\nedges: 5\n")
    latin1_layout = recipe_file("latin1_layout.yaml", b"joints: [caf\xe9]\n")
    cases: list[tuple[list[str], list[str]]] = [
        ([str(recipe_file("model.yaml", yaml.safe_dump({**raw, "model": {"name": "nope"}})))],
         ["model.name: unknown model 'nope'"]),
        ([str(good), "--set", "model.name=nope"], ["unknown model 'nope'"]),
        ([str(good), "--set", "optim.lr=[1,"], ["--set 'optim.lr=[1,'", "not valid YAML"]),
        ([str(good), "--set", "optim.lr=!!python/object/apply:os.system [ls]"], ["!!python", "not allowed"]),
        ([str(good), "--set", f"data.layout={layout5}"], ["edges5.yaml", "'edges' must be a list"]),
        ([str(recipe_file("latin1.yaml", b"data:\n  ann_file: caf\xe9.pkl\n"))], ["latin1.yaml", "not a UTF-8"]),
        ([str(good), "--set", f"data.layout={latin1_layout}"], ["latin1_layout.yaml", "not a UTF-8"]),
        ([str(good), "--set", "model.kwargs={bogus: 1}"], ["model 'stgcnpp' has no option 'bogus'"]),
        ([str(good), "--set", "model.kwargs={channels: 5}"], ["model 'stgcnpp'", "wrong type"]),
        ([str(good), "--set", "optim.lr=.nan"], ["optim.lr", "finite"]),
        ([str(good), "--set", "optim.lr=.inf"], ["optim.lr", "finite"]),
        ([str(good), "--set", "optim.lr=1e12"], ["optim.lr", "(0, 10]"]),
        ([str(good), "--set", "optim.clip_grad=-1"], ["optim.clip_grad", "> 0"]),
        ([str(good), "--set", "optim.warmup_epochs=-2"], ["optim.warmup_epochs", ">= 0"]),
        ([str(recipe_file("syntax.yaml", "data: {clip_len: [1,\n"))], ["syntax.yaml", "not valid YAML at line"]),
    ]
    if not torch.cuda.is_available():
        cases += [([str(good), "--set", "optim.amp=fp16"], ["optim.amp: fp16 needs CUDA"]),
                  ([str(good), "--set", "device=cuda"], ["device: cuda", "CUDA is not available"])]
    for extra, needles in cases:
        expect_error(capsys, ["train", *extra, "--work-dir", str(work)], needles, [tmp_path])
        assert not work.exists()

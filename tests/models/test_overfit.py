"""Every registered model overfits 100 real Penn Action clips to 100% (the check the first attempt failed).

Each model's ``configs/penn_<model>[_j].yaml`` records its ``overfit`` settings (lr, epochs, clip
length, model size); ``train(..., overfit=100)`` trains on 100 clips spread over the 15 classes
without augmentation and evaluates on the same clips with the test-time pipeline.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skelact.config import load_config
from skelact.data.convert.penn import convert_penn
from skelact.data.io import save_annotations
from skelact.engine.train import train
from skelact.models import list_models

REPO = Path(__file__).resolve().parents[2]


def recipe_for(model: str) -> Path:
    for name in (f"penn_{model}.yaml", f"penn_{model}_j.yaml"):
        if (REPO / "configs" / name).is_file():
            return REPO / "configs" / name
    raise AssertionError(f"registered model {model!r} has no Penn Action recipe (configs/penn_{model}.yaml)")


@pytest.fixture(scope="module")
def penn_file(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, _ = convert_penn(data_root / "penn_action")
    return save_annotations(data, tmp_path_factory.mktemp("penn") / "penn_action.pkl")


@pytest.mark.slow
@pytest.mark.parametrize("model", list_models())
def test_overfits_100_penn_clips(model: str, penn_file: Path, tmp_path: Path) -> None:
    # Validate once, after the last epoch (the overfit run evaluates on its own 100 training clips).
    cfg = load_config(recipe_for(model), [f"data.ann_file={penn_file}", "data.num_workers=0", "eval_interval=1000"])
    assert cfg.model.name == model
    start = time.perf_counter()
    result = train(cfg, tmp_path, overfit=100)
    elapsed = time.perf_counter() - start
    assert result["val_top1"] == 1.0, (
        f"{model}: {result['val_top1']:.2%} on its 100 training clips after {result['epoch']} epochs "
        f"({elapsed:.0f} s); train top-1 {result['train_top1']:.2%}, loss {result['train_loss']:.3f}")

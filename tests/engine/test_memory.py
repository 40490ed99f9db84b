"""The memory estimate before training (issue 27, item 6): a small data file with a layout of
thousands of joints is refused with one line naming the layout, its joint count and the limit, in
bounded memory and time, before the model is built; the estimate itself follows what a training
step really takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import assert_one_line_error, run_cli_batch

from skelact.data.io import save_annotations
from skelact.engine.memory import (
    MemoryEstimate,
    MemoryLimitError,
    available_memory,
    check_fits,
    estimate_model_memory,
)
from skelact.skeleton import Layout


def _chain(v: int, name: str) -> Layout:
    return Layout(name=name, joints=tuple(f"j{i}" for i in range(v)), edges=tuple((i, i + 1) for i in range(v - 1)),
                  root=0)


def _many_joints(path: Path, joints: int, clips: int = 4, frames: int = 48) -> Path:
    """A PYSKL file of two-person 2D clips over a ``joints``-joint chain layout (stored whole in the file)."""
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"c{i}", "total_frames": frames, "img_shape": (360, 480), "original_shape": (360, 480),
             "label": i % 2, "keypoint": rng.uniform(0, 300, (2, frames, joints, 2)).astype(np.float16),
             "keypoint_score": np.ones((2, frames, joints), np.float16)} for i in range(clips)]
    names = [a["frame_dir"] for a in anns]
    save_annotations({"split": {"train": names[:3], "val": names[3:]}, "annotations": anns, "classes": ["a", "b"],
                      "layout": _chain(joints, f"chain{joints}").to_dict()}, path)
    return path


def test_train_refuses_a_layout_too_large_for_memory(tmp_path: Path) -> None:
    """ST-GCN++ on 2000 joints, 48 frames, 2 persons, batches of 4: about 55 GB, refused on any machine
    with less (and always in the harness's child, which runs under an 8 GB address-space limit)."""
    model = "stgcnpp"
    data = _many_joints(tmp_path / "wide.pkl", 2000)
    assert data.stat().st_size < 10 << 20  # 9 MB of data ...
    work = tmp_path / "run"
    result, = run_cli_batch([(["train", str(data), "--model", model, "--work-dir", str(work)], tmp_path)],
                            timeout=300)
    # ... refused in seconds with well under a gigabyte, instead of the tens of GB training would take
    message = assert_one_line_error(result, str(data), max_seconds=60, max_peak_bytes=1 << 30)
    assert f"layout 'chain2000' (2000 joints): training {model} (batch 4 x 48 frames x 2 persons) needs about " \
        in message, message
    assert "GB available on this machine; lower data.batch_size or data.clip_len" in message
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p != data)


TINY = {"channels": [8, 8], "strides": [1, 2], "dilations": [1, 2]}  # two ST-GCN++ blocks


def test_estimate_follows_joints_frames_and_batch() -> None:
    """Parameters grow with V² for ST-GCN++ (an adjacency per block), activations with V, T and N."""
    def est(v: int, t: int = 20, n: int = 4) -> MemoryEstimate:
        e = estimate_model_memory("stgcnpp", TINY, 5, 3, v, 2, t, n)
        assert e is not None
        return e

    small, wide = est(25), est(250)
    # 2 blocks x 3 subsets x V x V float32, for weights, gradients and momentum (3 copies)
    adjacency = 3 * 2 * 3 * 4 * (250**2 - 25**2)
    assert wide.model_bytes - small.model_bytes == pytest.approx(adjacency, rel=0.05)
    assert wide.batch_bytes == pytest.approx(10 * small.batch_bytes, rel=0.15)
    assert est(25, t=40).batch_bytes == pytest.approx(2 * small.batch_bytes, rel=0.15)
    assert est(25, n=8).batch_bytes == 2 * small.batch_bytes


def test_estimate_is_not_below_a_measured_step() -> None:
    """The estimate of a small ST-GCN++ step against the bytes autograd really saves for it (not an RSS
    figure, so it holds with either torch wheel): at least those, and not wildly more."""
    from skelact.models import create_model

    layout = _chain(40, "chain40")
    model = create_model("stgcnpp", num_classes=5, layout=layout, in_channels=3, **TINY).train()
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.rand(4, 2, 30, 40, 3))
    est = estimate_model_memory("stgcnpp", TINY, 5, 3, 40, 2, 30, 4)
    assert est is not None
    assert sum(saved.values()) <= est.batch_bytes <= 4 * sum(saved.values())


def test_check_fits_names_layout_and_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("skelact.engine.memory.available_memory", lambda device: 3 << 30)
    layout = _chain(300, "wide")
    check_fits(MemoryEstimate(1 << 30, 1 << 30), "cpu", "d.pkl", layout, "training x", "do less")  # fits
    check_fits(None, "cpu", "d.pkl", layout, "training x", "do less")  # no estimate: no check
    with pytest.raises(MemoryLimitError) as e:
        check_fits(MemoryEstimate(1 << 30, 5 << 30), "cpu", "d.pkl", layout, "training x", "do less")
    assert str(e.value) == ("d.pkl: layout 'wide' (300 joints): training x needs about 6.0 GB, more than the "
                            "3.0 GB available on this machine; do less")


def test_available_memory_reads_the_machine() -> None:
    avail = available_memory("cpu")
    assert avail is not None and 0 < avail <= (np.iinfo(np.int64).max)


def test_train_and_test_commands_check_before_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`train` and `test` through the CLI on a machine with 64 KB to spare (available_memory patched): one
    line each naming the data file and the layout, and nothing written."""
    import yaml
    from synthetic import make_dataset, recipe

    from skelact.cli import main

    data = make_dataset(tmp_path / "d.pkl", per_class=4)
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({**recipe(data), "optim": {**recipe(data)["optim"], "epochs": 1}}))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    monkeypatch.setattr("skelact.engine.memory.available_memory", lambda device: 64 << 10)
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "run2")]) == 1
    assert main(["test", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--out-dir", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    for line, what in zip(lines, ("training stgcnpp (batch 6", "running stgcnpp (batch 10"), strict=True):
        assert line.startswith(f"skelact: error: {data}: layout 'penn13' (13 joints): {what} x 16 frames x 1 "
                               "persons) needs about "), line
        advice = ("data.clip_len" if what.startswith("training") else "the views per clip (--num-clips)")
        assert line.endswith(f"more than the 64 KB available on this machine; lower data.batch_size or {advice}")
    assert not any(p.is_file() for p in set(tmp_path.rglob("*")) - set(before))

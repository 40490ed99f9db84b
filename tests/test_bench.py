"""`skelact bench`: the quickest settings produce every row with positive, finite numbers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.bench import (
    STAGES,
    BenchOptions,
    format_table,
    reference_joint_heatmaps,
    reference_limb_heatmaps,
    run_benchmarks,
    synthetic_poses,
)
from skelact.cli import main
from skelact.models import list_models
from skelact.models.heatmap import joint_heatmaps, limb_heatmaps
from skelact.runtime import native_bf16

EXPECTED = {
    "heatmap": ["joint heatmaps, 1 thread", "limb heatmaps, 1 thread", "joint max |diff| vs formula",
                "limb max |diff| vs formula"],
    "data": [f"{p}, {w} workers" for p in ("stgcnpp", "kpc3d", "poseconv3d") for w in (0, 2)],
    # bf16 rows only where the CPU computes bf16 natively (the CI machine may or may not).
    "models": [f"{m} {what}" for m in list_models() for what in
               ("params", "GMACs", "train", "inference")
               + (("train bf16", "inference bf16") if native_bf16(torch.device("cpu")) else ())],
    "video": ["decode", "MoveNet pose, input 256", "tracking", "action model, 1 clip",
              "end to end: decode+pose+track+action"],
    "memory": ["load_annotations", "PackedClips.from_annotations", "peak RSS increase, load + pack",
               "RSS increase after packing", "write packed cache", "open packed cache (mmap) + 1 clip"],
}


def _matches(item: str, expected: str) -> bool:
    # Data rows carry the pipeline's description between the model family and the worker count.
    head, _, tail = expected.partition(", ")
    return item == expected or (item.startswith(head + ":") and item.endswith(tail))


def test_quick_bench_has_every_row(shared_root_or_none) -> None:
    report = run_benchmarks(BenchOptions(quick=True, repeats=1, threads=1))
    assert report.env["torch"] == torch.__version__ and report.env["cpu"] and report.env["date"]
    for stage in STAGES:
        rows = [r for r in report.rows if r.stage == stage]
        assert len(rows) == len(EXPECTED[stage]), (stage, [r.item for r in rows])
        for row, expected in zip(rows, EXPECTED[stage], strict=True):
            assert _matches(row.item, expected), (row.item, expected)
            if row.value is None:  # only the video stage may skip, when the video or pose model is absent
                assert stage == "video" and row.note.startswith("skipped"), row
                continue
            assert math.isfinite(row.value), row
            if "|diff|" in row.item:
                assert 0 <= row.value <= 1e-5, row
            else:
                assert row.value > 0, row
                assert all(math.isfinite(v) and v > 0 for v in row.runs), row
    if shared_root_or_none is not None:  # the shared video and MoveNet model are there: no skipping
        assert all(r.value is not None for r in report.rows if r.stage == "video")
    table = format_table(report)
    assert all(r.item in table for r in report.rows)
    json.dumps(report.to_dict())


@pytest.fixture
def shared_root_or_none() -> Path | None:
    """The shared folder when it holds the sample video and a MoveNet model (as conftest finds it)."""
    root = Path(os.environ.get("SKELACT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    ok = (root / "data" / "videos" / "ntu_sample.avi").is_file() and any((root / "models").glob("*.tflite"))
    return root if ok else None


def test_cli_bench_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "1", "--only", "heatmap", "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "joint heatmaps, 1 thread" in text and "PYSKL 40.8 ms" in text
    data = json.loads(out.read_text())
    assert {r["stage"] for r in data["rows"]} == {"heatmap"}
    assert data["env"]["threads"] >= 1 and data["options"]["quick"] is True


def test_cli_bench_rejects_bad_options(capsys) -> None:
    assert main(["bench", "--quick", "--video", "no/such/video.avi"]) == 1
    assert "video file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--only", "nonsense"])


def test_reference_heatmaps_agree_on_edge_cases() -> None:
    # Missing joints, a zero-length limb and keypoints off the map, on a small map.
    kp, score = synthetic_poses(1, 2, 3, np.random.default_rng(0), image=(20, 20))
    kp[0, 0, 0, 1] = kp[0, 0, 0, 0]
    kp[0, 1, 1, 3] = (-5.0, 30.0)
    score[0, 0, 2, 4] = 0
    kp_t, score_t = torch.from_numpy(kp), torch.from_numpy(score)
    kn, sn = kp.astype(np.float64), score.astype(np.float64)
    limbs = [(0, 1), (1, 3), (5, 7), (3, 4)]
    assert np.abs(joint_heatmaps(kp_t, score_t, 20).numpy() - reference_joint_heatmaps(kn, sn, 20, 0.6)).max() <= 1e-5
    assert np.abs(limb_heatmaps(kp_t, score_t, limbs, 20).numpy()
                  - reference_limb_heatmaps(kn, sn, limbs, 20, 0.6)).max() <= 1e-5


def test_cli_stage_choices_are_the_bench_stages() -> None:
    from skelact.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    only = next(a for a in sub.choices["bench"]._actions if a.dest == "only")
    assert tuple(only.choices) == STAGES

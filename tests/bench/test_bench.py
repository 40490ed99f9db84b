"""`skelact bench` (skelact.bench): every row of the quick table, stage isolation, saving after every
model, the command line, and PYSKL's side through a stand-in checkout (a real one with SKELACT_PYSKL)."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from skelact.bench import STAGES, BenchOptions, Row, format_table, run_benchmarks
from skelact.bench.pyskl import PYSKL_CONFIGS, PysklError, PysklWorker
from skelact.bench.stages import BENCHES, Context
from skelact.bench.stages.heatmap import bench_heatmaps
from skelact.cli import main
from skelact.models import list_models
from skelact.runtime import native_bf16

BF16 = native_bf16(torch.device("cpu"))
PRECISIONS = ("fp32", "bf16") if BF16 else ("fp32",)
RECIPE = {"stgcnpp", "kpc3d", "poseconv3d_c3d", "poseconv3d_slowonly"}


def _heatmap_items(pyskl: bool) -> list[str]:
    items = []
    for kind in ("joint", "limb"):
        items += [f"{kind} heatmaps, 1 thread", f"{kind}: skelact's torch path",
                  f"{kind}: numpy reference, PYSKL's algorithm"]
        items += [f"{kind}: PYSKL GeneratePoseTarget"] if pyskl else []
        items += [f"{kind}: write the output only"]
    who = ("skelact", "torch path", "reference", "pyskl") if pyskl else ("skelact", "torch path", "reference")
    return items + [f"{kind} max |diff|: {w} vs formula" for w in who for kind in ("joint", "limb")]


def _model_items(name: str) -> list[str]:
    items = ["params", "GMACs", *(f"train step {p}" for p in PRECISIONS)]
    if name in RECIPE:
        items += [f"train end to end {p}" + (" (amp: auto)" if p == PRECISIONS[-1] else "") for p in PRECISIONS]
    return [f"{name} {i}" for i in items + [f"inference {p}" for p in PRECISIONS]]


EXPECTED = {
    "machine": ["matmul fp32, 1 thread", "matmul bf16, 1 thread", "memset 32 MiB, 1 thread", "copy 32 MiB, 1 thread"],
    "heatmap": _heatmap_items(pyskl=False),
    "data": [f"{p}, {w} workers" for p in ("stgcnpp", "kpc3d", "poseconv3d") for w in (0, 2)],
    "models": [item for m in list_models() for item in _model_items(m)],
    "video": ["decode", "pose front end (default: top-down)", "tracking", "action model, 1 clip",
              "end to end: decode+pose+track+action"],
    "memory": ["load_annotations", "PackedClips.from_annotations", "peak RSS increase, load + pack",
               "RSS increase after packing", "write packed cache", "open packed cache (mmap) + 1 clip"],
}


def _matches(item: str, expected: str) -> bool:
    # Data rows carry the pipeline's description between the model family and the worker count.
    head, _, tail = expected.partition(", ")
    return item == expected or (item.startswith(head + ":") and item.endswith(tail))


@pytest.fixture
def shared_root_or_none() -> Path | None:
    """The shared folder when it holds the sample video and a MoveNet model (as conftest finds it)."""
    root = Path(os.environ.get("SKELACT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    ok = (root / "data" / "videos" / "ntu_sample.avi").is_file() and any((root / "models").glob("*.tflite"))
    return root if ok else None


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
            # Without PYSKL, ratios exist only against the heatmap references timed in this run.
            reference = row.item.endswith((": skelact's torch path", ": numpy reference, PYSKL's algorithm",
                                           ": write the output only"))
            assert (row.speedup is not None) == reference, row
    if shared_root_or_none is not None:  # the shared video and MoveNet model are there: no skipping
        assert all(r.value is not None for r in report.rows if r.stage == "video")
    # Model rows give their achieved GFLOP/s as a fraction of this run's fp32 matmul peak.
    peak = next(r for r in report.rows if r.item == "matmul fp32, 1 thread").extra["peak"]
    step = next(r for r in report.rows if r.item == "stgcnpp train step fp32")
    assert step.extra["fraction_of_matmul_peak"] == pytest.approx(step.extra["gflop_per_s"] / peak)
    table = format_table(report)
    assert all(r.item in table for r in report.rows)
    assert "PYSKL" not in table.replace("PYSKL's algorithm", "")  # no PYSKL figures without --pyskl
    json.dumps(report.to_dict())


def test_a_failing_stage_keeps_the_other_rows(monkeypatch) -> None:
    def broken(ctx: Context) -> list[Row]:
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(BENCHES, "machine", broken)
    seen = []
    report = run_benchmarks(BenchOptions(quick=True, repeats=1, only=("heatmap",)),
                            on_stage=lambda r: seen.append(len(r.rows)))
    failed = [r for r in report.rows if r.stage == "machine"]  # the machine stage runs for the heatmap one
    assert len(failed) == 1 and failed[0].value is None and "RuntimeError: disk on fire" in failed[0].note
    heatmap = [r for r in report.rows if r.stage == "heatmap"]
    assert [r.item for r in heatmap] == EXPECTED["heatmap"] and all(r.value is not None for r in heatmap)
    # Without the machine's limits the heatmap rows carry no fraction of them.
    assert "fraction_of_memset_bandwidth" not in heatmap[0].extra
    assert seen == [1, 1 + len(EXPECTED["heatmap"])]  # the partial report after every stage


def test_cli_bench_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "1", "--only", "heatmap", "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "joint heatmaps, 1 thread" in text and "x faster" in text and "matmul fp32" in text
    data = json.loads(out.read_text())
    assert {r["stage"] for r in data["rows"]} == {"machine", "heatmap"}
    assert data["env"]["threads"] >= 1 and data["options"]["quick"] is True
    ref = next(r for r in data["rows"] if r["item"] == "limb: numpy reference, PYSKL's algorithm")
    assert ref["speedup"] > 0 and ref["speedup_of"] == "limb heatmaps, 1 thread"


def test_cli_bench_rejects_bad_options(tmp_path, capsys) -> None:
    assert main(["bench", "--quick", "--video", "no/such/video.avi"]) == 1
    assert "video file not found" in capsys.readouterr().err
    assert main(["bench", "--quick", "--pyskl", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pyskl" in err and "not a PYSKL checkout" in err
    assert main(["bench", "--quick", "--pyskl-python", sys.executable]) == 1
    assert "needs --pyskl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--only", "nonsense"])


def test_cli_stage_choices_are_the_bench_stages() -> None:
    from skelact.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    only = next(a for a in sub.choices["bench"]._actions if a.dest == "only")
    assert tuple(only.choices) == STAGES


def _fake_pyskl(root: Path, broken_mmcv: bool = False) -> Path:
    """A stand-in PYSKL checkout: mmcv and a GeneratePoseTarget drawing with skelact's reference."""
    for config in PYSKL_CONFIGS.values():
        (root / config).parent.mkdir(parents=True, exist_ok=True)
        (root / config).write_text("model = dict()\n")
    (root / "pyskl" / "datasets" / "pipelines").mkdir(parents=True)
    (root / "pyskl" / "__init__.py").write_text("__version__ = 'stand-in'\n")
    (root / "pyskl" / "datasets" / "__init__.py").write_text("")
    (root / "mmcv").mkdir()
    (root / "mmcv" / "__init__.py").write_text("raise ImportError('no mmcv here')\n" if broken_mmcv
                                               else "__version__ = '1.7.2'\n")
    (root / "pyskl" / "datasets" / "pipelines" / "__init__.py").write_text(textwrap.dedent("""
        import numpy as np
        from skelact.bench.reference import pyskl_joint_heatmaps, pyskl_limb_heatmaps

        class GeneratePoseTarget:
            def __init__(self, sigma, with_kp, with_limb, skeletons):
                self.sigma, self.with_kp, self.skeletons = sigma, with_kp, skeletons

            def gen_an_aug(self, r):  # (M, T, V, 2) -> (T, C, H, W), as PYSKL's
                kp, s = r["keypoint"][None], r["keypoint_score"][None]
                if self.with_kp:
                    out = pyskl_joint_heatmaps(kp, s, r["img_shape"], self.sigma)
                else:
                    out = pyskl_limb_heatmaps(kp, s, list(self.skeletons), r["img_shape"], self.sigma)
                return out[0].transpose(1, 0, 2, 3)
    """))
    return root


def test_heatmaps_against_a_pyskl_worker(tmp_path) -> None:
    root = _fake_pyskl(tmp_path / "pyskl")
    ctx = Context(BenchOptions(quick=True, repeats=2, pyskl=root))
    try:
        rows = bench_heatmaps(ctx)
    finally:
        ctx.close()
    assert ctx.pyskl_error is None
    assert [r.item for r in rows] == _heatmap_items(pyskl=True)
    by_item = {r.item: r for r in rows}
    for kind in ("joint", "limb"):
        theirs = by_item[f"{kind}: PYSKL GeneratePoseTarget"]
        assert theirs.value > 0 and theirs.speedup > 0 and len(theirs.speedup_runs) == 2
        # The worker's output came back through its file and matches the formula.
        assert by_item[f"{kind} max |diff|: pyskl vs formula"].value <= 1e-5


def test_pyskl_worker_failures_are_one_line(tmp_path, capsys) -> None:
    root = _fake_pyskl(tmp_path / "pyskl", broken_mmcv=True)
    with pytest.raises(PysklError, match="no mmcv here"):
        PysklWorker(root)
    # The command line refuses such a checkout before measuring anything, in one line.
    assert main(["bench", "--quick", "--only", "heatmap", "--pyskl", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("skelact: error: --pyskl: cannot load PYSKL") and "no mmcv" in err
    # In a run, PYSKL's rows say why they are missing and skelact's rows are all there.
    ctx = Context(BenchOptions(quick=True, repeats=1, pyskl=root))
    rows = bench_heatmaps(ctx)
    ctx.close()
    skipped = [r for r in rows if r.value is None]
    assert [r.item for r in skipped] == ["joint: PYSKL GeneratePoseTarget", "limb: PYSKL GeneratePoseTarget"]
    assert all("no mmcv here" in r.note for r in skipped)
    assert sum(r.value is not None for r in rows) == len(_heatmap_items(pyskl=False))
    # A request the worker does not know fails alone; the worker keeps serving.
    good = _fake_pyskl(tmp_path / "good")
    with PysklWorker(good) as worker:
        with pytest.raises(PysklError, match="KeyError"):
            worker.call("time", name="nothing", number=1)
        assert worker.call("threads", n=1)["threads"] == 1


@pytest.mark.skipif(not os.environ.get("SKELACT_PYSKL"), reason="set SKELACT_PYSKL to a PYSKL checkout "
                    "(and SKELACT_PYSKL_PYTHON to an interpreter with mmcv 1.x)")
def test_real_pyskl_heatmaps() -> None:
    ctx = Context(BenchOptions(quick=True, repeats=1, pyskl=Path(os.environ["SKELACT_PYSKL"]),
                               pyskl_python=os.environ.get("SKELACT_PYSKL_PYTHON")))
    try:
        rows = {r.item: r for r in bench_heatmaps(ctx)}
    finally:
        ctx.close()
    assert ctx.pyskl_error is None
    assert rows["joint: PYSKL GeneratePoseTarget"].speedup > 1
    # PYSKL cuts its Gaussians at 3 sigma: within exp(-4.5) of the peak of the formula, not equal.
    assert 1e-5 < rows["joint max |diff|: pyskl vs formula"].value < 0.012


def test_models_stage_saves_after_every_model(monkeypatch) -> None:
    monkeypatch.setattr("skelact.models.list_models", lambda: ["kpc3d_small"])
    seen: list[list[str]] = []
    report = run_benchmarks(BenchOptions(quick=True, repeats=1, threads=1, only=("models",)),
                            on_stage=lambda r: seen.append([row.item for row in r.rows]))
    machine = EXPECTED["machine"]
    # After the machine stage, after the one model (mid-stage), after the models stage.
    assert seen[0] == machine and seen[1] == seen[2] == [r.item for r in report.rows]
    assert seen[1][len(machine):] == _model_items("kpc3d_small")



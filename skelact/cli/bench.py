"""``skelact bench``: this machine's speed, stage by stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skelact.cli.common import CLIError, check_output, positive_int

__all__ = ["add_parsers"]


def _cmd_bench(args: argparse.Namespace) -> None:
    from skelact.bench import BenchOptions, format_table, run_benchmarks, write_json

    try:
        opts = BenchOptions(quick=args.quick, repeats=args.repeats, threads=args.threads,
                            only=tuple(args.only) if args.only else None, pose_model=args.pose_model,
                            video=args.video, model=args.model, pyskl=args.pyskl, pyskl_python=args.pyskl_python)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.pyskl_python is not None:
        if args.pyskl is None:
            raise CLIError("--pyskl-python: needs --pyskl PATH")
        if not Path(args.pyskl_python).is_file():
            raise CLIError(f"--pyskl-python: {args.pyskl_python}: interpreter not found")
    if args.video is not None and not args.video.is_file():
        raise CLIError(f"{args.video}: video file not found")
    if args.pose_model is not None and not args.pose_model.is_file():
        raise CLIError(f"{args.pose_model}: pose model file not found")
    if args.model is not None:
        from skelact.inference import resolve_model_spec

        resolve_model_spec(args.model)  # a bad --model fails before minutes of measuring
    if args.pyskl is not None:
        from skelact.bench.pyskl import PysklWorker

        with PysklWorker(args.pyskl, args.pyskl_python):  # so does a PYSKL that does not load
            pass
    if args.json is not None:
        inputs = [p for p in (args.video, args.pose_model, args.model and Path(args.model)) if p]
        check_output(args.json, inputs, force=True)
    # The JSON is rewritten after every stage, so an interrupted run keeps what it measured.
    partial = None if args.json is None else lambda report: write_json(report, args.json)
    report = run_benchmarks(opts, log=None if args.quiet else lambda line: print(line, file=sys.stderr),
                            on_stage=partial)
    print(format_table(report))
    if args.json is not None:
        print(f"wrote {write_json(report, args.json)}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``bench``."""
    p = sub.add_parser("bench", help="measure every stage's speed on this machine, as one table",
                       description="Time this machine's limits (matmul GFLOP/s, memset / copy GB/s), heatmap "
                       "drawing (1 thread), the data pipelines, every registered model (params, GMACs, training "
                       "and inference clips/s), video -> action end to end, and loading an NTU60-sized pickle. "
                       "Each figure is the median of several runs after a warm-up. Every 'x faster' is measured "
                       "in the same run against a reference interleaved with skelact's figure (a numpy "
                       "reference of PYSKL's heatmap algorithm; with --pyskl, PYSKL's own code). Run it on an "
                       "otherwise idle machine.")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few runs: a smoke test, not for reporting")
    p.add_argument("--repeats", type=positive_int, default=None, metavar="N",
                   help="timed runs per figure (default 5; 3 with --quick)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch and pose model threads for the model and video stages (default: torch's)")
    # Stage names as in skelact.bench.STAGES (not imported here to keep `skelact --help` fast).
    p.add_argument("--only", nargs="+", default=None, metavar="STAGE",
                   choices=("machine", "heatmap", "data", "models", "video", "memory"),
                   help="run only these stages: machine, heatmap, data, models, video, memory (machine runs "
                   "whenever heatmap or models does)")
    p.add_argument("--pyskl", type=Path, default=None, metavar="PATH",
                   help="a PYSKL checkout: time its GeneratePoseTarget and its ST-GCN++, C3D-light and "
                   "SlowOnly-R50 (from its configs) interleaved with skelact's (needs mmcv 1.x, see --pyskl-python)")
    p.add_argument("--pyskl-python", default=None, metavar="PYTHON",
                   help="interpreter that runs PYSKL's side, e.g. a venv with mmcv 1.x (default: this one)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    p.add_argument("--pose-model", type=Path, default=None, metavar="PATH",
                   help="MoveNet MultiPose .tflite (default: $SKELACT_SHARED/models, else the user cache)")
    p.add_argument("--video", type=Path, default=None, metavar="PATH",
                   help="video for the end-to-end stage (default: $SKELACT_SHARED/data/videos/ntu_sample.avi)")
    p.add_argument("--model", default=None, metavar="NAME|CKPT",
                   help="action model of the video stage (default: a randomly initialised kpc3d)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_bench)

"""The ``skelact`` command: one entry point with sub-commands.

Each sub-command imports what it needs when it runs, so ``skelact --help`` and light commands stay
fast. Expected failures (bad input files, bad options) print one line ``skelact: error: ...`` and
exit with status 1; nothing is left half written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from skelact import __version__


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is a usage error, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _cmd_convert(args: argparse.Namespace) -> None:
    from skelact.data.convert import convert_ntu, convert_penn, convert_ucla
    from skelact.data.io import save_annotations

    out = Path(args.output)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: already exists (use --force to overwrite)")
    if args.source == "ntu":
        data, summary = convert_ntu(
            args.src, dims=args.dims, max_bodies=args.max_bodies, missing=args.missing,
            benchmark=args.benchmark, workers=args.workers,
        )
    elif args.source == "penn":
        data, summary = convert_penn(args.src)
    else:
        data, summary = convert_ucla(args.src)
    save_annotations(data, out, force=args.force)
    print(summary)
    print(f"wrote {out}")


def _cmd_info(args: argparse.Namespace) -> None:
    from skelact.data.io import load_annotations, summarize

    print(summarize(load_annotations(args.file, allow_unlabeled=True)))


def _cmd_extract(args: argparse.Namespace) -> None:
    from skelact.data.io import save_annotations
    from skelact.pose import MoveNet, extract_videos

    out = Path(args.output)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: already exists (use --force to overwrite)")
    model = MoveNet(args.pose_model, input_size=args.input_size, num_threads=args.threads)
    data, failures = extract_videos(args.inputs, model, max_persons=args.max_persons, progress=not args.quiet)
    save_annotations(data, out, force=args.force, allow_unlabeled=True)
    done = len(data["annotations"])
    print(f"wrote {out}: {done} clip(s)" + (f", {len(failures)} video(s) skipped" if failures else ""))


def _load_clip(path: Path, clip: str | None) -> tuple[dict, dict]:
    """The annotation dict and one clip of it (the only clip when ``clip`` is None)."""
    from skelact.data.io import load_annotations

    data = load_annotations(path, allow_unlabeled=True)
    anns = data["annotations"]
    if clip is None:
        if len(anns) != 1:
            raise CLIError(f"{path}: holds {len(anns)} clips; choose one with --clip NAME")
        return data, anns[0]
    for ann in anns:
        if ann["frame_dir"] == clip:
            return data, ann
    raise CLIError(f"{path}: no clip named {clip!r}")


def _cmd_viz(args: argparse.Namespace) -> None:
    from skelact.skeleton import get_layout, infer_layout
    from skelact.viz.video import to_canvas, write_skeleton_video

    data, ann = _load_clip(args.data, args.clip)
    kp, score = ann["keypoint"], ann.get("keypoint_score")
    layout = get_layout(args.layout or data.get("layout") or infer_layout(kp.shape[2]))
    label, classes = ann["label"], data.get("classes")
    true_label = (classes[label] if classes else str(label)) if label >= 0 else None
    frames, img_shape = None, ann.get("img_shape")
    if args.video is not None:
        from skelact.pose.extract import iter_frames

        frames = iter_frames(args.video)
    elif kp.shape[-1] == 3 or img_shape is None:
        # 3D (or coordinates without an image): project into a black canvas.
        kp, img_shape = to_canvas(kp), (480, 640)
    out = write_skeleton_video(args.out, kp, score, layout, frames=frames, img_shape=img_shape,
                               true_label=true_label, fps=args.fps)
    print(f"wrote {out}")


def _cmd_train(args: argparse.Namespace) -> None:
    from skelact.config import load_config
    from skelact.engine.train import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.work_dir, resume=args.resume, overfit=args.overfit)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        best = 100 * result["best_top1"]
        print(f"best top-1 {best:.2f} % at epoch {result['best_epoch']}; outputs in {args.work_dir}")


def _cmd_test(args: argparse.Namespace) -> None:
    from skelact.config import load_config
    from skelact.engine.evaluate import evaluate

    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    out_dir = args.out_dir or Path(args.checkpoint).resolve().parent / "test"
    metrics = evaluate(cfg, Path(args.checkpoint), num_clips=args.num_clips, flip=args.flip, out_dir=out_dir)
    _print_metrics(metrics)
    print(f"scores, report, confusion matrix in {out_dir}")


def _print_metrics(metrics: dict) -> None:
    """Print the summary metrics (fractions in [0, 1]) as percentages."""
    names = [("top1", "top-1"), ("top5", "top-5"), ("mean_class_acc", "mean class acc"),
             ("macro_precision", "macro precision"), ("macro_recall", "macro recall"), ("macro_f1", "macro F1")]
    for key, label in names:
        if key in metrics:
            print(f"{label:>16}: {100 * metrics[key]:.2f} %")
    for key, label in (("loss", "loss"), ("brier", "Brier score")):
        if key in metrics:
            print(f"{label:>16}: {metrics[key]:.4f}")


def _cmd_fuse(args: argparse.Namespace) -> None:
    from skelact.engine.evaluate import fuse

    metrics = fuse(args.scores, args.weights, args.out_dir)
    _print_metrics(metrics)
    if args.out_dir is not None:
        print(f"fused scores, report, confusion matrix in {args.out_dir}")


_PICKLE_SUFFIXES = (".pkl", ".pickle")


def _check_video_out(out: Path | None) -> None:
    """Fail before any work when ``out`` has an extension no video writer handles."""
    from skelact.viz.video import FOURCCS

    if out is not None and out.suffix.lower() not in FOURCCS:
        raise CLIError(f"{out}: unsupported video extension; use one of {', '.join(FOURCCS)}")


def _true_label(ann: dict, file_classes: list[str] | None, model_classes: list[str]) -> str | None:
    """The clip's real action by name (the file's class names, else the model's), or None if unlabeled."""
    label = int(ann.get("label", -1))
    if label < 0:
        return None
    if file_classes:
        return file_classes[label] if label < len(file_classes) else f"class_{label}"
    return model_classes[label] if label < len(model_classes) else f"class_{label}"


def _predict(args: argparse.Namespace, source: Path, out: Path | None) -> None:
    """Shared by ``predict`` and ``demo``: skeletons (from a video or a pickle) -> top-k -> optional video."""
    import json

    from skelact.inference import InferenceError, load_model

    _check_video_out(out)
    is_pickle = source.suffix.lower() in _PICKLE_SUFFIXES
    if not is_pickle and args.clip is not None:
        raise CLIError(f"{source}: --clip applies to a .pkl input, not a video")
    predictor = load_model(args.model, device=args.device)  # a bad --model fails before any video work
    file_classes, layout = None, None
    if is_pickle:
        data, ann = _load_clip(source, args.clip)
        file_classes, layout = data.get("classes"), data.get("layout")
    else:
        from skelact.pose import MoveNet, extract_video
        from skelact.pose.extract import video_info

        video_info(source)  # a missing or unreadable video fails here, before the pose model is looked for
        pose = MoveNet(args.pose_model, input_size=args.input_size, num_threads=args.threads)
        ann = extract_video(source, pose, max_persons=args.max_persons, progress=not args.quiet)
        layout = "coco17"  # MoveNet's joints
    try:
        pred = predictor.predict_clip(ann, topk=args.topk, num_clips=args.num_clips, layout=layout)
    except InferenceError as e:
        raise CLIError(f"{source}: {e}") from None
    true_label = _true_label(ann, file_classes, predictor.classes)
    if out is not None:
        _write_prediction_video(out, source, ann, layout, pred.topk, true_label, is_pickle, args.video)
    if args.json:
        result = {"input": str(source), "clip": ann.get("frame_dir"), "model": predictor.source,
                  "true_label": true_label, **pred.to_dict(), "output": None if out is None else str(out)}
        print(json.dumps(result, indent=2))
        return
    print(f"{ann.get('frame_dir')}: {pred.frames} frames, {pred.views} views, model {predictor.source}")
    width = max(len(name) for name, _ in pred.topk)
    for i, (name, p) in enumerate(pred.topk, 1):
        mark = "  <- true label" if name == true_label else ""
        print(f"{i:>3}. {name:<{width}}  {p:.3f}{mark}")
    if true_label is not None:
        print(f"true label: {true_label}")
    if out is not None:
        print(f"wrote {out}")


def _write_prediction_video(out: Path, source: Path, ann: dict, layout: str | None,
                            topk: list[tuple[str, float]], true_label: str | None, is_pickle: bool,
                            video: Path | None) -> None:
    from skelact.pose.extract import iter_frames, video_info
    from skelact.skeleton import get_layout, infer_layout
    from skelact.viz.video import to_canvas, write_skeleton_video

    kp, score = ann["keypoint"], ann.get("keypoint_score")
    lay = get_layout(layout) if layout else infer_layout(kp.shape[2])
    frames, img_shape, fps = None, ann.get("img_shape"), 30.0
    background = video if is_pickle else source
    if background is not None:
        frames, fps = iter_frames(background), video_info(background)["fps"]
    elif kp.shape[-1] == 3 or img_shape is None:
        kp, img_shape = to_canvas(kp), (480, 640)  # 3D, or no image size: fit into a black canvas
    write_skeleton_video(out, kp, score, lay, frames=frames, img_shape=img_shape, topk=topk,
                         true_label=true_label, fps=fps)


def _cmd_predict(args: argparse.Namespace) -> None:
    if args.video is not None and args.input.suffix.lower() not in _PICKLE_SUFFIXES:
        raise CLIError(f"{args.input}: --video applies to a .pkl input (a video input is drawn on its own frames)")
    _predict(args, args.input, args.out)


def _cmd_demo(args: argparse.Namespace) -> None:
    video = args.video_file or os.environ.get("SKELACT_DEMO_VIDEO")
    if not video:
        raise CLIError("no video: pass one (skelact demo VIDEO) or set SKELACT_DEMO_VIDEO")
    video = Path(video)
    out = args.out or Path(f"{video.stem}_skelact.mp4")
    args.clip, args.video, args.json, args.num_clips = None, None, False, None
    _predict(args, video, out)
    print(f"annotated video: {out.resolve()}")


def _cmd_export(args: argparse.Namespace) -> None:
    from skelact.export import export_predictor
    from skelact.inference import load_model

    out = Path(args.output)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: already exists (use --force to overwrite)")
    result = export_predictor(load_model(args.checkpoint), out, opset=args.opset, example_frames=args.frames,
                              verify=not args.no_verify)
    shape = ", ".join(str(s) for s in result["input_shape"])
    check = "" if result["max_abs_diff"] is None else f"; onnxruntime matches PyTorch (max |diff| " \
        f"{result['max_abs_diff']:.2g})"
    print(f"wrote {out}: keypoints [{shape}] -> logits, opset {result['opset']}{check}")


def _cmd_bench(args: argparse.Namespace) -> None:
    from skelact.bench import BenchOptions, format_table, run_benchmarks, write_json

    try:
        opts = BenchOptions(quick=args.quick, repeats=args.repeats, threads=args.threads,
                            only=tuple(args.only) if args.only else None, pose_model=args.pose_model,
                            video=args.video, model=args.model)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.video is not None and not args.video.is_file():
        raise CLIError(f"{args.video}: video file not found")
    if args.pose_model is not None and not args.pose_model.is_file():
        raise CLIError(f"{args.pose_model}: pose model file not found")
    if args.model is not None:
        from skelact.inference import resolve_model_spec

        resolve_model_spec(args.model)  # a bad --model fails before minutes of measuring
    report = run_benchmarks(opts, log=None if args.quiet else lambda line: print(line, file=sys.stderr))
    print(format_table(report))
    if args.json is not None:
        print(f"wrote {write_json(report, args.json)}")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a dataset (NTU .skeleton, Penn Action .mat, NW-UCLA .json) to a PYSKL pickle",
        description="Convert a raw dataset folder into one PYSKL-format annotation pickle.",
    )
    csub = p.add_subparsers(dest="source", required=True, metavar="{ntu,penn,ucla}")
    ntu = csub.add_parser("ntu", help="a folder of raw NTU RGB+D .skeleton files",
                          description="NTU RGB+D .skeleton files -> PYSKL pickle (2D colour pixels or 3D metres).")
    ntu.add_argument("--dims", type=int, choices=(2, 3), default=2,
                     help="2: colorX/colorY pixels in the 1920x1080 frame; 3: x y z metres (default 2)")
    ntu.add_argument("--max-bodies", type=_positive_int, default=2,
                     help="bodies kept per clip, most active first (default 2)")
    ntu.add_argument("--missing", type=Path, default=None,
                     help="list of sample names with missing skeletons to skip")
    ntu.add_argument("--benchmark", choices=("auto", "ntu60", "ntu120"), default="auto",
                     help="split protocol: ntu60 (xsub/xview), ntu120 (xsub/xset), auto from the action ids")
    ntu.add_argument("--workers", type=_positive_int, default=1, help="parallel parser processes (default 1)")
    csub.add_parser("penn", help="Penn Action (labels/*.mat)",
                    description="Penn Action .mat label files -> 2D PYSKL pickle (13 joints, official split).")
    csub.add_parser("ucla", help="NW-UCLA (all_sqe/*.json)",
                    description="NW-UCLA json skeletons -> 3D PYSKL pickle (20 joints, views 1+2 train / 3 test).")
    for name, cp in csub.choices.items():
        cp.add_argument("src", type=Path, help="source folder")
        cp.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
        cp.add_argument("--force", action="store_true", help="overwrite an existing output")
        cp.set_defaults(func=_cmd_convert, source=name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skelact",
        description="Skeleton-based action recognition: convert data, train, evaluate, predict.",
    )
    parser.add_argument("--version", action="version", version=f"skelact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_convert(sub)
    p = sub.add_parser("info", help="summarise a PYSKL annotation pickle",
                       description="Clips per split, classes and clips per class, frames, persons, joints, dims.")
    p.add_argument("file", type=Path, help="annotation .pkl")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model from a YAML recipe",
                       description="Train a model from a YAML recipe (see configs/). Writes last.pt and best.pt "
                       "each epoch, metrics.csv and curves.png. Runs as is under torchrun for several processes.")
    p.add_argument("config", type=Path, help="recipe .yaml")
    p.add_argument("--work-dir", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/last.pt")
    p.add_argument("--overfit", type=int, default=None, metavar="N",
                   help="sanity check: train and evaluate on N training clips")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. --set optim.lr=0.05 data.batch_size=32")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint: accuracy, P/R/F1, confusion matrix, scores",
                       description="Evaluate a checkpoint on the recipe's val_split with test-time averaging of "
                       "softmax probabilities over --num-clips views (and flips).")
    p.add_argument("config", type=Path, nargs="?", default=None,
                   help="recipe .yaml (default: the one stored in the checkpoint)")
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt")
    p.add_argument("--num-clips", type=int, default=None, help="views averaged per clip (default: the recipe's)")
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped views")
    p.add_argument("--out-dir", type=Path, default=None, help="output folder (default: CHECKPOINT's folder/test)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. --set data.val_split=xsub_val")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser("fuse", help="fuse several streams' scores (e.g. joint/bone/motion)",
                       description="Weighted average of the probabilities in several scores.npz files.")
    p.add_argument("scores", type=Path, nargs="+", help="scores.npz files written by `skelact test`")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per file, e.g. 2 2 1 1")
    p.add_argument("--out-dir", type=Path, default=None, help="write fused scores, report and confusion matrix")
    p.set_defaults(func=_cmd_fuse)

    p = sub.add_parser("extract", help="videos -> skeletons (MoveNet MultiPose + tracking) as a PYSKL pickle",
                       description="Detect 2D poses (COCO-17) in each video, track people across frames, keep the "
                       "most confident tracks, and write one clip per video (label -1) to a PYSKL pickle.")
    p.add_argument("inputs", nargs="+", type=Path, help="video files and/or folders of videos")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
    p.add_argument("--max-persons", type=_positive_int, default=2, help="tracks kept per video (default 2)")
    _add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("viz", help="draw a dataset clip's skeletons as a video",
                       description="Draw one clip's skeletons on black (or on --video's frames) with its label.")
    p.add_argument("data", type=Path, help="annotation .pkl")
    p.add_argument("--clip", help="frame_dir of the clip (optional when the file holds one clip)")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4 or .webm)")
    p.add_argument("--video", type=Path, default=None, help="draw on this video's frames instead of black")
    p.add_argument("--layout", default=None, help="layout name or YAML (default: from the file)")
    p.add_argument("--fps", type=float, default=30.0)
    p.set_defaults(func=_cmd_viz)

    p = sub.add_parser("predict", help="name the action in a video (or a pickle clip) with a trained model",
                       description="Print the top-k actions of a video (poses by MoveNet, then the action model) or "
                       "of one clip of a PYSKL pickle, with probabilities averaged over the recipe's test views. "
                       "--out also writes a video: skeletons on the frames (black without a video), the top-k "
                       "and, when known, the true label.")
    p.add_argument("input", type=Path, help="a video, or a .pkl annotation file (choose the clip with --clip)")
    _add_model_arg(p)
    p.add_argument("--out", type=Path, default=None, help="write an annotated video (.mp4 or .webm)")
    p.add_argument("--topk", type=_positive_int, default=5, help="actions listed (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--clip", default=None, help="frame_dir of the clip in a .pkl input (optional when it holds one)")
    p.add_argument("--video", type=Path, default=None, help="with a .pkl input: draw on this video's frames")
    p.add_argument("--num-clips", type=_positive_int, default=None,
                   help="test views averaged (default: the model's recipe)")
    p.add_argument("--max-persons", type=_positive_int, default=2, help="people tracked in a video (default 2)")
    _add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="video -> skeletons -> action -> annotated video, in one go",
                       description="Extract poses from a video, predict its action and write the video with "
                       "skeletons and the top-k actions drawn on it.")
    p.add_argument("video_file", metavar="VIDEO", type=Path, nargs="?", default=None,
                   help="input video (default: $SKELACT_DEMO_VIDEO)")
    p.add_argument("--out", type=Path, default=None, help="output video (default: ./VIDEO_NAME_skelact.mp4)")
    _add_model_arg(p)
    p.add_argument("--topk", type=_positive_int, default=5, help="actions shown (default 5)")
    p.add_argument("--max-persons", type=_positive_int, default=2, help="people tracked (default 2)")
    _add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("export", help="export a checkpoint to ONNX",
                       description="Export a trained model to ONNX: input keypoints (batch, M, T, V, C) as the "
                       "recipe's test pipeline makes them, output logits; batch axis dynamic; classes, layout "
                       "and input shape in the file's metadata. Checks the graph against PyTorch with "
                       "onnxruntime. Needs the onnx extra (pip install \"skelact[onnx]\").")
    p.add_argument("checkpoint", type=str, help="best.pt / last.pt from `skelact train`, or a shipped model name")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx")
    p.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--frames", type=_positive_int, default=None, help="input frames T (default: the recipe's clip_len)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime vs PyTorch check")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="measure every stage's speed on this machine, as one table",
                       description="Time heatmap drawing (1 thread, vs PYSKL), the data pipelines, every "
                       "registered model (params, GMACs, training and inference clips/s), video -> action end "
                       "to end, and loading an NTU60-sized pickle. Each figure is the median of several runs "
                       "after a warm-up. Run it on an otherwise idle machine.")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few runs: a smoke test, not for reporting")
    p.add_argument("--repeats", type=_positive_int, default=None, metavar="N",
                   help="timed runs per figure (default 5; 3 with --quick)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="torch and pose model threads for the model and video stages (default: torch's)")
    # Stage names as in skelact.bench.STAGES (not imported here to keep `skelact --help` fast).
    p.add_argument("--only", nargs="+", default=None, metavar="STAGE",
                   choices=("heatmap", "data", "models", "video", "memory"),
                   help="run only these stages: heatmap, data, models, video, memory")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    p.add_argument("--pose-model", type=Path, default=None, metavar="PATH",
                   help="MoveNet MultiPose .tflite (default: $SKELACT_SHARED/models, else the user cache)")
    p.add_argument("--video", type=Path, default=None, metavar="PATH",
                   help="video for the end-to-end stage (default: $SKELACT_SHARED/data/videos/ntu_sample.avi)")
    p.add_argument("--model", default=None, metavar="NAME|CKPT",
                   help="action model of the video stage (default: a randomly initialised kpc3d)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_bench)
    return parser


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    """The action model and the device it runs on."""
    p.add_argument("--model", default=None, metavar="NAME|CKPT",
                   help="a checkpoint from `skelact train` or a shipped model name (default: the shipped "
                   "Penn Action model)")
    p.add_argument("--device", default="auto", help="action model device: auto (CUDA when available), cpu, cuda:N")


def _add_pose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pose-model", type=Path, default=None,
                   help="MoveNet MultiPose .tflite (default: $SKELACT_POSE_MODEL, then the user cache, "
                   "then a one-time download)")
    p.add_argument("--input-size", type=int, default=256, help="pose model input, longer side (default 256)")
    p.add_argument("--threads", type=int, default=None, help="pose model threads (default: all cores)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    from skelact.config import ConfigError
    from skelact.data.io import AnnotationError
    from skelact.inference import InferenceError
    from skelact.pose.extract import VideoError
    from skelact.skeleton import LayoutError

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except BrokenPipeError:  # e.g. `skelact info x.pkl | head`
        sys.stderr.close()
        return 0
    # OSError: an output that is a folder, no permission, a full disk (FileExistsError, FileNotFoundError, ...).
    except (CLIError, AnnotationError, ConfigError, InferenceError, LayoutError, VideoError, OSError,
            ImportError) as e:
        print(f"skelact: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("skelact: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

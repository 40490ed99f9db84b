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
        print(f"best top-1 {result['best_top1']:.2f} at epoch {result['best_epoch']}; outputs in {args.work_dir}")


def _cmd_test(args: argparse.Namespace) -> None:
    from skelact.config import load_config
    from skelact.engine.evaluate import evaluate

    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    out_dir = args.out_dir or Path(args.checkpoint).resolve().parent / "test"
    metrics = evaluate(cfg, Path(args.checkpoint), num_clips=args.num_clips, flip=args.flip, out_dir=out_dir)
    _print_metrics(metrics)
    print(f"scores, report, confusion matrix in {out_dir}")


def _print_metrics(metrics: dict) -> None:
    names = [("top1", "top-1"), ("top5", "top-5"), ("mean_class_acc", "mean class acc"),
             ("precision", "macro precision"), ("recall", "macro recall"), ("f1", "macro F1")]
    for key, label in names:
        if key in metrics:
            print(f"{label:>16}: {metrics[key]:.2f}")
    for key in ("loss", "brier"):
        if key in metrics:
            print(f"{key:>16}: {metrics[key]:.4f}")


def _cmd_fuse(args: argparse.Namespace) -> None:
    from skelact.engine.evaluate import fuse

    metrics = fuse(args.scores, args.weights, args.out_dir)
    _print_metrics(metrics)
    if args.out_dir is not None:
        print(f"fused scores, report, confusion matrix in {args.out_dir}")


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
    return parser


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
    except (CLIError, AnnotationError, ConfigError, LayoutError, VideoError, OSError, ImportError) as e:
        print(f"skelact: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("skelact: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

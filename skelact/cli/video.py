"""Video commands: ``extract``, ``predict``, ``demo``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from skelact.cli.analyze import add_analysis_args, analyse_video, check_analysis_args
from skelact.cli.common import (
    PICKLE_SUFFIXES,
    CLIError,
    UsageError,
    add_model_args,
    add_pose_args,
    check_output,
    existing_files,
    fraction,
    load_clip,
    pose_model_inputs,
    pose_options,
    positive_int,
    true_label,
)

__all__ = ["add_parsers"]


def _shard(text: str) -> tuple[int, int]:
    from skelact.pose.folder import parse_shard

    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cmd_extract(args: argparse.Namespace) -> None:
    from skelact.pose.extract import is_video
    from skelact.pose.folder import extract_folder
    from skelact.pose.resume import failures_path

    if args.seed is not None and args.val_fraction is None:  # a usage error comes before the file checks
        raise UsageError("--seed: applies to --val-fraction only")
    out = Path(args.output)
    inputs = [*args.inputs, args.split_file, *pose_model_inputs(args.pose_model)]
    check_output(out, inputs, args.force)
    check_output(failures_path(out), inputs)  # written when a video fails
    if is_video(out):  # e.g. `-o ROOT/run/x.mp4`: a later scan of ROOT would take it for a video
        raise CLIError(f"{out}: looks like a video; the output is a dataset file (e.g. data.pkl)")
    result = extract_folder(
        args.inputs, out, pose=pose_options(args), max_persons=args.max_persons, min_frames=args.min_frames,
        val_fraction=args.val_fraction, split_file=args.split_file, seed=args.seed or 0, shard=args.shard,
        workers=args.workers, resume=args.resume, force=args.force, progress=not args.quiet,
    )
    for note in result.notes:
        print(f"note: {note}")
    data, videos = result.data, result.videos
    shard = f" (shard {args.shard[0]}/{args.shard[1]} of {len(videos.items)} videos)" if args.shard else ""
    extracted = result.extracted  # not the videos attempted: failures are counted on the next line
    rate = result.frames / result.seconds if result.seconds > 0 else 0.0
    print(f"{extracted} video(s) extracted, {result.frames} frames in {result.seconds:.1f} s ({rate:.1f} frames/s)"
          + (f", {result.resumed} done by an earlier run" if result.resumed else "") + shard)
    parts = [f"{len(data['annotations'])} clip(s)"]
    if videos.classes is not None:
        parts.append(f"{len(videos.classes)} classes")
    if data["split"]:
        parts.append(", ".join(f"{name} {len(m)}" for name, m in data["split"].items()))
    failed = f"{len(result.failures)} video(s) failed"
    if result.failures:
        from skelact.pose.resume import failures_path

        failed += f", listed in {failures_path(out)}"
    print(f"wrote {out}: {'; '.join(parts)}; {failed}")


def _predict(args: argparse.Namespace, source: Path, out: Path | None) -> None:
    """Shared by ``predict`` and ``demo``: skeletons (from a video or a pickle) -> top-k -> optional video."""
    from skelact.inference import InferenceError, load_predictor
    from skelact.skeleton import get_layout, resolve_layout

    inputs = [source, args.video, *pose_model_inputs(args.pose_model), *existing_files(args.model)]
    if out is not None:
        from skelact.viz.video import check_video_path

        check_output(out, inputs)
        check_video_path(out)
    is_pickle = source.suffix.lower() in PICKLE_SUFFIXES
    if not is_pickle and args.clip is not None:
        raise CLIError(f"{source}: --clip applies to a .pkl input, not a video")
    if args.per_person and is_pickle:
        raise CLIError(f"{source}: --window and --per-person apply to a video input, not a .pkl")
    check_analysis_args(args, source, is_pickle, inputs + ([out] if out is not None else []))
    predictor = load_predictor(args.model, device=args.device)  # a bad --model fails before any video work
    note = None
    if args.per_person and predictor.cfg.data.max_persons > 1:
        note = (f"--per-person: the model was trained on clips of {predictor.cfg.data.max_persons} people, so it "
                "classifies the scene, not each person")
    if args.window is not None or (args.per_person and note is None):
        analyse_video(args, source, out, predictor)
        return
    file_classes = None
    if is_pickle:
        data, ann = load_clip(source, args.clip)
        file_classes = data.get("classes")
        layout = resolve_layout(None, data.get("layout"), ann["keypoint"].shape[2], str(source))
    else:
        from skelact.pose.extract import extract_video
        from skelact.pose.video import video_info

        video_info(source)  # a missing or unreadable video fails here, before the pose model is looked for
        pose = pose_options(args).build()
        ann = extract_video(source, pose, max_persons=args.max_persons or 2, progress=not args.quiet)
        layout = get_layout("coco17")  # MoveNet's joints
    try:
        pred = predictor.predict_clip(ann, topk=args.topk, num_clips=args.num_clips, layout=layout)
    except InferenceError as e:
        raise CLIError(f"{source}: {e}") from None
    label = true_label(ann, file_classes, predictor.classes)
    if out is not None:
        _write_prediction_video(out, source, ann, layout, pred.topk, label, is_pickle, args.video)
    if args.json:
        result = {"input": str(source), "clip": ann.get("frame_dir"), "model": predictor.source,
                  "true_label": label, **pred.to_dict(), "output": None if out is None else str(out)}
        if note:
            result.update(per_person=False, note=note)
        print(json.dumps(result, indent=2))
        return
    if note:
        print(f"note: {note}")
    print(f"{ann.get('frame_dir')}: {pred.frames} frames, {pred.views} views, model {predictor.source}")
    print(f"prediction: {pred.describe()}")
    width = max(len(name) for name, _ in pred.topk)
    for i, (name, p) in enumerate(pred.topk, 1):
        mark = "  <- true label" if name == label else ""
        print(f"{i:>3}. {name:<{width}}  {p:.3f}{mark}")
    if label is not None:
        print(f"true label: {label}")
    if out is not None:
        print(f"wrote {out}")


def _write_prediction_video(out: Path, source: Path, ann: dict, layout: object, topk: list[tuple[str, float]],
                            label: str | None, is_pickle: bool, video: Path | None) -> None:
    from skelact.pose.video import iter_frames, video_info
    from skelact.viz.video import to_canvas, write_skeleton_video

    kp, score = ann["keypoint"], ann.get("keypoint_score")
    frames, img_shape, fps = None, ann.get("img_shape"), 30.0
    background = video if is_pickle else source
    if background is not None:
        frames, fps = iter_frames(background), video_info(background)["fps"]
    elif kp.shape[-1] == 3 or img_shape is None:
        kp, img_shape = to_canvas(kp), (480, 640)  # 3D, or no image size: fit into a black canvas
    write_skeleton_video(out, kp, score, layout, frames=frames, img_shape=img_shape, topk=topk,
                         true_label=label, fps=fps)


def _cmd_predict(args: argparse.Namespace) -> None:
    if args.video is not None and args.input.suffix.lower() not in PICKLE_SUFFIXES:
        raise CLIError(f"{args.input}: --video applies to a .pkl input (a video input is drawn on its own frames)")
    _predict(args, args.input, args.out)


def _cmd_demo(args: argparse.Namespace) -> None:
    video = args.video_file or os.environ.get("SKELACT_DEMO_VIDEO")
    if not video:
        raise UsageError("no video: pass one (skelact demo VIDEO) or set SKELACT_DEMO_VIDEO")
    video = Path(video)
    if args.out is None:  # the default output is named after the video: a bad name is the video's fault
        from skelact.files import native_path

        native_path(video, "video")
    out = args.out or Path(f"{video.stem}_skelact.mp4")
    args.clip, args.video, args.json, args.num_clips = None, None, False, None
    args.window, args.stride, args.timeline = None, None, None
    _predict(args, video, out)
    print(f"annotated video: {out.resolve()}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``extract``, ``predict`` and ``demo``."""
    p = sub.add_parser("extract", help="videos -> skeletons (MoveNet MultiPose + tracking) as a PYSKL pickle; a "
                       "folder ROOT/<class>/<video> becomes a labelled dataset with a split",
                       description="Detect 2D poses (COCO-17) in each video, track people across frames, keep the "
                       "most confident tracks, and write one clip per video to a PYSKL pickle. A folder "
                       "ROOT/<class>/<video> gives labels (classes: the sorted folder names) and a split; videos "
                       "directly in ROOT, or video files, are unlabelled (label -1). Each finished video is kept "
                       "in .OUTPUT.progress/ beside the output until the end, so --resume continues a killed run; "
                       "videos that fail are listed in OUTPUT.failures.csv.")
    p.add_argument("inputs", nargs="+", type=Path,
                   help="a folder ROOT (ROOT/<class>/<video>, or videos directly in it), or video files")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=fraction, default=None, metavar="F",
                       help="split train/val: this share of each class's videos goes to val (at least one for a "
                       "class of 2 or more); the same on every machine and shard. Default: all in train")
    split.add_argument("--split-file", type=Path, default=None, metavar="FILE",
                       help="the split from a file of lines 'relative/path.mp4 train|val|test' (relative to ROOT, "
                       "every video once)")
    p.add_argument("--seed", type=int, default=None, help="seed of the --val-fraction split (default 0)")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="extract every N-th video of the sorted list from the K-th (0 <= K < N, e.g. a job "
                   "array index); join the parts with `skelact merge`")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="pose processes, each with cores/N threads unless --threads is given (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run with the same output and settings (skips finished videos)")
    p.add_argument("--min-frames", type=positive_int, default=8,
                   help="videos with fewer frames fail as too short (default 8)")
    p.add_argument("--max-persons", type=positive_int, default=2, help="tracks kept per video (default 2)")
    add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("predict", help="name the action in a video (or a pickle clip) with a trained model",
                       description="Print the top-k actions of a video (poses by MoveNet, then the action model) or "
                       "of one clip of a PYSKL pickle, with probabilities averaged over the recipe's test views. "
                       "--out also writes a video: skeletons on the frames (black without a video), the top-k "
                       "and, when known, the true label.")
    p.add_argument("input", type=Path, help="a video, or a .pkl annotation file (choose the clip with --clip)")
    add_model_args(p)
    p.add_argument("--out", type=Path, default=None, help="write an annotated video (.mp4 or .webm)")
    p.add_argument("--topk", type=positive_int, default=5, help="actions listed (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--clip", default=None, help="frame_dir of the clip in a .pkl input (optional when it holds one)")
    p.add_argument("--video", type=Path, default=None, help="with a .pkl input: draw on this video's frames")
    p.add_argument("--num-clips", type=positive_int, default=None,
                   help="test views averaged (default: the model's recipe)")
    p.add_argument("--max-persons", type=positive_int, default=None,
                   help="people classified in a video: the most confident (default 2; with --per-person or "
                   "--window, everyone seen long enough)")
    add_analysis_args(p)
    add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="video -> skeletons -> action -> annotated video, in one go",
                       description="Extract poses from a video, predict its action and write the video with "
                       "skeletons and the top-k actions drawn on it.")
    p.add_argument("video_file", metavar="VIDEO", type=Path, nargs="?", default=None,
                   help="input video (default: $SKELACT_DEMO_VIDEO)")
    p.add_argument("--out", type=Path, default=None, help="output video (default: ./VIDEO_NAME_skelact.mp4)")
    add_model_args(p)
    p.add_argument("--topk", type=positive_int, default=5, help="actions shown (default 5)")
    p.add_argument("--max-persons", type=positive_int, default=None,
                   help="people classified: the most confident (default 2; with --per-person, everyone seen long "
                   "enough)")
    p.add_argument("--per-person", action="store_true",
                   help="classify each tracked person on their own and name the action above them")
    add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)

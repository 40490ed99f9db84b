"""Data commands: ``convert``, ``merge``, ``info``, ``viz``."""

from __future__ import annotations

import argparse
from pathlib import Path

from skelact.cli.common import (
    CLIError,
    check_output,
    existing_files,
    fraction,
    load_clip,
    positive_float,
    positive_int,
)

__all__ = ["add_parsers"]

_MAX_IMAGE_SIDE = 2**31 - 1  # what a data file may store (skelact.data.io)


def _image_side(text: str) -> int:
    """argparse type of ``--img-shape``: pixels, 1 to 2**31 - 1."""
    value = positive_int(text)
    if value > _MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_IMAGE_SIDE} pixels, got {text[:40]}")
    return value


def _fps(text: str) -> float:
    """argparse type of ``viz --fps``: 0.01 to 1000 frames per second (OpenCV's writers refuse rates far
    outside, and the error would then blame the output file)."""
    value = positive_float(text)
    if not 0.01 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 0.01 to 1000 frames per second, got {text[:40]}")
    return value


def _split_name(text: str) -> str:
    """argparse type of ``split --name``: a name that is not empty or blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a non-empty split name, got {text!r}")
    return text


#: File endings each converter reads from its source folder (an output with one of them there would
#: be read by the next conversion of that folder).
_CONVERTER_READS = {"ntu": (".skeleton",), "penn": (".mat",), "ucla": (".json",), "openpose": (".json",),
                    "numpy": (".npy", ".npz")}


def _cmd_convert(args: argparse.Namespace) -> None:
    from skelact.data.convert import convert_ntu, convert_numpy, convert_openpose, convert_penn, convert_ucla
    from skelact.data.io import save_annotations

    out = Path(args.output)
    inputs = [args.src, getattr(args, "missing", None), getattr(args, "labels", None), getattr(args, "classes", None),
              *existing_files(getattr(args, "layout", None))]
    check_output(out, inputs, args.force, scanned=_CONVERTER_READS[args.source])
    if args.source == "ntu":
        data, summary = convert_ntu(
            args.src, dims=args.dims, max_bodies=args.max_bodies, missing=args.missing,
            benchmark=args.benchmark, workers=args.workers,
        )
    elif args.source in ("openpose", "numpy"):
        common = {"labels": args.labels, "classes": args.classes, "layout": args.layout, "img_shape": args.img_shape}
        if args.source == "openpose":
            data, summary = convert_openpose(args.src, max_persons=args.max_persons, **common)
        else:
            data, summary = convert_numpy(args.src, with_score=args.with_score, **common)
    elif args.source == "penn":
        data, summary = convert_penn(args.src)
    else:
        data, summary = convert_ucla(args.src)
    save_annotations(data, out, force=args.force, allow_unlabeled=args.source in ("openpose", "numpy"))
    print(summary)
    print(f"wrote {out}")


def _cmd_merge(args: argparse.Namespace) -> None:
    from skelact.data.io import save_annotations
    from skelact.data.merge import merge_annotations

    check_output(args.output, args.inputs, args.force)
    data = merge_annotations(args.inputs)
    save_annotations(data, args.output, force=args.force, allow_unlabeled=True)
    splits = ", ".join(f"{name} {len(m)}" for name, m in data["split"].items())
    print(f"wrote {args.output}: {len(data['annotations'])} clips from {len(args.inputs)} files"
          + (f" ({splits})" if splits else ""))


def _cmd_split(args: argparse.Namespace) -> None:
    from skelact.data.io import load_annotations, save_annotations
    from skelact.data.splits import SplitError, carve_split

    check_output(args.output, [args.input], args.force)
    try:
        data = carve_split(load_annotations(args.input, allow_unlabeled=True), args.source, args.val_fraction,
                           args.seed, args.name)
    except SplitError as e:
        raise CLIError(f"{args.input}: {e}") from None
    save_annotations(data, args.output, force=args.force, allow_unlabeled=True)
    sizes = ", ".join(f"{n} {len(m)}" for n, m in data["split"].items())
    print(f"wrote {args.output}: splits {sizes}")


def _cmd_info(args: argparse.Namespace) -> None:
    from skelact.data.io import load_annotations, summarize
    from skelact.models.weights import list_pretrained

    path = args.file
    if not path.exists() and str(path) in list_pretrained():  # a shipped model's name: its verified file
        from skelact.inference import resolve_model_spec

        path, _ = resolve_model_spec(str(path))
    if _is_zip(path):  # torch.save's format; a PYSKL pickle is a plain pickle
        from skelact.checkpoint import Checkpoint

        print(Checkpoint.load(path).describe())
        return
    print(summarize(load_annotations(path, allow_unlabeled=True)))


def _is_zip(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts like a zip archive (what ``torch.save`` writes)."""
    try:
        if not path.is_file():  # a FIFO or device would block the open; the annotation reader refuses it
            return False
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False  # the annotation reader names the problem


def _cmd_viz(args: argparse.Namespace) -> None:
    from skelact.skeleton import resolve_layout
    from skelact.viz.video import check_video_path, to_canvas, write_skeleton_video

    check_output(args.out, [args.data, args.video, *existing_files(args.layout)])
    check_video_path(args.out)
    data, ann = load_clip(args.data, args.clip)
    kp, score = ann["keypoint"], ann.get("keypoint_score")
    layout = resolve_layout(args.layout, data.get("layout"), kp.shape[2], str(args.data), "--layout")
    label, classes = ann["label"], data.get("classes")
    true_label = (classes[label] if classes else str(label)) if label >= 0 else None
    frames, img_shape = None, ann.get("img_shape")
    if args.video is not None:
        from skelact.pose.video import iter_frames

        if kp.shape[-1] == 3:
            raise CLIError(f"{args.data}: clip {ann['frame_dir']!r} is 3D; --video needs 2D pixel keypoints")
        frames = iter_frames(args.video)
    elif kp.shape[-1] == 3 or img_shape is None:
        # 3D (or coordinates without an image): project into a black canvas.
        kp, img_shape = to_canvas(kp), (480, 640)
    out = write_skeleton_video(args.out, kp, score, layout, frames=frames, img_shape=img_shape,
                               true_label=true_label, fps=args.fps)
    print(f"wrote {out}")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a dataset (NTU .skeleton, Penn Action .mat, NW-UCLA .json) or other tools' poses (OpenPose "
        "JSON, NumPy arrays) to a PYSKL pickle",
        description="Convert a raw dataset folder, or another tool's pose files, into one PYSKL-format annotation "
        "pickle.",
    )
    csub = p.add_subparsers(dest="source", required=True, metavar="{ntu,penn,ucla,openpose,numpy}")
    ntu = csub.add_parser("ntu", help="a folder of raw NTU RGB+D .skeleton files",
                          description="NTU RGB+D .skeleton files -> PYSKL pickle (2D colour pixels or 3D metres).")
    ntu.add_argument("--dims", type=int, choices=(2, 3), default=2,
                     help="2: colorX/colorY pixels in the 1920x1080 frame; 3: x y z metres (default 2)")
    ntu.add_argument("--max-bodies", type=positive_int, default=2,
                     help="bodies kept per clip, most active first (default 2)")
    ntu.add_argument("--missing", type=Path, default=None,
                     help="list of sample names with missing skeletons to skip")
    ntu.add_argument("--benchmark", choices=("auto", "ntu60", "ntu120"), default="auto",
                     help="split protocol: ntu60 (xsub/xview), ntu120 (xsub/xset), auto from the action ids")
    ntu.add_argument("--workers", type=positive_int, default=1, help="parallel parser processes (default 1)")
    csub.add_parser("penn", help="Penn Action (labels/*.mat)",
                    description="Penn Action .mat label files -> 2D PYSKL pickle (13 joints, official split).")
    csub.add_parser("ucla", help="NW-UCLA (all_sqe/*.json)",
                    description="NW-UCLA json skeletons -> 3D PYSKL pickle (20 joints, views 1+2 train / 3 test).")
    _add_user_formats(csub)
    for name, cp in csub.choices.items():
        cp.add_argument("src", type=Path, help="source folder")
        cp.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
        cp.add_argument("--force", action="store_true", help="overwrite an existing output")
        cp.set_defaults(func=_cmd_convert, source=name)


def _add_user_formats(csub: argparse._SubParsersAction) -> None:
    """``convert openpose`` and ``convert numpy``: other tools' pose files, labeled by a CSV."""
    op = csub.add_parser(
        "openpose", help="OpenPose --write_json output (BODY_25 / COCO-18), one folder per video",
        description="OpenPose per-frame JSON (DIR/<video>/*_keypoints.json, or DIR/<class>/<video>/... with the "
        "class folder as label) -> 2D PYSKL pickle. People are tracked across frames and the most confident "
        "tracks kept. A clip with nobody in any frame is skipped and reported.")
    op.add_argument("--layout", default="auto", metavar="auto|openpose18|body25|YAML",
                    help="keypoint set: auto (BODY_25 or COCO-18 from the array length, default), a layout name "
                    "or a layout YAML file (stored whole in the output)")
    op.add_argument("--max-persons", type=positive_int, default=2, metavar="N",
                    help="tracks kept per clip, the most confident (default 2)")
    npy = csub.add_parser(
        "numpy", help=".npy / .npz keypoint arrays, one file per clip",
        description="NumPy arrays [T, V, C] or [M, T, V, C] (C = 2: pixel x, y; 3: x, y, z metres) -> PYSKL "
        "pickle; .npz files hold 'keypoint' and optionally 'keypoint_score'. Never unpickles.")
    npy.add_argument("--layout", default=None, metavar="NAME|YAML",
                     help="skeleton layout (default: the built-in layout with V joints); a YAML layout is stored "
                     "whole in the output")
    npy.add_argument("--with-score", action="store_true",
                     help="the last channel is a score (C = 3: x, y, score; 4: x, y, z, score)")
    for cp in (op, npy):
        cp.add_argument("--labels", type=Path, default=None, metavar="CSV",
                        help="CSV with a header and columns name,label[,split]: name = clip (folder or file stem, "
                        "or relative path), label = class name, split = e.g. train / val / test; must list every "
                        "clip (default: label -1, or the class folder)")
        cp.add_argument("--classes", type=Path, default=None, metavar="FILE",
                        help="class names in label order, one a line (default: sorted label names)")
        cp.add_argument("--img-shape", type=_image_side, nargs=2, default=None, metavar=("H", "W"),
                        help="frame height and width of 2D pixel keypoints (default: none stored; then train "
                        "with normalize: bbox)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``convert``, ``merge``, ``info`` and ``viz``."""
    _add_convert(sub)
    p = sub.add_parser("merge", help="join PYSKL pickles (e.g. the shards of `skelact extract --shard`)",
                       description="Concatenate the annotations of several files and union their splits. The "
                       "files must have the same layout and class list (names and order) and no clip name twice.")
    p.add_argument("inputs", nargs="+", type=Path, help="annotation .pkl files")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("split", help="carve a validation split out of a training split",
                       description="Move a stratified, seeded fraction of one split's clips (default: train) "
                       "into a new split (default: val), e.g. for data that ships with train and test only: "
                       "settings, calibration and the unknown-action threshold are then chosen on val.")
    p.add_argument("input", type=Path, help="annotation .pkl")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .pkl")
    p.add_argument("--val-fraction", type=fraction, required=True, help="share of each class moved, in [0, 1)")
    p.add_argument("--seed", type=int, default=0, help="another seed gives another split (default 0)")
    p.add_argument("--from", dest="source", default="train", help="the split to take the clips from (default train)")
    p.add_argument("--name", type=_split_name, default="val", help="name of the new split (default val)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("info", help="summarise a PYSKL annotation pickle or a checkpoint",
                       description="An annotation .pkl: clips per split, classes and clips per class, frames, "
                       "persons, joints, dims. A checkpoint (.pt): its model, classes, layout, training, "
                       "calibration and timeline threshold.")
    p.add_argument("file", type=Path, help="annotation .pkl, checkpoint .pt or a shipped model's name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("viz", help="draw a dataset clip's skeletons as a video",
                       description="Draw one clip's skeletons on black (or on --video's frames) with its label.")
    p.add_argument("data", type=Path, help="annotation .pkl")
    p.add_argument("--clip", help="frame_dir of the clip (optional when the file holds one clip)")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4 or .webm)")
    p.add_argument("--video", type=Path, default=None, help="draw on this video's frames instead of black")
    p.add_argument("--layout", default=None, help="layout name or YAML (default: the file's)")
    p.add_argument("--fps", type=_fps, default=30.0, help="frames per second, 0.01 to 1000 (default 30)")
    p.set_defaults(func=_cmd_viz)

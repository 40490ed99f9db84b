"""Pieces every sub-command shares: option types, the model and pose options, output checks, clips."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from skelact.errors import SkelactError

if TYPE_CHECKING:
    from skelact.pose.options import PoseOptions

__all__ = ["CLIError", "positive_int", "positive_float", "fraction", "fraction_open", "add_model_args", "add_pose_args",
           "check_output", "check_output_dir", "existing_files", "pose_model_inputs", "recipe_inputs", "UsageError",
           "load_clip", "true_label", "print_metrics", "PICKLE_SUFFIXES", "pose_options"]

PICKLE_SUFFIXES = (".pkl", ".pickle")


class CLIError(SkelactError):
    """A user-facing error: printed as one line, exit status 1."""


class UsageError(CLIError):
    """A bad option (value or combination) found before any work: one line, exit status 2, as argparse's."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is a usage error, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text[:40]}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text[:40]!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text[:40]}")
    return value


def fraction_open(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text[:40]!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text[:40]}")
    return value


def _pose_input_size(text: str) -> int:
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 (e.g. 256), got {value}")
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The action model and the device it runs on."""
    p.add_argument("--model", default=None, metavar="NAME|CKPT",
                   help="a checkpoint from `skelact train` or a shipped model name (default: the shipped "
                   "Penn Action model)")
    p.add_argument("--device", default="auto", help="action model device: auto (CUDA when available), cpu, cuda:N")


def add_pose_args(p: argparse.ArgumentParser) -> None:
    """Where the pose model is and how it runs: the front end (``skelact.pose.options.PoseOptions``)."""
    p.add_argument("--pose-model", type=Path, default=None,
                   help="MoveNet MultiPose .tflite (default: $SKELACT_POSE_MODEL, then the user cache, "
                   "then a one-time download)")
    p.add_argument("--front-end", choices=("topdown", "whole-frame"), default="topdown",
                   help="topdown (default): search the whole frame and tiles for people every --detect-every "
                   "frames, then pose each person on their own crop every frame (people of any size, any number); "
                   "whole-frame: one pose call per frame at --input-size (faster; at most 6 people, and people "
                   "under about a quarter of the frame's height are missed)")
    p.add_argument("--min-person-height", type=fraction_open, default=1 / 8, metavar="FRACTION",
                   help="topdown: the smallest person to find, as a fraction of the frame height (default 0.125; "
                   "lower finds more distant people and costs more tiles)")
    p.add_argument("--detect-every", type=positive_int, default=10, metavar="N",
                   help="topdown: frames between two searches for new people (default 10; 1 searches every frame)")
    p.add_argument("--crop-size", type=_pose_input_size, default=128, metavar="PX",
                   help="topdown: pose model input for one person's crop, a multiple of 32 (default 128)")
    p.add_argument("--input-size", type=_pose_input_size, default=256,
                   help="pose model input for a whole frame, longer side, a multiple of 32 (default 256)")
    p.add_argument("--threads", type=positive_int, default=None, help="pose model threads (default: all cores)")


def pose_options(args: argparse.Namespace) -> PoseOptions:
    """The pose front end the options of :func:`add_pose_args` describe (built later, by its ``build()``)."""
    from skelact.pose.options import PoseOptions

    return PoseOptions(model=args.pose_model, input_size=args.input_size, threads=args.threads,
                       topdown=args.front_end == "topdown", min_height=args.min_person_height,
                       detect_every=args.detect_every, crop_size=args.crop_size)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # symlinks and hard links too
    except OSError:
        return False


def existing_files(*values: str | os.PathLike[str] | None) -> list[Path]:
    """The values of ``NAME|FILE`` options (``--model``, ``--layout``, ...) that name an existing file:
    those are inputs too; a name (``kpc3d``, ``coco17``) is not a path."""
    return [Path(v) for v in values if v is not None and Path(v).is_file()]


def check_output(out: Path, inputs: Iterable[Path | str | None], force: bool = True,
                 scanned: Sequence[str] = ()) -> None:
    """Refuse, before any work, an output that is one of the inputs (whatever the flags), a folder,
    or (without ``force``) an existing file.

    Every command passes every path it reads: positional inputs, option files (``--split-file``,
    ``--pose-model``, ``--labels``, a ``--model`` checkpoint, ...) and the files those point to
    (e.g. the data file a checkpoint's recipe reads). The same file is recognised through symlinks,
    hard links and ``./`` or ``..`` spellings.

    Args:
        out: The file the command will write.
        inputs: The files (or folders) it reads; ``None`` entries (options not given) are skipped.
            An output that is an existing file inside an input folder counts as an input too (a
            converter may read it).
        force: Whether ``--force`` was given.
        scanned: File endings the command reads from its input folders: a new output with one of
            them inside an input folder would be read as an input by the next run, so it is refused.
    """
    resolved = out.resolve()
    for src in inputs:
        if src is None:
            continue
        src = Path(src)
        if _same(out, src) or resolved == src.resolve():
            raise CLIError(f"{out}: is also an input of this command; write the output to another file")
        if src.is_dir() and src.resolve() in resolved.parents:
            if out.is_file():
                raise CLIError(f"{out}: lies inside the input folder {src} and already exists; write the output "
                               "elsewhere")
            if out.suffix.lower() in scanned:
                raise CLIError(f"{out}: lies inside the input folder {src}, whose {out.suffix} files are read as "
                               "inputs; write the output elsewhere")
    if out.is_dir():
        raise CLIError(f"{out}: is a folder; give a file name")
    if out.exists() and not force:
        raise CLIError(f"{out}: already exists (use --force to overwrite)")


def pose_model_inputs(value: Path | None) -> list[Path]:
    """The pose model files a command may read: ``--pose-model``, else ``$SKELACT_POSE_MODEL`` and the
    user cache (the order ``skelact.pose.movenet.resolve_pose_model`` looks in)."""
    if value is not None:
        return [value]
    from skelact.pose.movenet import ENV_VAR, default_cache_path

    return existing_files(os.environ.get(ENV_VAR) or None, default_cache_path())


def recipe_inputs(cfg: object) -> list[Path]:
    """The files a recipe (or a checkpoint's stored one) reads: its data file, a layout YAML and its
    file of other activities."""
    data = getattr(cfg, "data", None)
    files = [getattr(data, "ann_file", ""), getattr(data, "unknown_file", None)]
    return [Path(f) for f in files if f] + existing_files(getattr(data, "layout", None))


def check_output_dir(out_dir: Path, names: Iterable[str], inputs: Iterable[Path | str | None]) -> None:
    """:func:`check_output` for each file ``names`` a command writes into ``out_dir`` (overwritten)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"{out_dir}: is a file; give a folder")
    inputs = list(inputs)
    for name in names:
        check_output(out_dir / name, inputs)


def load_clip(path: Path, clip: str | None) -> tuple[dict, dict]:
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
    raise CLIError(f"{path}: no clip named {clip[:80]!r}")


def true_label(ann: dict, file_classes: list[str] | None, model_classes: list[str] | None) -> str | None:
    """The clip's real action by name (the file's class names, else the model's), or None if unlabeled."""
    label = int(ann.get("label", -1))
    if label < 0:
        return None
    names = file_classes or model_classes or []
    return names[label] if label < len(names) else f"class_{label}"


def print_metrics(metrics: dict) -> None:
    """Print the summary metrics (fractions in [0, 1]) as percentages."""
    names = [("top1", "top-1"), ("top5", "top-5"), ("mean_class_acc", "mean class acc"),
             ("macro_precision", "macro precision"), ("macro_recall", "macro recall"), ("macro_f1", "macro F1")]
    for key, label in names:
        if key in metrics:
            print(f"{label:>16}: {100 * metrics[key]:.2f} %")
    for key, label in (("loss", "loss"), ("brier", "Brier score"), ("ece", "ECE")):
        if key in metrics:
            print(f"{label:>16}: {metrics[key]:.4f}")
    if "unknown_rate" in metrics:
        print(f"{'unknown':>16}: {100 * metrics['unknown_rate']:.2f} % below p = {metrics['unknown_threshold']:.3f} "
              f"(temperature {metrics['temperature']:.3f}, fitted on {metrics['calibrated_on']!r})")

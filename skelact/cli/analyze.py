"""``skelact predict VIDEO --per-person`` and ``--window``: who does what, when, in a video.

One pass poses and tracks the video keeping only keypoints (skelact/pose/tracks.py, the pass
``extract`` makes too); people are then classified on their own (``--per-person``) or in sliding
windows (``--window``, a timeline);
``--out`` decodes the video a second time to draw the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skelact.cli.common import CLIError, UsageError, check_output, pose_options, positive_float

if TYPE_CHECKING:
    from skelact.inference import Prediction, Predictor
    from skelact.pose.tracks import VideoTracks

__all__ = ["add_analysis_args", "window_lengths", "check_analysis_args", "analyse_video", "DEFAULT_WINDOWS",
           "DEFAULT_STRIDE_FRACTION", "DEFAULT_MIN_SEGMENT", "DEFAULT_WINDOW_VIEWS"]

# Defaults of ``--window`` etc.: defined below the CLI, where the timeline's unknown threshold is fitted for them.
from skelact.stream.defaults import (  # noqa: E402
    DEFAULT_MIN_SEGMENT,
    DEFAULT_STRIDE_FRACTION,
    DEFAULT_WINDOW_VIEWS,
    DEFAULT_WINDOWS,
)

#: Longest window, stride or shortest segment taken, in seconds (an hour: longer ones would make frame
#: counts overflow and buffers unbounded; a window longer than a video is refused anyway).
MAX_SECONDS = 3600.0


def seconds(text: str) -> float:
    """argparse type: a duration in seconds, > 0 and at most :data:`MAX_SECONDS`."""
    value = positive_float(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:g} s, got {text[:40]}")
    return value


def seconds_or_zero(text: str) -> float:
    """argparse type: a duration in seconds, 0 (off) to :data:`MAX_SECONDS`."""
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text[:40]!r}") from None
    try:
        return seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in [0, {MAX_SECONDS:g}], got {text[:40]}") \
            from None


def window_lengths(text: str) -> tuple[float, ...]:
    """argparse type: one or more window lengths in seconds, comma-separated."""
    return tuple(sorted({seconds(part) for part in text.split(",")}))


def timeline_base(text: str) -> Path:
    """argparse type of ``--timeline``: a file stem (BASE gives BASE.csv, ...), not a folder."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file stem, e.g. out/timeline (out/timeline.csv, ...), not empty")
    if text.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text[:80]!r} names a folder; give a file stem, e.g. {text.rstrip('/')}/"
                                         "timeline for timeline.csv, .json and .png in it")
    return path


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """``--per-person``, ``--window``, ``--stride``, ``--min-segment``, ``--timeline``."""
    default = ",".join(f"{w:g}" for w in DEFAULT_WINDOWS)
    p.add_argument("--per-person", action="store_true",
                   help="classify each tracked person on their own (models trained on one person per clip); "
                   "--out names the action above each person")
    p.add_argument("--window", type=window_lengths, nargs="?", const=DEFAULT_WINDOWS, default=None,
                   metavar="SECONDS[,SECONDS...]",
                   help="classify sliding windows of these lengths and write a timeline; each frame takes the "
                   f"probabilities of the most confident window covering it (given alone: {default}; each at most "
                   f"{MAX_SECONDS:g})")
    p.add_argument("--stride", type=seconds, default=None, metavar="SECONDS",
                   help="step between windows, at most the shortest window (default: a sixth of each window)")
    p.add_argument("--min-segment", type=seconds_or_zero, default=DEFAULT_MIN_SEGMENT, metavar="SECONDS",
                   help=f"timeline runs shorter than this join a neighbour (default {DEFAULT_MIN_SEGMENT}; 0: off)")
    p.add_argument("--timeline", type=timeline_base, default=None, metavar="BASE",
                   help="with --window: write BASE.csv, BASE.json and BASE.png; BASE is a file stem, not a folder "
                   "(default: ./VIDEO_NAME_timeline)")


def _timeline_paths(base: Path) -> list[Path]:
    return [base.with_name(base.name + ext) for ext in (".csv", ".json", ".png")]


def check_analysis_args(args: argparse.Namespace, source: Path, is_pickle: bool,
                        inputs: list[Path | None] | None = None) -> list[Path]:
    """Refuse bad combinations before any work; returns the timeline files that will be written.

    ``inputs``: every path the command reads (and its other outputs), none of which a timeline file may be.
    """
    if args.window is None:
        for opt, value in (("--stride", args.stride), ("--timeline", args.timeline)):
            if value is not None:
                raise UsageError(f"{opt}: applies with --window SECONDS")
        return []
    if is_pickle:
        raise CLIError(f"{source}: --window and --per-person apply to a video input, not a .pkl")
    if args.stride is not None and args.stride > min(args.window):
        raise UsageError(f"--stride {args.stride:g} s is longer than --window {min(args.window):g} s: windows "
                         "would skip frames")
    base = args.timeline or Path(f"{source.stem}_timeline")
    paths = _timeline_paths(base)
    for p in paths:
        check_output(p, inputs if inputs is not None else [source])
    args.timeline = base
    return paths


def _window_frames(args: argparse.Namespace, source: Path, frames: int, fps: float) -> tuple[list[int], list[int]]:
    """Window lengths and strides in frames; a shortest window longer than the video is an error."""
    lengths = [max(1, round(w * fps)) for w in args.window]
    if frames and min(lengths) > frames:
        raise CLIError(f"--window {min(args.window):g} s is longer than the video {source} ({frames / fps:.2f} s, "
                       f"{frames} frames)")
    if args.stride is not None:
        strides = [max(1, round(args.stride * fps))] * len(lengths)
    else:
        strides = [max(1, round(n * DEFAULT_STRIDE_FRACTION)) for n in lengths]
    return lengths, strides


def _person_json(tr: Any, pred: Prediction, fps: float) -> dict[str, Any]:
    from skelact.stream.timeline import prediction_fields

    return {"person": tr.person, "first_frame": tr.first, "last_frame": tr.last, "start_s": round(tr.first / fps, 3),
            "end_s": round((tr.last + 1) / fps, 3), **prediction_fields(pred),
            "topk": [{"label": n, "probability": p} for n, p in pred.topk]}


def analyse_video(args: argparse.Namespace, source: Path, out: Path | None, predictor: Predictor) -> None:
    """``predict VIDEO --per-person`` / ``--window``: one pose pass, then per-person or window results."""
    from skelact.pose.tracks import track_video
    from skelact.pose.video import VideoError, video_info

    try:
        info = video_info(source)
        if args.window is not None:
            _window_frames(args, source, info["frames"], info["fps"])  # the header's count: before any work
        pose = pose_options(args).build()
        vt = track_video(source, pose, progress=not args.quiet)
    except VideoError as e:
        raise CLIError(str(e)) from None
    from skelact.inference import InferenceError

    scene = predictor.cfg.data.max_persons > 1
    note = (f"the model was trained on clips of {predictor.cfg.data.max_persons} people: it classifies the scene, "
            "not each person" if scene else None)
    try:
        if args.window is not None:
            _timeline(args, source, out, predictor, vt, scene, note)
        else:
            _per_person(args, source, out, predictor, vt)
    except InferenceError as e:  # e.g. a model whose skeleton layout MoveNet's joints do not map to
        raise CLIError(f"{source}: {e}") from None


def _per_person(args: argparse.Namespace, source: Path, out: Path | None, predictor: Predictor,
                vt: VideoTracks) -> None:
    from skelact.stream.overlay import track_views, write_overlay
    from skelact.stream.tracks import classify_track

    people, preds = [], {}
    for tr in vt.tracks:
        pred = classify_track(predictor, tr, "coco17", vt.img_shape, args.topk, args.num_clips)
        if pred is not None:
            people.append(tr)
            preds[tr.person] = pred
    if args.max_persons is not None:  # the most confident people, still listed in order of appearance
        keep = {tr.person for tr in sorted(people, key=lambda tr: -tr.total_score)[: args.max_persons]}
        people = [tr for tr in people if tr.person in keep]
    skipped = len(vt.tracks) - len(people)
    if not people:
        raise CLIError(f"{source}: nobody was seen long enough to classify (the model needs "
                       f"{predictor.min_frames} frames with a person)")
    if out is not None:
        write_overlay(out, source, track_views(people, preds), vt.fps, vt.frames, progress=not args.quiet,
                      title="whole video")
    if args.json:
        print(json.dumps({"input": str(source), "model": predictor.source, "frames": vt.frames, "fps": vt.fps,
                          "per_person": True, "people": [_person_json(tr, preds[tr.person], vt.fps) for tr in people],
                          "tracks_too_short": skipped, "output": None if out is None else str(out)}, indent=2))
        return
    print(f"{vt.name}: {vt.frames} frames, {len(people)} person(s), model {predictor.source}")
    for tr in people:
        pred = preds[tr.person]
        others = ", ".join(f"{n} {p:.2f}" for n, p in pred.topk[1:])
        span = f"{tr.first / vt.fps:.2f}-{(tr.last + 1) / vt.fps:.2f} s"
        print(f"person {tr.person}  frames {tr.first}-{tr.last} ({span}): {pred.describe()}"
              + (f"  | next: {others}" if others else ""))
    if skipped:
        print(f"({skipped} short track(s) not classified: fewer than {predictor.min_frames} frames with a person)")
    if out is not None:
        print(f"wrote {out}")


def _timeline(args: argparse.Namespace, source: Path, out: Path | None, predictor: Predictor, vt: VideoTracks,
              scene: bool, note: str | None) -> None:
    from skelact.stream.overlay import timeline_views, write_overlay
    from skelact.stream.timeline import build_timeline
    from skelact.stream.tracks import classify_windows

    lengths, strides = _window_frames(args, source, vt.frames, vt.fps)
    views = args.num_clips or DEFAULT_WINDOW_VIEWS
    if scene:
        subjects = [vt.scene(args.max_persons or predictor.cfg.data.max_persons)] if vt.tracks else []
    else:  # everyone, or the --max-persons most confident
        subjects = sorted(vt.tracks, key=lambda tr: -tr.total_score)[: args.max_persons]
        subjects.sort(key=lambda tr: tr.person)
    windows = {}
    for tr in subjects:
        wins = classify_windows(predictor, tr, lengths, strides, "coco17", vt.img_shape, views)
        if wins:
            windows[tr.person] = (tr.first, tr.frames, wins)
    timeline = build_timeline(windows, vt.frames, vt.fps, predictor.classes, predictor.timeline_unknown,
                              max(1, round(args.min_segment * vt.fps)))
    paths = timeline.write(args.timeline)
    if out is not None:
        drawn = vt.tracks if scene else [tr for tr in vt.tracks if tr.person in windows]
        write_overlay(out, source, timeline_views(drawn, timeline, predictor.timeline_unknown), vt.fps, vt.frames,
                      progress=not args.quiet)
    if args.json:
        extra = {"input": str(source), "model": predictor.source, "windows_s": list(args.window),
                 "strides_s": [round(n / vt.fps, 3) for n in strides],
                 "per_person": not scene, "note": note, "files": [str(p) for p in paths],
                 "output": None if out is None else str(out)}
        print(timeline.to_json(**extra))
        return
    if not vt.tracks:
        print(f"warning: {source}: no person detected in any frame (for small, distant people lower "
              "--min-person-height)", file=sys.stderr)
    who = "the scene" if scene else f"{len(windows)} person(s)"
    lens = ", ".join(f"{w:g}" for w in args.window)
    print(f"{vt.name}: {vt.frames} frames ({vt.frames / vt.fps:.1f} s), {who}, windows of {lens} s, "
          f"model {predictor.source}")
    if note:
        print(f"note: {note}")
    for seg in timeline.segments:
        if seg.prediction is None:
            who, what = "nobody", ""
        else:
            who, what = ("scene" if seg.person is None else f"person {seg.person}"), seg.prediction.describe()
        print(f"{seg.start / vt.fps:>9.2f} - {seg.stop / vt.fps:<9.2f} {who:<10} {what}")
    print("wrote " + ", ".join(map(str, paths + ([out] if out is not None else []))))

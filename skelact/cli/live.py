"""``skelact live``: actions of the people in a camera, network stream or video file, as it plays."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from skelact.cli.analyze import window_lengths
from skelact.cli.common import (
    UsageError,
    add_model_args,
    add_pose_args,
    check_output,
    existing_files,
    pose_model_inputs,
    pose_options,
    positive_float,
    positive_int,
)

__all__ = ["add_parsers", "DEFAULT_LIVE_WINDOWS", "DEFAULT_EVERY"]

#: Window lengths (seconds) classified at each live prediction (the most confident one is shown),
#: and frames between predictions.
DEFAULT_LIVE_WINDOWS = (0.6, 0.85, 1.2, 1.7, 2.4, 3.39, 4.8)
DEFAULT_EVERY = 10


def _serve_address(text: str) -> str:
    """argparse type of ``--serve``: checked here so that a bad address is a usage error (status 2)."""
    from skelact.stream.server import ServeError, parse_address

    try:
        parse_address(text)
    except (ServeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT (e.g. 127.0.0.1:8000) with a port in 0-65535, "
                                         f"got {text[:80]!r}") from None
    return text


def _status(stats: object, last: list[float]) -> None:
    """A one-line status on a terminal's stderr, at most once a second."""
    now = time.monotonic()
    if now - last[0] < 1.0:
        return
    last[0] = now
    s = stats  # LiveStats
    recent = s.latencies[-30:]  # type: ignore[attr-defined]
    lat = 1000 * sorted(recent)[len(recent) // 2] if recent else float("nan")
    sys.stderr.write(f"\r{s.frames} frames, {s.fps:.1f} frames/s, {s.dropped} dropped, "  # type: ignore[attr-defined]
                     f"latency {lat:.0f} ms, {s.predictions} predictions   ")  # type: ignore[attr-defined]
    sys.stderr.flush()


def _cmd_live(args: argparse.Namespace) -> None:
    import torch

    from skelact.inference import load_predictor
    from skelact.pose.video import FrameSource, StreamEnded, describe_source
    from skelact.signals import Interrupted, graceful
    from skelact.stream.live import LiveAnalyzer, VideoSink
    from skelact.stream.server import LiveServer, exposure_warning, parse_address
    from skelact.viz.video import check_video_path

    kind, value = describe_source(args.source)
    if args.loop and kind != "file":
        raise UsageError(f"--loop: applies to a video file source, not {args.source[:80]!r}")
    out: Path | None = args.out
    if out is not None:
        check_video_path(out)
        check_output(out, [value if kind == "file" else None, *pose_model_inputs(args.pose_model),
                           *existing_files(args.model)])
    # The page's port and the source first: a port in use or a missing camera fail before the models load.
    server = LiveServer(*parse_address(args.serve)) if args.serve is not None else None
    source = None
    try:
        source = FrameSource(args.source, realtime=args.realtime, loop=args.loop, stall_timeout=args.stall)
        predictor = load_predictor(args.model, device=args.device)
        # One thread for the action model: the pose model has the cores, and on a busy CPU torch's
        # thread pool costs more than it gains for a clip this small (benchmarks/live.py).
        torch.set_num_threads(args.action_threads)
        pose = pose_options(args).build()
        if server is not None:
            print(f"serving {server.url} (the annotated stream and the labels)", file=sys.stderr, flush=True)
            warning = exposure_warning(server.host, args.serve)
            if warning is not None:
                print(warning, file=sys.stderr, flush=True)
        windows = sorted({max(1, round(w * source.fps)) for w in args.window})
        analyzer = LiveAnalyzer(pose, predictor, every=args.every, windows=windows, topk=args.topk,
                                num_clips=args.num_clips, lines=sys.stdout, server=server,
                                max_persons=args.max_persons, background=args.realtime,
                                pose_every=args.pose_every)
        last = [0.0]
        on_frame = (lambda s: _status(s, last)) if not args.quiet and sys.stderr.isatty() else None
        stop: BaseException | None = None
        # Ctrl-C, SIGTERM or SIGHUP ends the stream after the frame in hand, so the output holds
        # exactly the frames counted; a second signal interrupts at once.
        try:
            with graceful(source.stop) as signalled:
                if out is None:
                    analyzer.run(source, None, args.max_frames, on_frame)
                else:
                    with VideoSink(out, source.fps) as sink:  # closed and kept on a stop signal or a dropped stream
                        analyzer.run(source, sink.write, args.max_frames, on_frame)
        except (KeyboardInterrupt, StreamEnded) as e:
            stop = e  # reported after the summary
        if signalled.signum is not None and stop is None:
            stop = Interrupted(signalled.signum)
    finally:
        if source is not None:
            source.close()
        if server is not None:
            server.close()
    stats = analyzer.stats
    if on_frame is not None:
        sys.stderr.write("\n")
    print(f"{source.name}: {stats.frames} frames processed ({stats.dropped} dropped), {stats.fps:.1f} frames/s, "
          f"latency p50 {stats.latency_ms(50):.0f} ms / p95 {stats.latency_ms(95):.0f} ms, "
          f"{stats.predictions} predictions" + (f"; wrote {out} ({stats.written} frames)" if out else ""),
          file=sys.stderr)
    if stop is not None:
        raise stop


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``live``."""
    default = ",".join(f"{w:g}" for w in DEFAULT_LIVE_WINDOWS)
    p = sub.add_parser("live", help="actions of the people in a camera, stream or video, as it plays",
                       description="Pose every frame (MoveNet), track people, and every N frames classify each "
                       "person's last seconds; print one JSON line per prediction, and optionally write the "
                       "annotated video (--out) and serve it with the labels on a local web page (--serve). "
                       "Ctrl-C, SIGTERM or SIGHUP stops cleanly: the output file is closed and kept.")
    p.add_argument("--source", required=True, metavar="0|FILE|URL",
                   help="a camera index (0), a video file, or a stream URL (rtsp://, http://, ...)")
    add_model_args(p)
    p.add_argument("--out", type=Path, default=None, help="write the annotated stream to this video (.mp4, .webm, ...)")
    p.add_argument("--every", type=positive_int, default=DEFAULT_EVERY,
                   help=f"predict every N frames (default {DEFAULT_EVERY})")
    p.add_argument("--window", type=window_lengths, default=DEFAULT_LIVE_WINDOWS, metavar="SECONDS[,SECONDS...]",
                   help=f"lengths of the last seconds of each person classified, the most confident shown "
                   f"(default {default})")
    p.add_argument("--realtime", action="store_true",
                   help="drop frames when processing falls behind, so the delay stays bounded, and classify in a "
                   "background thread (a file is paced at its frame rate); default: process every frame")
    p.add_argument("--serve", type=_serve_address, default=None, metavar="[HOST:]PORT",
                   help="serve the annotated stream and the labels at http://HOST:PORT/ (host 127.0.0.1 by "
                   "default; 0.0.0.0 shows the camera to your whole network, without a password)")
    p.add_argument("--pose-every", type=positive_int, default=1, metavar="K",
                   help="run the pose model on every K-th frame and hold the poses between (2 halves the pose "
                   "cost when the CPU cannot pose every frame; default 1)")
    p.add_argument("--topk", type=positive_int, default=3, help="actions per prediction (default 3)")
    p.add_argument("--num-clips", type=positive_int, default=1, help="test views per prediction (default 1)")
    p.add_argument("--max-persons", type=positive_int, default=None,
                   help="predict for at most this many people at a time, the most confident (default: all)")
    p.add_argument("--loop", action="store_true", help="play a file source again and again (until Ctrl-C)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    p.add_argument("--stall", type=positive_float, default=10.0,
                   help="seconds without a frame after which a camera or stream counts as dropped (default 10)")
    p.add_argument("--action-threads", type=positive_int, default=1,
                   help="torch threads of the action model (default 1)")
    add_pose_args(p)
    p.add_argument("--quiet", action="store_true", help="no status line")
    p.set_defaults(func=_cmd_live)

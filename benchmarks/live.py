"""Live throughput and latency: a 640x360 source at 30 frames/s, delivered in real time, through ``skelact live``.

    python benchmarks/live.py [--seconds 20] [--front-ends topdown,whole-frame] [--sizes 256,192,160]
        [--threads 1,2] [--json out.json]

The source is the two-person NTU clip resized to 640x360 and played back and forth for
``--seconds``; a ``FrameSource(realtime=True)`` delivers it at 30 frames/s as a camera would
(capture thread, newest frame only), and the loop is the one ``skelact live`` runs (pose every
frame, tracker, ring buffers, a prediction every ``--every`` frames over the live windows, the
annotated frame drawn; ``--out`` adds the video encoder). Latency is per processed frame, from
the moment the frame was due at the source to the annotated frame being ready. Reported per
configuration (front end: ``topdown``, the default of ``skelact live``, at its whole-frame input 256;
``whole-frame`` at each of ``--sizes``): frames processed and dropped, frames/s, latency p50 / p95 / max, and the mean
time of one pose call and of one prediction round.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.cli.live import DEFAULT_EVERY, DEFAULT_LIVE_WINDOWS  # noqa: E402


def make_source(video: Path, out: Path, seconds: float, size: tuple[int, int] = (640, 360), fps: float = 30.0) -> Path:
    """``video`` resized to ``size`` and played forwards then backwards until ``seconds`` long (MJPG AVI)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.resize(got[1], size, interpolation=cv2.INTER_AREA))
    cap.release()
    cycle = frames + frames[-2:0:-1]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(round(seconds * fps)):
        writer.write(cycle[i % len(cycle)])
    writer.release()
    return out


class Timed:
    """Wraps a callable and keeps the seconds of each call."""

    def __init__(self, fn) -> None:
        self.fn, self.seconds = fn, []

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds.append(time.perf_counter() - t0)


def run_one(source_path: Path, model_path: Path | None, front_end: str, size: int, threads: int, every: int,
            out: Path | None, pose_every: int = 1) -> dict:
    from skelact.inference import load_predictor
    from skelact.pose.options import PoseOptions
    from skelact.pose.video import FrameSource
    from skelact.stream.live import LiveAnalyzer, VideoSink

    predictor = load_predictor(None, device="cpu")
    predict = Timed(predictor.predict_clips)
    predictor.predict_clips = predict  # type: ignore[method-assign]
    options = PoseOptions(model=model_path, input_size=size, threads=threads, topdown=front_end == "topdown")
    pose = Timed(options.build())  # what `skelact live --front-end FRONT_END --input-size SIZE --threads N` runs
    source = FrameSource(str(source_path), realtime=True)
    windows = sorted({max(1, round(w * source.fps)) for w in DEFAULT_LIVE_WINDOWS})
    analyzer = LiveAnalyzer(pose, predictor, every=every, windows=windows, lines=None, background=True,
                            pose_every=pose_every)
    try:
        if out is None:
            stats = analyzer.run(source)
        else:
            with VideoSink(out, source.fps) as sink:
                stats = analyzer.run(source, sink.write)
    finally:
        source.close()
    total = stats.frames + stats.dropped
    return {"front_end": front_end, "input_size": size, "pose_threads": threads, "pose_every": pose_every,
            "every": every,
            "writer": out is not None,
            "frames": total, "processed": stats.frames, "dropped": stats.dropped,
            "fps": round(stats.frames / stats.seconds, 2), "latency_p50_ms": round(stats.latency_ms(50), 1),
            "latency_p95_ms": round(stats.latency_ms(95), 1), "latency_max_ms": round(stats.latency_ms(100), 1),
            "pose_ms": round(1000 * float(np.mean(pose.seconds)), 1),
            "predict_ms": round(1000 * float(np.mean(predict.seconds)), 1) if predict.seconds else None,
            "predictions": stats.predictions}


def main() -> None:
    import torch

    shared = Path(os.environ.get("SKELACT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=shared / "data" / "videos" / "ntu_sample.avi")
    ap.add_argument("--pose-model", type=Path, default=shared / "models" / "movenet_multipose_lightning_f16.tflite")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the 30 frames/s source")
    ap.add_argument("--front-ends", default="topdown,whole-frame", help="front ends to try (topdown at input 256)")
    ap.add_argument("--sizes", default="256,192,160", help="whole-frame MoveNet input sizes to try")
    ap.add_argument("--threads", default="1,2", help="MoveNet thread counts to try")
    ap.add_argument("--pose-every", default="1", help="pose every N-th frame (holding poses between), values to try")
    ap.add_argument("--every", type=int, default=DEFAULT_EVERY)
    ap.add_argument("--out", action="store_true", help="also write the annotated stream (.mp4) in each run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as skelact live does (--action-threads 1)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = make_source(args.video, Path(tmp) / "source.avi", args.seconds)
        print(f"source: {args.video.name} at 640x360, 30 frames/s, {args.seconds:g} s, paced in real time; "
              f"prediction every {args.every} frames over windows {DEFAULT_LIVE_WINDOWS} s; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'front end':>11} {'size':>5} {'thr':>4} {'pose/':>5} {'frames':>7} {'done':>6} {'drop':>6} "
              f"{'fps':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'pose ms':>8} {'pred ms':>8}")
        configs = [(fe, size) for fe in args.front_ends.split(",")
                   for size in ([256] if fe == "topdown" else map(int, args.sizes.split(",")))]
        for (front_end, size), threads, pose_every in itertools.product(configs, map(int, args.threads.split(",")),
                                                                        map(int, args.pose_every.split(","))):
            out = Path(tmp) / f"out_{front_end}_{size}_{threads}_{pose_every}.mp4" if args.out else None
            r = run_one(src, args.pose_model, front_end, size, threads, args.every, out, pose_every)
            rows.append(r)
            print(f"{front_end:>11} {size:>5} {threads:>4} {pose_every:>5} {r['frames']:>7} {r['processed']:>6} "
                  f"{r['dropped']:>6} {r['fps']:>6.1f} "
                  f"{r['latency_p50_ms']:>7.1f} {r['latency_p95_ms']:>7.1f} {r['latency_max_ms']:>7.1f} "
                  f"{r['pose_ms']:>8.1f} {r['predict_ms'] or 0:>8.1f}", flush=True)
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg(),
                "source": "ntu_sample.avi 640x360 30 fps", "seconds": args.seconds, "windows_s": DEFAULT_LIVE_WINDOWS}
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Video to action: decoding, MoveNet pose, tracking, the action model, and all of them end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..options import Row
from ..timing import Threads, rate_stats, time_runs
from .common import Context, n_of, shared_root, skip_rows

__all__ = ["bench_video"]

_POSE_MODEL_FILE = "movenet_multipose_lightning_f16.tflite"
_VIDEO_ITEMS = [("decode", "frames/s"), ("pose front end (default: top-down)", "frames/s"), ("tracking", "frames/s"),
                ("action model, 1 clip", "clips/s"), ("end to end: decode+pose+track+action", "frames/s")]


def _random_predictor() -> Any:
    """A randomly initialised kpc3d behind :class:`~skelact.inference.Predictor` (NTU-style recipe)."""
    import torch

    from skelact.config import Config, DataConfig, ModelConfig
    from skelact.inference import Predictor
    from skelact.models import create_model
    from skelact.skeleton import get_layout

    cfg = Config(data=DataConfig(clip_len=100, normalize="image", features=["joint"], num_clips_test=10),
                 model=ModelConfig(name="kpc3d"))
    torch.manual_seed(0)
    model = create_model("kpc3d", num_classes=60, layout="coco17", in_channels=3).eval()
    return Predictor(model, cfg, [f"class_{i}" for i in range(60)], get_layout("coco17"), 3, "random kpc3d",
                     torch.device("cpu"))


def bench_video(ctx: Context) -> list[Row]:
    """Frames/s of decoding, MoveNet, tracking, the action model and the whole video pipeline."""
    opts = ctx.opts
    video = opts.video or shared_root() / "data" / "videos" / "ntu_sample.avi"
    if not Path(video).is_file():
        return skip_rows("video", _VIDEO_ITEMS, f"no video at {video} (use --video)")
    try:
        from skelact.pose import PoseModelError, PoseOptions, PoseTracker, extract_video, iter_frames
    except ImportError as e:
        return skip_rows("video", _VIDEO_ITEMS, str(e))
    pose_path = opts.pose_model
    if pose_path is None:
        shared = shared_root() / "models" / _POSE_MODEL_FILE
        pose_path = shared if shared.is_file() else None
    try:
        pose = PoseOptions(model=pose_path, input_size=256, threads=opts.threads, download=False).build()
    except (ImportError, PoseModelError) as e:
        return skip_rows("video", _VIDEO_ITEMS, f"{e} (use --pose-model)")
    if opts.model:
        from skelact.inference import load_predictor

        predictor = load_predictor(opts.model)
    else:
        predictor = _random_predictor()
    runs, warmup = (1, 0) if opts.quick else (min(opts.runs, 3), 1)
    rows = []
    with Threads(opts.threads):
        state: dict[str, Any] = {}

        def decode() -> None:
            state["frames"] = sum(1 for _ in iter_frames(video, prefetch=0))

        rate_fn = rate_stats(time_runs(decode, runs, warmup=warmup), 1.0)  # calls/s; frames known after a run
        n_frames = state["frames"]
        rate, rates = rate_fn[0] * n_frames, [r * n_frames for r in rate_fn[1]]
        frames = []
        for frame in iter_frames(video):
            frames.append(frame)
            if opts.quick and len(frames) == 8:
                break
        h, w = frames[0].shape[:2]
        rows.append(Row("video", "decode", rate, "frames/s", f"{Path(video).name}, {w}x{h}, {n_frames} frames, "
                        "OpenCV", rates))

        results: list[Any] = []

        def detect() -> None:
            pose.reset()  # the top-down front end follows people from frame to frame: each run starts afresh
            results[:] = [pose(f) for f in frames]

        rate, rates = rate_stats(time_runs(detect, runs, warmup=1), float(len(frames)))
        # what the front end chose (MoveNet: all cores; the top-down front end runs one MoveNet)
        threads = getattr(getattr(pose, "model", pose), "num_threads", opts.threads)
        rows.append(Row("video", "pose front end (default: top-down)", rate, "frames/s",
                        f"on {len(frames)} decoded frames, {n_of(threads, 'thread')}", rates))
        frames.clear()  # free the decoded frames

        def track() -> None:
            tracker = PoseTracker()
            for t, people in enumerate(results):
                tracker.update(t, people)
            tracker.arrays(len(results), 2)

        rate, rates = rate_stats(time_runs(track, opts.runs, warmup=1, number=5), float(len(results)))
        people = sum(len(r) for r in results) / max(1, len(results))
        rows.append(Row("video", "tracking", rate, "frames/s", f"{people:.1f} people/frame", rates))

        def end_to_end() -> None:
            state["ann"] = extract_video(video, pose, max_persons=2, progress=False)
            predictor.predict_clip(state["ann"], layout="coco17")

        rate_fn = rate_stats(time_runs(end_to_end, runs, warmup=warmup), 1.0)
        ann = state["ann"]
        total = ann["total_frames"]
        e2e = Row("video", "end to end: decode+pose+track+action", rate_fn[0] * total, "frames/s",
                  f"extract_video + predict_clip, {total} frames", [r * total for r in rate_fn[1]])

        views = predictor.cfg.data.num_clips_test
        rate, rates = rate_stats(time_runs(lambda: predictor.predict_clip(ann, layout="coco17"), opts.runs,
                                           warmup=1), 1.0)
        rows.append(Row("video", "action model, 1 clip", rate, "clips/s",
                        f"{predictor.source}, {views} views x T={predictor.clip_len}", rates))
        rows.append(e2e)
    return rows

"""Crowds and small people: k x k mosaics of real two-person clips in a 1280x720 frame, posed by skelact's front end.

    python benchmarks/crowd.py --out work_dirs/crowd [--shared ../shared] [--sizes 256,512,768]
        [--topdown 96:8,128:4] [--no-default]
        [--grids 1,2,3,4] [--frames 48] [--ref-size 512]

Clips: the NTU video (``videos/ntu_sample.avi``, 1920x1080, two people) and 15 UT-Interaction set 1
clips (two people each; every 4th of the 60 in sorted order). Tile i of a k x k grid (k = 1..4) shows
clip i mod 16, scaled to fit its 1280/k x 720/k tile and centred (letterboxed), so a mosaic holds 2k²
real people (up to 32) of known place. All clips play their first ``--frames`` frames together.

Reference: each clip, untiled, posed at ``--ref-size`` (but never above the clip's own longer side: an
enlarged clip loses people) by the same code ``skelact extract`` runs
(``MoveNet`` → ``PoseTracker`` → the two best joined tracks), then mapped into its tile. A
reference person counts in a frame where at least 5 joints score >= 0.3; their keypoints' extent
is the person's height h.

Front ends: the default of ``extract``/``predict`` (``PoseOptions().build()``: top-down, see
``skelact/pose/topdown.py``), the one-stage ``--front-end whole-frame`` at each of ``--sizes``, and
top-down variants ``--topdown CROP:EVERY[:MIN_HEIGHT]``.

Per front-end setting (threads as the CLI's default, ``PoseTracker()``
as ``extract`` makes it) and k, over the mosaic frames:

- people found per frame (MoveNet's people above its person score) against the true 2k², and the
  share of the true people-frames the reference sees (recall below is out of those);
- detections matched to reference people per frame (Hungarian on the mean joint distance / h,
  pairs over 0.5 h refused); recall = matched / reference people, and the share matched with
  PCK >= 0.8 (PCK: joints within 0.2 h of the reference's, over the reference's visible joints);
  mean PCK of the matched;
- tracks per person (distinct joined tracks, ``PoseTracker.chains``, matched to one reference
  person over the clip; 1 is ideal) and identity switches (the matched track changes between
  two of the person's matched frames);
- frames/s of pose + tracking on the 1280x720 mosaic (decoding and mosaic building not timed).

Prints one table, writes ``OUT/crowd.json`` and ``OUT/crowd.md``. The 1-minute load average is
recorded per run: frames/s taken above ~2.5 on 2 cores are marked busy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.bench.report import cpu_model  # noqa: E402
from skelact.data.io import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAME_W, FRAME_H = 1280, 720
BUSY_LOAD = 2.5
REF_JOINT_SCORE = 0.3  # a reference joint counts as seen above this MoveNet score
REF_MIN_JOINTS = 5  # a reference person counts in a frame with at least this many seen joints
MATCH_GATE = 0.5  # a detection whose mean joint distance exceeds this many person heights is not that person
PCK_ALPHA = 0.2
PCK_FOUND = 0.8  # "found" = matched with PCK at least this


# ---------------------------------------------------------------------------------------------
# Pure geometry and scoring (tested in tests/bench/test_crowd.py)

@dataclass(frozen=True)
class Placement:
    """Where a clip lands in the mosaic: frame pixel = clip pixel * scale + (x, y)."""

    x: float
    y: float
    scale: float
    width: int  # of the scaled clip, pixels
    height: int


def tile_box(i: int, k: int, frame_w: int = FRAME_W, frame_h: int = FRAME_H) -> tuple[int, int, int, int]:
    """Tile ``i`` (row-major) of a k x k grid: x0, y0, x1, y1 in frame pixels (integer bounds, no gaps)."""
    r, c = divmod(i, k)
    return (round(c * frame_w / k), round(r * frame_h / k), round((c + 1) * frame_w / k), round((r + 1) * frame_h / k))


def place(clip_w: int, clip_h: int, box: tuple[int, int, int, int]) -> Placement:
    """Scale a clip to fit ``box`` with its aspect kept, centred (letterbox)."""
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / clip_w, (y1 - y0) / clip_h)
    w, h = max(1, round(clip_w * scale)), max(1, round(clip_h * scale))
    return Placement(x0 + (x1 - x0 - w) // 2, y0 + (y1 - y0 - h) // 2, scale, w, h)


def to_frame(xy: np.ndarray, p: Placement) -> np.ndarray:
    """Clip pixels [..., 2] → mosaic pixels."""
    return xy * p.scale + np.array([p.x, p.y], np.float32)


def person_height(xy: np.ndarray, seen: np.ndarray) -> float:
    """Height of the seen joints' extent (pixels); 0 with fewer than two seen joints."""
    return float(np.ptp(xy[seen, 1])) if seen.sum() >= 2 else 0.0


def joint_distance(det: np.ndarray, ref: np.ndarray, seen: np.ndarray, height: float) -> np.ndarray:
    """Distance / height of detections [P, V, 2] to one reference [V, 2] per seen joint: [P, seen joints]."""
    return np.linalg.norm(det[:, seen] - ref[seen], axis=-1) / max(height, 1e-6)


def pck(det: np.ndarray, ref: np.ndarray, seen: np.ndarray, height: float, alpha: float = PCK_ALPHA) -> float:
    """Share of the reference's seen joints that the detection [V, 2] puts within ``alpha * height``."""
    return float(np.mean(joint_distance(det[None], ref, seen, height)[0] <= alpha))


def match(det: np.ndarray, refs: list[tuple[np.ndarray, np.ndarray, float]],
          gate: float = MATCH_GATE) -> list[tuple[int, int]]:
    """Pair detections [P, V, 2] with reference people ``(keypoints [V, 2], seen [V], height)``.

    Hungarian on the mean joint distance / height; pairs above ``gate`` are refused.

    Returns:
        ``(reference index, detection index)`` pairs.
    """
    if len(det) == 0 or not refs:
        return []
    cost = np.stack([joint_distance(det, kp, seen, h).mean(1) for kp, seen, h in refs])  # [R, P]
    rows, cols = linear_sum_assignment(np.minimum(cost, 1e6))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= gate]


def identity_stats(matched_tracks: list[int]) -> tuple[int, int]:
    """For one person's matched track ids in frame order: (distinct tracks, identity switches)."""
    switches = sum(a != b for a, b in zip(matched_tracks, matched_tracks[1:], strict=False))
    return len(set(matched_tracks)), switches


# ---------------------------------------------------------------------------------------------
# Running the front end

def read_frames(path: Path, count: int, max_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first ``count`` frames (BGR), shrunk to fit ``max_size`` if given."""
    import cv2

    from skelact.pose.video import iter_frames_one_size

    frames = []
    for frame in iter_frames_one_size(path):
        if max_size and (frame.shape[1] > max_size[0] or frame.shape[0] > max_size[1]):
            s = min(max_size[0] / frame.shape[1], max_size[1] / frame.shape[0])
            frame = cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)),
                               interpolation=cv2.INTER_AREA)
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def reference_input(width: int, height: int, generous: int) -> int:
    """The reference's input size: ``generous``, but no larger than the clip (a multiple of 32, at least 256)."""
    return max(256, min(generous, max(width, height) // 32 * 32))


def reference(path: Path, count: int, model) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The clip untiled through ``skelact extract``'s loop: keypoints [2, T, 17, 2], scores [2, T, 17], (w, h)."""
    from skelact.data.tracking import PoseTracker
    from skelact.pose.video import iter_frames_one_size

    tracker, t, shape = PoseTracker(), 0, (0, 0)
    for frame in iter_frames_one_size(path):
        tracker.update(t, model(frame))
        shape = (frame.shape[1], frame.shape[0])
        t += 1
        if t == count:
            break
    kp, sc = tracker.arrays(t, max_persons=2)
    return kp, sc, shape


def run_mosaic(k: int, clips: list[dict], model, frames: int) -> dict:
    """Pose and track ``frames`` mosaics of a k x k grid; score against the mapped references."""
    import cv2

    from skelact.data.tracking import PoseTracker

    tiles = []  # (clip, placement) per tile
    for i in range(k * k):
        clip = clips[i % len(clips)]
        tiles.append((clip, place(clip["size"][0], clip["size"][1], tile_box(i, k))))
    tracker = PoseTracker()
    if hasattr(model, "reset"):
        model.reset()  # a front end that follows people from frame to frame starts afresh
    detections, seconds = [], 0.0
    for t in range(frames):
        mosaic = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
        for clip, p in tiles:
            mosaic[p.y:p.y + p.height, p.x:p.x + p.width] = cv2.resize(clip["frames"][t], (p.width, p.height),
                                                                       interpolation=cv2.INTER_AREA)
        t0 = time.perf_counter()
        people = model(mosaic)
        ids = tracker.update(t, people)
        seconds += time.perf_counter() - t0
        detections.append((people.keypoints, ids))
    chain_of = {tr: c for c, chain in enumerate(tracker.chains()) for tr in chain}

    found, refs_total, matched, good, pcks, heights = [], 0, 0, 0, [], []
    person_tracks: dict[tuple[int, int], list[int]] = {}
    for t, (det, ids) in enumerate(detections):
        found.append(len(det))
        refs, keys = [], []
        for i, (clip, p) in enumerate(tiles):
            for m in range(len(clip["ref_kp"])):
                seen = clip["ref_sc"][m, t] >= REF_JOINT_SCORE
                if seen.sum() < REF_MIN_JOINTS:
                    continue
                kp = to_frame(clip["ref_kp"][m, t], p)
                h = person_height(kp, seen)
                if h <= 0:
                    continue
                refs.append((kp, seen, h))
                keys.append((i, m))
                heights.append(h)
        refs_total += len(refs)
        for r, d in match(det, refs):
            score = pck(det[d], *refs[r])
            matched += 1
            good += score >= PCK_FOUND
            pcks.append(score)
            person_tracks.setdefault(keys[r], []).append(chain_of[ids[d]])
    per_person = [identity_stats(v) for v in person_tracks.values()]
    return {
        "k": k, "true_people": 2 * k * k, "frames": frames,
        "found_per_frame": round(float(np.mean(found)), 2),
        "reference_people_frames": refs_total,
        # share of the true people-frames the untiled reference sees (recall is out of these)
        "reference_coverage": round(refs_total / (2 * k * k * frames), 4),
        "person_height_px": round(float(np.median(heights)), 1) if heights else None,
        "recall": round(matched / max(refs_total, 1), 4),
        "found_pck80": round(good / max(refs_total, 1), 4),
        "mean_pck": round(float(np.mean(pcks)), 4) if pcks else None,
        "tracks_per_person": round(float(np.mean([n for n, _ in per_person])), 2) if per_person else None,
        "id_switches": int(sum(s for _, s in per_person)),
        "tracks_made": len(set(chain_of.values())),
        "fps": round(frames / seconds, 2),
    }


def main() -> None:
    from skelact.pose import MoveNet
    from skelact.pose.video import video_info

    shared_default = os.environ.get("SKELACT_SHARED", str(ROOT.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(shared_default), help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--pose-model", type=Path, default=None,
                    help="default: $SKELACT_POSE_MODEL, else SHARED/models/movenet_multipose_lightning_f16.tflite")
    ap.add_argument("--sizes", default="256,512,768",
                    help="whole-frame front-end input sizes to compare ('' for none)")
    ap.add_argument("--no-default", action="store_true", help="skip the default front end")
    ap.add_argument("--topdown", default="",
                    help="top-down front ends to run too, CROP:EVERY[:MIN_HEIGHT] comma-separated, e.g. 128:8")
    ap.add_argument("--grids", default="1,2,3,4", help="values of k")
    ap.add_argument("--frames", type=int, default=48, help="frames of each clip (UT clips have at least 52)")
    ap.add_argument("--ref-size", type=int, default=512, help="input size of the untiled reference")
    ap.add_argument("--threads", type=int, default=None, help="pose threads (default: all cores, as the CLI)")
    args = ap.parse_args()
    pose_model = args.pose_model or Path(os.environ.get(
        "SKELACT_POSE_MODEL", args.shared / "models" / "movenet_multipose_lightning_f16.tflite"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    topdowns = [t.split(":") for t in args.topdown.split(",") if t]
    grids = [int(k) for k in args.grids.split(",")]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    ut = sorted((args.shared / "data" / "ut_interaction").glob("*/*.avi"))[::4]
    paths = [args.shared / "data" / "videos" / "ntu_sample.avi", *ut]
    t0 = time.perf_counter()
    ref_models: dict[int, MoveNet] = {}
    clips = []
    for path in paths:
        # Never upsample for the reference: MoveNet loses people in a clip enlarged past its own pixels (a
        # 220x300 UT clip posed at input 384 kept one person in 12 % of its frames, at 256-320 in all).
        ref_size = reference_input(video_info(path)["width"], video_info(path)["height"], args.ref_size)
        if ref_size not in ref_models:
            ref_models[ref_size] = MoveNet(pose_model, input_size=ref_size, num_threads=args.threads, download=False)
        kp, sc, size = reference(path, args.frames, ref_models[ref_size])
        frames = read_frames(path, args.frames, (FRAME_W, FRAME_H))
        scale = frames[0].shape[1] / size[0]  # the NTU clip is kept at 1280x720: its reference scales with it
        clips.append({"name": path.stem, "size": (frames[0].shape[1], frames[0].shape[0]), "frames": frames,
                      "ref_kp": kp * scale, "ref_sc": sc})
        if len(frames) < args.frames:
            sys.exit(f"{path}: {len(frames)} frames, fewer than --frames {args.frames}")
    ref_s = time.perf_counter() - t0
    print(f"{len(clips)} clips x {args.frames} frames, reference at input {args.ref_size} in {ref_s:.0f} s; "
          f"{cpu_model()}, {os.cpu_count()} CPUs")

    rows = []
    print(f"{'front end':>20} {'k':>2} {'true':>4} {'found/fr':>8} {'height':>6} {'ref':>6} {'recall':>6} "
          f"{'PCK>=.8':>7} {'PCK':>5} {'trk/pers':>8} {'IDsw':>5} {'tracks':>6} {'fps':>6} {'load':>5}")
    from skelact.pose.options import PoseOptions

    front_ends: list[tuple[str, object]] = []
    if not args.no_default:
        front_ends.append(("default", PoseOptions(model=pose_model, threads=args.threads, download=False).build()))
    for size in sizes:
        front_ends.append((f"whole-frame {size}",
                           MoveNet(pose_model, input_size=size, num_threads=args.threads, download=False)))
    for td in topdowns:  # built as the CLI builds its front end, with these settings
        min_height = float(td[2]) if len(td) > 2 else 1 / 8
        options = PoseOptions(model=pose_model, threads=args.threads, download=False, crop_size=int(td[0]),
                              detect_every=int(td[1]), min_height=min_height)
        front_ends.append((f"topdown {td[0]}:{td[1]}:{min_height:.3g}", options.build()))
    for size, model in front_ends:
        for k in grids:
            load = round(os.getloadavg()[0], 2)
            r = {"front_end": size, **run_mosaic(k, clips, model, args.frames), "load": load}
            rows.append(r)
            print(f"{size:>20} {k:>2} {r['true_people']:>4} {r['found_per_frame']:>8.2f} "
                  f"{r['person_height_px'] or 0:>6.0f} {r['reference_coverage']:>6.1%} {r['recall']:>6.1%} "
                  f"{r['found_pck80']:>7.1%} "
                  f"{r['mean_pck'] or 0:>5.2f} {r['tracks_per_person'] or 0:>8.2f} {r['id_switches']:>5} "
                  f"{r['tracks_made']:>6} {r['fps']:>6.1f} {load:>5.2f}{'*' if load > BUSY_LOAD else ''}", flush=True)
    print(f"* = load above {BUSY_LOAD}: frames/s taken on a busy machine")
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
               "machine": cpu_model(), "cpus": os.cpu_count(), "clips": [c["name"] for c in clips],
               "frames": args.frames, "ref_size": args.ref_size, "ref_sizes": sorted(ref_models),
               "reference_seconds": round(ref_s, 1), "rows": rows}
    atomic_write(out / "crowd.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    atomic_write(out / "crowd.md", lambda f: f.write(markdown(summary).encode()))


def _or_dash(value: object) -> str:
    return "–" if value is None else str(value)


def markdown(s: dict) -> str:
    lines = [f"{s['date']}, {s['machine']}, {s['cpus']} CPUs; `{s['command']}`", "",
             "| front end | k | people (true) | found / frame | height px | reference sees | recall "
             "| found, PCK >= 0.8 | mean PCK | tracks / person | ID switches | tracks made | frames/s | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in s["rows"]:
        busy = " busy" if r["load"] > BUSY_LOAD else ""
        lines.append(f"| {r['front_end']} | {r['k']} | {r['true_people']} | {r['found_per_frame']:.2f} "
                     f"| {r['person_height_px']} | {r['reference_coverage']:.1%} | {r['recall']:.1%} "
                     f"| {r['found_pck80']:.1%} | {_or_dash(r['mean_pck'])} | {_or_dash(r['tracks_per_person'])} "
                     f"| {r['id_switches']} | {r['tracks_made']} | {r['fps']:.1f} | {r['load']}{busy} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

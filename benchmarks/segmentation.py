"""Temporal segmentation with the window classifier on real skeletons: Penn Action clips joined end to end,
and the share of real footage of other activities that the timeline calls "unknown".

    python benchmarks/segmentation.py [--data ../shared/data/penn_action] [--json out.json]
    python benchmarks/segmentation.py --tune      # grid over window / stride / views / min-segment on train
    python benchmarks/segmentation.py --tune --ann-file data/penn_action_val.pkl --split val --sequences 12
    python benchmarks/segmentation.py --no-videos  # the joined clips only

Sequences: a fixed, seeded draw of clips of one split, joined end to end (no two neighbours of
the same class; ``skelact.stream.fitting.join_sequences``, as ``skelact calibrate`` joins the
validation clips), at 30 frames/s (Penn Action gives no frame rate; its YouTube clips are ~30 fps).
Each sequence is one person track run through ``skelact.stream`` exactly as ``skelact predict
--window`` runs a video (engine.classify_windows -> timeline.build_timeline, the model's timeline
unknown rule) with the shipped model; the per-frame labels are scored against the clips' classes
with frame accuracy (a frame called unknown is wrong), edit score and F1@{10,25,50}
(skelact/stream/segmentation.py). ``--tune`` searches the defaults on sequences of the **train**
split (or of ``--split``, e.g. the validation split carved out of train by ``skelact split``, which
the model did not train on); the report uses the **test** split.

Unknown share: each video of ``--videos`` (default: the 60 UT-Interaction set 1 videos, two people
interacting, and the NTU RGB+D video: no Penn Action class in any) goes through ``skelact predict
VIDEO --window --json`` itself (pose model, tracker, windows, timeline, with the command's defaults),
and the share of person-time (frames a person is labelled, summed over people) called unknown is
reported, with the classes the rest was given. The timeline threshold is not fitted on these
videos (``skelact calibrate --unknown-data``: NW-UCLA and raw NTU clips, see benchmarks/unknown.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.cli.analyze import (  # noqa: E402
    DEFAULT_MIN_SEGMENT,
    DEFAULT_STRIDE_FRACTION,
    DEFAULT_WINDOW_VIEWS,
    DEFAULT_WINDOWS,
)
from skelact.stream.fitting import JoinedSequence, join_sequences  # noqa: E402
from skelact.stream.segmentation import segmentation_scores  # noqa: E402
from skelact.stream.timeline import build_timeline  # noqa: E402
from skelact.stream.tracks import classify_windows  # noqa: E402

FPS = 30.0


def make_sequences(data: dict, split: str, count: int, clips: int, seed: int) -> list[JoinedSequence]:
    """``count`` sequences of ``clips`` clips of ``split`` (each clip used once), no two neighbours of one class."""
    by_name = {a["frame_dir"]: a for a in data["annotations"]}
    return join_sequences([by_name[n] for n in data["split"][split]], clips, seed, count)


def ladder(shortest_s: float, count: int) -> list[float]:
    """``count`` window lengths from ``shortest_s`` up, each sqrt(2) times the last (seconds, 2 decimals)."""
    return [round(shortest_s * 2 ** (k / 2), 2) for k in range(count)]


def classify(predictor, seqs, windows_s: list[float], stride_fraction: float, views: int) -> list[list]:
    """Windows of every sequence (engine.classify_windows, as ``skelact predict --window`` runs them)."""
    lengths = [max(1, round(w * FPS)) for w in windows_s]
    strides = [max(1, round(n * stride_fraction)) for n in lengths]
    return [classify_windows(predictor, s.track, lengths, strides, "penn13", None, views) for s in seqs]


def labels_of(predictor, seqs, wins: list[list], min_segment_s: float) -> list[np.ndarray]:
    """Per-frame labels (timeline.build_timeline) of every sequence."""
    out = []
    for seq, w in zip(seqs, wins, strict=True):
        n = seq.track.frames
        tl = build_timeline({1: (0, n, w)}, n, FPS, predictor.classes, predictor.timeline_unknown,
                            max(1, round(min_segment_s * FPS)))
        out.append(tl.people[0].labels if tl.people else np.full(n, -2))
    return out


def unknown_share(videos: list[Path], model: str | None, pose_model: Path | None) -> list[dict]:
    """Per video: person-frames labelled, called unknown, and given each class, by ``skelact predict --window``."""
    import contextlib
    import io
    import tempfile

    from skelact.cli import main as skelact

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            args = ["predict", str(video), "--window", "--json", "--quiet", "--timeline", f"{tmp}/timeline"]
            args += ["--model", model] if model else []
            args += ["--pose-model", str(pose_model)] if pose_model else []
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = skelact(args)
            row = {"video": str(video), "status": status, "frames": 0, "unknown": 0, "labels": {}}
            if status == 0:
                for r in json.loads(out.getvalue())["rows"]:
                    if r["person"] is None or r["state"] == "nobody":
                        continue
                    n = r["end_frame"] - r["start_frame"] + 1
                    row["frames"] += n
                    if r["state"] == "unknown":
                        row["unknown"] += n
                    else:
                        row["labels"][r["label"]] = row["labels"].get(r["label"], 0) + n
            rows.append(row)
    return rows


def _share(rows: list[dict]) -> str:
    frames, unknown = sum(r["frames"] for r in rows), sum(r["unknown"] for r in rows)
    labels: dict[str, int] = {}
    for r in rows:
        for k, v in r["labels"].items():
            labels[k] = labels.get(k, 0) + v
    top = ", ".join(f"{k} {v / FPS:.0f} s" for k, v in sorted(labels.items(), key=lambda kv: -kv[1])[:3])
    return (f"{len(rows)} videos, {frames} person-frames: {100 * unknown / max(1, frames):.1f} % unknown"
            + (f" (labelled: {top})" if top else ""))


def _row(cfg: dict, scores: dict) -> str:
    return (f"{cfg['windows']:>42} {cfg['stride']:>6.3f} {cfg['views']:>5} {cfg['min_segment_s']:>7.2f} "
            f"{scores['accuracy']:>7.2f} {scores['edit']:>7.2f} {scores['f1@10']:>7.2f} {scores['f1@25']:>7.2f} "
            f"{scores['f1@50']:>7.2f}")


HEADER = (f"{'windows (s)':>42} {'stride':>6} {'views':>5} {'min_seg':>7} {'acc %':>7} {'edit':>7} {'F1@10':>7} "
          f"{'F1@25':>7} {'F1@50':>7}")


def main() -> None:
    import torch

    from skelact.data.convert.penn import convert_penn
    from skelact.data.io import load_annotations
    from skelact.inference import load_predictor

    shared = Path(os.environ.get("SKELACT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared / "data" / "penn_action")
    ap.add_argument("--ann-file", type=Path, default=None,
                    help="a Penn Action pickle to draw the clips from instead (e.g. one with a 'val' split)")
    ap.add_argument("--split", default=None, help="split to draw the clips from (default: test; train with --tune)")
    ap.add_argument("--model", default=None, help="checkpoint or shipped name (default: the shipped Penn model)")
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--clips", type=int, default=10, help="clips per sequence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", action="store_true", help="grid search on train sequences instead of the test report")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this small model)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--videos", type=Path, nargs="*", default=None,
                    help="videos of other activities for the unknown share (default: UT-Interaction set 1 and the "
                    "NTU video from --data's folder)")
    ap.add_argument("--no-videos", action="store_true", help="skip the unknown share")
    ap.add_argument("--pose-model", type=Path, default=None, help="passed to skelact predict")
    ap.add_argument("--sweep", type=lambda t: [float(x) for x in t.split(",")], default=[],
                    help="also score the joined clips at these timeline thresholds (comma-separated)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    data = load_annotations(args.ann_file) if args.ann_file else convert_penn(args.data)[0]
    predictor = load_predictor(args.model, device="cpu")
    split = args.split or ("train" if args.tune else "test")
    seqs = make_sequences(data, split, args.sequences, args.clips, args.seed + (1 if args.tune else 0))
    frames = sum(len(s.truth) for s in seqs)
    cal = predictor.calibration
    print(f"{len(seqs)} sequences of {args.clips} Penn Action {split} clips ({frames} frames, "
          f"{frames / FPS / 60:.1f} min at {FPS:g} fps), model {predictor.source}, unknown below p = "
          f"{cal.threshold if cal else None} (clips), {cal.timeline_threshold if cal else None} (timeline)")
    truths = [s.truth for s in seqs]
    results = []
    print(HEADER)

    def report(windows_s: list[float], fraction: float, views: int, wins: list[list], min_segments: list[float],
               seconds: float) -> None:
        for ms in min_segments:
            scores = segmentation_scores(labels_of(predictor, seqs, wins, ms), truths)
            cfg = {"windows": ",".join(f"{w:g}" for w in windows_s), "stride": fraction, "views": views,
                   "min_segment_s": ms}
            results.append({**cfg, **scores, "windows_classified": sum(map(len, wins)), "seconds": seconds})
            print(_row(cfg, scores), flush=True)

    if args.tune:
        # Classify each window length once per (stride, views), then score subsets of the lengths.
        full = ladder(0.6, 10)
        for fraction, views in itertools.product([1 / 12, 1 / 6, 1 / 3], [1, 2]):
            t0 = time.perf_counter()
            per_len = {w: classify(predictor, seqs, [w], fraction, views) for w in full}
            seconds = time.perf_counter() - t0
            subsets = [full, full[:9], full[:8], full[1:], full[::2], [1.2], [1.7], [2.4]]
            for sub in subsets:
                wins = [sum((per_len[w][i] for w in sub), []) for i in range(len(seqs))]
                report(sub, fraction, views, wins, [0.0, 0.25, 0.5, 1.0], seconds)
        best = max(results, key=lambda r: (r["f1@50"] + r["accuracy"]) / 2)
        print("best (mean of frame accuracy and F1@50):")
        print(_row(best, best))
    else:
        windows_s = list(DEFAULT_WINDOWS)
        t0 = time.perf_counter()
        wins = classify(predictor, seqs, windows_s, DEFAULT_STRIDE_FRACTION, DEFAULT_WINDOW_VIEWS)
        seconds = time.perf_counter() - t0
        report(windows_s, DEFAULT_STRIDE_FRACTION, DEFAULT_WINDOW_VIEWS, wins, [DEFAULT_MIN_SEGMENT], seconds)
        for value in args.sweep:  # the same windows, another timeline threshold
            cal = dataclasses.replace(predictor.calibration, timeline_threshold=value)
            other = dataclasses.replace(predictor, calibration=cal)
            scores = segmentation_scores(labels_of(other, seqs, wins, DEFAULT_MIN_SEGMENT), truths)
            results.append({"timeline_threshold": value, **scores})
            print(f"timeline threshold {value:.3f}: frame accuracy {scores['accuracy']:.2f} %, "
                  f"F1@50 {scores['f1@50'] / 100:.3f}")
        n = sum(map(len, wins))
        print(f"{n} windows classified in {seconds:.1f} s ({1000 * seconds / max(1, n):.1f} ms each, "
              f"{args.threads} torch thread(s))")
    videos: list[dict] = []
    if not args.tune and not args.no_videos:
        data_dir = args.data.parent
        ut = sorted((data_dir / "ut_interaction").glob("*/*.avi"))
        ntu = [data_dir / "videos" / "ntu_sample.avi"]
        chosen = args.videos if args.videos is not None else ut + ntu
        t0 = time.perf_counter()
        videos = unknown_share(chosen, args.model, args.pose_model)
        print(f"unknown share (skelact predict --window, {time.perf_counter() - t0:.0f} s):")
        for name, rows in (("UT-Interaction", [r for r in videos if Path(r["video"]) in ut]),
                           ("NTU video", [r for r in videos if Path(r["video"]) in ntu]),
                           ("other", [r for r in videos if Path(r["video"]) not in ut + ntu]), ("all", videos)):
            if rows:
                print(f"  {name}: {_share(rows)}")
        failed = [r["video"] for r in videos if r["status"] != 0]
        if failed:
            print(f"  {len(failed)} video(s) failed: {', '.join(failed[:5])}")
    if args.json:
        meta = {"split": split, "sequences": len(seqs), "clips_per_sequence": args.clips, "seed": args.seed,
                "frames": frames, "fps": FPS, "model": predictor.source, "machine": platform.processor() or
                platform.machine(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                "clips": [s.names for s in seqs]}
        args.json.write_text(json.dumps({"meta": meta, "results": results, "videos": videos}, indent=2))


if __name__ == "__main__":
    main()

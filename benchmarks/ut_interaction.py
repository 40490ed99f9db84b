"""Video to action, end to end: UT-Interaction segmented set 1, 10-fold leave-one-sequence-out, through the CLI.

    python benchmarks/ut_interaction.py --out work_dirs/ut [--shared ../shared] [--folds 1-10]
        [--input-size 512] [--extract-args=--front-end=whole-frame] [--model stgcnpp] [--set optim.epochs=40]
        [--smooth MAX_GAP] [--reuse-poses]

The chain a user runs, each stage a ``python -m skelact.cli`` process, timed by wall clock:

1. ``skelact extract ROOT -o OUT/poses.pkl`` once over the 60 videos (ROOT/<class>/<video>; the
   default pose settings unless ``--input-size`` / ``--threads`` / ``--max-persons`` are given);
2. per fold S (sequence S = 1..10): ``OUT/fold_S/data.pkl``, the same clips with split ``test`` =
   the clips of sequence S (6; 5 and 7 in sequences 6 and 8) and ``train`` = the rest (made with skelact's Python API:
   no command re-splits a file by a rule, and the poses are extracted once for all folds);
3. ``skelact train OUT/fold_S/data.pkl --work-dir OUT/fold_S`` (the zero-config recipe;
   ``--model`` / ``--set`` are passed on). With only train and test in the file the zero-config
   recipe validates on a 10 % share carved out of ``train`` (before 2026-12-07 it validated on
   ``test``); this script reports ``last.pt`` (the fixed last epoch), never ``best.pt``;
4. ``skelact test --checkpoint OUT/fold_S/last.pt --out-dir OUT/fold_S/test``: the fold's top-1.

Writes ``OUT/summary.json`` and ``OUT/summary.md`` and prints one table: per fold top-1 and the
wall time of train and test, the mean, the extraction's time and settings, and the 1-minute load
average at the start of each stage (timings taken above ~2.5 on 2 cores are marked busy).
``--reuse-poses`` keeps ``OUT/poses.pkl`` and its recorded extraction time from an earlier run
with the same pose settings (e.g. to run the folds in several sittings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from common import SkelactFailed, cli, shared_default  # noqa: E402

from skelact.bench.report import cpu_model  # noqa: E402
from skelact.data.io import atomic_write, load_annotations, save_annotations  # noqa: E402

BUSY_LOAD = 2.5  # 1-minute load average above which a 2-core timing is marked "machine busy"
NAME = re.compile(r"segmented_set1_(\d+)_(\d+)_(\d+)$")  # clip index, sequence, class id


def parse_folds(text: str) -> list[int]:
    """``"1-10"``, ``"3"`` or ``"1,4,7"`` → sorted sequence numbers in 1..10."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    if not out or min(out) < 1 or max(out) > 10:
        raise argparse.ArgumentTypeError(f"folds must lie in 1..10, got {text!r}")
    return sorted(out)


def sequence_of(frame_dir: str) -> int:
    """The sequence number S of a clip named ``<class>/segmented_set1_I_S_C``."""
    m = NAME.search(frame_dir)
    if m is None:
        raise ValueError(f"{frame_dir!r} is not a UT-Interaction set 1 clip name (segmented_set1_I_S_C)")
    return int(m.group(2))


def fold_split(names: list[str], sequence: int) -> dict[str, list[str]]:
    """Leave-one-sequence-out: ``test`` = the clips of ``sequence``, ``train`` = the rest."""
    test = [n for n in names if sequence_of(n) == sequence]
    return {"train": [n for n in names if sequence_of(n) != sequence], "test": test}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def pose_coverage(data: dict) -> dict:
    """How much of each clip the extraction covers: people kept and frames with both people present."""
    both, one = [], []
    for a in data["annotations"]:
        present = (np.asarray(a["keypoint_score"]) > 0).any(-1)  # [M, T]
        count = present.sum(0) if len(present) else np.zeros(a["total_frames"])
        both.append(float(np.mean(count >= 2)))
        one.append(float(np.mean(count >= 1)))
    return {"clips": len(data["annotations"]), "frames_with_2_people": round(float(np.mean(both)), 4),
            "frames_with_a_person": round(float(np.mean(one)), 4),
            "clips_with_2_tracks": int(sum(np.asarray(a["keypoint"]).shape[0] >= 2 for a in data["annotations"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=shared_default(), help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--folds", type=parse_folds, default=list(range(1, 11)), help="sequences held out (default 1-10)")
    ap.add_argument("--pose-model", type=Path, default=None,
                    help="default: $SKELACT_POSE_MODEL, else SHARED/models/movenet_multipose_lightning_f16.tflite")
    ap.add_argument("--input-size", type=int, default=None, help="passed to skelact extract")
    ap.add_argument("--threads", type=int, default=None, help="passed to skelact extract")
    ap.add_argument("--max-persons", type=int, default=None, help="passed to skelact extract")
    ap.add_argument("--model", default=None, help="passed to skelact train (default: its own, kpc3d)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="passed to skelact train")
    ap.add_argument("--train-args", nargs="+", default=[], metavar="ARG",
                    help="more options for skelact train, e.g. --train-args=--streams=j,b,jm,bm")
    ap.add_argument("--smooth", type=int, default=None, metavar="MAX_GAP",
                    help="before training, fill gaps of up to MAX_GAP frames and apply the One Euro filter "
                    "(skelact.data.smoothing) to the extracted poses: measures whether smoothing helps")
    ap.add_argument("--extract-args", nargs="+", default=[], metavar="ARG",
                    help="more options for skelact extract, e.g. --extract-args=--front-end=whole-frame")
    ap.add_argument("--reuse-poses", action="store_true", help="keep OUT/poses.pkl from an earlier run")
    args = ap.parse_args()

    videos = args.shared / "data" / "ut_interaction"
    pose_model = args.pose_model or Path(os.environ.get(
        "SKELACT_POSE_MODEL", args.shared / "models" / "movenet_multipose_lightning_f16.tflite"))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    pose_opts = [f"--{k.replace('_', '-')}={v}" for k, v in
                 (("input_size", args.input_size), ("threads", args.threads), ("max_persons", args.max_persons))
                 if v is not None] + args.extract_args
    settings = {"pose_model": pose_model.name, "extract_options": pose_opts or ["(defaults)"],
                "train_options": ([f"--model={args.model}"] if args.model else []) + [f"--set={s}" for s in args.set]
                + args.train_args,
                "smooth_max_gap": args.smooth}

    poses, record = out / "poses.pkl", out / "extract.json"
    if args.reuse_poses and poses.exists() and record.exists() \
            and json.loads(record.read_text())["extract_options"] == settings["extract_options"]:
        extract = json.loads(record.read_text())
        print(f"reusing {poses} (extracted {extract['date']} in {extract['seconds']:.0f} s)")
    else:
        extract = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": load(),
                   "extract_options": settings["extract_options"]}
        extract["seconds"] = cli(["extract", str(videos), "-o", str(poses), "--pose-model", str(pose_model),
                                  *pose_opts, "--quiet", "--force"], out / "extract.log")
        extract["load_after"] = load()
        atomic_write(record, lambda f: f.write(json.dumps(extract, indent=2).encode()))
    data = load_annotations(poses)
    if args.smooth is not None:
        from skelact.data.smoothing import fill_gaps, one_euro

        for a in data["annotations"]:  # UT-Interaction is 30 frames/s
            a["keypoint"], a["keypoint_score"] = fill_gaps(a["keypoint"], a["keypoint_score"], args.smooth)
            a["keypoint"] = one_euro(a["keypoint"], a["keypoint_score"], fps=30.0)
    extract["coverage"] = pose_coverage(data)
    names = [a["frame_dir"] for a in data["annotations"]]
    extract["frames"] = int(sum(a["total_frames"] for a in data["annotations"]))

    folds = []
    print(f"{'fold':>4} {'train':>5} {'test':>4} {'top-1 %':>8} {'train s':>8} {'test s':>7} {'load':>5}")
    for s in args.folds:
        work = out / f"fold_{s}"
        if work.exists():
            shutil.rmtree(work)  # this script's own output from an earlier run; train refuses a used work dir
        work.mkdir()
        fold = dict(data, split=fold_split(names, s))
        save_annotations(fold, work / "data.pkl")
        row = {"fold": s, "train_clips": len(fold["split"]["train"]), "test_clips": len(fold["split"]["test"]),
               "load_train": load()}
        train_args = ["train", str(work / "data.pkl"), "--work-dir", str(work), "--result", str(work / "result.json")]
        if args.model:
            train_args += ["--model", args.model]
        if args.set:
            train_args += ["--set", *args.set]
        train_args += args.train_args
        row["train_s"] = cli(train_args, work / "train.log")
        row["load_test"] = load()
        ckpt = work / "last.pt" if (work / "last.pt").exists() else work / "best.pt"  # an ensemble has best.pt only
        row["checkpoint"] = ckpt.name
        row["test_s"] = cli(["test", "--checkpoint", str(ckpt), "--out-dir", str(work / "test")],
                            work / "test.log")
        metrics = json.loads((work / "test" / "metrics.json").read_text())
        row["top1"] = 100 * metrics["top1"]
        row["epochs"] = json.loads((work / "result.json").read_text()).get("epoch")
        folds.append(row)
        busy = "*" if max(row["load_train"], row["load_test"]) > BUSY_LOAD else ""
        print(f"{s:>4} {row['train_clips']:>5} {row['test_clips']:>4} {row['top1']:>8.2f} {row['train_s']:>8.1f} "
              f"{row['test_s']:>7.1f} {row['load_train']:>5.2f}{busy}", flush=True)
        write_summary(out, settings, extract, folds)  # after every fold: a run stopped early keeps its folds
    mean = float(np.mean([r["top1"] for r in folds]))
    print(f"mean top-1 {mean:.2f} % over {len(folds)} fold(s); extract {extract['seconds']:.0f} s for "
          f"{extract['frames']} frames ({extract['frames'] / extract['seconds']:.1f} frames/s, load "
          f"{extract['load_before']}), pose options {' '.join(settings['extract_options'])}; * = load > {BUSY_LOAD}")


def write_summary(out: Path, settings: dict, extract: dict, folds: list[dict]) -> None:
    """``OUT/summary.json`` and ``OUT/summary.md`` for the folds finished so far."""
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
               "machine": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "settings": settings, "extract": extract, "folds": folds,
               "mean_top1": float(np.mean([r["top1"] for r in folds]))}
    atomic_write(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    atomic_write(out / "summary.md", lambda f: f.write(markdown(summary).encode()))


def markdown(s: dict) -> str:
    busy = f" (load > {BUSY_LOAD}: machine busy)"
    e = s["extract"]
    lines = [f"UT-Interaction set 1, leave-one-sequence-out, {s['date']}, {s['machine']}, {s['cpus']} CPUs",
             f"`{s['command']}`", "",
             f"extract: {e['seconds']:.0f} s for {e['frames']} frames, load {e['load_before']}"
             f"{busy if e['load_before'] > BUSY_LOAD else ''}; "
             f"pose options {' '.join(s['settings']['extract_options'])};"
             f" coverage {e['coverage']}", "",
             "| fold | train / test clips | top-1 % | train s | test s | load |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in s["folds"]:
        mark = " busy" if max(r["load_train"], r["load_test"]) > BUSY_LOAD else ""
        lines.append(f"| {r['fold']} | {r['train_clips']} / {r['test_clips']} | {r['top1']:.2f} | {r['train_s']:.0f} "
                     f"| {r['test_s']:.1f} | {r['load_train']}{mark} |")
    lines.append(f"| **mean** | | **{s['mean_top1']:.2f}** | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        main()
    except SkelactFailed as e:  # the command, its status and its log's tail; no traceback
        sys.exit(str(e))

"""A starting model for fine-tuning, from every skeleton dataset in ``../shared``, on the joints they share.

    python benchmarks/pretrain.py --out work_dirs/pretrain [--leave-out penn] [--ut-poses UT.pkl] [--streams j,b,jm,bm]

Builds ``OUT/pretrain.pkl``: 2D keypoints in the ``penn13`` layout (head, shoulders, elbows,
wrists, hips, knees, ankles: the joints that COCO-17, Penn Action, Kinect v1 / v2 and OpenPose
all have), one class list with each dataset's classes prefixed by its name, from

- Penn Action's training split (2D pixels, visibility as the score);
- NW-UCLA's training split (views 1 and 2), its Kinect v1 camera-space 3D joints projected
  to the image plane (``u = -x / z``, ``v = -y / z``: a pinhole camera, Kinect's x pointing to the
  sensor's left and y up; the recipe normalises each clip by its box, so the focal length does not
  matter), score 1 where a joint is present;
- UT-Interaction set 1, the 60 clips as ``skelact extract`` writes them with its defaults
  (``--ut-poses``, else extracted here; MoveNet scores).

Only training splits go in: Penn Action's and NW-UCLA's test splits stay unseen. UT-Interaction has
no fixed split (it is scored leave-one-sequence-out), so a model that includes it must not be scored
on it. ``--leave-out NAME`` drops one dataset: the honest start for that dataset's learning curve.
A stratified 10 % of the clips is the validation split (``skelact split``'s rule). Then
``skelact train OUT/pretrain.pkl --model kpc3d --work-dir OUT/model`` (the zero-config recipe, ``--set``
passed on); ``OUT/model/best.pt`` is the starting point for ``skelact train DATA --init``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from common import SkelactFailed, cli, shared_default  # noqa: E402

from skelact.data.io import atomic_write, load_annotations, save_annotations  # noqa: E402
from skelact.data.splits import carve_split  # noqa: E402
from skelact.skeleton import get_layout, joint_mapping  # noqa: E402

TARGET = get_layout("penn13")


def project(keypoint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space 3D joints [M, T, V, 3] (z: depth) → image-plane 2D [M, T, V, 2] and scores [M, T, V]."""
    z = keypoint[..., 2]
    present = np.isfinite(keypoint).all(-1) & (z > 1e-3)
    safe = np.where(present, z, 1.0)
    uv = np.stack([-keypoint[..., 0] / safe, -keypoint[..., 1] / safe], -1)
    return np.where(present[..., None], uv, 0.0).astype(np.float32), present.astype(np.float32)


def common_joints(data: dict, name: str, split: str | None) -> list[dict]:
    """``data``'s clips of ``split`` (None: all) in the penn13 layout, 2D, labels as class names."""
    layout = get_layout(data["layout"])
    idx = joint_mapping(layout, TARGET)
    if idx is None:
        raise SystemExit(f"{name}: layout {layout.name} does not map to penn13")
    keep = None if split is None else set(data["split"][split])
    out = []
    for a in data["annotations"]:
        if keep is not None and a["frame_dir"] not in keep:
            continue
        kp = np.asarray(a["keypoint"], np.float32)[..., idx, :]
        if kp.shape[-1] == 3:
            kp, score = project(kp)
        else:
            score = (np.asarray(a["keypoint_score"], np.float32)[..., idx] if "keypoint_score" in a
                     else (kp != 0).any(-1).astype(np.float32))
        out.append({"frame_dir": f"{name}/{a['frame_dir']}", "total_frames": int(a["total_frames"]),
                    "keypoint": kp, "keypoint_score": score,
                    "label": f"{name}:{data['classes'][a['label']]}"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=shared_default(), help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--leave-out", choices=["penn", "ucla", "ut"], action="append", default=[],
                    help="leave a dataset out (repeatable)")
    ap.add_argument("--ut-poses", type=Path, default=None, help="UT-Interaction as skelact extract wrote it")
    ap.add_argument("--penn", type=Path, default=None, help="Penn Action converted (default: converted here)")
    ap.add_argument("--ucla", type=Path, default=None, help="NW-UCLA converted (default: converted here)")
    ap.add_argument("--model", default="kpc3d")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="passed to skelact train")
    ap.add_argument("--streams", default=None, metavar="S,S,...",
                    help="passed to skelact train: one network per stream, each a start for that stream")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    data.mkdir(exist_ok=True)

    clips: list[dict] = []
    sources = {"penn": (args.penn, ["convert", "penn", str(args.shared / "data" / "penn_action")], "train"),
               "ucla": (args.ucla, ["convert", "ucla", str(args.shared / "data" / "nwucla" / "all_sqe")], "train"),
               "ut": (args.ut_poses, ["extract", str(args.shared / "data" / "ut_interaction"), "--quiet"], None)}
    for name, (given, command, split) in sources.items():
        if name in args.leave_out:
            continue
        path = given or data / f"{name}.pkl"
        if not path.exists():
            cli([*command, "-o", str(path)], data / f"{name}.log")
        part = common_joints(load_annotations(path), name, split)
        print(f"{name}: {len(part)} clips from {path}")
        clips += part
    classes = sorted({c["label"] for c in clips})
    for c in clips:
        c["label"] = classes.index(c["label"])
    merged = {"split": {"train": [c["frame_dir"] for c in clips]}, "classes": classes, "layout": "penn13",
              "annotations": clips}
    merged = carve_split(merged, "train", 0.1, seed=0)
    pkl = out / "pretrain.pkl"
    save_annotations(merged, pkl, force=True)
    print(f"{pkl}: {len(clips)} clips, {len(classes)} classes, "
          f"{len(merged['split']['train'])} train / {len(merged['split']['val'])} val")
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "left_out": args.leave_out,
              "clips": len(clips), "classes": len(classes), "load_before": round(os.getloadavg()[0], 2)}
    work = out / "model"
    train = ["train", str(pkl), "--model", args.model, "--work-dir", str(work), "--result", str(out / "train.json")]
    if args.set:
        train += ["--set", *args.set]
    train += ["--streams", args.streams or "j"]  # without --streams one network, whatever the data's size
    if work.exists():
        train.append("--resume")
    record["train_s"] = round(cli(train, out / "train.log"), 1)
    record["result"] = json.loads((out / "train.json").read_text())
    atomic_write(out / "pretrain.json", lambda f: f.write(json.dumps(record, indent=2, default=str).encode()))
    print(f"{work / 'best.pt'}: validation top-1 {record['result'].get('best_top1')}, trained in "
          f"{record['train_s']:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except SkelactFailed as e:  # the command, its status and its log's tail; no traceback
        sys.exit(str(e))

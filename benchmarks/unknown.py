"""How well a model says "unknown action": AUROC of its rejection score, known vs unknown clips.

Known: the Penn Action **test** clips (the classes the shipped model knows, clips it never saw).
Unknown: clips of actions outside Penn Action, brought into the model's layout the way a user's
data would be:

- NW-UCLA (10 daily actions, 3D Kinect v1 joints in metres): projected to 2D image-like pixels with
  Kinect v1's colour-camera intrinsics (f = 525 px, a 640x480 image) and mapped to penn13 by
  joint name;
- the 12 raw NTU RGB+D clips (``.skeleton`` colour-frame pixels, 25 joints; each body is a clip);
- the NTU RGB+D video (MoveNet MultiPose + tracker, each tracked person is a clip).

The rejection score is the calibrated top-1 probability (softmax at the model's temperature,
averaged over its test views): the lower, the more "unknown". The table also gives what the
model's stored threshold does: the share of known clips accepted and of unknown clips flagged.

    python benchmarks/unknown.py                       # the shipped model
    python benchmarks/unknown.py --model work_dirs/penn_kpc3d_video/last.pt --json unknown.json
    python benchmarks/unknown.py --write-unknown-data outside.pkl   # for skelact calibrate --unknown-data

``--write-unknown-data FILE`` writes the NW-UCLA (projected) and raw NTU clips, one clip per body,
mapped to the model's layout, as one PYSKL file (every clip labelled "other"): the out-of-class
stretches ``skelact calibrate --unknown-data`` joins between the validation clips to fit the
timeline threshold. The NTU video and UT-Interaction stay out of it: they are what
benchmarks/segmentation.py reports on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.data.convert import convert_ntu, convert_penn, convert_ucla  # noqa: E402
from skelact.engine.metrics import auroc  # noqa: E402
from skelact.inference import Predictor, load_predictor  # noqa: E402
from skelact.skeleton import get_layout  # noqa: E402

_KINECT_F, _KINECT_C = 525.0, (320.0, 240.0)  # Kinect v1 colour camera: focal length, principal point (px)


def project_kinect(xyz: np.ndarray) -> np.ndarray:
    """[..., 3] camera-space metres (y up, z away) -> [..., 2] pixels (y down); missing joints stay 0."""
    z = np.where(xyz[..., 2] > 1e-3, xyz[..., 2], np.nan)
    uv = np.stack([_KINECT_C[0] + _KINECT_F * xyz[..., 0] / z, _KINECT_C[1] - _KINECT_F * xyz[..., 1] / z], -1)
    present = np.isfinite(uv).all(-1) & (xyz != 0).any(-1)
    return np.where(present[..., None], uv, 0.0).astype(np.float32)


def _scores(predictor: Predictor, clips: list[dict], layout: str) -> np.ndarray:
    """Calibrated top-1 probability of each clip that the model can take (short clips are skipped)."""
    from skelact.inference import InferenceError

    lay = get_layout(layout)
    out = []
    for clip in clips:
        try:
            out.append(float(predictor.predict_clip(clip, layout=lay).probs.max()))
        except InferenceError:
            continue
    return np.asarray(out)


def _split_persons(anns: list[dict]) -> list[dict]:
    """One clip per person (the model was trained on one-person clips)."""
    out = []
    for a in anns:
        for m in range(a["keypoint"].shape[0]):
            clip = {**a, "frame_dir": f"{a['frame_dir']}#{m}", "keypoint": a["keypoint"][m:m + 1]}
            if a.get("keypoint_score") is not None:
                clip["keypoint_score"] = a["keypoint_score"][m:m + 1]
            out.append(clip)
    return out


def write_unknown_data(predictor: Predictor, data: Path, out: Path) -> int:
    """NW-UCLA (projected) and raw NTU clips, one per body, in the model's layout, as a PYSKL file; returns clips."""
    from skelact.data.io import save_annotations

    ucla, _ = convert_ucla(data / "nwucla")
    clips = [(dict(a, keypoint=project_kinect(a["keypoint"]), img_shape=(480, 640)), "ucla20")
             for a in ucla["annotations"]]
    ntu, _ = convert_ntu(data / "ntu_raw", dims=2)
    clips += [(a, "ntu25") for a in _split_persons(ntu["annotations"])]
    anns = []
    for clip, layout in clips:
        a = predictor.map_layout(clip, get_layout(layout))
        a = {k: a[k] for k in ("frame_dir", "total_frames", "keypoint", "img_shape") if k in a}
        a["keypoint_score"] = (a["keypoint"] != 0).any(-1).astype(np.float32)  # a joint is there when it is not 0
        anns.append({**a, "label": 0})
    save_annotations({"annotations": anns, "split": {"all": [a["frame_dir"] for a in anns]}, "classes": ["other"],
                      "layout": predictor.layout.name}, out, force=True)
    return len(anns)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint or shipped model name (default: the shipped model)")
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("SKELACT_SHARED", "../shared")),
                   help="folder with data/ and models/ (default: $SKELACT_SHARED or ../shared)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("--write-unknown-data", type=Path, default=None, metavar="FILE",
                   help="only write the out-of-class clips for skelact calibrate --unknown-data (see above)")
    args = p.parse_args(argv)
    data = args.shared / "data"
    predictor = load_predictor(args.model)
    if args.write_unknown_data is not None:
        n = write_unknown_data(predictor, data, args.write_unknown_data)
        print(f"wrote {n} clips to {args.write_unknown_data}")
        return 0
    cal = predictor.calibration
    print(f"model {predictor.source}: temperature {cal.temperature if cal else 1.0:.3f}, "
          f"threshold {cal.threshold if cal and cal.threshold is not None else 'none'}")

    penn, _ = convert_penn(data / "penn_action")
    test = set(penn["split"]["test"])
    known = _scores(predictor, [a for a in penn["annotations"] if a["frame_dir"] in test], "penn13")

    ucla, _ = convert_ucla(data / "nwucla")
    ucla_clips = [{**a, "keypoint": project_kinect(a["keypoint"]), "img_shape": (480, 640)}
                  for a in ucla["annotations"]]
    unknown = {"NW-UCLA (projected)": _scores(predictor, ucla_clips, "ucla20")}
    ntu, _ = convert_ntu(data / "ntu_raw", dims=2)
    unknown["NTU raw clips"] = _scores(predictor, _split_persons(ntu["annotations"]), "ntu25")

    video = data / "videos" / "ntu_sample.avi"
    pose_model = args.shared / "models" / "movenet_multipose_lightning_f16.tflite"
    if video.is_file() and pose_model.is_file():
        from skelact.pose import MoveNet, extract_video

        ann = extract_video(video, MoveNet(pose_model), max_persons=2, progress=False)
        unknown["NTU video (MoveNet)"] = _scores(predictor, _split_persons([ann]), "coco17")

    rows = []
    threshold = cal.threshold if cal is not None else None
    everything = np.concatenate(list(unknown.values()))
    for name, scores in [*unknown.items(), ("all unknown", everything)]:
        row = {"unknown set": name, "clips": int(scores.size), "auroc": auroc(known, scores),
               "median p (unknown)": float(np.median(scores))}
        if threshold is not None:
            row["flagged unknown"] = float((scores < threshold).mean())
        rows.append(row)
    accepted = float((known >= threshold).mean()) if threshold is not None else None
    print(f"known: {known.size} Penn Action test clips, median p {np.median(known):.3f}"
          + (f", {accepted:.1%} accepted at p >= {threshold:.3f}" if accepted is not None else ""))
    print(f"{'unknown set':<22} {'clips':>5} {'AUROC':>6} {'median p':>9} {'flagged':>8}")
    for r in rows:
        flagged = f"{r['flagged unknown']:.1%}" if "flagged unknown" in r else "-"
        print(f"{r['unknown set']:<22} {r['clips']:>5} {r['auroc']:>6.3f} {r['median p (unknown)']:>9.3f} "
              f"{flagged:>8}")
    if args.json is not None:
        args.json.write_text(json.dumps({"model": predictor.source, "threshold": threshold,
                                         "known_clips": int(known.size), "known_accepted": accepted,
                                         "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed of ``skelact convert openpose`` and ``convert numpy`` on real clips written in those formats.

    python benchmarks/convert_formats.py [--clips 200] [--shared ../shared]

OpenPose: the first ``--clips`` Penn Action clips as BODY_25 ``--write_json`` folders, every
second clip with a second person (the next clip, 2000 px to the right), so the tracker links two
people. NumPy: every NW-UCLA clip as a [T, 20, 3] ``.npy`` file. Files are written to a temporary
folder first; only the conversion is timed (one process, one core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.data.convert import convert_numpy, convert_openpose  # noqa: E402
from skelact.data.convert.penn import read_penn_mat  # noqa: E402
from skelact.data.convert.ucla import read_ucla_json  # noqa: E402
from skelact.skeleton import get_layout, joint_mapping  # noqa: E402


def _body25(ann: dict, dx: float) -> np.ndarray:
    """Penn joints [T, 13, 2] placed in BODY_25 people [T, 25, 3]; invisible joints 0, 0, 0."""
    idx = joint_mapping(get_layout("body25"), get_layout("penn13"))
    kp, vis = ann["keypoint"][0], ann["keypoint_score"][0]
    out = np.zeros((kp.shape[0], 25, 3), np.float32)
    out[:, idx, :2] = kp + np.float32(dx)
    out[:, idx, 2] = 0.8 * vis
    out[:, idx] *= (vis > 0)[..., None]
    return out


def write_openpose(shared: Path, root: Path, clips: int) -> int:
    files = sorted((shared / "data" / "penn_action" / "labels").glob("*.mat"))[: clips + 1]
    anns = [read_penn_mat(p)[0] for p in files]
    frames = 0
    for i in range(clips):
        people = [_body25(anns[i], 0.0)]
        if i % 2:
            people.append(_body25(anns[i + 1], 2000.0))
        folder = root / anns[i]["frame_dir"]
        folder.mkdir(parents=True)
        for t in range(len(people[0])):
            doc = {"version": 1.3, "people": [{"pose_keypoints_2d": p[t].reshape(-1).tolist()}
                                              for p in people if t < len(p)]}
            (folder / f"{folder.name}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
        frames += len(people[0])
    return frames


def write_numpy(shared: Path, root: Path) -> int:
    root.mkdir(parents=True)
    frames = 0
    for p in sorted((shared / "data" / "nwucla" / "all_sqe").glob("*.json")):
        sk = read_ucla_json(p)[1]
        np.save(root / f"{p.stem}.npy", sk)
        frames += len(sk)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="Penn Action clips written as OpenPose JSON")
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("SKELACT_SHARED", "../shared")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        op_frames = write_openpose(args.shared, Path(tmp) / "openpose", args.clips)
        t0 = time.perf_counter()
        data, summary = convert_openpose(Path(tmp) / "openpose")
        dt = time.perf_counter() - t0
        persons = sum(a["keypoint"].shape[0] for a in data["annotations"])
        print(f"openpose: {summary.converted} clips, {summary.files} JSON files, {persons} tracks kept: "
              f"{dt:.2f} s, {op_frames / dt:.0f} frames/s")
        np_frames = write_numpy(args.shared, Path(tmp) / "numpy")
        t0 = time.perf_counter()
        data, summary = convert_numpy(Path(tmp) / "numpy")
        dt = time.perf_counter() - t0
        print(f"numpy: {summary.converted} clips ({np_frames} frames): {dt:.2f} s, "
              f"{summary.converted / dt:.0f} files/s")


if __name__ == "__main__":
    main()

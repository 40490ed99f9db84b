"""How the three NW-UCLA camera views differ: body azimuth at the first frame and camera tilt.

    python benchmarks/ucla_views.py [data/nwucla.pkl]

Azimuth: the left-minus-right line of the shoulders and hips at frame 0, in the horizontal (x, z)
plane, in degrees. Tilt: the hip-centre -> shoulder-centre direction in the (y, z) plane, averaged
over the clip. Figures in BENCHMARKS.md (NW-UCLA section).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.data.io import load_annotations  # noqa: E402
from skelact.skeleton import get_layout  # noqa: E402


def view_stats(ann_file: str | Path) -> dict[str, tuple[np.ndarray, float]]:
    """Per view (``v01``...): azimuth percentiles 10/50/90 and median tilt, in degrees."""
    j = get_layout("ucla20").joints.index
    left = [j("left_shoulder"), j("left_hip")]
    right = [j("right_shoulder"), j("right_hip")]
    azimuth: dict[str, list[float]] = {}
    tilt: dict[str, list[float]] = {}
    for ann in load_annotations(ann_file)["annotations"]:
        kp, view = ann["keypoint"][0], ann["frame_dir"][-3:]  # [T, 20, 3] metres, y up, z depth
        lr = (kp[0, left] - kp[0, right]).sum(0)  # [3]
        up = (kp[:, j("shoulder_center")] - kp[:, j("hip_center")]).mean(0)  # [3]
        azimuth.setdefault(view, []).append(float(np.degrees(np.arctan2(lr[2], lr[0])) % 360))
        tilt.setdefault(view, []).append(float(np.degrees(np.arctan2(up[2], up[1]))))
    return {v: (np.percentile(azimuth[v], [10, 50, 90]), float(np.median(tilt[v]))) for v in sorted(azimuth)}


if __name__ == "__main__":
    for view, (az, tl) in view_stats(sys.argv[1] if len(sys.argv) > 1 else "data/nwucla.pkl").items():
        print(f"{view}: azimuth p10 {az[0]:.0f}, median {az[1]:.0f}, p90 {az[2]:.0f}; median tilt {tl:.1f}")

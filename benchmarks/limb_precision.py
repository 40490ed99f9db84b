"""How far limb heatmaps stray from the float64 formula when one joint lies far off the map.

    python benchmarks/limb_precision.py
    git worktree add /tmp/old 1f4821b && PYTHONPATH=/tmp/old python benchmarks/limb_precision.py  # an older checkout

For each distance, 200 single-limb frames on a 56x56 map, sigma 0.6: one joint on or beside the
map, the other that far away in a random direction, drawn in both orders (the far joint first, then
second). Prints the largest |difference| from ``skelact.bench.reference.formula_limb_heatmaps``
for the compiled kernels (when numba is installed) and for the torch path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import skelact
from skelact.bench.reference import formula_limb_heatmaps
from skelact.models import heatmap

SIZE, SIGMA, FRAMES = 56, 0.6, 200
LIMBS = [(0, 1), (1, 0)]


def limb_clip(distance: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, 1, FRAMES, 2, 2)`` keypoints and ``(1, 1, FRAMES, 2)`` scores: one joint near the map, one far."""
    g = torch.Generator().manual_seed(seed)
    near = torch.rand(FRAMES, 2, generator=g) * SIZE - 2
    angle = torch.rand(FRAMES, generator=g) * 2 * math.pi
    far = near + distance * torch.stack([angle.cos(), angle.sin()], 1)
    score = torch.rand(1, 1, FRAMES, 2, generator=g) * 0.5 + 0.5
    return torch.stack([near, far], 1).view(1, 1, FRAMES, 2, 2), score


def main() -> None:
    print(f"skelact from {skelact.__file__}")
    paths = {"torch path": False}
    if heatmap._kernels() is not None:
        paths = {"kernels": True, **paths}
    print("distance  " + "  ".join(f"{name:>10s}" for name in paths))
    for distance in (1e1, 1e2, 1e3, 1e4, 1e5, 1e6):
        kp, score = limb_clip(distance)
        # The formula on the coordinates skelact draws from: clamped to +-_FAR like skelact's input.
        ref = formula_limb_heatmaps(kp.double().clamp(-heatmap._FAR, heatmap._FAR).numpy(), score.double().numpy(),
                                    LIMBS, SIZE, SIGMA)
        errors = []
        for use_kernels in paths.values():
            out = heatmap._limbs(kp, score, LIMBS, (SIZE, SIZE), SIGMA, None, use_kernels=use_kernels).numpy()
            errors.append(float(np.abs(out - ref).max()))
        print(f"{distance:8.0e}  " + "  ".join(f"{e:10.1e}" for e in errors))


if __name__ == "__main__":
    main()

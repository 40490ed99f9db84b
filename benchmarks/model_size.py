"""Params and GMACs of every registered model at the NTU60 input size (60 classes, COCO-17, 2 persons).

    python benchmarks/model_size.py

Keypoint models: 100 frames of (x, y, score). Heatmap models: 48 frames drawn as 56x56 maps (the
training crop; evaluation uses 64x64). MACs are counted by torch.utils.flop_counter (FLOPs / 2).
"""

import torch

from skelact.models import create_model, list_models, model_info
from skelact.models.flops import count_macs, count_params

torch.set_num_threads(1)
for name in list_models():
    heat = model_info(name).input_kind == "heatmap"
    kw = {"test_size": 56} if heat else {}
    m = create_model(name, num_classes=60, layout="coco17", in_channels=3, **kw).eval()
    t = 48 if heat else 100
    x = torch.rand(1, 2, t, 17, 3)
    if heat:
        x[..., :2] *= 500
    maps = " -> 56x56 maps" if heat else ""
    macs = count_macs(m, x) / 1e9
    print(f"| {name} | {count_params(m) / 1e6:.3f} M | {macs:.3f} | 2 x {t} x 17 x 3{maps} |")

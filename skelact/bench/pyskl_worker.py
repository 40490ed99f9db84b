"""PYSKL's side of the benchmark, run in a subprocess: ``python -m skelact.bench.pyskl_worker PYSKL_ROOT``.

It imports PYSKL from the given checkout at run time (nothing of PYSKL lives in skelact) and
builds what the parent asks for from PYSKL's own classes and configs: ``GeneratePoseTarget``,
the recognisers of ``configs/stgcn++`` and ``configs/posec3d``, their optimizers and training
pipelines. The parent (:mod:`skelact.bench.pyskl`) sends one JSON request per line on stdin and
reads one JSON reply per line; between requests this process is idle, so PYSKL's timings
interleave with skelact's without sharing the CPU. Anything PYSKL prints goes to stderr.

Imports only the standard library, numpy and torch besides PYSKL and mmcv, so that it runs in
an interpreter where skelact's own dependencies may be missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class _Worker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs: dict[str, Callable[[], object]] = {}

    # ------------------------------------------------------------------ setup

    def hello(self) -> dict[str, Any]:
        import torch

        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        try:
            import torchvision  # noqa: F401
        except ImportError:
            # mmcv.runner imports torchvision only to list its model zoo, which PYSKL's configs
            # here do not use: an empty module lets mmcv import where torchvision is absent.
            sys.modules["torchvision"] = types.ModuleType("torchvision")
        if not hasattr(np, "Inf"):
            # PYSKL's PoseCompact uses np.Inf, an alias NumPy 2.0 removed.
            setattr(np, "Inf", np.inf)  # noqa: B010 - an attribute NumPy 2 no longer declares
        import mmcv
        import pyskl

        return {"pyskl": getattr(pyskl, "__version__", "?"), "mmcv": mmcv.__version__, "torch": torch.__version__,
                "python": sys.version.split()[0], "file": pyskl.__file__}

    def threads(self, n: int) -> dict[str, Any]:
        import torch

        torch.set_num_threads(n)
        return {"threads": torch.get_num_threads()}

    def heatmap(self, name: str, kind: str, input: str, size: list[int], sigma: float,
                limbs: list[list[int]], output: str | None = None) -> dict[str, Any]:
        """Register ``name``: PYSKL's GeneratePoseTarget on every clip of ``input`` (kp, score in output pixels)."""
        from pyskl.datasets.pipelines import GeneratePoseTarget

        data = np.load(input)
        kp, score = data["kp"], data["score"]  # (N, M, T, V, 2), (N, M, T, V)
        gen = GeneratePoseTarget(sigma=sigma, with_kp=kind == "joint", with_limb=kind == "limb",
                                 skeletons=tuple(tuple(limb) for limb in limbs))

        def run() -> list[np.ndarray]:
            # Each call gets fresh copies: gen_an_aug scales keypoints in place.
            return [gen.gen_an_aug({"keypoint": kp[i].copy(), "keypoint_score": score[i].copy(),
                                    "img_shape": tuple(size)}) for i in range(kp.shape[0])]

        self.jobs[name] = run
        if output is not None:  # (N, C, T, H, W) like skelact's, from PYSKL's (T, C, H, W) per clip
            np.save(output, np.stack([hm.transpose(1, 0, 2, 3) for hm in run()]))
        return {}

    def _config(self, config: str) -> Any:
        from mmcv import Config

        return Config.fromfile(str(self.root / config))

    def model(self, name: str, config: str, mode: str, batch: int, input: str | None = None,
              ann_file: str | None = None, clip_len: int | None = None, size: int | None = None) -> dict[str, Any]:
        """Register ``name``: one training step (``step``: ready input; ``e2e``: PYSKL's training pipeline
        on ``batch`` clips of ``ann_file``, collated, then the step) or one inference (``infer``).

        ``clip_len`` and ``size`` replace the training pipeline's frames and final map size (the
        configs' 100 / 48 frames and 56x56 maps), so that smaller runs do the same work on both sides.
        """
        import torch
        from mmcv.runner import build_optimizer
        from pyskl.models import build_model

        cfg = self._config(config)
        torch.manual_seed(0)
        model = build_model(cfg.model)
        model.init_weights()
        gcn = cfg.model["type"] == "RecognizerGCN"
        key = "keypoint" if gcn else "imgs"
        if mode == "infer":
            model.eval()
            x = torch.from_numpy(np.load(input)["x"])  # (B, 1, ...) as PYSKL's test pipeline collates it

            def infer() -> None:
                with torch.no_grad():
                    model(**{key: x}, return_loss=False)

            self.jobs[name] = infer
            return {"params": sum(p.numel() for p in model.parameters()), "flops": _flops(infer)}

        model.train()
        optimizer = build_optimizer(model, cfg.optimizer)
        clip = (cfg.get("optimizer_config") or {}).get("grad_clip")
        params = [p for p in model.parameters() if p.requires_grad]

        def step(batch_data: dict[str, Any]) -> None:
            # What PYSKL's runner does per iteration: train_step, then mmcv's OptimizerHook.
            outputs = model.train_step(batch_data, optimizer)
            optimizer.zero_grad()
            outputs["loss"].backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, **clip)
            optimizer.step()

        if mode == "step":
            x = torch.from_numpy(np.load(input)["x"])
            fixed = {key: x, "label": torch.arange(x.shape[0]).view(-1, 1) % 60}
            self.jobs[name] = lambda: step(fixed)
            return {"params": sum(p.numel() for p in model.parameters()), "flops": _flops(self.jobs[name])}

        from mmcv.parallel import collate
        from pyskl.datasets import build_dataset

        pipeline = [dict(step) for step in cfg.train_pipeline]
        for step_cfg in pipeline:
            if clip_len and step_cfg["type"] in ("UniformSampleFrames", "UniformSample"):
                step_cfg["clip_len"] = clip_len
            if size and step_cfg["type"] == "Resize" and step_cfg.get("keep_ratio") is False:
                step_cfg["scale"] = (size, size)  # the last Resize, to the training map size
        dataset = build_dataset(dict(type="PoseDataset", ann_file=ann_file, pipeline=pipeline, split="train"))
        state = {"next": 0}

        def e2e() -> None:
            start = state["next"]
            state["next"] = (start + batch) % len(dataset)
            samples = [dataset[(start + i) % len(dataset)] for i in range(batch)]
            step(collate(samples, samples_per_gpu=batch))

        self.jobs[name] = e2e
        return {"clips": len(dataset)}

    # ----------------------------------------------------------------- timing

    def time(self, name: str, number: int) -> dict[str, Any]:
        fn = self.jobs[name]
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return {"seconds": time.perf_counter() - t0}

    def drop(self, name: str) -> dict[str, Any]:
        self.jobs.pop(name, None)
        return {}


def _flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call (matmuls and convolutions, forward and backward), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def main(argv: list[str]) -> int:
    """Serve requests from stdin until EOF or ``{"cmd": "quit"}``."""
    worker = _Worker(Path(argv[0]).resolve())
    # Replies go to the original stdout; everything else printed (PYSKL, mmcv) to stderr.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            break
        try:
            reply = {"ok": True, **getattr(worker, cmd)(**request)}
        except Exception as e:  # every failure goes back to the parent as one reply
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
        replies.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

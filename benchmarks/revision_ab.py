"""A model's speed at this checkout against its own source file at an earlier git revision, interleaved.

    python benchmarks/revision_ab.py --model stgcnpp --against c4e5c56
    python benchmarks/revision_ab.py --model stgcnpp --against c4e5c56 --amp bf16 --infer

The model's file (e.g. skelact/models/stgcn.py) is read from ``git show REV:path`` and loaded as a
sibling module, so only that file differs between the two sides. Both sides build the benchmark's
training step (``ready_step`` in skelact/bench/stages/models.py: the NTU60 recipe, ready batch,
torch's threads, malloc as in `skelact train`) from the same seed; the script checks that their
outputs agree, then times them interleaved (skelact/bench/timing.py: ``--steps`` calls each per
round) and prints each round's clips/s and the median of the per-round ratios. ``--infer`` times
a forward under ``inference_mode`` instead of the training step.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing


def _load_revision(builder: object, rev: str) -> object:
    """The module defining ``builder``, as it was at ``rev``, with its builder of the same name."""
    import skelact.models.registry as registry

    module = inspect.getmodule(builder)
    assert module is not None and module.__file__ is not None
    rel = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{rel}"], capture_output=True, text=True)
    if shown.returncode != 0:
        why = (shown.stderr.strip().splitlines() or ["git show failed"])[-1]
        raise SystemExit(f"--against {rev}: {why}")
    source = shown.stdout
    name = f"{module.__package__}._at_{rev.replace('-', '_').replace('~', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    old = importlib.util.module_from_spec(spec)
    old.__package__ = module.__package__  # its relative imports resolve to this checkout's package
    register, registry.register_model = registry.register_model, lambda *a, **k: (lambda f: f)
    try:
        exec(compile(source, f"{rev}:{rel}", "exec"), old.__dict__)  # noqa: S102 - our own file at a revision
    finally:
        registry.register_model = register
    return getattr(old, builder.__name__)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stgcnpp")
    parser.add_argument("--against", required=True, help="git revision of the model's file to compare with")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none")
    parser.add_argument("--infer", action="store_true", help="time inference instead of the training step")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="calls per side per round")
    args = parser.parse_args()

    import dataclasses

    import torch

    from skelact.bench.stages.models import ready_step
    from skelact.bench.timing import interleave, local_timer
    from skelact.models import model_info, registry
    from skelact.runtime import autocast_context, keep_freed_memory

    keep_freed_memory()  # as skelact train does, for both sides
    info = model_info(args.model)
    old_builder = _load_revision(info.builder, args.against)
    now = ready_step(args.model, args.amp)
    registry._MODELS[args.model] = dataclasses.replace(info, builder=old_builder)
    try:
        then = ready_step(args.model, args.amp)
    finally:
        registry._MODELS[args.model] = info
    sides = {args.against: then, "this checkout": now}

    with torch.no_grad():
        for side in sides.values():
            side.model.eval()
        diff = (now.model(now.x) - then.model(then.x)).abs().max().item()
        for side in sides.values():
            side.model.train()
    print(f"{args.model}: largest output difference between the two, eval mode: {diff:.2e}")

    def infer(model: torch.nn.Module, x: torch.Tensor) -> None:
        with torch.inference_mode(), autocast_context(args.amp, torch.device("cpu")):
            model(x)

    timers = {}
    for label, side in sides.items():
        if args.infer:
            side.model.eval()
            timers[label] = local_timer(lambda side=side: infer(side.model, side.x))
        else:
            timers[label] = local_timer(lambda side=side: side.step(side.x, side.y))
        timers[label](2)  # oneDNN primitives and the allocator warm up over the first calls
    result = interleave(timers, args.rounds, numbers=dict.fromkeys(timers, args.steps))
    median, per_round = result.speedup("this checkout", args.against)
    batch = len(now.y)
    for r, ratio in enumerate(per_round):
        print(f"  round {r}: " + ", ".join(f"{k} {batch / result.seconds[k][r]:.2f} clips/s" for k in timers)
              + f"; {ratio:.3f}x", flush=True)
    what = "inference" if args.infer else "training step"
    print(f"{args.model} {what} ({args.amp}), this checkout / {args.against}, median of {args.rounds} rounds: "
          f"{median:.3f}x")


if __name__ == "__main__":
    main()

"""``skelact export``: a checkpoint to ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from skelact.cli.common import check_output, positive_int

__all__ = ["add_parsers"]


def _cmd_export(args: argparse.Namespace) -> None:
    from skelact.export import export_predictor
    from skelact.inference import load_predictor

    out = Path(args.output)
    check_output(out, [Path(args.checkpoint)], args.force)
    result = export_predictor(load_predictor(args.checkpoint), out, opset=args.opset, example_frames=args.frames,
                              verify=not args.no_verify)
    shape = ", ".join(str(s) for s in result["input_shape"])
    check = "" if result["max_abs_diff"] is None else f"; onnxruntime matches PyTorch (max |diff| " \
        f"{result['max_abs_diff']:.2g})"
    print(f"wrote {out}: keypoints [{shape}] -> logits, opset {result['opset']}{check}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``export``."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX",
                       description="Export a trained model to ONNX: input keypoints (batch, M, T, V, C) as the "
                       "recipe's test pipeline makes them, output logits; batch axis dynamic; classes, layout "
                       "and input shape in the file's metadata. Checks the graph against PyTorch with "
                       "onnxruntime. Needs the onnx extra (pip install \"skelact[onnx]\").")
    p.add_argument("checkpoint", type=str, help="best.pt / last.pt from `skelact train`, or a shipped model name")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--frames", type=positive_int, default=None, help="input frames T (default: the recipe's clip_len)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime vs PyTorch check")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_export)

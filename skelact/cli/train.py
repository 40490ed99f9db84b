"""Training commands: ``train``, ``test``, ``calibrate``, ``fuse``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from skelact.cli.common import (
    CLIError,
    UsageError,
    check_output,
    check_output_dir,
    existing_files,
    fraction,
    fraction_open,
    positive_int,
    print_metrics,
    recipe_inputs,
)

__all__ = ["add_parsers"]


def _init_file(spec: str, option: str) -> tuple[Path, object]:
    """``--init`` / a recipe's ``init``: a checkpoint path or a shipped model's name → its file and its
    ``ModelConfig`` (read and validated here, before any work)."""
    from skelact.checkpoint import Checkpoint
    from skelact.inference import InferenceError, resolve_model_spec

    try:
        path, _ = resolve_model_spec(spec)
    except InferenceError as e:
        raise (UsageError if option.startswith("--") else CLIError)(f"{option}: {e}") from None
    from skelact.models import list_models

    model = Checkpoint.load(path).config.model  # a file that is no checkpoint: one line, before the data loads
    if model.name not in list_models():
        raise CLIError(f"{path}: holds a {model.name[:40]!r} model, which this skelact does not have (it has "
                       f"{', '.join(list_models())})")
    return path, model


def _streams(text: str) -> list:
    """argparse type of ``--streams``: ``j,b,jm,bm`` as stream configs (a bad name is a usage error)."""
    from skelact.config import ConfigError, parse_streams

    try:
        return parse_streams(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _with_streams(cfg: object, streams: list) -> object:
    """The recipe as an ensemble of ``streams`` (``--streams``): the joint clip in, one network per
    stream; one stream is one network on its features. Validated again as a whole."""
    import dataclasses

    from skelact.config import config_from_dict, config_to_dict

    raw = config_to_dict(cfg)
    if len(streams) == 1:
        raw["data"]["features"] = list(streams[0].features)
        raw["model"]["streams"] = []
    else:
        raw["data"]["features"] = ["joint"]
        raw["model"]["streams"] = [dataclasses.asdict(s) for s in streams]
    return config_from_dict(raw)


def _auto_recipe(args: argparse.Namespace, source: object) -> tuple[object, object]:
    """The zero-config recipe for a data file (printed), with ``--set`` applied; and the loaded clips.
    With ``--init``, the model is the checkpoint's (``source``: name and ``model.kwargs``) unless
    ``--model`` says."""
    import dataclasses

    from skelact.config import apply_overrides, config_from_dict, config_to_dict
    from skelact.engine import builders
    from skelact.engine.autoconfig import auto_config

    packed = builders.load_clips_file(args.config)
    model = args.model or (source.name if source is not None else "kpc3d")
    # Four streams on small data, unless the run says what it trains (--streams, --init, --set of the features
    # or streams) or checks one network (--overfit), or runs under torchrun (an ensemble trains in one process).
    chosen = {o.split("=", 1)[0].strip() for o in args.overrides} & {"data.features", "model.streams"}
    single = args.streams is not None or source is not None or args.overfit is not None or bool(chosen) \
        or int(os.environ.get("WORLD_SIZE", "1")) > 1
    auto = auto_config(packed, args.config, model, layout=args.layout, seed=args.seed,
                       val_fraction=args.val_fraction, streams=not single)
    cfg = auto.config
    if source is not None and source.name == model:  # the checkpoint's shapes (widths, joint order, ...)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs=dict(source.kwargs)))
    if args.overrides:
        cfg = config_from_dict(apply_overrides(config_to_dict(cfg), args.overrides))
    if os.environ.get("RANK", "0") == "0":
        print(f"recipe chosen for {cfg.model.name} on {args.config} ({len(packed)} clips, layout "
              f"{auto.layout.name}, {packed.num_channels}D):")
        print(auto.describe())
        if source is not None and source.name == model:
            print(f"  model: {model} with the model.kwargs of {args.init} (--init)")
        if args.overrides:
            print(f"  then --set {' '.join(args.overrides)}")
        if args.streams is not None and len(args.streams) == 1:
            print(f"  then --streams {args.streams[0].name}: one network on {' + '.join(args.streams[0].features)}")
        elif args.streams is not None:
            whose = " (the streams of the --init ensemble; --streams j for one network)" if args.streams_from_init \
                else ""
            print(f"  then --streams {','.join(s.name for s in args.streams)}{whose}: one network per stream, in "
                  f"{args.work_dir / 'streams'}")
        print(f"it is written to {args.work_dir / 'config.yaml'}: edit it and train with "
              f"`skelact train {args.work_dir / 'config.yaml'} --work-dir NEW_DIR`")
    return cfg, packed


def _cmd_train(args: argparse.Namespace) -> None:
    from skelact.cli.common import PICKLE_SUFFIXES
    from skelact.config import load_config
    from skelact.engine.train import train

    if args.overfit is not None and args.streams is not None and len(args.streams) > 1:
        raise UsageError("--overfit: checks one model; train one stream's recipe with it instead of --streams")
    result_file = None
    if args.result is not None:  # refused before hours of training, not after
        result_file = Path(str(args.result).replace("{rank}", os.environ.get("RANK", "0")))
        check_output(result_file, [args.config])
    if args.unknown_data is not None:  # as overrides, so that a later --set data.augment.unknown=P wins
        args.overrides = [f"data.unknown_file={json.dumps(str(args.unknown_data))}",
                          f"data.augment.unknown={UNKNOWN_SHARE}", *args.overrides]
    init, source = _init_file(args.init, "--init") if args.init is not None else (None, None)
    packed = None
    args.streams_from_init = False
    if args.config.suffix.lower() in PICKLE_SUFFIXES:
        if args.streams is None and args.overfit is None and source is not None and source.streams:
            import dataclasses  # fine-tuning an ensemble makes one (a recipe without streams: one network)

            args.streams = [dataclasses.replace(s, weight=None) for s in source.streams]
            args.streams_from_init = True
        cfg, packed = _auto_recipe(args, source)
    else:
        for option in ("model", "layout", "val_fraction"):
            if getattr(args, option) is not None:
                flag = "--" + option.replace("_", "-")
                raise CLIError(f"{flag} applies to a data file (skelact train DATA.pkl {flag} ...); a "
                               f"recipe names its own (model.name, data.layout, data.val_fraction)")
        cfg = load_config(args.config, args.overrides)
        if cfg.init is not None and args.init is None:
            init, source = _init_file(cfg.init, f"{args.config}: init")
    cfg = _fine_tuning(cfg, args)
    if args.streams is not None:
        cfg = _with_streams(cfg, args.streams)
    if source is not None:  # before any stream or folder is made (init_model checks it again, for train())
        from skelact.engine.builders import check_init_family

        check_init_family(source.name, cfg.model.name, str(cfg.init))
    from skelact.engine.workdir import RUN_FILES

    inputs = [args.config, *recipe_inputs(cfg), *existing_files(args.layout), init]
    check_output_dir(args.work_dir, RUN_FILES, inputs)
    from skelact.stream.fitting import TRAIN_FIT_CLIPS, timeline_refiner

    # The timeline's own unknown threshold, fitted after the calibration on the validation clips joined
    # (at most TRAIN_FIT_CLIPS of them): `predict --window` then holds the threshold the rule it uses needs.
    refine = timeline_refiner(accept=cfg.calibration.accept, max_clips=TRAIN_FIT_CLIPS)
    if cfg.model.streams:  # an ensemble: each stream trained in WORK_DIR/streams/<name>, then fused
        from skelact.engine.ensemble import stream_dir, train_ensemble

        for stream in cfg.model.streams:  # each stream's folder is a work dir too
            check_output_dir(stream_dir(args.work_dir, stream), RUN_FILES, inputs)

        result = train_ensemble(cfg, args.work_dir, resume=args.resume, packed=packed, init=init, refine=refine)
    else:
        result = train(cfg, args.work_dir, resume=args.resume, overfit=args.overfit, packed=packed, init=init,
                       refine=refine)
    if result_file is not None:
        _write_result(result_file, result)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        # A validation score: it chose best.pt, so it is not a test result (`skelact test` gives that).
        best = 100 * result["best_top1"]
        what = "the ensemble's validation top-1" if cfg.model.streams else "best.pt: validation top-1"
        print(f"{what} {best:.2f} % at epoch {result['best_epoch']} ({result['num_val_clips']} "
              f"clips: {result['validation']}); outputs in {args.work_dir}")


def _fine_tuning(cfg: object, args: argparse.Namespace) -> object:
    """The recipe with ``--init`` and ``--backbone-lr-mult`` in it (``init``, ``optim.backbone_lr_mult``)."""
    import dataclasses

    from skelact.config import config_from_dict, config_to_dict

    if args.init is None and args.backbone_lr_mult is None:
        return cfg
    if args.backbone_lr_mult is not None and args.init is None and cfg.init is None:
        raise UsageError("--backbone-lr-mult: applies to a backbone loaded with --init (or init: in the recipe)")
    if args.init is not None:
        cfg = dataclasses.replace(cfg, init=str(args.init))
    if args.backbone_lr_mult is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, backbone_lr_mult=args.backbone_lr_mult))
    return config_from_dict(config_to_dict(cfg))  # checked as a recipe's values are


#: Share of training items drawn from ``--unknown-data`` (data.augment.unknown) the flag sets.
UNKNOWN_SHARE = 0.25


def _write_result(path: Path, result: dict) -> None:
    """``--result``: the final metrics as JSON (one file per process when the name holds ``{rank}``)."""
    import json

    from skelact.data.io import atomic_write

    atomic_write(path, lambda f: f.write(json.dumps(result, indent=2).encode()))


def _cmd_test(args: argparse.Namespace) -> None:
    from skelact.checkpoint import Checkpoint
    from skelact.config import load_config
    from skelact.engine.evaluate import OUTPUT_FILES, evaluate
    from skelact.inference import resolve_model_spec

    checkpoint, _ = resolve_model_spec(str(args.checkpoint))  # a path, or a shipped model's verified file
    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    stored = Checkpoint.load(checkpoint).config if cfg is None else None
    if cfg is None and args.overrides:
        from skelact.config import apply_overrides, config_from_dict, config_to_dict

        cfg = config_from_dict(apply_overrides(config_to_dict(stored), args.overrides))
    out_dir = args.out_dir or Path(args.checkpoint).resolve().parent / "test"
    check_output_dir(out_dir, OUTPUT_FILES, [checkpoint, args.config, *recipe_inputs(cfg or stored)])
    metrics = evaluate(cfg, checkpoint, num_clips=args.num_clips, flip=args.flip, out_dir=out_dir)
    print_metrics(metrics)
    print(f"scores, report, confusion matrix in {out_dir}")


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from skelact.checkpoint import Checkpoint
    from skelact.data.io import load_outside
    from skelact.engine.calibrate import calibrate_checkpoint
    from skelact.stream.fitting import timeline_refiner

    check_output(args.output, [args.checkpoint, args.unknown_data], args.force)  # before reading it
    # The data file the checkpoint's recipe reads is an input too (-o DATA would overwrite the dataset).
    ckpt = Checkpoint.load(args.checkpoint)
    check_output(args.output, [args.checkpoint, args.unknown_data, *recipe_inputs(ckpt.config)], args.force)
    outside = [] if args.unknown_data is None else load_outside(args.unknown_data, ckpt.layout)  # before any work
    refine = timeline_refiner(outside, args.unknown_data or "", args.accept)
    c = calibrate_checkpoint(args.checkpoint, args.output, split=args.split, accept=args.accept, refine=refine)
    print(f"temperature {c.temperature:.3f} (ECE on {c.split!r}: {c.ece_before:.4f} -> {c.ece_after:.4f}); "
          f"unknown below p = {c.threshold:.3f} ({c.accept_rate:.1%} of {c.split!r} accepted)")
    flagged = (f", {c.timeline_flagged:.1%} of the {c.timeline_data} frames joined between them flagged"
               if c.timeline_flagged is not None else "")
    print(f"timeline (predict --window): unknown below p = {c.timeline_threshold:.3f} ({c.timeline_accept:.1%} of "
          f"the frames of joined {c.split!r} clips accepted{flagged})")
    print(f"wrote {args.output}")


def _cmd_fuse(args: argparse.Namespace) -> None:
    from skelact.engine.evaluate import OUTPUT_FILES, fuse

    if args.out_dir is not None and any(Path(s).resolve().parent == args.out_dir.resolve() for s in args.scores):
        raise CLIError(f"{args.out_dir}: holds one of the input score files; fuse into another folder")
    if args.out_dir is not None:
        check_output_dir(args.out_dir, OUTPUT_FILES, args.scores)
    metrics = fuse(args.scores, args.weights, args.out_dir)
    print_metrics(metrics)
    if args.out_dir is not None:
        print(f"fused scores, report, confusion matrix in {args.out_dir}")


def _non_negative(text: str) -> float:
    """argparse type: a finite number >= 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text[:40]}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``test``, ``calibrate`` and ``fuse``."""
    p = sub.add_parser("train", help="train a model from a YAML recipe, or from a data file alone",
                       description="Train a model from a YAML recipe (see configs/), or give a PYSKL .pkl and a "
                       "--model and a recipe is chosen from the data (2D/3D, persons, layout, clip lengths, "
                       "splits), printed and written to WORK_DIR/config.yaml. Validates on the file's validation "
                       "split, else on a share of the training split (--val-fraction), never on the test split; "
                       "best.pt and the calibration are chosen there. Writes last.pt and best.pt each "
                       "epoch, metrics.csv and curves.png. Runs as is under torchrun for several processes.")
    p.add_argument("config", type=Path, metavar="RECIPE|DATA", help="recipe .yaml, or a data .pkl")
    p.add_argument("--model", default=None, help="with a data file: kpc3d (default), stgcnpp, poseconv3d_c3d, ...")
    p.add_argument("--layout", default=None, help="with a data file: layout name or YAML (default: the file's)")
    p.add_argument("--seed", type=int, default=0, help="with a data file: the run's seed (default 0)")
    p.add_argument("--val-fraction", type=fraction, default=None, metavar="F",
                   help="with a data file: validate on this share of each class of the training split, carved "
                   "out (stratified, seeded by --seed) and not trained on (default 0.1 when the file has no "
                   "validation split; 0: validate on the test split instead)")
    p.add_argument("--work-dir", type=Path, required=True, help="output folder")
    p.add_argument("--streams", type=_streams, default=None, metavar="S,S,...",
                   help="train an ensemble: one network per stream (j joint, b bone, jm joint motion, bm bone "
                   "motion, p each joint's offset from the other person's; j+b: one stream of both), each in "
                   "WORK_DIR/streams/NAME, fusion weights chosen on the "
                   "validation clips; WORK_DIR/best.pt is the whole ensemble, used as one model")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/last.pt (with --init: from the "
                   "weights it led to; the init checkpoint is applied only when there is no last.pt yet; an "
                   "ensemble: each stream from its own, finished streams are not trained again)")
    p.add_argument("--init", default=None, metavar="CKPT|NAME",
                   help="fine-tune: start from a checkpoint or shipped model, its joints matched to the data's by "
                   "name, its input channels by meaning, its head rebuilt for new classes (recipe key: init); "
                   "with a data file, its model (and an ensemble's streams) are the default --model (and "
                   "--streams); with --streams, each stream it has a network for (an ensemble: per stream; a "
                   "model: the stream of its features) starts from it, the others from scratch")
    p.add_argument("--backbone-lr-mult", type=_non_negative, default=None, metavar="F",
                   help="with --init: the learning rate of all but the classifier is lr x F; 0 freezes them "
                   "(recipe key: optim.backbone_lr_mult; default 1)")
    p.add_argument("--unknown-data", type=Path, default=None, metavar="FILE.pkl",
                   help="clips of other activities (a PYSKL file in a layout that maps to the data's; labels "
                   "ignored): a share of the training items come from it with a uniform target, so the model "
                   "learns to be unsure outside its classes (predict --window's unknown stretches); sets "
                   f"data.unknown_file and data.augment.unknown={UNKNOWN_SHARE:g} (a --set of it wins)")
    p.add_argument("--overfit", type=positive_int, default=None, metavar="N",
                   help="sanity check: train and evaluate on N training clips")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. --set optim.lr=0.05 data.batch_size=32")
    p.add_argument("--result", type=Path, default=None, metavar="FILE",
                   help="also write the final metrics as JSON to FILE; under torchrun, {rank} in FILE is "
                   "replaced by each process's rank")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint: accuracy, P/R/F1, confusion matrix, scores",
                       description="Evaluate a checkpoint on the recipe's test split (data.test_split; for "
                       "recipes without it, data.val_split) with test-time averaging of "
                       "softmax probabilities over --num-clips views (and flips).")
    p.add_argument("config", type=Path, nargs="?", default=None,
                   help="recipe .yaml (default: the one stored in the checkpoint)")
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt, or a shipped model name")
    p.add_argument("--num-clips", type=positive_int, default=None,
                   help="views averaged per clip (default: the recipe's)")
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped views")
    p.add_argument("--out-dir", type=Path, default=None, help="output folder (default: CHECKPOINT's folder/test)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. --set data.test_split=xsub_val")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser("calibrate", help="fit a checkpoint's temperature and unknown-action threshold",
                       description="Fit a softmax temperature (lowest NLL of the test-time prediction) and the "
                       "unknown-action threshold (accepting --accept of the clips) on the clips training "
                       "validated on (a validation split, or the share carved from the training split), and "
                       "the threshold of window timelines (predict --window) on those clips joined into "
                       "sequences, and write the checkpoint with them. `skelact train` fits the first two itself "
                       "after the last epoch.")
    p.add_argument("checkpoint", type=Path, help="best.pt / last.pt from `skelact train`")
    p.add_argument("-o", "--output", type=Path, required=True, help="the calibrated checkpoint (.pt)")
    p.add_argument("--split", default=None, help="split to fit on (default: the clips training validated on: "
                   "data.val_split, or the data.val_fraction share of the training split)")
    p.add_argument("--accept", type=fraction_open, default=0.95,
                   help="fraction of the split's clips, and of the frames of its clips joined into timelines, "
                   "accepted as known (default 0.95)")
    p.add_argument("--unknown-data", type=Path, default=None, metavar="FILE.pkl",
                   help="clips of other activities (a PYSKL file in a layout that maps to the model's) joined "
                   "between the validation clips: the timeline threshold (predict --window) is then the one that "
                   "best separates them from the validation frames while still accepting --accept of those")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("fuse", help="fuse several streams' scores (e.g. joint/bone/motion)",
                       description="Weighted average of the probabilities in several scores.npz files.")
    p.add_argument("scores", type=Path, nargs="+", help="scores.npz files written by `skelact test`")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per file, e.g. 2 2 1 1")
    p.add_argument("--out-dir", type=Path, default=None, help="write fused scores, report and confusion matrix")
    p.set_defaults(func=_cmd_fuse)

"""Training, evaluation, calibration, metrics and distributed helpers (checkpoints: ``skelact.checkpoint``).

Entry points live in their modules (the package imports nothing, so it stays light)::

    from skelact.engine.train import train          # train(cfg, work_dir, resume=False, overfit=None)
    from skelact.engine.evaluate import evaluate    # evaluate(cfg, checkpoint, num_clips, flip, out_dir)
    from skelact.engine.evaluate import fuse        # fuse(score_files, weights=None, out_dir=None)
    from skelact.engine.calibrate import calibrate_checkpoint  # calibrate_checkpoint(checkpoint, out, split, accept)

Under torchrun, ``skelact train`` is the training command as it is (``torchrun ... -m skelact.cli train``).
"""

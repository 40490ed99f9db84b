"""Training, evaluation, metrics, checkpoints and distributed helpers.

Entry points live in their modules (the package imports nothing, so it stays light)::

    from skelact.engine.train import train          # train(cfg, work_dir, resume=False, overfit=None)
    from skelact.engine.evaluate import evaluate    # evaluate(cfg, checkpoint, num_clips, flip, out_dir)
    from skelact.engine.evaluate import fuse        # fuse(score_files, weights=None, out_dir=None)

``python -m skelact.engine.train CONFIG --work-dir DIR`` is the same training command, for torchrun.
"""

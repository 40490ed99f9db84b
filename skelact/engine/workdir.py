"""A training work dir: one run at a time, no stale temporaries, and resuming only what was started.

``lock_work_dir`` holds ``WORK_DIR/.lock`` (the PID and host of the run) for the length of a run, so
a second ``skelact train`` in the same folder refuses at once instead of interleaving its
checkpoints with the first one's; a lock left by a run that died is noticed and taken over.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skelact.checkpoint import Checkpoint, CheckpointError
from skelact.config import Config, config_to_dict
from skelact.errors import SkelactError, short_repr
from skelact.lockfile import hold_lock
from skelact.skeleton import Layout

__all__ = ["WorkDirBusy", "lock_work_dir", "remove_stale_temporaries", "check_resumable", "RESUME_MAY_CHANGE"]

LOCK = ".lock"
#: The files a run writes into its work dir (the CLI checks that none of them is an input).
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.csv", "curves.png", "log.txt")
# The temporaries of skelact's own atomic writes in a work dir: ".<name>.<12 hex>.tmp[<suffix>]".
_OWN_TMP = re.compile(r"^\.(last\.pt|best\.pt|metrics\.csv|config\.yaml|curves\.png)\.[0-9a-f]{12}\.tmp(\.\w+)?$")

#: Config keys that may differ between a run and its ``--resume`` (they do not change the training).
RESUME_MAY_CHANGE = frozenset({"data.num_workers", "data.ann_file", "data.num_clips_test", "device"})


class WorkDirBusy(SkelactError, RuntimeError):
    """Another training runs in this work dir."""


@contextlib.contextmanager
def lock_work_dir(work_dir: Path) -> Iterator[None]:
    """Hold ``work_dir/.lock`` for the block (see :func:`skelact.lockfile.hold_lock`).

    Raises:
        WorkDirBusy: A live process (on this host) holds the lock.
    """
    path = work_dir / LOCK

    def busy(pid: int, where: str) -> WorkDirBusy:
        return WorkDirBusy(f"{work_dir}: another training (PID {pid}{where}) is running in this work dir; "
                           f"wait for it, or remove {path} if that run is gone")

    with hold_lock(path, busy, work_dir):
        yield


def remove_stale_temporaries(work_dir: Path) -> list[Path]:
    """Delete temporaries that an interrupted run of ours left (``.last.pt.<hex>.tmp`` ...); call it
    with the lock held. Returns what was removed."""
    removed = []
    for p in work_dir.iterdir():
        if _OWN_TMP.match(p.name) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v and not key.endswith("kwargs"):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def check_resumable(ckpt: Checkpoint, cfg: Config, classes: list[str], layout: Layout, in_channels: int,
                    path: Path) -> None:
    """Refuse to resume a checkpoint whose run differs from this one (classes, layout, input, config).

    Raises:
        CheckpointError: Naming what differs.
    """
    if ckpt.classes != classes:
        raise CheckpointError(f"{path}: cannot resume: it was trained on {len(ckpt.classes)} classes "
                              f"({short_repr(', '.join(ckpt.classes))}), the data now has {len(classes)} "
                              f"({short_repr(', '.join(classes))})")
    if ckpt.layout != layout:
        raise CheckpointError(f"{path}: cannot resume: it was trained on layout {ckpt.layout.name!r}, the run now "
                              f"uses {layout.name!r}")
    if ckpt.in_channels != in_channels:
        raise CheckpointError(f"{path}: cannot resume: its input has C={ckpt.in_channels}, the run's has "
                              f"C={in_channels}")
    old, new = _flatten(config_to_dict(ckpt.config)), _flatten(config_to_dict(cfg))
    diff = [k for k in sorted(set(old) | set(new)) if k not in RESUME_MAY_CHANGE and old.get(k) != new.get(k)]
    if diff:
        shown = ", ".join(f"{k} ({short_repr(old.get(k), 20)} -> {short_repr(new.get(k), 20)})" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise CheckpointError(f"{path}: cannot resume: the config differs in {shown}{more}; resume with the "
                              "same recipe and --set values, or train in a new work dir")

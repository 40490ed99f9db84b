"""One run at a time on one output: a lock file holding the PID and host of the run that owns it.

``train`` holds ``WORK_DIR/.lock`` (``skelact.engine.workdir.lock_work_dir``), ``extract`` holds
``.OUT.pkl.lock`` beside its output, so a second run refuses at once instead of interleaving its
files with the first one's. A lock left by a run that died (even by SIGKILL) is noticed (its
process is gone) and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["hold_lock"]

# A lock file is written right after it is created; one still unreadable after this many waits of
# _WAIT seconds was left by a run that died in between.
_TRIES, _WAIT = 10, 0.05


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def hold_lock(path: Path, busy: Callable[[int, str], BaseException], owner: str | Path) -> Iterator[None]:
    """Hold the lock file ``path`` for the block.

    Args:
        path: The lock file (created, and removed at the end).
        busy: Builds the error raised when a live run holds the lock, from its PID and where it runs
            (``""`` on this host, else ``" on HOST"``).
        owner: What the user asked for (the output, the work dir): a failed write of the lock names it.
    """
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for attempt in range(_TRIES):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
                pid, host = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                # Unreadable: its run is writing it this instant, or died while writing it.
                if attempt < _TRIES - 1:
                    time.sleep(_WAIT)
                    continue
                pid, host = -1, me["host"]
            if pid > 0 and (host != me["host"] or _alive(pid)):
                raise busy(pid, "" if host == me["host"] else f" on {host}") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
        except OSError as e:  # a full disk: name what the user asked for, not the hidden lock file
            path.unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror, str(owner)) from None
        break
    else:  # pragma: no cover - a lock taken and dropped again at every try
        raise busy(-1, "")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            held = json.loads(path.read_text(encoding="utf-8"))
            if held.get("pid") == me["pid"]:
                path.unlink()

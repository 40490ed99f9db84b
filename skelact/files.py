"""Opening a file the user named for reading, without waiting on something that is not a file.

``open()`` on a FIFO blocks until a writer appears (forever, if none does), and a device such as
``/dev/zero`` never ends. Every reader of a user's path (labels, classes, split lists, layouts,
recipes, pickles) opens it through :func:`open_regular`, which refuses anything but a regular file
before reading a byte.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any

__all__ = ["NotRegularFileError", "open_regular", "file_kind"]


class NotRegularFileError(OSError):
    """The path exists but is a FIFO, device or socket; ``strerror`` says which."""


def file_kind(mode: int) -> str:
    """What ``st_mode`` describes, in words (for messages)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "an unknown kind of file"


def open_regular(path: str | Path, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for reading, refusing anything but a regular file without blocking.

    The file is opened non-blocking (so a FIFO without a writer returns at once) and checked with
    ``fstat`` on that descriptor (no race with a rename), then switched back to blocking reads.

    Raises:
        FileNotFoundError / PermissionError: As ``open()`` does.
        IsADirectoryError: ``path`` is a folder.
        NotRegularFileError: ``path`` is a FIFO, device or socket (``strerror`` names the kind).
    """
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular is for reading, got mode {mode!r}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st_mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(st_mode):
            kind = file_kind(st_mode)
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({kind})", str(path))
        os.set_blocking(fd, True)
        return open(fd, mode, closefd=True, **kwargs)
    except BaseException:
        os.close(fd)
        raise

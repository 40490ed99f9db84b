"""Files the user names: opened for reading without waiting on something that is not a file, and
handed to C libraries only under a name they can take.

``open()`` on a FIFO blocks until a writer appears (forever, if none does), and a device such as
``/dev/zero`` never ends. Every reader of a user's path (labels, classes, split lists, layouts,
recipes, pickles) opens it through :func:`open_regular`, which refuses anything but a regular file
before reading a byte.

On POSIX a file name is bytes; Python turns bytes that are not valid UTF-8 into lone surrogates
(``os.fsdecode(b'x\\xff.avi') == 'x\\udcff.avi'``). Such a ``str`` cannot be encoded, and the C
libraries skelact hands names to react badly: OpenCV's ``VideoCapture`` / ``VideoWriter``
crash the process (a segmentation fault), the LiteRT interpreter raises an unexpected
``UnicodeEncodeError``. :func:`native_path` is the one gate every such name goes through; it refuses
the name with one line that names the file. :func:`skelact.errors.printable` renders any name for a
message or a report without raising.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from skelact.errors import SkelactError, printable

__all__ = ["NotRegularFileError", "open_regular", "file_kind", "PathNameError", "native_path", "quiet_stderr"]


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


class PathNameError(SkelactError, ValueError):
    """A file name that a C library cannot be given (not valid UTF-8); names the file."""


def native_path(path: str | os.PathLike[str], what: str = "file") -> str:
    """``path`` as the ``str`` to give a C library (OpenCV, LiteRT, ...), checked.

    Args:
        path: The file the user named.
        what: What it is, for the message (e.g. "video", "pose model").

    Raises:
        PathNameError: The name is not valid UTF-8, so the library cannot be given it.
    """
    text = os.fspath(Path(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PathNameError(f"{printable(text)}: the {what} path is not valid UTF-8 (OpenCV and the pose model "
                            "take UTF-8 paths only); rename it") from None
    return text


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2, where FFmpeg prints an error for every codec it fails to open (used around
    every OpenCV open of a user's video, camera or stream, and of a written video read back)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no fd 2 (embedded interpreters): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

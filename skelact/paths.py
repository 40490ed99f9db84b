"""File names on their way to C libraries and to the terminal.

On POSIX a file name is bytes; Python turns bytes that are not valid UTF-8 into lone surrogates
(``os.fsdecode(b'x\\xff.avi') == 'x\\udcff.avi'``). Such a ``str`` cannot be encoded, and the C
libraries skelact hands names to react badly: OpenCV's ``VideoCapture`` / ``VideoWriter``
crash the process (a segmentation fault), the LiteRT interpreter raises an unexpected
``UnicodeEncodeError``. :func:`native_path` is the one gate every such name goes through; it refuses
the name with one line that names the file. :func:`skelact.errors.printable` renders any name for a message
or a report without raising.
"""

from __future__ import annotations

import os
from pathlib import Path

from skelact.errors import SkelactError, printable

__all__ = ["PathNameError", "native_path"]


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

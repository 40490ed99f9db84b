"""The base of every error skelact expects to meet in use (bad files, options, checkpoints, videos).

The CLI prints such an error as one line ``skelact: error: <message>`` and exits with status 1.
"""

from __future__ import annotations

import os

__all__ = ["SkelactError", "short_repr", "one_line", "printable", "DETAIL_LIMIT"]

#: How much of another library's message a skelact message quotes (``one_line``'s default).
DETAIL_LIMIT = 200


class SkelactError(Exception):
    """An expected failure whose message names the file, clip, field or option at fault."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, safe for huge or deeply nested values.

    Error messages quote values the user gave; a value can be a 2 GB ``bytes`` or a list shared a
    million times through a pickle's memo, so only its type and a bounded prefix are rendered.
    """
    if isinstance(value, (str, bytes, bytearray)):
        text = repr(value[: limit + 1])
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"  # str() of a huge int is slow, or refused
    elif isinstance(value, (bool, int, float, complex, type(None))):
        text = repr(value)
    else:
        import numpy as np

        if isinstance(value, np.ndarray):
            return f"an array of shape {list(value.shape)} ({value.dtype})"
        if isinstance(value, np.generic):
            text = repr(value.item()) if value.dtype.kind in "biuf" else type(value).__name__
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}"
        else:
            return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` with every byte that is not valid UTF-8 written as ``\\xNN`` (other lone surrogates
    as ``\\udNNN``), so that printing or encoding it never raises."""
    text = os.fspath(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the bytes the file system holds, then each invalid byte escaped
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decodes to (e.g. from a pickle)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: object, limit: int = DETAIL_LIMIT) -> str:
    """``text`` (a message or an exception) as one line of at most ``limit`` characters.

    Every run of whitespace, newlines included, becomes one space; a longer text is cut and ends in
    ``...``. An exception with an empty message is named by its type. This is how a message quotes
    what another library said, and how the CLI keeps its error line to one line.
    """
    if isinstance(text, BaseException) and not str(text).strip():
        return type(text).__name__
    flat = printable(" ".join(str(text).split()))  # a file name that is not UTF-8 must not make printing raise
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."

"""The one rule for how much memory NumPy arrays read from files may claim (``fuse``, ``convert numpy``).

A ``.npy`` header can claim no more than its file holds (readers check that), but an ``.npz`` is a
zip: a few kilobytes of deflated zeros claim hundreds of megabytes. Arrays read together (the
score files of one ``fuse``, every file of one ``convert numpy``) may claim :data:`GROWTH` times
the size of their files on disk in all, or :data:`MIN_BYTES`, whichever is larger, and are
refused from their headers alone, before any data is inflated.
"""

from __future__ import annotations

__all__ = ["GROWTH", "MIN_BYTES", "ArrayBudget"]

#: Arrays may take this many times their files' size (float keypoints and scores deflate 1-3x).
GROWTH = 16
#: ... or this much in all, so a small compressed file of real data always reads.
MIN_BYTES = 256 << 20


class ArrayBudget:
    """Bytes a set of files' arrays may still claim: ``max(GROWTH x file_bytes, MIN_BYTES)`` in all.

    Args:
        file_bytes: Size on disk of every file whose arrays are charged to this budget.
    """

    def __init__(self, file_bytes: int) -> None:
        self.limit = max(GROWTH * int(file_bytes), MIN_BYTES)
        self.left = self.limit

    def claim(self, nbytes: int) -> bool:
        """Charge an array of ``nbytes``; False (nothing charged) when it does not fit in what is left."""
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True

    def refusal(self) -> str:
        """Why a claim was refused, for the end of a message."""
        return f"with the arrays before it, over {MIN_BYTES >> 20} MB and {GROWTH}x the size of their files"

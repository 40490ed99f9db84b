"""Pieces shared by the dataset converters: the summary record and folder helpers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from skelact.data.io import AnnotationError

__all__ = ["ConvertError", "ConvertSummary", "find_files", "split_counts"]


class ConvertError(AnnotationError):
    """A source folder or raw file cannot be converted; the message names the folder or file."""


@dataclass
class ConvertSummary:
    """What a conversion did, for printing after ``skelact convert``.

    Attributes:
        dataset: Dataset name (``"ntu60"``, ``"ntu120"``, ``"penn_action"``, ``"nwucla"``).
        src: Folder that was read.
        files: Number of source files found.
        converted: Number of clips written to the annotation list.
        skipped: Reason -> number of files skipped for that reason.
        splits: Split name -> number of clips in it.
        notes: Reason -> count for things that were fixed up but not skipped.
        seconds: Wall time of the conversion.
    """

    dataset: str
    src: str
    files: int = 0
    converted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def skipped_text(self) -> str:
        """One line: ``"skipped N: reason (n), ..."`` or ``"nothing skipped"``."""
        if not self.skipped:
            return "nothing skipped"
        parts = ", ".join(f"{reason} ({n})" for reason, n in sorted(self.skipped.items()))
        return f"skipped {self.num_skipped}: {parts}"

    def __str__(self) -> str:
        lines = [
            f"{self.dataset}: {self.converted} clips converted from {self.files} files in {self.src} "
            f"({self.seconds:.1f} s)"
        ]
        if self.skipped:
            lines.append(f"  skipped {self.num_skipped}:")
            lines += [f"    {n:>7}  {reason}" for reason, n in sorted(self.skipped.items())]
        if self.notes:
            lines.append("  notes:")
            lines += [f"    {n:>7}  {reason}" for reason, n in sorted(self.notes.items())]
        lines.append("  splits:")
        lines += [f"    {n:>7}  {name}" for name, n in self.splits.items()]
        return "\n".join(lines)


def find_files(src: str | Path, pattern: str, subdir: str | None = None) -> tuple[Path, list[Path]]:
    """Source files matching ``pattern`` in ``src`` (or in ``src/subdir`` when that exists), sorted.

    Raises:
        ConvertError: The folder does not exist or holds no matching file.
    """
    root = Path(src).expanduser()
    if subdir is not None and (root / subdir).is_dir():
        root = root / subdir
    if not root.is_dir():
        raise ConvertError(f"{root}: source folder not found")
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        also = f" (nor in a {subdir}/ subfolder)" if subdir and root.name != subdir else ""
        raise ConvertError(f"{root}: no {pattern} files found{also}")
    return root, files


def split_counts(split: dict[str, list[str]]) -> dict[str, int]:
    """Split name -> clip count."""
    return {name: len(dirs) for name, dirs in split.items()}

"""Pieces shared by the converters: the summary record, folder helpers, and the labels file.

The labels file is how users label their own clips (``skelact convert openpose|numpy``, and
later ``skelact extract``): a CSV with a header and the columns ``name,label[,split]``. See
:func:`read_labels_csv` and :func:`assign_labels`.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skelact.data.io import AnnotationError
from skelact.errors import SkelactError, short_repr
from skelact.files import open_regular
from skelact.skeleton import Layout, layout_field

__all__ = ["ConvertError", "ConvertSummary", "find_files", "split_counts", "LabelRow", "LabelsFile",
           "ClipLabels", "read_labels_csv", "read_classes_file", "sort_class_names", "assign_labels"]

#: Largest labels CSV / classes file read (a million clips' rows fit in a few tens of MB).
MAX_TEXT_BYTES = 64 << 20


class ConvertError(AnnotationError, SkelactError):
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
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, name: str) -> None:
        """Count a skipped clip or file under ``reason``, keeping the first few names to print."""
        self.skipped[reason] += 1
        names = self.examples.setdefault(reason, [])
        if len(names) < 3:
            names.append(name)

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
            for reason, n in sorted(self.skipped.items()):
                names = self.examples.get(reason)
                lines.append(f"    {n:>7}  {reason}" + (f" (e.g. {', '.join(names)})" if names else ""))
        if self.notes:
            lines.append("  notes:")
            lines += [f"    {n:>7}  {reason}" for reason, n in sorted(self.notes.items())]
        lines.append("  splits:" + ("" if self.splits else " none"))
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


# ---------------------------------------------------------------------------------------------
# Labels file: name,label[,split]


@dataclass(frozen=True)
class LabelRow:
    """One row of a labels file: its line number, clip name, class name ('' = unlabeled) and split."""

    line: int
    name: str
    label: str
    split: str


@dataclass(frozen=True)
class LabelsFile:
    """A parsed labels CSV.

    Attributes:
        path: The file.
        rows: Its rows in file order.
        ignored: Header names of columns other than name, label and split (ignored).
    """

    path: Path
    rows: tuple[LabelRow, ...]
    ignored: tuple[str, ...] = ()


def _read_text(path: Path, what: str) -> str:
    try:
        with open_regular(path) as f:  # a FIFO would block open() forever
            raw = f.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise ConvertError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConvertError(f"{path}: is a folder, expected a {what}") from None
    except OSError as e:
        raise ConvertError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise ConvertError(f"{path}: larger than {MAX_TEXT_BYTES >> 20} MB, too large for a {what}")
    try:
        return raw.decode("utf-8-sig")  # spreadsheets often save CSV with a byte-order mark
    except UnicodeDecodeError as e:
        raise ConvertError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _clean_name(text: str) -> str:
    """A clip name or relative path as written in a labels file, in one spelling: ``a/b``."""
    name = text.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def read_labels_csv(path: str | Path) -> LabelsFile:
    """Read a labels file: a CSV whose header names the columns ``name``, ``label`` and optionally
    ``split`` (any order, any case; other columns are ignored).

    ``name`` is a clip's name (a video folder or array file stem) or its path relative to the
    converted folder; ``label`` a class name, empty for an unlabeled clip; ``split`` a split name
    such as train / val / test, empty for none.

    Raises:
        ConvertError: Unreadable, not UTF-8, too large, no header or rows, a missing column, a row
            with the wrong number of fields, an empty or repeated name; the message names the line.
    """
    path = Path(path)
    text = _read_text(path, "labels file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((r for r in reader if r), None)
        if header is None:
            raise ConvertError(f"{path}: empty labels file; expected a header 'name,label[,split]' and one row "
                               "per clip")
        columns = [h.strip().lower() for h in header]
        for col in ("name", "label"):
            if col not in columns:
                raise ConvertError(f"{path}: the header {short_repr(','.join(header))} has no {col!r} column "
                                   "(expected name,label[,split])")
        repeated = sorted({c for c in columns if columns.count(c) > 1 and c in ("name", "label", "split")})
        if repeated:
            raise ConvertError(f"{path}: column {repeated[0]!r} appears twice in the header")
        i_name, i_label = columns.index("name"), columns.index("label")
        i_split = columns.index("split") if "split" in columns else None
        rows: list[LabelRow] = []
        first_line: dict[str, int] = {}
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            line = reader.line_num
            if len(fields) > len(columns) and not any(f.strip() for f in fields[len(columns):]):
                fields = fields[: len(columns)]  # trailing empty fields, as spreadsheets write them
            if len(fields) != len(columns):
                raise ConvertError(f"{path}: line {line} has {len(fields)} field(s), the header {len(columns)}")
            name = _clean_name(fields[i_name])
            if not name:
                raise ConvertError(f"{path}: line {line}: empty name")
            if name in first_line:
                raise ConvertError(f"{path}: line {line}: {short_repr(name)} is also on line {first_line[name]}")
            first_line[name] = line
            split = fields[i_split].strip() if i_split is not None else ""
            rows.append(LabelRow(line, name, fields[i_label].strip(), split))
    except csv.Error as e:
        raise ConvertError(f"{path}: not a valid CSV file (line {reader.line_num}: {e})") from None
    if not rows:
        raise ConvertError(f"{path}: no rows after the header")
    ignored = tuple(h.strip() for h, c in zip(header, columns, strict=True) if c not in ("name", "label", "split"))
    return LabelsFile(path, tuple(rows), ignored)


def read_classes_file(path: str | Path) -> list[str]:
    """Class names in label order, one a line (blank lines are skipped).

    Raises:
        ConvertError: Unreadable, empty, or a name listed twice; the message names the line.
    """
    path = Path(path)
    names: list[str] = []
    seen: dict[str, int] = {}
    for line, text in enumerate(_read_text(path, "classes file").splitlines(), 1):
        name = text.strip()
        if not name:
            continue
        if name in seen:
            raise ConvertError(f"{path}: line {line}: class {short_repr(name)} is also on line {seen[name]}")
        seen[name] = line
        names.append(name)
    if not names:
        raise ConvertError(f"{path}: no class names (expected one a line)")
    return names


def sort_class_names(names: Iterable[str]) -> list[str]:
    """The default class order: by number when every name is an integer (so labels 0..N-1 keep their
    values, and 10 comes after 9), else sorted by name."""
    unique = set(names)
    if unique and all(re.fullmatch(r"[+-]?\d{1,18}", n) for n in unique):
        return sorted(unique, key=int)
    return sorted(unique)


@dataclass
class ClipLabels:
    """The labels and splits of one conversion's clips.

    Attributes:
        classes: Class names in label order, or None when nothing is labeled and no classes file
            was given.
        labels: Clip name -> label index; clips not in it are unlabeled (-1).
        splits: Split name -> member clips, in the labels file's order.
        notes: Things the caller reports in its summary (reason -> count).
    """

    classes: list[str] | None
    labels: dict[str, int] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)

    def label(self, clip: str) -> int:
        """The label index of ``clip`` (-1 when unlabeled)."""
        return self.labels.get(clip, -1)

    def split_of(self, clips: Iterable[str]) -> dict[str, list[str]]:
        """The splits restricted to ``clips`` (those converted); splits left empty are kept."""
        keep = set(clips)
        return {name: [c for c in members if c in keep] for name, members in self.splits.items()}


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(short_repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def assign_labels(clips: Mapping[str, Sequence[str]], labels: str | Path | LabelsFile | None = None,
                  classes: str | Path | Sequence[str] | None = None,
                  folder_labels: Mapping[str, str] | None = None, source: str = "the input") -> ClipLabels:
    """Label a conversion's clips from a labels file and/or their class folders.

    The labels file, when given, must name every clip exactly once and no other. Without it, clips
    take their class folder's name (``folder_labels``), else stay unlabeled. Classes are the
    ``classes`` file's order, else :func:`sort_class_names` of the labels used; every label must
    be one of the classes.

    Args:
        clips: Every clip found (also those a converter may skip later), by name, with the other
            names a labels file may use for it (its relative path, its file name).
        labels: A labels CSV (path or :func:`read_labels_csv` result).
        classes: A classes file (path) or the class names in label order.
        folder_labels: Clip name -> class folder name.
        source: The converted folder, for messages.

    Raises:
        ConvertError: A labels-file row names no clip or the same clip as another row, a clip has no
            row, or a label is not one of the classes; the message names the file and line.
    """
    if labels is not None and not isinstance(labels, LabelsFile):
        labels = read_labels_csv(labels)
    class_file = None
    if isinstance(classes, (str, Path)):
        class_file = Path(classes)
        classes = read_classes_file(class_file)
    folder_labels = dict(folder_labels or {})
    out = ClipLabels(classes=None)
    named: dict[str, str] = {}  # clip -> its label text
    if labels is not None:
        lookup = {c: c for c in clips}
        for clip, aliases in clips.items():
            for alias in aliases:
                lookup.setdefault(_clean_name(alias), clip)
        row_of: dict[str, LabelRow] = {}
        unknown = [r for r in labels.rows if r.name not in lookup]
        if unknown:
            raise ConvertError(f"{labels.path}: line {unknown[0].line}: {len(unknown)} name(s) match no clip in "
                               f"{source}: {_some([r.name for r in unknown])}")
        for r in labels.rows:
            clip = lookup[r.name]
            if clip in row_of:
                raise ConvertError(f"{labels.path}: lines {row_of[clip].line} and {r.line} both name clip "
                                   f"{short_repr(clip)}")
            row_of[clip] = r
        missing = [c for c in clips if c not in row_of]
        if missing:
            raise ConvertError(f"{labels.path}: no row for {len(missing)} clip(s) of {source}: {_some(missing)}")
        for clip, r in row_of.items():
            if r.label:
                named[clip] = r.label
                if clip in folder_labels and folder_labels[clip] != r.label:
                    out.notes["clips whose labels-file label differs from their class folder (used the file)"] += 1
            if r.split:
                out.splits.setdefault(r.split, []).append(clip)
        if labels.ignored:
            out.notes[f"columns of {labels.path.name} ignored: {', '.join(labels.ignored)}"] += 1
    else:
        named = {c: folder_labels[c] for c in clips if c in folder_labels}

    if classes is not None:
        out.classes = list(classes)
        index = {n: i for i, n in enumerate(out.classes)}
        for clip, name in named.items():
            if name not in index:
                where = (f"{labels.path}: line {row_of[clip].line}" if labels is not None
                         else f"{source}: class folder of clip {short_repr(clip)}")
                raise ConvertError(f"{where}: label {short_repr(name)} is not one of the classes"
                                   + (f" in {class_file}" if class_file else ""))
    elif named:
        out.classes = sort_class_names(named.values())
    if out.classes is not None:
        index = {n: i for i, n in enumerate(out.classes)}
        out.labels = {clip: index[name] for clip, name in named.items()}
    return out


def pack_converted(annotations: list[dict[str, Any]], labelling: ClipLabels, layout: Layout, summary: ConvertSummary,
                   t0: float) -> tuple[dict[str, Any], ConvertSummary]:
    """The PYSKL dict of a conversion's clips (splits, layout, classes when any), and its summary
    completed (clips converted, split sizes, seconds since ``t0``)."""
    data: dict[str, Any] = {"split": labelling.split_of(a["frame_dir"] for a in annotations),
                            "annotations": annotations, "layout": layout_field(layout)}
    if labelling.classes is not None:
        data["classes"] = labelling.classes
    summary.converted = len(annotations)
    summary.splits = split_counts(data["split"])
    summary.seconds = time.perf_counter() - t0
    return data, summary

"""Joining PYSKL annotation files: the shards of one extraction, or any files of one layout and class list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from skelact.data.io import AnnotationError, load_annotations
from skelact.errors import SkelactError, short_repr
from skelact.skeleton import Layout, layout_field, resolve_layout

__all__ = ["MergeError", "merge_annotations"]


class MergeError(SkelactError, ValueError):
    """Files cannot be joined; the message names the two files that disagree."""


def _classes_differ(a: list[str] | None, b: list[str] | None) -> str | None:
    """What differs between two class lists, or None when they are equal."""
    if a == b:
        return None
    if a is None or b is None:
        return "has no class list" if a is None else f"has {len(a)} classes"
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"has class {i} {short_repr(x)}"
    return f"has {len(a)} classes"


def merge_annotations(sources: Sequence[str | Path]) -> dict:
    """Join annotation files into one dataset dict.

    Annotations are concatenated in the order of ``sources`` and splits are unioned (a split's
    members in that order). All files must have the same skeleton layout (compared as
    :class:`skelact.skeleton.Layout` objects, each resolved by ``resolve_layout``), the same
    coordinate dimension and the same class list (names and order), and no clip name may appear twice.

    Args:
        sources: Annotation ``.pkl`` files (loaded with the safe loader, one at a time).

    Returns:
        ``{'split', 'annotations'}`` plus ``classes`` when the files have them and ``layout`` when any
        file names one.

    Raises:
        MergeError: No file, a file given twice, a file that does not load, or files that disagree.
    """
    paths = [Path(p) for p in sources]
    if not paths:
        raise MergeError("no files to merge")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise MergeError(f"{p}: given twice (also as {seen[key]})")
        seen[key] = p

    first: Path | None = None
    ref_layout: Layout | None = None
    ref_dims, ref_classes, ref_scored, any_layout = 0, None, False, False
    owner: dict[str, Path] = {}
    annotations: list[dict] = []
    split: dict[str, list[str]] = {}
    for path in paths:
        try:
            data = load_annotations(path, allow_unlabeled=True)
        except AnnotationError as e:  # an AnnotationError is not a SkelactError: keep the one-line report
            raise MergeError(str(e)) from None
        anns = data["annotations"]
        v, dims = anns[0]["keypoint"].shape[2:]
        scored = "keypoint_score" in anns[0]
        layout = resolve_layout(None, data.get("layout"), v, str(path))
        classes = data.get("classes")
        any_layout |= data.get("layout") is not None
        if first is None:
            first, ref_layout, ref_dims, ref_classes, ref_scored = path, layout, dims, classes, scored
        else:
            if scored != ref_scored:  # a merged file must be all scored or all unscored
                raise MergeError(f"{path}: its clips {'have' if scored else 'have no'} keypoint scores but those "
                                 f"of {first} {'have' if ref_scored else 'have none'}")
            if layout != ref_layout:
                same = " (same name, different definition)" if layout.name == ref_layout.name else ""
                raise MergeError(f"{path}: layout {layout.name!r} ({layout.num_joints} joints) differs from "
                                 f"{ref_layout.name!r} ({ref_layout.num_joints} joints) of {first}{same}")
            if dims != ref_dims:
                raise MergeError(f"{path}: has {dims}D keypoints, {first} has {ref_dims}D")
            diff = _classes_differ(classes, ref_classes)
            if diff is not None:
                theirs = _classes_differ(ref_classes, classes)
                raise MergeError(f"{path}: {diff} but {first} {theirs}; merge only files with the same class list")
        for ann in anns:
            name = ann["frame_dir"]
            if name in owner:
                raise MergeError(f"{path}: clip {short_repr(name)} is also in {owner[name]}")
            owner[name] = path
        annotations += anns
        for name, members in data["split"].items():
            split.setdefault(name, []).extend(members)

    merged: dict = {"split": split, "annotations": annotations}
    if ref_classes is not None:
        merged["classes"] = list(ref_classes)
    if any_layout:
        merged["layout"] = layout_field(ref_layout)
    return merged

"""Skeleton layouts: joint names, edges, parents, left/right pairs and limbs.

A :class:`Layout` is everything the data pipeline and the models need to know about a
skeleton. Built-in layouts are ``coco17`` (HRNet / MoveNet order), ``ntu25`` (Kinect v2),
``penn13`` (Penn Action), ``ucla20`` (Kinect v1, NW-UCLA), ``openpose18`` (OpenPose COCO-18) and
``body25`` (OpenPose BODY_25). A user layout comes from a small
YAML file and is accepted everywhere a built-in name is (see :func:`get_layout`).

Below the config / CLI boundary a layout is always a :class:`Layout` object: :func:`resolve_layout`
turns "the layout given, else the data file's ``layout`` field, else the built-in layout with that
many joints" into one, and checkpoints store it whole (:meth:`Layout.to_dict`), so a model trained
on a user layout works on a machine that has never seen the YAML file. :func:`joint_present` is the
one rule for a missing joint, and :func:`joint_mapping` maps keypoints between layouts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skelact.errors import SkelactError, short_repr

__all__ = [
    "Layout",
    "LayoutError",
    "COCO17_TO_PENN13",
    "get_layout",
    "list_layouts",
    "infer_layout",
    "layout_from_dict",
    "layout_field",
    "resolve_layout",
    "joint_present",
    "joint_mapping",
    "match_joints",
]


class LayoutError(SkelactError, ValueError):
    """A layout name or layout file is invalid, or does not fit the data."""


@dataclass(frozen=True)
class Layout:
    """A skeleton layout.

    Attributes:
        name: Layout name (a built-in name or the YAML file's ``name``).
        joints: Joint names in storage order; index ``v`` of a keypoint array is ``joints[v]``.
        edges: Undirected bones as joint-index pairs; used for the GCN adjacency.
        root: Joint that is its own parent; its bone is zero. Also the 3D centring joint.
        flip_pairs: Left/right joint pairs swapped by a horizontal flip.
        limbs: Segments drawn in limb heatmaps and on videos (defaults to ``edges``).
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    root: int = 0
    flip_pairs: tuple[tuple[int, int], ...] = ()
    limbs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        v = len(self.joints)
        if v == 0:
            raise LayoutError(f"layout {self.name!r}: no joints")
        if len(set(self.joints)) != v:
            raise LayoutError(f"layout {self.name!r}: duplicate joint names")
        for kind, pairs in (("edge", self.edges), ("flip pair", self.flip_pairs), ("limb", self.limbs)):
            for a, b in pairs:
                if not (0 <= a < v and 0 <= b < v) or a == b:
                    raise LayoutError(f"layout {self.name!r}: bad {kind} ({a}, {b}) for {v} joints")
        if not 0 <= self.root < v:
            raise LayoutError(f"layout {self.name!r}: root {self.root} out of range")
        flipped = [j for p in self.flip_pairs for j in p]
        if len(set(flipped)) != len(flipped):
            raise LayoutError(f"layout {self.name!r}: a joint appears in two flip pairs")
        if not self.limbs:
            object.__setattr__(self, "limbs", tuple(self.edges))
        # Every joint must be reachable from the root, else it has no parent (no bone feature).
        parents = self._bfs_parents()
        missing = [self.joints[i] for i, p in enumerate(parents) if p < 0]
        if missing:
            raise LayoutError(f"layout {self.name!r}: joints not connected to the root: {missing}")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def _bfs_parents(self) -> list[int]:
        adj: list[list[int]] = [[] for _ in self.joints]
        for a, b in self.edges:
            adj[a].append(b)
            adj[b].append(a)
        parents = [-1] * len(self.joints)
        parents[self.root] = self.root
        queue = deque([self.root])
        while queue:
            u = queue.popleft()
            for w in sorted(adj[u]):
                if parents[w] < 0:
                    parents[w] = u
                    queue.append(w)
        return parents

    @property
    def parents(self) -> np.ndarray:
        """Parent of each joint (breadth-first tree from ``root``); ``parents[root] == root``."""
        return np.asarray(self._bfs_parents(), dtype=np.int64)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation ``p`` such that ``x[..., p, :]`` swaps every left/right pair."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict:
        """The whole layout as plain data (what checkpoints store); :func:`layout_from_dict` reads it back."""
        return {"name": self.name, "joints": list(self.joints), "edges": [list(e) for e in self.edges],
                "root": self.root, "flip_pairs": [list(p) for p in self.flip_pairs],
                "limbs": [list(p) for p in self.limbs]}

    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 adjacency matrix [V, V] without self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.edges:
            a[i, j] = a[j, i] = 1.0
        return a


def _pairs(pairs: list[tuple[int, int]], one_based: bool = False) -> tuple[tuple[int, int], ...]:
    off = 1 if one_based else 0
    return tuple((a - off, b - off) for a, b in pairs)


COCO17 = Layout(
    name="coco17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    edges=_pairs([
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5),
        (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2),
    ]),
    root=0,
    flip_pairs=_pairs([(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]),
    # PoseConv3D's 17 limbs (the paper's COCO limb set): face, arms, trunk with the hip line, legs.
    limbs=_pairs([
        (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8), (8, 10),
        (5, 11), (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12),
    ]),
)

NTU25 = Layout(
    name="ntu25",
    joints=(
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ),
    edges=_pairs([
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
        (20, 19), (22, 8), (23, 8), (24, 12), (25, 12),
    ], one_based=True),
    root=20,  # spine_shoulder, the graph centre used by ST-GCN on NTU
    flip_pairs=_pairs([
        (5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20), (22, 24), (23, 25),
    ], one_based=True),
)

PENN13 = Layout(
    name="penn13",
    joints=(
        "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    edges=_pairs([
        (1, 0), (2, 0), (3, 1), (4, 2), (5, 3), (6, 4), (7, 1), (8, 2), (7, 8),
        (9, 7), (10, 8), (11, 9), (12, 10),
    ]),
    root=0,
    flip_pairs=_pairs([(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]),
)

UCLA20 = Layout(
    name="ucla20",
    joints=(
        "hip_center", "spine", "shoulder_center", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
    ),
    edges=_pairs([
        (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
        (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
    ], one_based=True),
    root=1,  # spine: the graph centre used for NW-UCLA
    flip_pairs=_pairs([(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20)],
                      one_based=True),
)

# OpenPose's two body models (its ``--write_json`` order). Joint names follow COCO17's, so
# joint_mapping maps both to coco17 and penn13 by name; neck is the root, as in ST-GCN's openpose graph.
OPENPOSE18 = Layout(
    name="openpose18",
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    edges=_pairs([
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
        (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    ]),
    root=1,
    flip_pairs=_pairs([(5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)]),
    # The bones plus the hip line (the trunk's bottom edge; the hips only meet at the neck otherwise).
    limbs=_pairs([
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
        (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (8, 11),
    ]),
)

BODY25 = Layout(
    name="body25",
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    ),
    edges=_pairs([
        (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
        (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21),
        (11, 22), (22, 23), (11, 24),
    ]),
    root=1,
    flip_pairs=_pairs([
        (5, 2), (6, 3), (7, 4), (12, 9), (13, 10), (14, 11), (16, 15), (18, 17), (19, 22), (20, 23), (21, 24),
    ]),
)

# infer_layout takes the first layout with the joint count: 25 stays ntu25 (body25 is named explicitly).
_BUILTIN: dict[str, Layout] = {lay.name: lay for lay in (COCO17, NTU25, PENN13, UCLA20, OPENPOSE18, BODY25)}

#: ``penn13_keypoints = coco17_keypoints[..., COCO17_TO_PENN13, :]`` (Penn's head is COCO's nose).
COCO17_TO_PENN13: tuple[int, ...] = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def list_layouts() -> list[str]:
    """Names of the built-in layouts."""
    return sorted(_BUILTIN)


def _index(item: object, names: tuple[str, ...], where: str) -> int:
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise LayoutError(f"{where}: joint {short_repr(item)} is not a name or index")
    if isinstance(item, int):
        return item
    if item in names:
        return names.index(item)
    raise LayoutError(f"{where}: unknown joint {short_repr(item)}")


_LAYOUT_KEYS = ("name", "joints", "edges", "flip_pairs", "root", "limbs")


def layout_from_dict(spec: object, where: str = "layout") -> Layout:
    """Build a layout from a mapping with ``joints``, ``edges`` and optional ``flip_pairs``,
    ``root``, ``limbs`` and ``name``. Joints in pairs may be given by name or 0-based index."""
    if not isinstance(spec, dict):
        raise LayoutError(f"{where}: expected a mapping with 'joints' and 'edges', got {short_repr(spec)}")
    unknown = [str(k) for k in spec if k not in _LAYOUT_KEYS]
    if unknown:
        raise LayoutError(f"{where}: unknown keys {short_repr(sorted(unknown))} (known: {', '.join(_LAYOUT_KEYS)})")
    for key in ("joints", "edges"):
        if key not in spec:
            raise LayoutError(f"{where}: missing '{key}'")
    joints = spec["joints"]
    if not isinstance(joints, (list, tuple)) or not all(isinstance(j, str) for j in joints):
        raise LayoutError(f"{where}: 'joints' must be a list of names, got {short_repr(joints)}")
    names = tuple(joints)
    name = spec.get("name", where)
    if not isinstance(name, str):
        raise LayoutError(f"{where}: 'name' must be a string, got {short_repr(name)}")

    def pairs(key: str) -> tuple[tuple[int, int], ...]:
        items = spec.get(key)
        if items is None:
            return ()
        if not isinstance(items, (list, tuple)):
            raise LayoutError(f"{where}: '{key}' must be a list of joint pairs, got {short_repr(items)}")
        out = []
        for p in items:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise LayoutError(f"{where}: each entry of '{key}' must be a pair, got {short_repr(p)}")
            out.append((_index(p[0], names, where), _index(p[1], names, where)))
        return tuple(out)

    try:
        return Layout(name=name, joints=names, edges=pairs("edges"), root=_index(spec.get("root", 0), names, where),
                      flip_pairs=pairs("flip_pairs"), limbs=pairs("limbs"))
    except LayoutError as e:
        raise LayoutError(f"{where}: {e}") from None


def _read_layout_file(path: Path) -> Layout:
    import yaml

    from skelact.files import open_regular

    try:
        with open_regular(path) as f:  # a FIFO would block open() forever
            text = f.read((1 << 20) + 1)
    except OSError as e:
        raise LayoutError(f"{path}: cannot read the layout file ({e.strerror or e.__class__.__name__})") from None
    if len(text) > 1 << 20:
        raise LayoutError(f"{path}: over 1 MB, too large for a layout file")
    try:
        spec = yaml.safe_load(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise LayoutError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise LayoutError(f"{path}: not valid YAML{at}") from None
    except RecursionError:
        raise LayoutError(f"{path}: nested too deeply") from None
    if isinstance(spec, dict):
        spec.setdefault("name", path.stem)
    return layout_from_dict(spec, where=str(path))


def get_layout(layout: str | Path | Layout) -> Layout:
    """Return a built-in layout by name, or load a user layout from a YAML file path."""
    if isinstance(layout, Layout):
        return layout
    key = str(layout)
    if key in _BUILTIN:
        return _BUILTIN[key]
    path = Path(key)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise LayoutError(f"{path}: layout file not found")
        return _read_layout_file(path)  # a folder or FIFO: refused there, with what it is
    raise LayoutError(f"unknown layout {short_repr(key)}; built-in layouts: {', '.join(list_layouts())}, "
                      "or a path to a YAML layout file")


def layout_field(layout: Layout) -> str | dict:
    """What a data file's ``layout`` field holds: a built-in's name, else the whole layout as a dict."""
    return layout.name if _BUILTIN.get(layout.name) == layout else layout.to_dict()


def _from_field(value: object, where: str) -> Layout:
    """A data file's or checkpoint's ``layout`` field: a built-in name, or a whole layout as a dict."""
    if isinstance(value, Layout):
        return value
    if isinstance(value, dict):
        return layout_from_dict(value, where=f"{where}: 'layout'")
    if isinstance(value, str):
        if value in _BUILTIN:
            return _BUILTIN[value]
        raise LayoutError(f"{where}: its layout {short_repr(value)} is not built in and the file does not hold "
                          "its joints; give the layout YAML file (--layout, or data.layout in a recipe)")
    raise LayoutError(f"{where}: 'layout' must be a layout name or mapping, got {short_repr(value)}")


def resolve_layout(given: str | Path | Layout | None, stored: object, num_joints: int, where: str,
                   given_by: str = "the layout given") -> Layout:
    """The one rule for a clip store's layout: the layout ``given`` (an option, recipe or checkpoint
    value; it must be the stored one if the file has one), else the one ``stored`` in the file (a
    name or a whole layout), else the built-in layout with ``num_joints`` joints; it must have
    ``num_joints`` joints.

    A file's stored layout is fixed when it is converted: a ``given`` layout that differs from it
    (even with as many joints) is refused, not applied, so that training, testing, export and
    prediction all see the clips in one layout (``predict`` maps a clip from its file's layout).

    Args:
        given: Layout name, YAML path or object, or None.
        stored: The file's ``layout`` field (None when absent).
        num_joints: V of the data.
        where: The data file, for messages.
        given_by: What gave ``given`` (``data.layout``, ``--layout``, ``the checkpoint's layout``).

    Raises:
        LayoutError: Unknown layout, its joint count differs from the data's, or ``given`` and
            ``stored`` are different layouts.
    """
    if given is not None:
        layout = get_layout(given)
    elif stored is not None:
        layout = _from_field(stored, where)
    else:
        layout = infer_layout(num_joints)
    if layout.num_joints != num_joints:
        raise LayoutError(f"{where}: layout {layout.name!r} has {layout.num_joints} joints but the data has "
                          f"{num_joints}")
    if given is not None and stored is not None:
        own = _from_field(stored, where)
        if own != layout:
            raise LayoutError(f"{where}: the file's layout {own.name[:40]!r} and {given_by} {layout.name[:40]!r} "
                              f"differ (both {num_joints} joints); use the file's layout, or convert the data "
                              "again with the other one")
    return layout


def infer_layout(num_joints: int) -> Layout:
    """The built-in layout with ``num_joints`` joints (17 → coco17, 25 → ntu25, ...)."""
    for lay in _BUILTIN.values():
        if lay.num_joints == num_joints:
            return lay
    raise LayoutError(f"no built-in layout has {num_joints} joints; pass a layout YAML file")


def joint_present(keypoint: np.ndarray, score: np.ndarray | None = None, min_score: float = 0.0) -> np.ndarray:
    """The one rule for a missing joint: bool [..., V], true where the joint is present.

    A joint is missing when its coordinates are all exactly zero (converters and pose models
    write zeros for undetected joints) or not finite, or, with scores, when its score is not
    above ``min_score``.

    Args:
        keypoint: [..., V, C].
        score: [..., V] or None.
        min_score: Scores at or below this count as missing.
    """
    kp = np.asarray(keypoint)
    ok = np.isfinite(kp).all(-1) & (kp != 0).any(-1)
    if score is not None:
        ok &= np.asarray(score) > min_score
    return ok


#: Explicit joint maps ``(source, target) -> idx`` (``target_kp = source_kp[..., idx, :]``) for
#: layouts whose joint names differ; layouts that share the names map by name.
_MAPPINGS: dict[tuple[str, str], tuple[int, ...]] = {("coco17", "penn13"): COCO17_TO_PENN13}
# Joint names a target may take from another name in the source (Penn's head is COCO's nose, both ways).
_ALIASES: dict[str, tuple[str, ...]] = {"head": ("nose",), "nose": ("head",)}


def joint_mapping(source: Layout, target: Layout) -> tuple[int, ...] | None:
    """Indices that turn ``source`` keypoints into ``target`` ones, or None when they do not map.

    Equal layouts map to themselves; then an explicit table (coco17 → penn13), else every target
    joint is looked up by name in the source (a few aliases, e.g. ``head`` ← ``nose``).
    """
    if source.joints == target.joints:
        return tuple(range(source.num_joints))
    explicit = _MAPPINGS.get((source.name, target.name))
    if explicit is not None and _BUILTIN.get(source.name) == source and _BUILTIN.get(target.name) == target:
        return explicit
    idx = match_joints(source, target)
    return None if -1 in idx else idx


def match_joints(source: Layout, target: Layout) -> tuple[int, ...]:
    """For each ``target`` joint, the index of the ``source`` joint of that name (or alias), else -1.

    The by-name rule of :func:`joint_mapping`, partial: fine-tuning (``--init``) maps a model's
    per-joint weights across layouts with it, a joint found on one side only being new or dropped.
    """
    index = {name: i for i, name in enumerate(source.joints)}
    out = []
    for name in target.joints:
        found = -1
        for candidate in (name, *_ALIASES.get(name, ())):
            if candidate in index:
                found = index[candidate]
                break
        out.append(found)
    return tuple(out)

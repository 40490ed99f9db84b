"""Fine-tuning: a trained model's weights mapped onto the same family built for other joints, input
channels and classes (``skelact train --init``).

Most weights do not depend on the skeleton: convolutions slide along frames (and, in the keypoint
3D-CNN, along the joint walk), graph convolutions mix channels with the same weights at every
joint. The few that do are listed per family (:func:`_joint_specs`) with the axis that indexes
joints, input channels, limbs or joint-walk positions, and one routine (:func:`_remap`) moves them:

* joints are matched by name (:func:`skelact.skeleton.match_joints`, with its aliases): a matched
  joint's weights are the source joint's, moved to its new index; a joint only the data has starts
  from zero weights (the model first sees it as absent); a joint only the model knew is dropped;
* input channels are matched by meaning (``joint.x``, ``bone.z``, ``score``, from the recipes'
  ``data.features`` and the coordinate dimensions): a 2D (x, y, score) model fed 3D (x, y, z) keeps
  x and y, starts z from zero and drops the score;
* the classifier (``fc``) is kept when the class list is the same, else rebuilt (fresh init).

Which weights index joints, per family: the input BatchNorm over V * C (kpc3d and ST-GCN++); ST-GCN++'s
learnable adjacency ``(K, V, V)`` of every block (a pair of matched joints keeps its learned entry,
one with a new joint its graph initialisation) and its first block's 1x1 convs over C; kpc3d's stem
over C, and its joint-collapsing conv, whose kernel spans the positions left of the depth-first joint
walk after the strided stages: each position is matched by the joint at its centre (an approximation:
the walks of two layouts differ); PoseConv3D's first conv over joint or limb heatmaps (limbs matched
by their two joints' names). Everything else must have the same shape in both models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import SkelactError
from ..skeleton import Layout, match_joints
from .keypoint_c3d import KeypointC3D
from .poseconv3d import C3DLight, PoseConv3D
from .stgcn import STGCNPlusPlus

__all__ = ["TransferError", "TransferReport", "HEAD", "channel_names", "infer_channels", "split_parameters",
           "transfer_weights"]

#: The classifier's module name in every model (``forward_head`` ends in ``self.fc``).
HEAD = "fc"
_AXES = "xyz"


class TransferError(SkelactError, ValueError):
    """A checkpoint's weights cannot be mapped onto the model to train; the message names the file."""


def channel_names(features: Sequence[str], dims: int, score: bool) -> tuple[str, ...]:
    """What each input channel holds, in the order ``format_features`` stacks them: ``joint.x``, ...,
    then ``score`` (``dims`` coordinates per feature stream)."""
    axes = [_AXES[i] if i < len(_AXES) else f"c{i}" for i in range(dims)]
    return tuple(f"{f}.{a}" for f in features for a in axes) + (("score",) if score else ())


def infer_channels(features: Sequence[str], with_score: bool, normalize: str,
                   in_channels: int) -> tuple[str, ...] | None:
    """A checkpoint's input channels by meaning, from its recipe; None when they cannot be told.

    A recipe says whether a score is appended only if the data had one, so C = 3 with one stream
    reads as (x, y, score) or (x, y, z): ``normalize: center3d`` or ``align3d`` says 3D, any other 2D
    with a score.
    """
    k = len(features)
    options = [(d, s) for d in (2, 3) for s in ((0, 1) if with_score else (0,)) if k * d + s == in_channels]
    if len(options) > 1:
        options = [o for o in options if (o[0] == 3) == (normalize in ("center3d", "align3d"))]
    if len(options) != 1:
        return None
    dims, score = options[0]
    return channel_names(features, dims, bool(score))


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(backbone, head)``: the classifier's parameters (``fc``) and all the others."""
    head = getattr(model, HEAD, None)
    if not isinstance(head, nn.Module):
        raise TransferError(f"{type(model).__name__} has no classifier {HEAD!r} to tell from its backbone")
    ids = {id(p) for p in head.parameters()}
    params = list(model.parameters())
    return [p for p in params if id(p) not in ids], [p for p in params if id(p) in ids]


@dataclass
class TransferReport:
    """What :func:`transfer_weights` kept, remapped, started new and dropped (printed by ``train``)."""

    source: str
    model: str
    source_layout: Layout
    target_layout: Layout
    matched: int = 0
    new_joints: list[str] = field(default_factory=list)
    dropped_joints: list[str] = field(default_factory=list)
    channels: tuple[list[str], list[str], list[str]] | None = None  # kept, new, dropped; None: no channel axis
    channels_by_position: bool = False
    old_classes: int = 0
    new_classes: int = 0
    head_kept: bool = False
    kept: int = 0
    remapped: int = 0
    new: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self, lr_mult: float = 1.0) -> list[str]:
        """The printout: one short block."""
        a, b = self.source_layout, self.target_layout
        out = [f"init: weights of {self.source} ({self.model}, {self.old_classes} classes, layout {a.name})"]
        joints = f"  joints: {a.name} -> {b.name}: {self.matched} of {b.num_joints} matched by name"
        if self.new_joints:
            joints += f"; new (zero weights): {_names(self.new_joints)}"
        if self.dropped_joints:
            joints += f"; not in the data (dropped): {_names(self.dropped_joints)}"
        out.append(joints)
        if self.channels is not None:
            kept, new, dropped = self.channels
            how = " (matched by position: the checkpoint's channels cannot be told from its recipe)" \
                if self.channels_by_position else ""
            text = f"  channels: {', '.join(kept)} kept{how}"
            if new:
                text += f"; new (zero weights): {', '.join(new)}"
            if dropped:
                text += f"; dropped: {', '.join(dropped)}"
            out.append(text)
        out.extend(f"  {note}" for note in self.notes)
        out.append(f"  head: kept ({self.new_classes} classes, the same list)" if self.head_kept else
                   f"  head: rebuilt, {self.old_classes} -> {self.new_classes} classes (fresh weights)")
        out.append(f"  tensors: {self.kept} kept, {self.remapped} remapped, {self.new} new, {self.dropped} dropped")
        lr = ("frozen (optim.backbone_lr_mult 0: only the head trains)" if lr_mult == 0
              else f"learning rate x{lr_mult:g} (optim.backbone_lr_mult)")
        out.append(f"  backbone: {lr}")
        return out


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# ------------------------------------------------------------------------ which weights index what


def _layout(model: nn.Module) -> Layout:
    return model.heatmap.layout if isinstance(model, PoseConv3D) else model.layout  # type: ignore[return-value]


def _joint_specs(model: nn.Module, where: str) -> dict[str, tuple[tuple[tuple[int, str], ...], bool]]:
    """``{tensor name: ((axis, kind), ...), zero}`` for the family of ``model``.

    ``kind`` is ``vc`` (joint-major joint x channel), ``joint``, ``channel``, ``limb`` or ``position``
    (kpc3d's joint walk); ``zero``: a new joint's or channel's entries start at zero, else at the
    new model's own initial value (BatchNorm statistics, the graph's adjacency).
    """
    bn = {"data_bn.weight": (((0, "vc"),), True), "data_bn.bias": (((0, "vc"),), True),
          "data_bn.running_mean": (((0, "vc"),), False), "data_bn.running_var": (((0, "vc"),), False)}
    if isinstance(model, KeypointC3D):
        return {**bn, "stem.0.weight": (((1, "channel"),), True), "collapse.0.weight": (((4, "position"),), True)}
    if isinstance(model, STGCNPlusPlus):
        specs = {**bn, "blocks.0.gcn.conv.weight": (((1, "channel"),), True)}
        if isinstance(model.blocks[0].gcn.down, nn.Sequential):
            specs["blocks.0.gcn.down.0.weight"] = (((1, "channel"),), True)
        for i in range(len(model.blocks)):
            specs[f"blocks.{i}.gcn.adjacency"] = (((1, "joint"), (2, "joint")), False)
        return specs
    if isinstance(model, PoseConv3D):
        first = "backbone.layers.0.0.weight" if isinstance(model.backbone, C3DLight) else "backbone.stem.0.weight"
        kind = model.heatmap.kind
        return {} if kind == "single" else {first: (((1, kind),), True)}
    raise TransferError(f"{where}: cannot map the weights of a {type(model).__name__} model across layouts "
                        "(fine-tuning knows kpc3d, stgcnpp and poseconv3d)")


def _walk_centres(model: KeypointC3D, positions: int, where: str) -> list[int]:
    """The joint at the centre of each of the joint-collapsing conv's ``positions``: position ``p``
    of the walk halved ``h`` times (stride-2, kernel-3 convs) is centred on walk entry ``p * 2**h``."""
    order = model.order.tolist()
    length, step = len(order), 1
    while length > positions:
        length, step = (length + 1) // 2, step * 2
    if length != positions:
        raise TransferError(f"{where}: kpc3d's joint-collapsing conv spans {positions} positions, which its "
                            f"joint walk of {len(order)} does not give")
    return [order[p * step] for p in range(positions)]


def _position_map(source: KeypointC3D, target: KeypointC3D, joints: list[int], sizes: tuple[int, int],
                  where: str) -> tuple[list[int], str]:
    """Each target walk position's source position: the same centre joint (by name), its r-th
    occurrence matched to the source's r-th (the walk passes branch points several times)."""
    src, dst = _walk_centres(source, sizes[0], where), _walk_centres(target, sizes[1], where)
    at: dict[int, list[int]] = {}  # source joint -> the positions centred on it
    for q, j in enumerate(src):
        at.setdefault(j, []).append(q)
    seen: dict[int, int] = {}
    out = []
    for joint in dst:
        candidates = at.get(joints[joint], [])
        r = seen.get(joint, 0)
        seen[joint] = r + 1
        out.append(candidates[min(r, len(candidates) - 1)] if candidates else -1)
    matched = sum(i >= 0 for i in out)
    return out, (f"joint-collapse positions: {matched} of {len(out)} matched by the joint at their centre "
                 f"({sizes[0]} in the checkpoint)")


def _limb_map(source: Layout, target: Layout, joints: list[int]) -> list[int]:
    pairs = {frozenset(p): i for i, p in enumerate(source.limbs)}
    out = []
    for a, b in target.limbs:
        key = frozenset((joints[a], joints[b]))
        out.append(pairs.get(key, -1) if joints[a] >= 0 and joints[b] >= 0 else -1)
    return out


# ------------------------------------------------------------------------------------- the mapping


def _remap(name: str, src: Tensor, fresh: Tensor, axes: list[tuple[int, list[int]]], zero: bool,
           where: str) -> tuple[Tensor, bool]:
    """``fresh``'s shape filled from ``src`` along the index maps (-1: new); returns it and whether
    it is ``src`` unchanged."""
    out, mask = src, torch.ones((), dtype=torch.bool)
    identity = src.shape == fresh.shape
    for axis, idx in axes:
        if max(idx, default=-1) >= src.shape[axis]:
            raise TransferError(f"{where}: weight {name!r} is {list(src.shape)}, too small along axis {axis} for "
                                "its own layout and channels")
        index = torch.tensor(idx, dtype=torch.long)
        identity = identity and idx == list(range(src.shape[axis]))
        out = out.index_select(axis, index.clamp(min=0))
        shape = [1] * fresh.dim()
        shape[axis] = len(idx)
        mask = mask & (index >= 0).view(shape)
    if out.shape != fresh.shape:
        raise TransferError(f"{where}: weight {name!r} is {list(src.shape)} in the checkpoint but the model to train "
                            f"needs {list(fresh.shape)} (another model.kwargs?)")
    base = torch.zeros_like(fresh) if zero else fresh
    return torch.where(mask, out.to(fresh.dtype), base), identity


def transfer_weights(source: nn.Module, target: nn.Module, source_classes: Sequence[str],
                     target_classes: Sequence[str], source_channels: Sequence[str] | None,
                     target_channels: Sequence[str] | None, where: str,
                     model_name: str = "") -> tuple[dict[str, Tensor], TransferReport]:
    """The state dict for ``target`` from ``source`` (the same family, built for the checkpoint).

    Args:
        source: The checkpoint's model, with its weights.
        target: The model to train (its fresh weights fill what is new).
        source_classes, target_classes: Class lists; the head is kept only when they are equal.
        source_channels, target_channels: Input channels by meaning (:func:`channel_names`); None
            matches them by position.
        where: The checkpoint, for messages.
        model_name: Its registry name, for the report.

    Raises:
        TransferError: Another family, no joint or channel in common, or a weight whose shape still
            does not fit (named).
    """
    if type(source) is not type(target):
        raise TransferError(f"{where}: its {type(source).__name__} cannot initialise a {type(target).__name__}")
    specs = _joint_specs(target, where)
    a, b = _layout(source), _layout(target)
    joints = list(match_joints(a, b))
    report = TransferReport(where, model_name or type(target).__name__, a, b, old_classes=len(source_classes),
                            new_classes=len(target_classes))
    report.matched = sum(j >= 0 for j in joints)
    report.new_joints = [b.joints[v] for v, j in enumerate(joints) if j < 0]
    used = set(joints)
    report.dropped_joints = [n for i, n in enumerate(a.joints) if i not in used]
    if specs and report.matched == 0:
        raise TransferError(f"{where}: no joint of its layout {a.name!r} ({_names(list(a.joints), 4)}) is named like "
                            f"one of the data's layout {b.name!r} ({_names(list(b.joints), 4)})")

    kinds = {kind for axes, _ in specs.values() for _, kind in axes}
    channels: list[int] = []
    if kinds & {"channel", "vc"}:
        cs, ct = source.in_channels, target.in_channels  # type: ignore[union-attr]
        if source_channels is not None and target_channels is not None and \
                len(source_channels) == cs and len(target_channels) == ct:
            channels = [list(source_channels).index(c) if c in source_channels else -1 for c in target_channels]
            names_s, names_t = list(source_channels), list(target_channels)
        else:
            channels = [c if c < cs else -1 for c in range(ct)]
            names_s, names_t = [f"c{i}" for i in range(cs)], [f"c{i}" for i in range(ct)]
            report.channels_by_position = True
        if all(c < 0 for c in channels):
            raise TransferError(f"{where}: no input channel in common: it reads {', '.join(names_s)}, the data gives "
                                f"{', '.join(names_t)}")
        report.channels = ([n for n, c in zip(names_t, channels, strict=True) if c >= 0],
                           [n for n, c in zip(names_t, channels, strict=True) if c < 0],
                           [n for i, n in enumerate(names_s) if i not in set(channels)])

    src_state, fresh_state = source.state_dict(), target.state_dict()
    same_classes = list(source_classes) == list(target_classes)
    report.head_kept = same_classes
    out: dict[str, Tensor] = {}
    for name, fresh in fresh_state.items():
        if name.startswith(HEAD + ".") and not same_classes:
            out[name], report.new = fresh, report.new + 1
            continue
        if name not in src_state:
            out[name], report.new = fresh, report.new + 1
            continue
        src = src_state[name]
        if name in specs:
            axes_spec, zero = specs[name]
            axes = []
            for axis, kind in axes_spec:
                if kind == "joint":
                    idx = joints
                elif kind == "channel":
                    idx = channels
                elif kind == "vc":
                    cs = source.in_channels  # type: ignore[union-attr]
                    idx = [joints[v] * cs + c if joints[v] >= 0 and c >= 0 else -1
                           for v in range(b.num_joints) for c in channels]
                elif kind == "limb":
                    idx = _limb_map(a, b, joints)
                else:  # position
                    idx, note = _position_map(source, target, joints,  # type: ignore[arg-type]
                                              (src.shape[axis], fresh.shape[axis]), where)
                    report.notes.append(note)
                axes.append((axis, idx))
            out[name], identity = _remap(name, src, fresh, axes, zero, where)
            if identity:
                report.kept += 1
            else:
                report.remapped += 1
            continue
        if src.shape != fresh.shape:
            raise TransferError(f"{where}: weight {name!r} is {list(src.shape)} in the checkpoint but the model to "
                                f"train needs {list(fresh.shape)} (another model.kwargs?)")
        out[name], report.kept = src.to(fresh.dtype), report.kept + 1
    report.dropped = sum(name not in fresh_state for name in src_state)
    return out, report

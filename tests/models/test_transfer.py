"""skelact.models.transfer: a model's weights mapped across layouts, input channels and classes, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skelact.models import create_model
from skelact.models.registry import _MODELS, register_model
from skelact.models.stgcn import spatial_partitions
from skelact.models.transfer import (
    TransferError,
    _walk_centres,
    channel_names,
    infer_channels,
    split_parameters,
    transfer_weights,
)
from skelact.skeleton import get_layout, layout_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

PENN, UCLA = get_layout("penn13"), get_layout("ucla20")
XY_SCORE = channel_names(["joint"], 2, True)  # joint.x, joint.y, score
XYZ = channel_names(["joint"], 3, False)  # joint.x, joint.y, joint.z
SMALL = {"kpc3d_small": {}, "stgcnpp": {"channels": (8, 8), "strides": (1, 2), "dilations": (1, 2)}}


def _trained(name: str, layout: object, classes: int = 4, in_channels: int = 3, **kwargs: object) -> nn.Module:
    """A model whose every float tensor is random (as if trained: no value equals a fresh init's)."""
    torch.manual_seed(1)
    model = create_model(name, classes, layout, in_channels, **kwargs)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    return model.eval()


def _classes(n: int, prefix: str = "a") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _transfer(src: nn.Module, dst: nn.Module, sc: tuple[str, ...] | None = XY_SCORE,
              tc: tuple[str, ...] | None = XYZ, same_classes: bool = False) -> dict:
    state, report = transfer_weights(src, dst, _classes(4), _classes(4) if same_classes else _classes(5, "b"),
                                     sc, tc, "src.pt")
    dst.load_state_dict(state)
    return {"state": state, "report": report}


@pytest.mark.parametrize("name", ["kpc3d_small", "stgcnpp"])
def test_input_bn_joint_moves_new_joint_zero_dropped_joint_gone(name: str) -> None:
    src = _trained(name, PENN, **SMALL[name])
    dst = create_model(name, 5, UCLA, 3, **SMALL[name])
    fresh_var = dst.data_bn.running_var.clone()
    _transfer(src, dst)
    s, d = src.data_bn, dst.data_bn
    # left_wrist: penn13 index 5, ucla20 index 6; x and y (channels 0, 1) come along, z is new.
    for c in (0, 1):
        assert d.weight[6 * 3 + c] == s.weight[5 * 3 + c] and d.bias[6 * 3 + c] == s.bias[5 * 3 + c]
        assert d.running_mean[6 * 3 + c] == s.running_mean[5 * 3 + c]
    assert d.weight[6 * 3 + 2] == 0 and d.bias[6 * 3 + 2] == 0
    # Every matched joint, by name: ucla v <- penn u.
    for v, joint in enumerate(UCLA.joints):
        if joint in PENN.joints:
            u = PENN.joints.index(joint)
            assert torch.equal(d.weight[v * 3:v * 3 + 2], s.weight[u * 3:u * 3 + 2]), joint
    # A new joint (spine, 1) starts from zero weights and fresh statistics.
    assert torch.equal(d.weight[3:6], torch.zeros(3)) and torch.equal(d.bias[3:6], torch.zeros(3))
    assert torch.equal(d.running_var[3:6], fresh_var[3:6])
    # The reverse: ucla20's extra joints are dropped, none of their values remain.
    back = create_model(name, 5, PENN, 3, **SMALL[name])
    src_u = _trained(name, UCLA, **SMALL[name])
    report = _transfer(src_u, back, XYZ, XY_SCORE)["report"]
    assert report.dropped_joints == ["hip_center", "spine", "shoulder_center", "left_hand", "right_hand",
                                     "left_foot", "right_foot"]
    kept_rows = sorted((v, c) for v in range(13) for c in range(2))
    expected = torch.stack([src_u.data_bn.weight[UCLA.joints.index(PENN.joints[v]) * 3 + c] for v, c in kept_rows])
    got = torch.stack([back.data_bn.weight[v * 3 + c] for v, c in kept_rows])
    assert back.data_bn.weight.shape == (13 * 3,) and torch.equal(got, expected)
    dropped = {src_u.data_bn.weight[UCLA.joints.index(j) * 3].item() for j in report.dropped_joints}
    assert not dropped & set(back.data_bn.weight.tolist())


def test_stgcn_adjacency_and_first_convs() -> None:
    src = _trained("stgcnpp", PENN, **SMALL["stgcnpp"])
    dst = create_model("stgcnpp", 5, UCLA, 3, **SMALL["stgcnpp"])
    _transfer(src, dst)
    graph = torch.from_numpy(spatial_partitions(UCLA))
    pu = {j: i for i, j in enumerate(PENN.joints)}
    for block_s, block_d in zip(src.blocks, dst.blocks, strict=True):
        a_s, a_d = block_s.gcn.adjacency, block_d.gcn.adjacency
        for v, jv in enumerate(UCLA.joints):
            for w, jw in enumerate(UCLA.joints):
                if jv in pu and jw in pu:
                    assert torch.equal(a_d[:, v, w], a_s[:, pu[jv], pu[jw]]), (jv, jw)
                else:  # a pair with a new joint: the new layout's graph
                    assert torch.equal(a_d[:, v, w], graph[:, v, w]), (jv, jw)
    # The first block's 1x1 convs over C: x, y copied, z zero, the score's weights gone.
    for key in ("conv", "down"):
        ws = getattr(src.blocks[0].gcn, key)
        wd = getattr(dst.blocks[0].gcn, key)
        ws, wd = (ws.weight, wd.weight) if key == "conv" else (ws[0].weight, wd[0].weight)
        assert torch.equal(wd[:, :2], ws[:, :2]) and torch.equal(wd[:, 2], torch.zeros_like(wd[:, 2]))


def test_kpc3d_stem_channels_and_collapse_positions_by_centre_joint() -> None:
    src = _trained("kpc3d_small", PENN)
    dst = create_model("kpc3d_small", 5, UCLA, 3)
    report = _transfer(src, dst)["report"]
    assert torch.equal(dst.stem[0].weight[:, :2], src.stem[0].weight[:, :2])
    assert not dst.stem[0].weight[:, 2].any()
    ws, wd = src.collapse[0].weight, dst.collapse[0].weight
    cs = _walk_centres(src, ws.shape[-1], "")
    cd = _walk_centres(dst, wd.shape[-1], "")
    matched = 0
    for p in range(wd.shape[-1]):
        same = [q for q in range(ws.shape[-1]) if PENN.joints[cs[q]] == UCLA.joints[cd[p]]]
        hits = [q for q in same if torch.equal(wd[..., p], ws[..., q])]
        if same:  # the position centred on the same joint (by name) brings its kernel slice
            assert hits, p
            matched += 1
        else:
            assert not wd[..., p].any(), p
    assert matched > 0 and any(f"{matched} of {wd.shape[-1]} matched" in n for n in report.notes)


@pytest.mark.parametrize("name, kwargs", [("kpc3d_small", {}), ("stgcnpp", SMALL["stgcnpp"]),
                                          ("poseconv3d_c3d", {"heatmap": "limb", "base_channels": 4})])
def test_same_layout_and_classes_give_the_same_logits(name: str, kwargs: dict) -> None:
    src = _trained(name, PENN, **kwargs)
    dst = create_model(name, 4, PENN, 3, **kwargs)
    report = _transfer(src, dst, XY_SCORE, XY_SCORE, same_classes=True)["report"]
    dst.eval()
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 13, 3) * 100 + 20  # pixels for the heatmap model; scores are > 0
    assert torch.equal(src(x), dst(x))
    assert report.head_kept and report.remapped == 0 and report.new == 0 and report.dropped == 0


def test_head_rebuilt_when_classes_differ_even_in_order() -> None:
    src = _trained("kpc3d_small", PENN)
    dst = create_model("kpc3d_small", 4, PENN, 3)
    fresh = dst.fc.weight.clone()
    state, report = transfer_weights(src, dst, _classes(4), list(reversed(_classes(4))), XY_SCORE, XY_SCORE, "s.pt")
    assert torch.equal(state["fc.weight"], fresh) and not report.head_kept and report.new == 2
    assert "head: rebuilt, 4 -> 4 classes" in "\n".join(report.lines())


def test_poseconv3d_limb_heatmaps_follow_their_joints() -> None:
    coco = get_layout("coco17")
    src = _trained("poseconv3d_c3d", coco, heatmap="limb", base_channels=4)
    dst = create_model("poseconv3d_c3d", 5, UCLA, 3, heatmap="limb", base_channels=4)
    _transfer(src, dst, XY_SCORE, XY_SCORE)
    ws, wd = src.backbone.layers[0][0].weight, dst.backbone.layers[0][0].weight
    # A ucla20 limb whose two joints coco17 also joins (left_shoulder-left_elbow, ...) takes that
    # limb's heatmap weights; one with a joint coco17 lacks (spine, hands, feet) starts at zero.
    alias = {"head": "nose"}
    limbs_s = [frozenset(coco.joints[i] for i in p) for p in coco.limbs]
    matched = new = 0
    for i, pair in enumerate(UCLA.limbs):
        names = frozenset(alias.get(UCLA.joints[j], UCLA.joints[j]) for j in pair)
        if names in limbs_s:
            assert torch.equal(wd[:, i], ws[:, limbs_s.index(names)]), names
            matched += 1
        else:
            assert not wd[:, i].any(), names
            new += 1
    assert matched == 8 and new == 11


def test_refusals_name_the_file_and_the_reason() -> None:
    src = _trained("stgcnpp", PENN, **SMALL["stgcnpp"])
    other = layout_from_dict({"name": "mine", "joints": [f"j{i}" for i in range(13)],
                              "edges": [[i, i + 1] for i in range(12)]})
    with pytest.raises(TransferError, match=r"src\.pt: no joint of its layout 'penn13' .* 'mine'"):
        _transfer(src, create_model("stgcnpp", 5, other, 3, **SMALL["stgcnpp"]))
    with pytest.raises(TransferError, match=r"src\.pt: its STGCNPlusPlus cannot initialise a KeypointC3D"):
        _transfer(src, create_model("kpc3d_small", 5, PENN, 3))
    with pytest.raises(TransferError, match=r"src\.pt: weight 'blocks\.1\.gcn\.conv\.weight' is \[24, 8, 1, 1\] in "
                                            r"the checkpoint but the model to train needs \[48, 8, 1, 1\]"):
        _transfer(src, create_model("stgcnpp", 5, PENN, 3, channels=(8, 16), strides=(1, 2), dilations=(1, 2)))
    with pytest.raises(TransferError, match=r"no input channel in common: it reads bone\.x, bone\.y, score"):
        _transfer(src, create_model("stgcnpp", 5, PENN, 3, **SMALL["stgcnpp"]), channel_names(["bone"], 2, True),
                  XYZ[:2] + ("joint.w",))


def test_a_family_without_a_mapping_is_refused() -> None:
    class Plain(nn.Module):
        def __init__(self, num_classes: int, layout: object, in_channels: int) -> None:
            super().__init__()
            self.layout = get_layout(layout)  # type: ignore[arg-type]
            self.fc = nn.Linear(4, num_classes)

    register_model("plain_for_transfer_test")(Plain)
    try:
        with pytest.raises(TransferError, match=r"src\.pt: cannot map the weights of a Plain model"):
            _transfer(Plain(4, PENN, 3), Plain(5, UCLA, 3))
    finally:
        del _MODELS["plain_for_transfer_test"]


def test_channels_by_meaning() -> None:
    assert infer_channels(["joint"], True, "bbox", 3) == ("joint.x", "joint.y", "score")
    assert infer_channels(["joint"], True, "center3d", 3) == ("joint.x", "joint.y", "joint.z")
    assert infer_channels(["joint"], False, "bbox", 3) == ("joint.x", "joint.y", "joint.z")
    assert infer_channels(["joint", "bone"], True, "image", 5) == ("joint.x", "joint.y", "bone.x", "bone.y", "score")
    assert infer_channels(["joint"], False, "bbox", 5) is None
    # Unknown meaning: matched by position, and said so.
    src = _trained("kpc3d_small", PENN)
    report = _transfer(src, create_model("kpc3d_small", 5, PENN, 2), None, None)["report"]
    assert report.channels_by_position and report.channels == (["c0", "c1"], [], ["c2"])


def test_split_parameters_head_is_fc() -> None:
    model = create_model("kpc3d_small", 5, PENN, 3)
    backbone, head = split_parameters(model)
    assert [id(p) for p in head] == [id(model.fc.weight), id(model.fc.bias)]
    assert len(backbone) + 2 == len(list(model.parameters()))

"""Every registered model (skelact.models): shapes, finite gradients, learning on one batch, any layout,
channels-last heatmap backbones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from skelact.models import create_model, list_models, model_info
from skelact.models.keypoint_c3d import dfs_joint_order
from skelact.models.stgcn import spatial_partitions
from skelact.skeleton import get_layout, layout_from_dict, list_layouts

NUM_CLASSES = 5


def small_input(kind: str, n: int = 2, m: int = 2, t: int = 8, v: int = 17) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, m, t, v, 3, generator=g)
    if kind == "heatmap":
        # Pixel coordinates of a person in a 640 x 480 frame; the second person of clip 1 missing.
        x[..., :2] = x[..., :2] * torch.tensor([200.0, 300.0]) + torch.tensor([100.0, 50.0])
        x[1, 1] = 0
    return x


def build_small(name: str) -> torch.nn.Module:
    opts = {"size": 24, "test_size": 24} if model_info(name).input_kind == "heatmap" else {}
    return create_model(name, NUM_CLASSES, "coco17", 3, **opts)


def seeded_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)  # same dropout masks and heatmap augmentation on every call
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_learns(name: str) -> None:
    torch.manual_seed(0)
    model = build_small(name).train()
    x = small_input(model_info(name).input_kind)
    y = torch.tensor([1, 3])
    feats = model.forward_features(x)
    assert model.forward_head(feats).shape == (2, NUM_CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(3):
        loss = seeded_loss(model, x, y)
        assert torch.isfinite(loss)
        losses.append(loss.item())
        if step == 2:
            break
        opt.zero_grad()
        loss.backward()
        for pname, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None, pname
                assert torch.isfinite(p.grad).all(), pname
        opt.step()
    assert losses[2] < losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, NUM_CLASSES) and torch.isfinite(out).all()


def user_layout():
    return layout_from_dict({
        "name": "stick5",
        "joints": ["head", "neck", "hip", "l_foot", "r_foot"],
        "edges": [["head", "neck"], ["neck", "hip"], ["hip", "l_foot"], ["hip", "r_foot"]],
        "root": "neck",
        "flip_pairs": [["l_foot", "r_foot"]],
    })


@pytest.mark.parametrize("layout", [*list_layouts(), "user"])
def test_keypoint_models_any_layout(layout: str) -> None:
    lay = user_layout() if layout == "user" else get_layout(layout)
    a = spatial_partitions(lay)
    assert a.shape == (3, lay.num_joints, lay.num_joints)
    col = a.sum(1)  # every joint averages its inputs in each non-empty subset
    assert ((abs(col - 1) < 1e-6) | (col == 0)).all() and (col[0] == 1).all()
    order = dfs_joint_order(lay)
    assert len(order) == 2 * lay.num_joints - 1 and set(order) == set(range(lay.num_joints))
    bones = {frozenset(e) for e in lay.edges}
    assert all(frozenset(p) in bones for p in zip(order, order[1:], strict=False))
    x = torch.randn(2, 2, 8, lay.num_joints, 2)
    for name in ("stgcnpp", "kpc3d"):
        model = create_model(name, 4, lay, in_channels=2)
        assert model(x).shape == (2, 4)


@pytest.mark.parametrize("name", ["poseconv3d_c3d", "poseconv3d_slowonly"])
def test_heatmap_backbones_run_channels_last_with_the_default_layouts_values(name: str) -> None:
    """The channels-last backbone (for oneDNN's speed) computes what the plain layout computes."""
    torch.manual_seed(0)
    model = build_small(name).eval()
    conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = small_input("heatmap")
    plain = copy.deepcopy(model)
    plain.backbone.to(memory_format=torch.contiguous_format)
    plain.forward_features = lambda x: plain.backbone(plain.heatmap(x))  # the default memory order
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)
    # A state dict of contiguous tensors (an older checkpoint) loads into the channels-last model.
    fresh = build_small(name)
    fresh.load_state_dict({k: v.contiguous() for k, v in plain.state_dict().items()})
    conv = next(m for m in fresh.backbone.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), plain(x), rtol=1e-4, atol=1e-5)



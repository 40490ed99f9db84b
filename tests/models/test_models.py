"""Every registered model: shapes, finite gradients, learning on one batch; recipe sizes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from skelact.models import count_macs, count_params, create_model, list_models, model_info
from skelact.models.keypoint_c3d import dfs_joint_order
from skelact.models.stgcn import GraphConv, MultiScaleTCN, spatial_partitions
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


def test_registry() -> None:
    names = list_models()
    assert {"kpc3d", "stgcnpp", "poseconv3d_c3d", "poseconv3d_slowonly"} <= set(names)
    for name in names:
        info = model_info(name)
        assert info.input_kind in ("keypoint", "heatmap") and info.description
    assert model_info("poseconv3d_c3d").input_kind == "heatmap"
    with pytest.raises(ValueError, match="stgcnpp"):
        create_model("stgcn_pp", 10)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("poseconv3d_c3d", 10, in_channels=2)


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


def test_spatial_partitions_coco() -> None:
    a = spatial_partitions("coco17")
    assert torch.equal(torch.from_numpy(a[0]), torch.eye(17))  # a tree: subset 0 is the joint itself
    # Left elbow (7) hears the left shoulder (5, nearer the nose root) and the left wrist (9).
    assert a[1, 5, 7] == 1.0 and a[2, 9, 7] == 1.0
    # The nose averages its four children.
    assert a[2, [1, 2, 5, 6], 0].tolist() == [0.25] * 4


def _twin_inputs(module: torch.nn.Module, x: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two leaf copies of ``x``; with ``channels_last``, ``module`` and ``x`` move to that layout
    first (the layout ST-GCN++ runs its blocks in)."""
    if channels_last:
        module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return x.clone().requires_grad_(), x.clone().requires_grad_()


def _assert_same_grads(xa: torch.Tensor, xb: torch.Tensor, a: torch.nn.Module, b: torch.nn.Module,
                       x_atol: float, p_atol: float) -> None:
    """Input and parameter gradients of ``a`` equal those of ``b`` (rtol 1e-4)."""
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=x_atol)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=p_atol, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_stgcn_tcn_fused_forward_matches_branches(stride: int, channels_last: bool) -> None:
    """The one-conv/one-BN TCN equals the six separate branches: outputs, gradients, BN state."""
    torch.manual_seed(0)
    fast = MultiScaleTCN(16, 16, stride)
    for p in fast.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    ref = copy.deepcopy(fast)
    xf, xr = _twin_inputs(fast, torch.randn(3, 16, 10, 5), channels_last)
    for train in (True, False, True):  # eval uses the running stats the train steps wrote
        fast.train(train)
        ref.train(train)
        out_f, out_r = fast(xf), ref.forward_reference(xr)
        assert out_f.shape == (3, 16, 10 // stride, 5)
        torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)
        out_f.square().sum().backward()
        out_r.square().sum().backward()
    _assert_same_grads(xf, xr, fast, ref, x_atol=1e-4, p_atol=5e-5)
    for (name, bf), br in zip(fast.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(bf, br, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("cin", "cout"), [(4, 6), (6, 6), (6, 4)])
def test_stgcn_graph_conv_matches_einsum(cin: int, cout: int, channels_last: bool) -> None:
    """GraphConv (joints mixed before the conv when Cin < Cout, after it otherwise) is PYSKL's
    conv then einsum over subsets and source joints: outputs and every gradient."""
    torch.manual_seed(0)
    gcn = GraphConv(cin, cout, spatial_partitions("coco17")).train()
    torch.nn.init.normal_(gcn.adjacency)
    torch.nn.init.normal_(gcn.conv.bias)
    ref = copy.deepcopy(gcn)
    xg, xr = _twin_inputs(gcn, torch.randn(2, cin, 7, 17), channels_last)
    out = gcn(xg)
    y = ref.conv(xr).view(2, 3, cout, 7, 17)
    expected = torch.relu(ref.bn(torch.einsum("nkctv,kvw->nctw", y, ref.adjacency)) + ref.down(xr))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.sin().sum().backward()
    expected.sin().sum().backward()
    _assert_same_grads(xg, xr, gcn, ref, x_atol=1e-5, p_atol=1e-4)


def test_stgcn_runs_channels_last_and_loads_default_layout_weights() -> None:
    """The blocks run channels-last (weights and activations); a state dict in the default layout
    loads into it and gives the same outputs and input gradients as the model it came from."""
    torch.manual_seed(0)
    model = create_model("stgcnpp", 5, "coco17", channels=(8, 16, 16), strides=(1, 2, 1)).train()
    temporal = model.blocks[0].tcn.branches[0][3].conv.weight
    assert temporal.is_contiguous(memory_format=torch.channels_last) and not temporal.is_contiguous()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    other = create_model("stgcnpp", 5, "coco17", channels=(8, 16, 16), strides=(1, 2, 1)).train()
    other.load_state_dict(state)
    x = torch.randn(2, 2, 12, 17, 3)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    features = model.forward_features(xa)
    assert features.shape == (2, 2, 16, 6, 17)
    assert features.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    out_a, out_b = model.forward_head(features), other(xb)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize(("name", "published"), [
    ("stgcnpp", 1.39e6), ("poseconv3d_c3d", 3.4e6), ("poseconv3d_slowonly", 2.0e6),
])
def test_param_counts_match_papers(name: str, published: float) -> None:
    model = create_model(name, 60, "coco17")
    assert abs(count_params(model) - published) <= 0.1 * published


def test_keypoint_model_costs() -> None:
    x = torch.randn(1, 2, 100, 17, 3)
    stgcn = create_model("stgcnpp", 60).eval()
    assert count_macs(stgcn, x) == pytest.approx(1.93e9, rel=0.05)
    kp = create_model("kpc3d", 60).eval()
    assert 0.5e6 <= count_params(kp) <= 2e6
    # At least 20x cheaper than PoseConv3D-SlowOnly's 15.6 GMACs, even at 100 frames.
    assert count_macs(kp, x) <= 15.6e9 / 20


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


@pytest.mark.parametrize("shape", [(2, 5, 3, 8, 6), (1, 4, 2, 7, 9)])
def test_spatial_avg_pool_keeps_channels_last_with_avg_pool3d_values_and_gradients(shape: tuple[int, ...]) -> None:
    """C3D-light's 1x2x2 pooling: AvgPool3d's values and gradients (odd sizes floored), channels-last out."""
    from skelact.models.poseconv3d import SpatialAvgPool

    torch.manual_seed(0)
    ref_in = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = ref_in.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    ref = torch.nn.AvgPool3d((1, 2, 2), (1, 2, 2))(ref_in)
    out = SpatialAvgPool()(x)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(x.grad, ref_in.grad, rtol=0, atol=1e-12)
    # The default layout takes AvgPool3d itself.
    torch.testing.assert_close(SpatialAvgPool()(ref_in.detach()), ref.detach(), rtol=0, atol=0)

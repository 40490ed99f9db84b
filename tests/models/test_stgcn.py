"""ST-GCN++ (skelact.models.stgcn): spatial partitions, the fused TCN and graph convolution against their
reference forms, channels-last blocks."""

from __future__ import annotations

import copy

import pytest
import torch

from skelact.models import create_model
from skelact.models.stgcn import GraphConv, MultiScaleTCN, spatial_partitions


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

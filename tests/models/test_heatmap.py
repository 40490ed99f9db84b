"""Heatmap drawing: exact agreement with the formula (skelact.bench.reference), peaks, flips, missing joints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skelact.bench.reference import (
    formula_joint_heatmaps,
    formula_limb_heatmaps,
    patch_radius,
    pyskl_joint_heatmaps,
    pyskl_limb_heatmaps,
)
from skelact.models import heatmap
from skelact.models.heatmap import (
    PoseHeatmap,
    compact_boxes,
    crop_to_boxes,
    flip_keypoints,
    joint_heatmaps,
    limb_heatmaps,
    random_resized_boxes,
    single_heatmaps,
)
from skelact.skeleton import get_layout

LIMBS = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (4, 5), (1, 1 + 4)]


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both CPU paths: the numba kernels (`fast` extra) and the torch one."""
    if request.param == "torch":
        monkeypatch.setattr(heatmap, "_kernels", lambda: None)
    elif heatmap._kernels() is None:
        pytest.skip("numba (the `fast` extra) is not installed")
    return request.param


def random_clip(seed: int, n: int = 2, m: int = 2, t: int = 3, v: int = 6, h: int = 20, w: int = 24):
    g = torch.Generator().manual_seed(seed)
    # Some keypoints land off the map, some scores are 0 (missing), one limb is degenerate.
    kp = torch.rand(n, m, t, v, 2, generator=g) * torch.tensor([w + 8.0, h + 8.0]) - 4
    score = torch.rand(n, m, t, v, generator=g)
    score[score < 0.2] = 0
    kp[0, 0, 0, 1] = kp[0, 0, 0, 0]
    return kp, score


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("sigma", [0.6, 1.7])
@pytest.mark.parametrize("size", [(20, 24), (20, 7)])  # (20, 7): narrower than a limb band
def test_matches_reference(seed: int, sigma: float, size: tuple[int, int]) -> None:
    h, w = size
    kp, score = random_clip(seed, h=h, w=w)
    kn, sn = kp.double().numpy(), score.double().numpy()
    joint = formula_joint_heatmaps(kn, sn, size, sigma)
    assert np.abs(joint_heatmaps(kp, score, size, sigma).numpy() - joint).max() <= 1e-5
    single = single_heatmaps(kp, score, size, sigma).numpy()
    assert np.abs(single - joint.max(1, keepdims=True)).max() <= 1e-5
    limb = limb_heatmaps(kp, score, LIMBS, size, sigma).numpy()
    assert limb.shape == (2, len(LIMBS), 3, h, w)
    assert np.abs(limb - formula_limb_heatmaps(kn, sn, LIMBS, size, sigma)).max() <= 1e-5


def test_long_limbs_match_reference() -> None:
    # Segments crossing the whole map, in every direction, exercise long bands and both groups.
    kp, score = random_clip(3, n=1, m=2, t=4, v=6, h=40, w=40)
    kp = kp * 1.5 - 10
    out = limb_heatmaps(kp, score, LIMBS, 40, 0.6).numpy()
    ref = formula_limb_heatmaps(kp.double().numpy(), score.double().numpy(), LIMBS, 40, 0.6)
    assert np.abs(out - ref).max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(56, 56), (20, 7)])
def test_limbs_to_far_off_joints_match_reference(size: tuple[int, int], dtype: torch.dtype) -> None:
    """A limb whose other end is 100 px to 3e5 px off the map (a bad detection, a tight crop), or
    that only passes across it, is drawn within 1e-5 of the formula, as a short one is; float64
    keypoints keep their precision until the limb is cut to the map."""
    h, w = size
    g = torch.Generator().manual_seed(4)
    n = 200
    near = (torch.rand(n, 2, generator=g) * torch.tensor([w, h]) - 2).to(dtype)  # on or just beside the map
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    dist = 10.0 ** torch.linspace(2, 5.5, n, dtype=torch.float64)  # within the +-1e6 clamp
    step = (dist.unsqueeze(1) * torch.stack([angle.cos(), angle.sin()], 1)).to(dtype)
    kp = torch.stack([near + step, near - step, near], 1).view(1, 1, n, 3, 2)  # n frames
    score = torch.rand(1, 1, n, 3, generator=g) * 0.5 + 0.5
    limbs = [(2, 0), (0, 2), (0, 1)]  # the far joint second, first; both far, crossing the map
    out = limb_heatmaps(kp, score, limbs, size, 0.6).numpy()
    ref = formula_limb_heatmaps(kp.double().numpy(), score.double().numpy(), limbs, size, 0.6)
    assert ref[:, 2].max() > 0.5  # the lines between two far joints do cross the maps
    assert np.abs(out - ref).max() <= 1e-5


def test_limb_edge_cases() -> None:
    """A segment shorter than 1e-12 px is a point; no persons draw nothing (both paths, both map kinds)."""
    kp = torch.tensor([[0.0, 0.0], [1e-20, 0.0]]).view(1, 1, 1, 2, 2)
    score = torch.full((1, 1, 1, 2), 0.8)
    for size in ((20, 20), (20, 5)):
        out = limb_heatmaps(kp, score, [(0, 1)], size, 0.6).numpy()
        ref = formula_limb_heatmaps(kp.double().numpy(), score.double().numpy(), [(0, 1)], size, 0.6)
        assert np.abs(out - ref).max() <= 1e-5
        empty = limb_heatmaps(torch.zeros(2, 0, 3, 4, 2), torch.zeros(2, 0, 3, 4), [(0, 1)], size, 0.6)
        assert empty.shape == (2, 1, 3, *size) and not empty.any()


def _one_at_a_time(kind: str, kp: np.ndarray, score: np.ndarray, h: int, w: int, sigma: float) -> np.ndarray:
    """The formula written out for one keypoint (or limb) of one person and frame at a time."""
    n, m, t, v, _ = kp.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((n, v if kind == "joint" else len(LIMBS), t, h, w))
    for i, p, f in np.ndindex(n, m, t):
        for c, (ja, jb) in enumerate([(j, j) for j in range(v)] if kind == "joint" else LIMBS):
            s = min(score[i, p, f, ja], score[i, p, f, jb])
            if s <= 0:
                continue
            a, b = kp[i, p, f, ja], kp[i, p, f, jb]
            ab = b - a
            frac = 0.0 if ab @ ab == 0 else np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / (ab @ ab), 0, 1)
            d2 = (xs - a[0] - frac * ab[0]) ** 2 + (ys - a[1] - frac * ab[1]) ** 2
            out[i, c, f] = np.maximum(out[i, c, f], s * np.exp(-d2 / (2 * sigma**2)))
    return out


@pytest.mark.parametrize("sigma", [0.6, 1.7])
def test_references_equal_the_formula(sigma: float) -> None:
    """The vectorised formula equals the one-point-at-a-time loop; PYSKL's algorithm equals both."""
    h, w = 20, 24
    kp, score = random_clip(7, h=h, w=w)
    kp[1, 1, 2, 3] = float("nan")  # a non-finite joint draws nothing
    kp[0, 1, 1, 2] = torch.tensor([-30.0, 500.0])  # far off the map
    kn, sn = kp.double().numpy(), score.double().numpy()
    sn_loop = np.where(np.isfinite(kn).all(-1), sn, 0)
    for kind, formula, pyskl in (("joint", formula_joint_heatmaps(kn, sn, (h, w), sigma),
                                  pyskl_joint_heatmaps(kn, sn, (h, w), sigma)),
                                 ("limb", formula_limb_heatmaps(kn, sn, LIMBS, (h, w), sigma),
                                  pyskl_limb_heatmaps(kn, sn, LIMBS, (h, w), sigma))):
        loop = _one_at_a_time(kind, np.nan_to_num(kn), sn_loop, h, w, sigma)
        assert np.abs(formula - loop).max() <= 1e-12
        assert pyskl.dtype == np.float32 and pyskl.shape == formula.shape
        assert np.abs(pyskl - formula).max() <= 1e-5
        assert formula.max() > 0.2  # something was drawn
    # A patch cut at 3 sigma, as PYSKL's own code does, is not equal output.
    cut = pyskl_joint_heatmaps(kn, sn, (h, w), sigma, eps=float(np.exp(-4.5)))
    assert 1e-3 < np.abs(cut - formula_joint_heatmaps(kn, sn, (h, w), sigma)).max() <= np.exp(-4.5)
    assert patch_radius(0.6, float(np.exp(-4.5))) == pytest.approx(1.8)


def test_peak_is_score_at_keypoint_pixel() -> None:
    kp = torch.tensor([5.0, 7.0]).view(1, 1, 1, 1, 2)
    score = torch.tensor([0.8]).view(1, 1, 1, 1)
    hm = joint_heatmaps(kp, score, (16, 12), 0.6)
    assert hm.shape == (1, 1, 1, 16, 12)
    assert hm[0, 0, 0, 7, 5].item() == pytest.approx(0.8, abs=1e-7)
    assert hm.max().item() == pytest.approx(0.8, abs=1e-7)
    # A limb peaks at min(score) all along the segment.
    kp2 = torch.tensor([[2.0, 3.0], [9.0, 3.0]]).view(1, 1, 1, 2, 2)
    s2 = torch.tensor([0.9, 0.5]).view(1, 1, 1, 2)
    lm = limb_heatmaps(kp2, s2, [(0, 1)], (8, 12), 0.6)
    assert torch.allclose(lm[0, 0, 0, 3, 2:10], torch.full((8,), 0.5))


def test_zero_score_draws_nothing() -> None:
    kp, score = random_clip(4)
    score[:, 1] = 0  # no second person
    score[0, 0, :, 2] = 0  # joint 2 missing in clip 0
    hm = joint_heatmaps(kp, score, (20, 24))
    assert hm[0, 2].abs().max() == 0
    lm = limb_heatmaps(kp, score, LIMBS, (20, 24))
    for k, (a, b) in enumerate(LIMBS):
        if 2 in (a, b):
            assert lm[0, k].abs().max() == 0
    # NaN coordinates of a missing joint are ignored too.
    kp[0, 0, :, 2] = float("nan")
    assert torch.equal(joint_heatmaps(kp, score, (20, 24)), hm)
    assert torch.isfinite(limb_heatmaps(kp, score, LIMBS, (20, 24))).all()
    none = torch.zeros_like(score)
    assert joint_heatmaps(kp, none, (20, 24)).abs().max() == 0
    assert limb_heatmaps(kp, none, LIMBS, (20, 24)).abs().max() == 0


def test_flip_mirrors_maps_and_swaps_channels() -> None:
    lay = get_layout("coco17")
    g = torch.Generator().manual_seed(5)
    kp = torch.rand(2, 2, 3, 17, 2, generator=g) * 20
    score = torch.rand(2, 2, 3, 17, generator=g)
    fkp, fscore = flip_keypoints(kp, score, torch.as_tensor(lay.flip_index), width=24)
    hm = joint_heatmaps(kp, score, (22, 24))
    fhm = joint_heatmaps(fkp, fscore, (22, 24))
    expected = hm.flip(-1)[:, torch.as_tensor(lay.flip_index)]
    assert torch.allclose(fhm, expected, atol=1e-6)
    # Masked flip only touches the chosen clips.
    mkp, _ = flip_keypoints(kp, score, torch.as_tensor(lay.flip_index), 24, torch.tensor([True, False]))
    assert torch.equal(mkp[1], kp[1]) and torch.equal(mkp[0], fkp[0])
    # Limbs: flipping keypoints (joints swapped) mirrors each limb onto its left/right partner.
    limbs = list(lay.limbs)
    lm = limb_heatmaps(kp, score, limbs, (22, 24))
    flm = limb_heatmaps(fkp, fscore, limbs, (22, 24))
    fi = lay.flip_index
    partner = [limbs.index((fi[a], fi[b])) if (fi[a], fi[b]) in limbs else limbs.index((fi[b], fi[a]))
               for a, b in limbs]
    assert torch.allclose(flm, lm.flip(-1)[:, partner], atol=1e-6)


def test_compact_crop_geometry() -> None:
    kp = torch.tensor([[10.0, 20.0], [30.0, 60.0]]).view(1, 1, 1, 2, 2)
    score = torch.ones(1, 1, 1, 2)
    box = compact_boxes(kp, score, padding=0.25)
    # Tight box 20 x 40 -> square side 40 * 1.25 = 50 around the centre (20, 40).
    assert torch.allclose(box, torch.tensor([[-5.0, 15.0, 45.0, 65.0]]))
    out = crop_to_boxes(kp, box, 50)
    assert torch.allclose(out[0, 0, 0], torch.tensor([[14.5, 4.5], [34.5, 44.5]]))
    # Missing joints do not stretch the box; a clip with none gets a small default box.
    score2 = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert torch.allclose(compact_boxes(kp, score2, min_size=10), torch.tensor([[5.0, 15.0, 15.0, 25.0]]))
    assert torch.isfinite(compact_boxes(kp, torch.zeros_like(score))).all()
    torch.manual_seed(0)
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0]]).repeat(500, 1)
    sub = random_resized_boxes(boxes)
    wh = sub[:, 2:] - sub[:, :2]
    assert (sub[:, :2] >= -1e-4).all() and (sub[:, 2:] <= 100 + 1e-4).all()
    area = wh.prod(1) / 1e4
    assert area.min() > 0.4 and area.max() <= 1 + 1e-5


def test_pose_heatmap_module_modes() -> None:
    torch.manual_seed(0)
    mod = PoseHeatmap("coco17", "limb", size=32, test_size=40)
    x = torch.rand(2, 2, 4, 17, 3) * torch.tensor([640.0, 480.0, 1.0])
    assert mod.train()(x).shape == (2, len(get_layout("coco17").limbs), 4, 32, 32)
    ev = mod.eval()(x)
    assert ev.shape == (2, 17, 4, 40, 40)
    assert torch.equal(ev, mod(x))  # eval is deterministic
    assert PoseHeatmap("coco17", "single").eval()(x).shape == (2, 1, 4, 64, 64)
    with pytest.raises(ValueError):
        PoseHeatmap("coco17", "bones")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    kp, score = random_clip(6, h=32, w=32)
    for fn, args in ((joint_heatmaps, ()), (single_heatmaps, ()), (limb_heatmaps, (LIMBS,))):
        cpu = fn(kp, score, *args, size=(32, 32))
        gpu = fn(kp.cuda(), score.cuda(), *args, size=(32, 32))
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)  # both within 1e-5 of the formula


def test_compiled_kernels_draw_cpu_tensors(backend: str) -> None:
    kp, score = random_clip(8)
    assert (heatmap._compiled(kp, score) is not None) == (backend == "compiled")
    kp.requires_grad_(True)  # detached: no gradient reaches the keypoints on either path
    assert torch.equal(joint_heatmaps(kp, score, (20, 24)), joint_heatmaps(kp.detach(), score, (20, 24)))


def test_out_buffer_is_reused_and_overwritten() -> None:
    kp, score = random_clip(9)
    buf = torch.full((2 * 6 * 3 * 20 * 24,), 7.0)  # stale values must not survive
    hm = joint_heatmaps(kp, score, (20, 24), out=buf)
    assert hm.data_ptr() == buf.data_ptr()
    assert torch.equal(hm, joint_heatmaps(kp, score, (20, 24)))
    lbuf = torch.full((2 * len(LIMBS) * 3 * 20 * 24,), 7.0)
    lm = limb_heatmaps(kp, score, LIMBS, (20, 24), out=lbuf)
    assert lm.data_ptr() == lbuf.data_ptr() and torch.equal(lm, limb_heatmaps(kp, score, LIMBS, (20, 24)))
    with pytest.raises(ValueError, match="out must be"):
        joint_heatmaps(kp, score, (20, 24), out=torch.zeros(5))


def test_non_finite_scores_draw_nothing() -> None:
    """A NaN or infinite score at either end of a limb (or at a joint) draws nothing, on both paths."""
    kp, score = random_clip(10)
    clean = score.clone()
    score[0, 0, 0, 1] = float("nan")  # limbs (0, 1), (1, 2), (1, 5) of clip 0, person 0, frame 0
    score[0, 0, 1, 4] = float("inf")  # limbs (3, 4), (4, 5)
    clean[0, 0, 0, 1] = 0
    clean[0, 0, 1, 4] = 0
    assert torch.equal(joint_heatmaps(kp, score, (20, 24)), joint_heatmaps(kp, clean, (20, 24)))
    assert torch.equal(limb_heatmaps(kp, score, LIMBS, (20, 24)), limb_heatmaps(kp, clean, LIMBS, (20, 24)))


def test_limbs_outside_the_layout_are_refused() -> None:
    kp, score = random_clip(11)  # 6 joints
    with pytest.raises(ValueError, match="joints 0..5"):
        limb_heatmaps(kp, score, [(0, 6)], (20, 24))
    with pytest.raises(ValueError, match="got joint -1"):
        limb_heatmaps(kp, score, [(-1, 2)], (20, 24))


def test_kernels_step_aside_under_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    # dynamo fails inside the numba dispatcher (inductor, benchmarks/compile_models.py): while
    # compiling, the traceable torch path draws.
    kp, score = random_clip(9)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert heatmap._compiled(kp, score) is None

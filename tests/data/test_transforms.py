"""Exact-value tests of the keypoint transforms and their dict wrappers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skelact.data.transforms import (
    Align3D,
    Center3D,
    Compose,
    FormatFeatures,
    NormalizeAxes,
    NormalizeBBox,
    NormalizeImage,
    PadPersons,
    RandomAffine2D,
    RandomFlip,
    RandomRotate3D,
    UniformSample,
    affine_2d,
    align_3d,
    center_3d,
    format_features,
    hflip,
    joint_to_bone,
    motion,
    normalize_axes,
    normalize_by_bbox,
    normalize_by_image,
    partner_index,
    partner_offset,
    rotate_3d,
)
from skelact.skeleton import get_layout

PENN = get_layout("penn13")


def kp_of(points: list) -> np.ndarray:
    """[V, C] points -> [1, 1, V, C] float32."""
    return np.asarray(points, dtype=np.float32)[None, None]


def random_clip(m: int = 2, t: int = 6, v: int = 13, c: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(1, 100, size=(m, t, v, c)).astype(np.float32)
    score = rng.uniform(0.1, 1, size=(m, t, v)).astype(np.float32)
    kp[0, 1, 3] = 0  # a missing joint
    score[0, 1, 3] = 0
    return kp, score


# ----------------------------------------------------------------------------- pure functions


def test_normalize_by_image_exact() -> None:
    kp = kp_of([[0.5, 0.5], [100, 50], [200, 100], [0, 0]])
    out = normalize_by_image(kp, (100, 200))  # h=100, w=200
    np.testing.assert_allclose(out[0, 0], [[-0.995, -0.99], [0, 0], [1, 1], [0, 0]], atol=1e-6)
    assert out.dtype == np.float32
    assert kp[0, 0, 1, 0] == 100  # input untouched


def test_normalize_by_bbox_exact() -> None:
    # valid joints span x in [10, 30], y in [20, 60]: centre (20, 40), half longer side 20
    kp = kp_of([[10, 20], [30, 60], [20, 40], [0, 0], [500, 500]])
    score = np.array([[[1, 1, 1, 0, 0]]], dtype=np.float32)
    out = normalize_by_bbox(kp, score)
    np.testing.assert_allclose(out[0, 0], [[-0.5, -1], [0.5, 1], [0, 0], [0, 0], [0, 0]])
    # without score: non-zero joints are valid, so (500, 500) now counts: box x in [10, 500],
    # y in [20, 500]: centre (255, 260), half the longer side 245
    out = normalize_by_bbox(kp)
    np.testing.assert_allclose(out[0, 0], [[-1, -240 / 245], [-225 / 245, -200 / 245], [-235 / 245, -220 / 245],
                                           [0, 0], [1, 240 / 245]], rtol=1e-6)
    out = normalize_by_bbox(kp[:, :, :4])
    np.testing.assert_allclose(out[0, 0], [[-0.5, -1], [0.5, 1], [0, 0], [0, 0]])
    # a single valid point: centred, scale left alone
    np.testing.assert_allclose(normalize_by_bbox(kp_of([[3, 4], [0, 0]]))[0, 0], [[0, 0], [0, 0]])


def test_normalize_by_bbox_range_random() -> None:
    kp, score = random_clip()
    out = normalize_by_bbox(kp, score)
    assert np.abs(out).max() == pytest.approx(1.0, abs=1e-6)
    assert not out[0, 1, 3].any()


def test_normalize_axes_exact() -> None:
    # present joints span x in [1, 3], y in [-2, 6], z in [4, 4] (flat): each axis on its own
    kp = np.zeros((2, 2, 2, 3), dtype=np.float32)
    kp[0, 0] = [[1, -2, 4], [3, 6, 4]]
    kp[1, 1, 0] = [2, 2, 4]
    out = normalize_axes(kp)
    np.testing.assert_allclose(out[0, 0], [[-1, -1, 0], [1, 1, 0]])
    np.testing.assert_allclose(out[1, 1, 0], [0, 0, 0])
    assert not out[0, 1].any() and not out[1, 0].any() and not out[1, 1, 1].any()  # missing stay zero
    assert kp[0, 0, 1, 1] == 6  # input untouched
    assert not normalize_axes(np.zeros((1, 2, 3, 3), dtype=np.float32)).any()


def test_normalize_axes_ignores_position_and_per_axis_scale() -> None:
    kp, _ = random_clip(c=3)
    out = normalize_axes(kp)
    moved = np.where(kp != 0, kp * np.array([2.0, 0.5, 3.0], dtype=np.float32) + 7, 0)
    np.testing.assert_allclose(normalize_axes(moved), out, atol=1e-5)
    valid = out[kp.any(-1)]
    np.testing.assert_allclose(valid.min(0), -1, atol=1e-6)
    np.testing.assert_allclose(valid.max(0), 1, atol=1e-6)


def test_center_3d_exact() -> None:
    kp = np.zeros((2, 3, 3, 3), dtype=np.float32)
    kp[0, 1:, 1] = [1, 2, 3]  # root (joint 1) first present at frame 1
    kp[0, 2, 0] = [2, 2, 2]
    kp[1, 0, 2] = [1, 1, 1]
    out = center_3d(kp, root=1)
    np.testing.assert_allclose(out[0, 1, 1], [0, 0, 0])
    np.testing.assert_allclose(out[0, 2, 0], [1, 0, -1])
    np.testing.assert_allclose(out[1, 0, 2], [0, -1, -2])
    assert not out[0, 0].any()  # missing joints stay zero
    assert not out[1, 1:].any()


def test_align_3d_undoes_a_camera_rotation_exactly() -> None:
    """A body in its own frame (root at 0, hips to shoulders along y, shoulders along x), seen by a
    camera turned 70 deg about y and 20 deg about x and placed 3 m away: align_3d gives it back."""
    # joints: 0 root (mid-hip), 1 left shoulder, 2 right shoulder, 3 left hip, 4 right hip, 5 a hand
    body = np.array([[0, 0, 0], [0.2, 0.5, 0], [-0.2, 0.5, 0], [0.1, 0, 0], [-0.1, 0, 0], [0.3, 0.2, 0.4]])
    a, b = math.radians(70), math.radians(20)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    seen = body @ (rx @ ry).T + [0.5, -0.3, 3.0]
    kp = np.zeros((2, 3, 6, 3), np.float32)
    kp[0, 1:] = seen  # person 0 from frame 1; frame 0 is missing
    kp[1, 2] = seen + [1.0, 0, 0]  # a second person 1 m to the camera's x: the same one rotation
    kp[0, 2, 5] = 0  # a missing joint stays missing
    out = align_3d(kp, root=0, joints=[1, 2, 3, 4])
    np.testing.assert_allclose(out[0, 1], body, atol=1e-5)
    np.testing.assert_allclose(out[0, 2, :5], body[:5], atol=1e-5)
    assert not out[0, 0].any() and not out[0, 2, 5].any()
    np.testing.assert_allclose(out[1, 2] - out[0, 1], (rx @ ry).T @ [1.0, 0, 0] * np.ones((6, 1)), atol=1e-5)
    assert np.isclose(np.linalg.det(rx @ ry), 1.0)  # (the rotation undone is a proper one)
    # No frame with both shoulders and hips: only centred.
    partial = kp.copy()
    partial[0, :, 4] = 0
    np.testing.assert_array_equal(align_3d(partial, 0, [1, 2, 3, 4]), center_3d(partial, 0))
    s = {"keypoint": kp}
    np.testing.assert_array_equal(Align3D(0, [1, 2, 3, 4])(s, None)["keypoint"], out)


def test_align3d_needs_the_named_joints() -> None:
    from skelact.config import ConfigError, DataConfig
    from skelact.pipeline import build_pipeline
    from skelact.skeleton import layout_from_dict

    odd = layout_from_dict({"name": "odd", "joints": ["a", "b", "c"], "edges": [[0, 1], [1, 2]]})
    with pytest.raises(ConfigError, match="align3d needs joints named left_shoulder.*lacks left_shoulder"):
        build_pipeline(DataConfig(normalize="align3d"), odd, coord_dims=3, train=False)
    build_pipeline(DataConfig(normalize="align3d"), get_layout("ucla20"), coord_dims=3, train=False)


def test_joint_to_bone_exact() -> None:
    kp = kp_of([[1, 1], [2, 3], [5, 5]])
    bone = joint_to_bone(kp, [0, 0, 1])
    np.testing.assert_allclose(bone[0, 0], [[0, 0], [1, 2], [3, 2]])


def test_bone_of_root_is_zero() -> None:
    kp, _ = random_clip()
    bone = joint_to_bone(kp, PENN.parents)
    assert not bone[..., PENN.root, :].any()
    assert bone[..., 1, :].any()


def test_motion_exact() -> None:
    x = np.array([[[[0.0]], [[1.0]], [[3.0]], [[6.0]]]])  # [1, 4, 1, 1]
    np.testing.assert_allclose(motion(x)[0, :, 0, 0], [1, 2, 3, 0])
    kp, _ = random_clip()
    assert not motion(kp)[:, -1].any()


def test_partner_offset_exact() -> None:
    """Each joint minus the same joint of the nearest other person; zero where either is missing."""
    kp = np.zeros((3, 2, 2, 2), np.float32)  # M=3, T=2, V=2, C=2
    kp[0, :, 0], kp[0, :, 1] = [1, 1], [1, 2]  # person 0 around (1, 1.5)
    kp[1, :, 0], kp[1, :, 1] = [4, 1], [4, 2]  # person 1 three to the right
    kp[2, :, 0], kp[2, :, 1] = [20, 1], [20, 2]  # person 2 far away
    kp[1, 1, 1] = 0  # person 1's second joint missing in frame 1
    assert partner_index(kp).tolist() == [1, 0, 1]
    out = partner_offset(kp)
    np.testing.assert_array_equal(out[0, 0], [[-3, 0], [-3, 0]])
    np.testing.assert_array_equal(out[0, 1], [[-3, 0], [0, 0]])  # the partner's joint is missing
    np.testing.assert_array_equal(out[1, 1], [[3, 0], [0, 0]])  # its own joint is missing
    np.testing.assert_array_equal(out[2, 0], [[16, 0], [16, 0]])
    assert out.dtype == np.float32


def test_partner_offset_without_a_partner_is_zero() -> None:
    """One person, or two never seen in the same frame: no partner, all zero."""
    one = np.ones((1, 4, 3, 2), np.float32)
    assert partner_index(one).tolist() == [-1] and not partner_offset(one).any()
    two = np.ones((2, 4, 3, 2), np.float32)
    two[0, 2:], two[1, :2] = 0, 0
    assert partner_index(two).tolist() == [-1, -1] and not partner_offset(two).any()


def test_hflip_exact_and_involution() -> None:
    kp = kp_of([[1, 5], [2, 6], [3, 7]])
    kp = np.concatenate([kp, kp_of([[4, 5], [0, 0], [1, 1]])], axis=1)  # frame 1 has a missing joint
    score = np.array([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]], dtype=np.float32)
    flip = [0, 2, 1]
    fk, fs = hflip(kp, score, flip, center_x=10)
    np.testing.assert_allclose(fk[0, 0], [[19, 5], [17, 7], [18, 6]])
    np.testing.assert_allclose(fk[0, 1], [[16, 5], [19, 1], [0, 0]])
    np.testing.assert_allclose(fs[0, 0], [0.1, 0.3, 0.2])
    bk, bs = hflip(fk, fs, flip, center_x=10)
    np.testing.assert_allclose(bk, kp)
    np.testing.assert_allclose(bs, score)


def test_hflip_twice_identity_layout() -> None:
    kp, score = random_clip()
    fk, fs = hflip(*hflip(kp, score, PENN.flip_index), PENN.flip_index)
    np.testing.assert_allclose(fk, kp)
    np.testing.assert_array_equal(fs, score)


def test_affine_2d_exact() -> None:
    kp = kp_of([[1, 0], [0, 0], [0, 2]])
    out = affine_2d(kp, angle=math.pi / 2, scale=2.0, shift=(1, 1))
    # (1, 0) -> rotate (0, 1) -> scale (0, 2) -> shift (1, 3); (0, 2) -> (-2, 0) -> (-4, 0) -> (-3, 1)
    np.testing.assert_allclose(out[0, 0], [[1, 3], [0, 0], [-3, 1]], atol=1e-6)
    np.testing.assert_allclose(affine_2d(kp), kp)


def test_rotate_3d_exact() -> None:
    kp = kp_of([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    out = rotate_3d(kp, angle_x=math.pi / 2)  # y -> z
    np.testing.assert_allclose(out[0, 0], [[0, 0, 1], [1, 0, 0], [0, 0, 0]], atol=1e-6)
    out = rotate_3d(kp, angle_y=math.pi / 2)  # x -> -z
    np.testing.assert_allclose(out[0, 0], [[0, 1, 0], [0, 0, -1], [0, 0, 0]], atol=1e-6)
    # x first, then y: (0, 1, 0) -> (0, 0, 1) -> (1, 0, 0)
    out = rotate_3d(kp, angle_x=math.pi / 2, angle_y=math.pi / 2)
    np.testing.assert_allclose(out[0, 0, 0], [1, 0, 0], atol=1e-6)


def test_format_features_channels_and_order() -> None:
    kp, score = random_clip()
    out = format_features(kp, score, "penn13", ("joint", "bone", "joint_motion", "bone_motion"))
    assert out.shape == (2, 6, 13, 9) and out.dtype == np.float32
    bone = joint_to_bone(kp, PENN.parents)
    np.testing.assert_allclose(out[..., 0:2], kp)
    np.testing.assert_allclose(out[..., 2:4], bone)
    np.testing.assert_allclose(out[..., 4:6], motion(kp))
    np.testing.assert_allclose(out[..., 6:8], motion(bone))
    np.testing.assert_allclose(out[..., 8], score)
    assert format_features(kp, score, "penn13", ("bone",), with_score=False).shape[-1] == 2
    assert format_features(kp, None, "penn13", ("joint",)).shape[-1] == 2
    with pytest.raises(ValueError, match="unknown feature"):
        format_features(kp, score, "penn13", ("jiont",))
    with pytest.raises(ValueError, match="joints"):
        format_features(kp, score, "coco17")


# ----------------------------------------------------------------------------- wrappers


def sample_of(m: int = 1, t: int = 30, c: int = 2, score: bool = True) -> dict:
    kp, sc = random_clip(m, t, 13, c)
    s = {"keypoint": kp, "label": 3, "frame_dir": "x", "total_frames": t, "img_shape": (100, 200)}
    if score:
        s["keypoint_score"] = sc
    return s


def test_pipeline_train_shapes() -> None:
    pipe = Compose([UniformSample(8), PadPersons(2), NormalizeImage(), RandomFlip("penn13"),
                    RandomAffine2D(0.3, (0.9, 1.1), 0.1), FormatFeatures("penn13", ("joint", "bone"))])
    out = pipe(sample_of(), np.random.default_rng(0))
    assert out["inputs"].shape == (1, 2, 8, 13, 5) and out["inputs"].dtype == np.float32
    assert not out["inputs"][0, 1].any()  # padded person
    assert out["label"] == 3
    assert "Compose(UniformSample(" in repr(pipe)


def test_pipeline_test_views_and_motion_per_view() -> None:
    s = sample_of(t=30)
    pipe = Compose([UniformSample(5, num_clips=3, train=False), FormatFeatures("penn13", ("joint_motion",))])
    out = pipe(s, np.random.default_rng(0))
    x = out["inputs"]
    assert x.shape == (3, 1, 5, 13, 3)
    assert not x[:, :, -1, :, :2].any()  # motion is zero at the end of every view
    inds = out["frame_inds"].reshape(3, 5)
    np.testing.assert_allclose(x[1, 0, 0, :, :2], s["keypoint"][0, inds[1, 1]] - s["keypoint"][0, inds[1, 0]])


def test_heatmap_style_pipeline_keeps_pixels() -> None:
    s = sample_of(t=12)
    out = Compose([UniformSample(12, train=False), PadPersons(1), FormatFeatures("penn13")])(
        s, np.random.default_rng(0))
    np.testing.assert_allclose(out["inputs"][0, 0, ..., :2], s["keypoint"][0])
    np.testing.assert_allclose(out["inputs"][0, 0, ..., 2], s["keypoint_score"][0])


def test_random_flip_probability_and_pixel_centre() -> None:
    s = sample_of(t=4)
    assert RandomFlip("penn13", p=0.0)(s, np.random.default_rng(0)) is s
    out = RandomFlip("penn13", p=1.0, center_x=None)(s, np.random.default_rng(0))
    kp, _ = hflip(s["keypoint"], s["keypoint_score"], PENN.flip_index, 100.0)
    np.testing.assert_allclose(out["keypoint"], kp)


def test_normalize_image_needs_img_shape() -> None:
    s = sample_of()
    del s["img_shape"]
    with pytest.raises(ValueError, match="'x'"):
        NormalizeImage()(s, np.random.default_rng(0))
    out = NormalizeBBox()(s, np.random.default_rng(0))
    assert np.abs(out["keypoint"]).max() == pytest.approx(1.0, abs=1e-6)


def test_3d_pipeline() -> None:
    s = sample_of(m=1, t=10, c=3, score=False)
    pipe = Compose([UniformSample(4), Center3D(PENN.root), RandomRotate3D(0.3), PadPersons(2),
                    FormatFeatures("penn13", ("joint", "bone"))])
    out = pipe(s, np.random.default_rng(0))
    assert out["inputs"].shape == (1, 2, 4, 13, 6)


def test_random_wrappers_reproducible() -> None:
    s = sample_of()
    pipe = Compose([UniformSample(8), RandomFlip("penn13"), RandomAffine2D(0.5, (0.8, 1.2), 0.2),
                    FormatFeatures("penn13")])
    a = pipe(s, np.random.default_rng(5))["inputs"]
    b = pipe(s, np.random.default_rng(5))["inputs"]
    c = pipe(s, np.random.default_rng(6))["inputs"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_wrappers_apply_their_draws_exactly() -> None:
    s = sample_of(t=4)
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    out = RandomAffine2D(0.5, (0.8, 1.2), 0.2)(s, rng)
    angle, scale = twin.uniform(-0.5, 0.5), twin.uniform(0.8, 1.2)
    shift = twin.uniform(-0.2, 0.2, size=2)
    np.testing.assert_array_equal(out["keypoint"], affine_2d(s["keypoint"], angle, scale, shift))
    assert out["keypoint_score"] is s["keypoint_score"]

    s3 = sample_of(t=4, c=3, score=False)
    out = RandomRotate3D(0.3)(s3, rng)
    ax, ay = twin.uniform(-0.3, 0.3, size=2)
    np.testing.assert_array_equal(out["keypoint"], rotate_3d(s3["keypoint"], ax, ay))
    assert not np.allclose(out["keypoint"], s3["keypoint"])
    s3["keypoint"][0, 1, 2] = 0  # a missing joint stays missing after the scale
    out = RandomRotate3D(0.3, (0.5, 1.5))(s3, rng)
    ax, ay = twin.uniform(-0.3, 0.3, size=2)
    scale = np.float32(twin.uniform(0.5, 1.5))
    np.testing.assert_array_equal(out["keypoint"], rotate_3d(s3["keypoint"], ax, ay) * scale)
    assert not out["keypoint"][0, 1, 2].any()

    out = RandomFlip("penn13", p=0.5)(s, rng)
    flipped = twin.random() < 0.5
    expect = hflip(s["keypoint"], s["keypoint_score"], PENN.flip_index)[0] if flipped else s["keypoint"]
    np.testing.assert_array_equal(out["keypoint"], expect)


def test_center_and_bbox_wrappers() -> None:
    s = sample_of(t=3, c=3, score=False)
    np.testing.assert_array_equal(Center3D(2)(s, None)["keypoint"], center_3d(s["keypoint"], 2))
    s = sample_of(t=3)
    s["keypoint_score"] = np.zeros_like(s["keypoint_score"])
    s["keypoint_score"][0, 0, 0] = 1  # only one valid joint by score
    assert not NormalizeBBox()(s, None)["keypoint"].any()  # one point -> centred at zero, the rest invalid
    np.testing.assert_array_equal(NormalizeBBox(use_score=False)(s, None)["keypoint"], normalize_by_bbox(s["keypoint"]))
    np.testing.assert_array_equal(NormalizeAxes()(s, None)["keypoint"], normalize_axes(s["keypoint"]))

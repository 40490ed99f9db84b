"""skelact.models.ensemble: the streams' features computed in the model equal the data pipeline's, and
the ensemble is the weighted sum of its networks' logits."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import TINY_MODEL

from skelact.config import load_config
from skelact.data.transforms import FormatFeatures
from skelact.engine.builders import build_pipeline
from skelact.models.ensemble import StreamSpec, create_ensemble, stream_features
from skelact.skeleton import get_layout, list_layouts

REPO = Path(__file__).resolve().parents[2]
FEATURE_SETS = [("joint",), ("bone",), ("joint_motion",), ("bone_motion",), ("partner",), ("bone", "joint_motion"),
                ("joint", "bone", "joint_motion", "bone_motion"), ("joint", "partner")]


def _views(inputs: np.ndarray) -> torch.Tensor:
    """[K, M, T, V, C] pipeline output as the model receives it: the views as batch items (N = K)."""
    return torch.from_numpy(inputs)


def _check_equal(layout: object, joint_inputs: np.ndarray, make: object, coord_dims: int, score: bool) -> None:
    """For every feature set, ``make(features)`` (the pipeline's input) equals the in-model features."""
    x = _views(joint_inputs)
    parents = torch.as_tensor(get_layout(layout).parents, dtype=torch.int64)
    for features in FEATURE_SETS:
        want = _views(make(features))
        got = stream_features(x, parents, coord_dims, score, features)
        assert got.dtype == want.dtype and got.shape == want.shape, features
        assert torch.equal(got, want), features  # exactly, not approximately


@pytest.mark.parametrize("layout", list_layouts())
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_features_equal_format_features_on_random_clips(layout: str, dims: int, dtype: type) -> None:
    """Every layout, 2D with scores and 3D without, missing joints (zeros), 3 test views per clip."""
    v = get_layout(layout).num_joints
    rng = np.random.default_rng(dims * 100 + v)
    kp = (rng.normal(size=(2, 12, v, dims)) * 50).astype(dtype)
    kp[rng.random((2, 12, v)) < 0.2] = 0  # missing joints
    sample = {"keypoint": kp, "num_clips": 3}
    if dims == 2:
        sample["keypoint_score"] = rng.random((2, 12, v)).astype(np.float32)

    def make(features: tuple[str, ...]) -> np.ndarray:
        return FormatFeatures(layout, features, with_score=True)(sample, rng)["inputs"]

    _check_equal(layout, make(("joint",)), make, dims, dims == 2)


@pytest.mark.parametrize("persons", [1, 3, 4])
def test_partner_features_equal_with_any_number_of_people(persons: int) -> None:
    """The partner feature in the model equals the pipeline's with 1, 3 and 4 people, one of them
    gone for half the clip and one never beside another (no partner)."""
    rng = np.random.default_rng(persons)
    kp = (rng.normal(size=(persons, 12, 17, 2)) * 50).astype(np.float32)
    kp[rng.random(kp.shape[:3]) < 0.2] = 0
    if persons > 2:
        kp[1, :6] = 0  # gone for half the clip
        kp[2, 6:] = 0
    sample = {"keypoint": kp, "num_clips": 2}

    def make(features: tuple[str, ...]) -> np.ndarray:
        return FormatFeatures("coco17", features, with_score=False)(sample, rng)["inputs"]

    _check_equal("coco17", make(("joint",)), make, 2, False)


def _subset(src: Path, pattern: str, count: int, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in sorted(src.glob(pattern))[:count]:
        shutil.copy(f, dest / f.name)
    return dest


@pytest.mark.parametrize("recipe,which", [("penn_kpc3d.yaml", "penn"), ("ucla_kpc3d.yaml", "ucla")])
@pytest.mark.parametrize("train", [False, True])
def test_stream_features_equal_the_recipe_pipeline_on_real_clips(data_root: Path, tmp_path: Path, recipe: str,
                                                                 which: str, train: bool) -> None:
    """Real Penn Action (2D, scores, normalize: image) and NW-UCLA (3D, center3d) clips through the
    recipes' whole pipelines: test views, and training with augmentation (the same seeded draws)."""
    from skelact.data.convert import convert_penn, convert_ucla

    if which == "penn":
        data, _ = convert_penn(_subset(data_root / "penn_action" / "labels", "*.mat", 12, tmp_path / "labels"))
    else:
        data, _ = convert_ucla(_subset(data_root / "nwucla" / "all_sqe", "*.json", 12, tmp_path / "all_sqe"))
    cfg = load_config(REPO / "configs" / recipe).data
    layout = get_layout(data["layout"])
    dims = data["annotations"][0]["keypoint"].shape[-1]
    score = cfg.with_score and "keypoint_score" in data["annotations"][0]
    for ann in data["annotations"]:
        def make(features: tuple[str, ...], ann: dict = ann) -> np.ndarray:
            pipe = build_pipeline(dataclasses.replace(cfg, features=list(features)), layout, dims, train=train,
                                  num_clips=1 if train else cfg.num_clips_test)
            return pipe(dict(ann), np.random.default_rng(7))["inputs"]

        _check_equal(layout, make(("joint",)), make, dims, score)


def test_ensemble_is_the_weighted_sum_and_skips_weight_zero() -> None:
    torch.manual_seed(0)
    layout = get_layout("penn13")
    specs = [StreamSpec("j", ("joint",), 2.0), StreamSpec("b", ("bone",), 0.0),
             StreamSpec("jm", ("joint_motion",), 0.5)]
    model = create_ensemble(TINY_MODEL["name"], 4, layout, 3, True, specs, **TINY_MODEL["kwargs"]).eval()
    calls = {s.name: 0 for s in specs}
    for s in specs:
        model.streams[s.name].register_forward_hook(lambda *_, n=s.name: calls.__setitem__(n, calls[n] + 1))
    x = torch.randn(3, 1, 16, 13, 3)
    parents = torch.as_tensor(layout.parents)
    with torch.no_grad():
        want = (2.0 * model.streams["j"](stream_features(x, parents, 2, True, ("joint",)))
                + 0.5 * model.streams["jm"](stream_features(x, parents, 2, True, ("joint_motion",))))
        calls.update(j=0, jm=0)
        got = model(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert calls == {"j": 1, "b": 0, "jm": 1}  # the stream of weight 0 is not run
    keys = list(model.state_dict())  # each network's weights under its name; the parents are not saved
    assert keys and all(k.startswith(("streams.j.", "streams.b.", "streams.jm.")) for k in keys)
    assert model.stream_logits(x).shape == (3, 3, 4)  # every stream, weight or not


def test_heatmap_models_make_no_ensemble() -> None:
    with pytest.raises(ValueError, match="heatmaps"):
        create_ensemble("poseconv3d_c3d", 4, get_layout("coco17"), 3, True, [StreamSpec("j", ("joint",), 1.0)])

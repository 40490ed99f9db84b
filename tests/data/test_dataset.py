"""PackedClips (build, access, cache files) and SkeletonDataset (shapes, randomness, workers)."""

from __future__ import annotations

import copy
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.data.dataset import PackedClips, SkeletonDataset, join_clips
from skelact.data.transforms import (
    Compose,
    FormatFeatures,
    NormalizeBBox,
    NormalizeImage,
    PadPersons,
    RandomFlip,
    UniformSample,
)

V = 13


def make_data(n: int = 6, c: int = 2, seed: int = 0) -> dict:
    """Synthetic PYSKL dict: clips with different M and T; every other clip lacks img_shape."""
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(n):
        m, t = 1 + i % 3, 5 + 7 * i
        ann = {
            "frame_dir": f"clip{i:03d}",
            "total_frames": t,
            "label": i % 4,
            "keypoint": rng.uniform(1, 100, size=(m, t, V, c)).astype(np.float32),
        }
        if c == 2:
            ann["keypoint_score"] = rng.uniform(0, 1, size=(m, t, V)).astype(np.float32)
        if i % 2 == 0:
            ann["img_shape"] = (120, 160)
        anns.append(ann)
    names = [a["frame_dir"] for a in anns]
    return {"split": {"train": names[::2], "val": names[1::2]}, "annotations": anns,
            "classes": ["a", "b", "c", "d"], "layout": "penn13"}


def assert_same_clips(packed: PackedClips, data: dict) -> None:
    assert len(packed) == len(data["annotations"])
    for i, ann in enumerate(data["annotations"]):
        s = packed.clip(i)
        np.testing.assert_array_equal(s["keypoint"], ann["keypoint"])
        if "keypoint_score" in ann:
            np.testing.assert_array_equal(s["keypoint_score"], ann["keypoint_score"])
        else:
            assert "keypoint_score" not in s
        assert s["label"] == ann["label"] and s["frame_dir"] == ann["frame_dir"]
        assert s["total_frames"] == ann["total_frames"]
        assert s.get("img_shape") == ann.get("img_shape")


@pytest.fixture()
def data() -> dict:
    return make_data()


@pytest.fixture()
def packed(data: dict) -> PackedClips:
    return PackedClips.from_annotations(copy.deepcopy(data))


def test_round_trip(data: dict, packed: PackedClips) -> None:
    assert_same_clips(packed, data)
    rows = sum(a["keypoint"].shape[0] * a["keypoint"].shape[1] for a in data["annotations"])
    assert packed.keypoint.shape == (rows, V, 2) and packed.keypoint.dtype == np.float32
    assert packed.score.shape == (rows, V)
    assert packed.offsets.dtype == np.int64 and packed.offsets[-1] == rows
    assert packed.classes == ["a", "b", "c", "d"] and packed.layout == "penn13"
    assert packed.nbytes == packed.keypoint.nbytes + packed.score.nbytes


def test_release_pops_arrays(data: dict) -> None:
    work = copy.deepcopy(data)
    PackedClips.from_annotations(work)
    assert all("keypoint" not in a and "keypoint_score" not in a for a in work["annotations"])
    work = copy.deepcopy(data)
    PackedClips.from_annotations(work, release=False)
    assert all("keypoint" in a for a in work["annotations"])


def test_clip_views_are_read_only(packed: PackedClips) -> None:
    s = packed.clip(1)
    with pytest.raises(ValueError):
        s["keypoint"][0, 0, 0, 0] = 1


def test_3d_without_score() -> None:
    data = make_data(c=3)
    packed = PackedClips.from_annotations(copy.deepcopy(data))
    assert packed.score is None
    assert_same_clips(packed, data)


def test_mismatched_clips_are_named(data: dict) -> None:
    bad = copy.deepcopy(data)
    bad["annotations"][3]["keypoint"] = np.zeros((1, 5, V + 1, 2), np.float32)
    with pytest.raises(ValueError, match="clip003"):
        PackedClips.from_annotations(bad)
    bad = copy.deepcopy(data)
    del bad["annotations"][2]["keypoint_score"]
    with pytest.raises(ValueError, match="clip002"):
        PackedClips.from_annotations(bad)
    bad = copy.deepcopy(data)
    bad["split"]["val"].append("nope")
    with pytest.raises(ValueError, match="nope"):
        PackedClips.from_annotations(bad)
    assert "keypoint" in bad["annotations"][0]  # failed before releasing anything


def test_indices(packed: PackedClips) -> None:
    np.testing.assert_array_equal(packed.indices("train"), [0, 2, 4])
    np.testing.assert_array_equal(packed.indices("val"), [1, 3, 5])
    with pytest.raises(KeyError, match="xsub_val"):
        packed.indices("xsub_val")


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load(tmp_path: Path, data: dict, packed: PackedClips, mmap: bool) -> None:
    path = packed.save(tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temporary left behind
    loaded = PackedClips.load(path, mmap=mmap)
    assert_same_clips(loaded, data)
    assert isinstance(loaded.keypoint, np.memmap) == mmap
    np.testing.assert_array_equal(loaded.indices("val"), packed.indices("val"))
    assert loaded.classes == packed.classes and loaded.layout == packed.layout
    with pytest.raises(FileExistsError):
        packed.save(path)
    packed.save(path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_mmap_store_pickles_as_its_folder(tmp_path: Path, data: dict, packed: PackedClips) -> None:
    loaded = PackedClips.load(packed.save(tmp_path / "cache"), mmap=True)
    blob = pickle.dumps(loaded)
    assert len(blob) < 1000
    assert_same_clips(pickle.loads(blob), data)
    assert_same_clips(pickle.loads(pickle.dumps(packed)), data)  # in-memory store: full copy


def test_load_rejects_non_cache(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PackedClips.load(tmp_path)


def test_from_pickle_cache(tmp_path: Path, data: dict) -> None:
    from skelact.data.io import save_annotations

    pkl = save_annotations(copy.deepcopy(data), tmp_path / "ann.pkl")
    first = PackedClips.from_pickle(pkl, cache=tmp_path / "packed")
    assert_same_clips(first, data)
    again = PackedClips.from_pickle(pkl, cache=tmp_path / "packed")
    assert isinstance(again.keypoint, np.memmap)  # served from the cache
    assert_same_clips(again, data)
    # Label bounds asked for now are checked on the cached store too, as load_annotations would.
    from skelact.data.io import AnnotationError

    del data["classes"]
    pkl = save_annotations(copy.deepcopy(data), tmp_path / "nocls.pkl")
    PackedClips.from_pickle(pkl, cache=tmp_path / "nocls")
    with pytest.raises(AnnotationError, match=r"nocls\.pkl: clip 'clip002': 'label' 2 is out of range for 2 classes"):
        PackedClips.from_pickle(pkl, cache=tmp_path / "nocls", num_classes=2)
    assert len(PackedClips.from_pickle(pkl, cache=tmp_path / "nocls", num_classes=4)) == len(data["annotations"])
    # A changed pickle (size / mtime) makes the cache stale: it is rebuilt, not served.
    smaller = make_data(n=4, seed=1)
    pkl = save_annotations(copy.deepcopy(smaller), tmp_path / "ann.pkl", force=True)
    rebuilt = PackedClips.from_pickle(pkl, cache=tmp_path / "packed")
    assert_same_clips(rebuilt, smaller)
    assert_same_clips(PackedClips.load(tmp_path / "packed"), smaller)


def pipeline(train: bool, num_clips: int = 1) -> Compose:
    steps = [UniformSample(8, num_clips, train), PadPersons(2), NormalizeBBox()]
    if train:
        steps.append(RandomFlip("penn13"))
    return Compose([*steps, FormatFeatures("penn13", ("joint", "bone"))])


def test_dataset_shapes(packed: PackedClips) -> None:
    ds = SkeletonDataset(packed, "train", pipeline(True), train=True)
    assert len(ds) == 3
    x, y = ds[1]
    assert x.shape == (2, 8, V, 5) and x.dtype == torch.float32
    assert y == packed.labels[2]
    np.testing.assert_array_equal(ds.labels, packed.labels[[0, 2, 4]])
    ds = SkeletonDataset(packed, packed.indices("val"), pipeline(False, 3), train=False)
    x, y = ds[0]
    assert x.shape == (3, 2, 8, V, 5)
    # one test view keeps its K axis
    x, _ = SkeletonDataset(packed, [0], pipeline(False), train=False)[0]
    assert x.shape == (1, 2, 8, V, 5)


def test_dataset_randomness(packed: PackedClips) -> None:
    ds = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, seed=1)
    a = [ds[i][0] for i in range(len(ds))]
    b = [ds[i][0] for i in range(len(ds))]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    ds.set_epoch(1)
    c = [ds[i][0] for i in range(len(ds))]
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    other = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, seed=2)
    assert not all(torch.equal(p, other[i][0]) for i, p in enumerate(a))
    # test mode is deterministic whatever the epoch
    dt = SkeletonDataset(packed, [3], pipeline(False, 2), train=False)
    first = dt[0][0]
    dt.set_epoch(5)
    assert torch.equal(first, dt[0][0])


def test_dataloader_two_workers(packed: PackedClips) -> None:
    ds = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(3, 2, 8, V, 5)] * 2
    x_all = torch.cat([x for x, _ in batches])
    expected = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(x_all, expected)  # same as in-process: streams depend on (seed, epoch, clip)


def test_join_clips_exact(packed: PackedClips) -> None:
    a, b = packed.clip(0), packed.clip(3)  # a: 1 person, 5 frames, 120x160; b: 1 person, 26 frames, no image size
    b["img_shape"] = (60, 40)
    rng = np.random.default_rng(0)
    ref = np.random.default_rng(0)
    f = ref.uniform(0.2, 0.8)
    na, nb = max(1, round(f * 5)), max(1, round((1 - f) * 26))
    sa, sb = int(ref.integers(0, 5 - na + 1)), int(ref.integers(0, 26 - nb + 1))
    j, share = join_clips(a, b, rng)
    assert share == na / (na + nb) and j["total_frames"] == na + nb
    assert j["label"] == a["label"] and j["frame_dir"] == a["frame_dir"] and j["img_shape"] == (120, 160)
    np.testing.assert_array_equal(j["keypoint"][:, :na], a["keypoint"][:, sa:sa + na])
    # b's pixels rescaled to a's image: x by 160 / 40, y by 120 / 60
    np.testing.assert_allclose(j["keypoint"][:, na:], b["keypoint"][:, sb:sb + nb] * np.array([4.0, 2.0]), rtol=1e-6)
    np.testing.assert_array_equal(j["keypoint_score"][:, na:], b["keypoint_score"][:, sb:sb + nb])


def test_join_clips_pads_persons(packed: PackedClips) -> None:
    a, b = packed.clip(0), packed.clip(2)  # 1 and 3 persons
    j, share = join_clips(a, b, np.random.default_rng(1))
    na = round(share * j["total_frames"])
    assert j["keypoint"].shape[:2] == (3, j["total_frames"])
    assert not j["keypoint"][1:, :na].any() and not j["keypoint_score"][1:, :na].any()


def test_dataset_join_soft_targets(packed: PackedClips) -> None:
    ds = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, join=0.5, num_classes=4)
    targets = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        targets += [ds[i][1] for i in range(len(ds))]
    targets = torch.stack(targets)
    assert targets.shape == (24, 4) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(1), torch.ones(24))
    own = torch.from_numpy(np.tile(packed.labels, 4))
    assert bool((targets[torch.arange(24), own] > 0).all())  # the clip's own class always has a share
    joined = (targets > 0).sum(1) == 2  # some items have a second class (never the same one)
    assert 4 < int(joined.sum()) < 20
    x, _ = ds[0]
    assert x.shape == (2, 8, V, 5)
    with pytest.raises(ValueError, match="num_classes"):
        SkeletonDataset(packed, "train", pipeline(True), train=True, join=0.5)


@pytest.mark.skipif(importlib.util.find_spec("skelact.data.convert.penn") is None,
                    reason="Penn Action converter not available")
def test_penn_action_packed_pipeline(data_root: Path) -> None:
    from skelact.data.convert.penn import convert_penn

    data, _ = convert_penn(data_root / "penn_action")
    packed = PackedClips.from_annotations(data)
    assert len(packed) == 2326 and packed.layout == "penn13"
    assert len(packed.indices("train")) == 1258 and len(packed.indices("test")) == 1068
    feats = ("joint", "bone", "joint_motion")
    train = SkeletonDataset(packed, "train", Compose([
        UniformSample(32), PadPersons(1), NormalizeImage(), RandomFlip("penn13"),
        FormatFeatures("penn13", feats)]), train=True)
    test = SkeletonDataset(packed, "test", Compose([
        UniformSample(32, num_clips=2, train=False), PadPersons(1), NormalizeImage(),
        FormatFeatures("penn13", feats)]), train=False)
    for ds, shape in ((train, (1, 32, 13, 7)), (test, (2, 1, 32, 13, 7))):
        for i in (0, len(ds) // 2, len(ds) - 1):
            x, y = ds[i]
            assert tuple(x.shape) == shape and torch.isfinite(x).all()
            assert 0 <= y < 15
            assert x[..., :2].abs().max() <= 1.0 + 1e-5


def test_dataset_unknown_items_have_uniform_targets(packed: PackedClips) -> None:
    """``unknown``: a share of the items are clips of ``outside`` with a uniform target; with ``join``
    an in-class clip may be followed by an outside part (its share spread over every class)."""
    outside = PackedClips.from_annotations(make_data(n=3, seed=5))
    ds = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, num_classes=4,
                         outside=outside, unknown=0.5)
    targets = []
    for epoch in range(20):
        ds.set_epoch(epoch)
        targets += [ds[i][1] for i in range(len(ds))]
    targets = torch.stack(targets)  # [120, 4]
    torch.testing.assert_close(targets.sum(1), torch.ones(len(targets)))
    uniform = (targets == 0.25).all(1)
    one_hot = (targets == 1).any(1)
    assert 40 < int(uniform.sum()) < 80 and int(uniform.sum()) + int(one_hot.sum()) == len(targets)  # no join
    joined = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, join=1.0, num_classes=4,
                             outside=outside, unknown=0.5)
    soft = torch.stack([joined[i][1] for i in range(len(joined))])
    torch.testing.assert_close(soft.sum(1), torch.ones(len(soft)))
    # Every item is joined: an outside part adds an equal share to all four classes, so the smallest share is > 0.
    part_outside = soft.min(1).values > 0
    assert 0 < int(part_outside.sum()) < len(soft)
    with pytest.raises(ValueError, match="outside"):
        SkeletonDataset(packed, "train", pipeline(True), train=True, num_classes=4, unknown=0.5)
    with pytest.raises(ValueError, match="num_classes"):
        SkeletonDataset(packed, "train", pipeline(True), train=True, outside=outside, unknown=0.5)


def test_dataset_without_unknown_draws_as_before(packed: PackedClips) -> None:
    """``unknown=0`` with an outside store given draws exactly what a dataset without one draws."""
    outside = PackedClips.from_annotations(make_data(n=3, seed=5))
    plain = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, join=0.5, num_classes=4)
    same = SkeletonDataset(packed, np.arange(len(packed)), pipeline(True), train=True, join=0.5, num_classes=4,
                           outside=outside, unknown=0.0)
    for i in range(len(plain)):
        (a, ya), (b, yb) = plain[i], same[i]
        assert torch.equal(a, b) and torch.equal(ya, yb)

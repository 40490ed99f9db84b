"""The model shipped in the package: verified on load, and accurate on real Penn Action test clips."""

from __future__ import annotations

import numpy as np

from skelact.data.convert.penn import convert_penn
from skelact.inference import load_predictor
from skelact.models.weights import get_weights, list_pretrained, pretrained_info
from skelact.skeleton import COCO17_TO_PENN13


def test_shipped_model_is_registered_and_verified():
    assert "penn_kpc3d" in list_pretrained()
    info = pretrained_info("penn_kpc3d")
    assert info.layout == "penn13" and len(info.classes) == 15
    path = get_weights("penn_kpc3d")  # checks the sha256
    assert path.stat().st_size < 8 * 2**20  # a few MB


def test_shipped_pretrained_start_is_registered_and_verified():
    """``--init pretrain_kpc3d``: a four-stream kpc3d ensemble on the penn13 joints, with a score channel (2D
    data of any layout that names them maps onto it), a network per stream for ``train --init`` to start."""
    from skelact.checkpoint import Checkpoint

    info = pretrained_info("pretrain_kpc3d")
    assert info.layout == "penn13" and len(info.classes) == 31 and info.model == "kpc3d"
    assert {c.split(":")[0] for c in info.classes} == {"penn", "ucla", "ut"}
    ckpt = Checkpoint.load(get_weights("pretrain_kpc3d"))  # checks the sha256
    assert ckpt.classes == list(info.classes) and ckpt.in_channels == 3 and ckpt.train is None
    streams = ckpt.config.model.streams
    assert [(s.name, s.features) for s in streams] == [("j", ["joint"]), ("b", ["bone"]), ("jm", ["joint_motion"]),
                                                       ("bm", ["bone_motion"])]


def test_shipped_model_on_real_penn_test_clips(data_root):
    data, _ = convert_penn(data_root / "penn_action")
    model = load_predictor()  # the default shipped model
    by_name = {a["frame_dir"]: a for a in data["annotations"]}
    # Every 20th test clip (54 clips over all classes), 2 views each to keep the test quick.
    names = data["split"]["test"][::20]
    correct = 0
    for name in names:
        ann = by_name[name]
        pred = model.predict_clip(ann, topk=5, num_clips=2)
        assert abs(float(np.sum(pred.probs)) - 1.0) < 1e-4
        correct += pred.topk[0][0] == data["classes"][ann["label"]]
    # 97.1 % over the full test split with 10 views (BENCHMARKS.md); a broken file or pipeline is far below.
    assert correct / len(names) >= 0.9, f"{correct}/{len(names)}"


def test_shipped_model_takes_coco17_input(data_root):
    """A penn13 clip written as COCO-17 (as MoveNet gives it) is mapped back and gets the same answer."""
    data, _ = convert_penn(data_root / "penn_action")
    ann = next(a for a in data["annotations"] if a["frame_dir"] == data["split"]["test"][0])
    m, t, _, c = ann["keypoint"].shape
    coco = dict(ann, keypoint=np.zeros((m, t, 17, c), np.float32), keypoint_score=np.zeros((m, t, 17), np.float32))
    coco["keypoint"][:, :, list(COCO17_TO_PENN13)] = ann["keypoint"]
    coco["keypoint_score"][:, :, list(COCO17_TO_PENN13)] = ann["keypoint_score"]
    model = load_predictor("penn_kpc3d")
    direct = model.predict_clip(ann, num_clips=2)
    mapped = model.predict_clip(coco, num_clips=2, layout="coco17")
    np.testing.assert_allclose(mapped.probs, direct.probs, atol=1e-5)


def test_shipped_model_calls_the_ntu_video_unknown(data_root, models_root, capsys):
    """The NTU clip (two people, an action none of the 15 sports) is shown as unknown, scene and per person."""
    import json

    from skelact.cli import main

    video = data_root / "videos" / "ntu_sample.avi"
    pose = models_root / "movenet_multipose_lightning_f16.tflite"
    assert main(["predict", str(video), "--json", "--quiet", "--pose-model", str(pose)]) == 0
    scene = json.loads(capsys.readouterr().out)
    assert scene["unknown"] is True and scene["label"] is None, scene["topk"][:2]
    assert main(["predict", str(video), "--per-person", "--json", "--quiet", "--pose-model", str(pose)]) == 0
    people = json.loads(capsys.readouterr().out)["people"]
    assert len(people) == 2 and all(p["unknown"] for p in people), [p["topk"][:1] for p in people]

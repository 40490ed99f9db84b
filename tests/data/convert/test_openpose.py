"""``skelact convert openpose`` on OpenPose JSON folders written from real Penn Action clips; the
openpose18 / body25 layouts and their joint mappings; the tracker on other joint counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from skelact.cli import main
from skelact.data.convert import ConvertError, convert_openpose
from skelact.data.io import load_annotations
from skelact.skeleton import get_layout, joint_mapping

pytestmark = pytest.mark.usefixtures("one_thread")

# OpenPose's documented keypoint orders (doc/02_output.md), by the names skelact gives them.
OPENPOSE18_ORDER = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                    "right_eye", "left_eye", "right_ear", "left_ear"]
BODY25_ORDER = OPENPOSE18_ORDER[:8] + ["mid_hip"] + OPENPOSE18_ORDER[8:] + [
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"]


# ---------------------------------------------------------------------------------------- layouts


def test_openpose_layouts_and_their_mappings() -> None:
    op18, b25 = get_layout("openpose18"), get_layout("body25")
    assert list(op18.joints) == OPENPOSE18_ORDER and list(b25.joints) == BODY25_ORDER
    assert op18.joints[op18.root] == b25.joints[b25.root] == "neck"
    # Index by index, from OpenPose's order: Penn's head is the nose, then shoulders, elbows, ...
    assert joint_mapping(b25, get_layout("penn13")) == (0, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
    assert joint_mapping(op18, get_layout("penn13")) == (0, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
    assert joint_mapping(b25, get_layout("coco17")) == (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
    assert joint_mapping(op18, get_layout("coco17")) == (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
    # OpenPose's own part pairs are the bones: ankle -> big toe -> small toe, ankle -> heel.
    assert len(op18.edges) == 17 and len(b25.edges) == 24
    assert b25.parents[19:].tolist() == [14, 19, 14, 11, 22, 11]
    assert (8, 11) in op18.limbs  # the hip line
    for lay in (op18, b25):
        assert sorted(lay.joints[a] for a, _ in lay.flip_pairs) == sorted(j for j in lay.joints if "left" in j)
        np.testing.assert_array_equal(lay.flip_index[lay.flip_index], np.arange(lay.num_joints))


# ---------------------------------------------------------------------------------------- building OpenPose folders


def penn(data_root: Path, clip: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A Penn Action clip: keypoints float32 [T, 13, 2], visibility [T, 13], action."""
    m = scipy.io.loadmat(data_root / "penn_action" / "labels" / f"{clip}.mat")
    kp = np.stack([m["x"], m["y"]], -1).astype(np.float32)
    return kp, m["visibility"].astype(bool), str(m["action"][0])


def as_openpose(kp: np.ndarray, vis: np.ndarray, layout: str, conf: float, dx: float = 0.0) -> np.ndarray:
    """Penn joints [T, 13, 2] placed into an OpenPose person [T, V, 3]; invisible and non-Penn joints 0, 0, 0."""
    lay = get_layout(layout)
    idx = joint_mapping(lay, get_layout("penn13"))
    out = np.zeros((kp.shape[0], lay.num_joints, 3), np.float32)
    out[:, idx, :2] = kp + np.float32(dx)
    out[:, idx, 2] = np.float32(conf)
    out[:, idx] *= vis[..., None]
    return out


def write_frames(folder: Path, people: list[list[np.ndarray]], padded: bool = True) -> None:
    """One OpenPose ``--write_json`` file per frame; ``people[t]`` holds [V, 3] arrays."""
    folder.mkdir(parents=True)
    for t, persons in enumerate(people):
        number = f"{t:012d}" if padded else str(t)
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [float(v) for v in p.reshape(-1)],
                                           "face_keypoints_2d": []} for p in persons]}
        (folder / f"{folder.name}_{number}_keypoints.json").write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def body25_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``root/<class>/<video>/``: three single-person Penn clips (one with five empty frames), one
    two-person clip (0001 with 0002 beside it, listed in alternating order), one with nobody."""
    root = tmp_path_factory.mktemp("openpose") / "body25"
    expected = {}
    for clip in ("0001", "0002", "0661"):
        kp, vis, action = penn(data_root, clip)
        person = as_openpose(kp, vis, "body25", 0.8)
        frames = [[p] for p in person]
        if clip == "0661":
            person[5:10] = 0
            frames[5:10] = [[]] * 5
        write_frames(root / action / clip, frames)
        expected[clip] = (person, action)
    (a, va, action), (b, vb, _) = penn(data_root, "0001"), penn(data_root, "0002")
    pa, pb = as_openpose(a, va, "body25", 0.9), as_openpose(b, vb, "body25", 0.5, dx=2000)
    frames = [([pa[t], pb[t]] if t % 2 else [pb[t], pa[t]]) if t < len(pb) else [pa[t]] for t in range(len(pa))]
    write_frames(root / action / "pair", frames)
    expected["pair"] = (np.stack([pa, np.concatenate([pb, np.zeros_like(pa[len(pb):])])]), action)
    write_frames(root / action / "nobody", [[] for _ in range(5)])
    return root, expected


# ---------------------------------------------------------------------------------------- conversion


def test_body25_class_folders_exact(body25_dir: tuple[Path, dict], tmp_path: Path, capsys) -> None:
    root, expected = body25_dir
    out = tmp_path / "op.pkl"
    assert main(["convert", "openpose", str(root), "-o", str(out), "--img-shape", "480", "640"]) == 0
    text = capsys.readouterr().out
    assert "openpose (body25): 4 clips converted" in text and "no people in any frame (e.g. nobody)" in text
    data = load_annotations(out, allow_unlabeled=True)
    assert data["layout"] == "body25" and data["split"] == {}
    assert data["classes"] == sorted({action for _, action in expected.values()})
    anns = {a["frame_dir"]: a for a in data["annotations"]}
    assert sorted(anns) == ["0001", "0002", "0661", "pair"]
    for name, (person, action) in expected.items():
        ann = anns[name]
        assert data["classes"][ann["label"]] == action and ann["img_shape"] == (480, 640)
        kp, score = ann["keypoint"], ann["keypoint_score"]
        assert kp.dtype == np.float32 and ann["total_frames"] == kp.shape[1] == person.shape[-3]
        if name == "pair":  # the more confident person first, each followed through the swaps
            np.testing.assert_array_equal(kp, person[..., :2])
            np.testing.assert_array_equal(score, person[..., 2])
            continue
        # One person: each frame's joints are in exactly one row (a real jump may start a new track).
        present = (score > 0).any(-1)  # [M, T]
        assert present.sum(0).max() == 1
        np.testing.assert_array_equal(kp.sum(0), person[..., :2])
        np.testing.assert_array_equal(score.sum(0), person[..., 2])
    assert (anns["0661"]["keypoint_score"][:, 5:10] == 0).all() and anns["0661"]["keypoint"].shape[0] == 1


def test_penn_joints_land_on_penn13(body25_dir: tuple[Path, dict], data_root: Path) -> None:
    root, _ = body25_dir
    data, _ = convert_openpose(root, max_persons=1)
    ann = next(a for a in data["annotations"] if a["frame_dir"] == "0002")
    kp, vis, _ = penn(data_root, "0002")
    idx = list(joint_mapping(get_layout(data["layout"]), get_layout("penn13")))
    mapped = ann["keypoint"][0][:, idx]  # [T, 13, 2]
    np.testing.assert_array_equal(mapped[vis], kp[vis])
    assert (mapped[~vis] == 0).all() and "img_shape" not in ann
    pair = next(a for a in data["annotations"] if a["frame_dir"] == "pair")
    assert pair["keypoint"].shape[0] == 1  # --max-persons 1: only the more confident person
    np.testing.assert_array_less(pair["keypoint"][0, ..., 0], 1999)


def test_coco18_labels_csv_classes_and_unpadded_frames(data_root: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "coco18"
    people = {}
    for clip in ("0001", "0760", "1000"):
        kp, vis, _ = penn(data_root, clip)
        people[clip] = as_openpose(kp[:12], vis[:12], "openpose18", 0.7)  # frames 0..11: "_2_" sorts after "_10_"
        write_frames(root / f"v{clip}", [[p] for p in people[clip]], padded=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("\ufeffName,Label,Split,notes\nv0001,jump,train,x\n./v0760/,run,,\nv1000,jump,test,y\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("run\n\njump\nsit\n")
    out = tmp_path / "c.pkl"
    assert main(["convert", "openpose", str(root), "-o", str(out), "--labels", str(labels),
                 "--classes", str(classes)]) == 0
    text = capsys.readouterr().out
    assert "openpose (openpose18): 3 clips" in text and "columns of labels.csv ignored: notes" in text
    assert "clips without img_shape" in text
    data = load_annotations(out, allow_unlabeled=True)
    assert data["layout"] == "openpose18" and data["classes"] == ["run", "jump", "sit"]
    assert {a["frame_dir"]: a["label"] for a in data["annotations"]} == {"v0001": 1, "v0760": 0, "v1000": 1}
    assert data["split"] == {"train": ["v0001"], "test": ["v1000"]}
    for ann in data["annotations"]:
        np.testing.assert_array_equal(ann["keypoint"].sum(0), people[ann["frame_dir"][1:]][..., :2])
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "layout: openpose18 (18 joints, 2D, with scores)" in info and "train: 1 clips" in info


def test_one_video_folder_and_yaml_layout(data_root: Path, tmp_path: Path) -> None:
    kp, vis, _ = penn(data_root, "0001")
    person = as_openpose(kp[:20], vis[:20], "body25", 0.6)
    write_frames(tmp_path / "clip", [[p] for p in person])
    lay = get_layout("body25").to_dict()
    lay["name"] = "my_body25"
    yaml_path = tmp_path / "my.yaml"
    yaml_path.write_text(json.dumps(lay))  # JSON is YAML
    data, _ = convert_openpose(tmp_path / "clip", layout=yaml_path)
    assert [a["frame_dir"] for a in data["annotations"]] == ["clip"] and data["annotations"][0]["label"] == -1
    assert data["layout"] == lay and "classes" not in data
    with pytest.raises(ConvertError, match=r"clip_000000000000_keypoints.json: person #0 has 25 joints .*coco17"):
        convert_openpose(tmp_path / "clip", layout="coco17")


def test_predict_on_openpose_output_matches_the_penn_clip(body25_dir: tuple[Path, dict], data_root: Path,
                                                          tmp_path: Path, capsys) -> None:
    from skelact.inference import load_predictor

    root, _ = body25_dir
    out = tmp_path / "op.pkl"
    assert main(["convert", "openpose", str(root), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "--clip", "0002", "--json", "--num-clips", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    kp, vis, action = penn(data_root, "0002")
    source = {"frame_dir": "0002", "keypoint": (kp * vis[..., None])[None], "label": -1,
              "keypoint_score": (np.float32(0.8) * vis)[None].astype(np.float32)}
    want = load_predictor(None).predict_clip(source, num_clips=2, layout="penn13")
    assert got["true_label"] == action and got["topk"][0]["label"] == want.topk[0][0]
    np.testing.assert_allclose([got["probabilities"][c] for c in want.classes], want.probs, atol=1e-6)


# ---------------------------------------------------------------------------------------- bad input


def _fails(argv: list[str], capsys, *needles: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("skelact: error: ") and err.count("\n") == 1 and "unexpected" not in err, err
    for n in needles:
        assert n in err, err


def _person(v: int = 25) -> list[float]:
    return [float(x) for x in np.arange(1, 3 * v + 1)]


@pytest.mark.parametrize("case", ["empty", "no_json", "malformed", "deep", "length", "frames", "files", "nan",
                                  "string", "nobody", "mixed", "duplicate", "huge", "no_people_key"])
def test_bad_openpose_input_is_one_line(case: str, tmp_path: Path, capsys) -> None:
    root = tmp_path / "in"
    clip = root / "a"
    clip.mkdir(parents=True)

    def frame(name: str, doc: object, where: Path = clip) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        path = where / name
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    ok = {"people": [{"pose_keypoints_2d": _person()}]}
    frame("a_000000000000_keypoints.json", ok)
    needle = "a_000000000001_keypoints.json"
    if case == "empty":
        clip.joinpath("a_000000000000_keypoints.json").unlink()
        clip.rmdir()
        needle = "empty folder"
    elif case == "no_json":
        clip.joinpath("a_000000000000_keypoints.json").unlink()
        (clip / "notes.txt").write_text("x")
        needle = "no OpenPose JSON files"
    elif case == "malformed":
        frame(needle, '{"people": [{"pose_keypoints_2d": [1, 2,')
    elif case == "deep":
        frame(needle, "[" * 200_000 + "]" * 200_000)
    elif case == "length":
        frame(needle, {"people": [{"pose_keypoints_2d": _person()[:-1]}]})
    elif case == "frames":
        frame(needle, {"people": [{"pose_keypoints_2d": _person(18)}]})
    elif case == "files":
        needle = "b_000000000000_keypoints.json: person #0 has 18 joints"
        frame("b_000000000000_keypoints.json", {"people": [{"pose_keypoints_2d": _person(18)}]}, root / "b")
    elif case == "nan":
        frame(needle, '{"people": [{"pose_keypoints_2d": [' + ", ".join(["NaN"] * 75) + "]}]}")
    elif case == "string":
        frame(needle, {"people": [{"pose_keypoints_2d": ["1.0"] * 75}]})
    elif case == "nobody":
        frame("a_000000000000_keypoints.json", {"people": []})
        needle = "nobody in any frame"
    elif case == "mixed":
        frame("b_000000000000_keypoints.json", ok, root / "cls" / "b")
        needle = "mixes video folders"
    elif case == "duplicate":
        clip.joinpath("a_000000000000_keypoints.json").unlink()
        clip.rmdir()
        frame("a_000000000000_keypoints.json", ok, root / "x" / "a")
        frame("a_000000000000_keypoints.json", ok, root / "y" / "a")
        needle = "also used by"
    elif case == "huge":
        with open(clip / needle, "wb") as f:
            f.truncate((16 << 20) + 1)  # sparse: nothing to write
        needle = "larger than 16 MB"
    elif case == "no_people_key":
        frame(needle, {"version": 1.3})
    out = tmp_path / "out.pkl"
    _fails(["convert", "openpose", str(root), "-o", str(out)], capsys, needle)
    assert not out.exists() and not list(tmp_path.glob(".out.pkl*"))


@pytest.mark.parametrize("case", ["unknown", "missing", "duplicate", "no_label_column", "not_in_classes",
                                  "output_is_input", "field_count"])
def test_bad_labels_are_one_line(case: str, tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        write_frames(tmp_path / "in" / name, [[np.arange(1, 76, dtype=np.float32).reshape(25, 3)]])
    labels = tmp_path / "labels.csv"
    rows = {"unknown": "a,x\nb,y\nc,z\n", "missing": "a,x\n", "duplicate": "a,x\nb,y\n./b,y\n",
            "no_label_column": None, "not_in_classes": "a,x\nb,q\n", "output_is_input": "a,x\nb,y\n",
            "field_count": "a,x\nb\n"}[case]
    labels.write_text("name,class\na,x\n" if rows is None else "name,label\n" + rows)
    (tmp_path / "classes.txt").write_text("x\ny\n")
    out = labels if case == "output_is_input" else tmp_path / "out.pkl"
    needle = {"unknown": "line 4: 1 name(s) match no clip", "missing": "no row for 1 clip(s)",
              "duplicate": "line 4: 'b' is also on line 3", "no_label_column": "no 'label' column",
              "not_in_classes": "line 3: label 'q' is not one of the classes", "output_is_input": "is also an input",
              "field_count": "line 3 has 1 field(s)"}[case]
    before = labels.read_bytes()
    _fails(["convert", "openpose", str(tmp_path / "in"), "-o", str(out), "--labels", str(labels), "--classes",
            str(tmp_path / "classes.txt"), "--force"], capsys, needle, str(labels))
    assert labels.read_bytes() == before and not (tmp_path / "out.pkl").exists()

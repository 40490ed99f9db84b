"""Skeleton layouts: built-ins, parents, flip permutations and user YAML layouts."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.skeleton import COCO17_TO_PENN13, LayoutError, get_layout, infer_layout, list_layouts

EXPECTED = {"coco17": 17, "ntu25": 25, "penn13": 13, "ucla20": 20, "openpose18": 18, "body25": 25}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_layouts_are_consistent(name):
    lay = get_layout(name)
    assert lay.num_joints == EXPECTED[name]
    parents = lay.parents
    assert parents[lay.root] == lay.root
    # Following parents from any joint reaches the root, and every parent link is an edge.
    edges = {frozenset(e) for e in lay.edges}
    for v in range(lay.num_joints):
        seen, u = 0, v
        while u != lay.root:
            assert frozenset((u, int(parents[u]))) in edges
            u = int(parents[u])
            seen += 1
            assert seen <= lay.num_joints
    perm = lay.flip_index
    np.testing.assert_array_equal(perm[perm], np.arange(lay.num_joints))  # an involution
    for a, b in lay.flip_pairs:
        assert lay.joints[a].replace("left", "right") == lay.joints[b]
    adj = lay.adjacency()
    np.testing.assert_array_equal(adj, adj.T)
    assert adj.sum() == 2 * len(lay.edges)
    assert infer_layout(lay.num_joints) is (get_layout("ntu25") if name == "body25" else lay)  # 25: ntu25 first


def test_list_and_unknown():
    assert list_layouts() == ["body25", "coco17", "ntu25", "openpose18", "penn13", "ucla20"]
    with pytest.raises(LayoutError, match="unknown layout 'body99'"):
        get_layout("body99")


def test_coco_parents_exact():
    assert get_layout("coco17").parents.tolist() == [0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14]


def test_coco17_limbs_are_poseconv3d_s_17() -> None:
    # PYSKL's coco limb list (so limb heatmaps have its 17 channels): face, arms, trunk with the hip line, legs
    assert get_layout("coco17").limbs == ((0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8),
                                          (8, 10), (5, 11), (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12))


def test_coco_to_penn_mapping_names():
    coco, penn = get_layout("coco17"), get_layout("penn13")
    mapped = [coco.joints[i] for i in COCO17_TO_PENN13]
    assert mapped[0] == "nose" and penn.joints[0] == "head"
    assert mapped[1:] == list(penn.joints[1:])


def test_yaml_layout(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text(
        "joints: [neck, l_sh, r_sh, l_el, r_el]\n"
        "edges: [[l_sh, neck], [r_sh, neck], [l_el, l_sh], [4, 2]]\n"
        "flip_pairs: [[l_sh, r_sh], [l_el, r_el]]\n"
    )
    lay = get_layout(path)
    assert lay.name == "arm" and lay.num_joints == 5
    assert lay.parents.tolist() == [0, 0, 0, 1, 2]
    assert lay.flip_index.tolist() == [0, 2, 1, 4, 3]
    assert lay.limbs == lay.edges
    assert get_layout(str(path)).joints == lay.joints


@pytest.mark.parametrize(
    "text, message",
    [
        ("joints: [a, b]\nedges: [[a, c]]\n", "unknown joint 'c'"),
        ("joints: [a, b, c]\nedges: [[a, b]]\n", r"joints not connected to the root: \['c'\]"),
        ("joints: [a, b]\n", "missing 'edges'"),
        ("joints: [a, b]\nedges: [[a, b]]\ncolour: red\n", "unknown keys"),
        ("joints: [a, b]\nedges: [[a, b, c]]\n", "must be a pair"),
        ("joints: [a, a]\nedges: [[0, 1]]\n", "duplicate joint names"),
        ("joints: [a, b]\nedges: [[0, 5]]\n", r"bad edge \(0, 5\)"),
        ("joints: [a: b\n", "not valid YAML"),
    ],
)
def test_bad_yaml_layouts_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LayoutError, match=f"bad.yaml: .*{message}"):
        get_layout(path)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(LayoutError, match="layout file not found"):
        get_layout(tmp_path / "none.yaml")


# Parents by name, from the ST-GCN / PYSKL (NTU), CTR-GCN (NW-UCLA) and Penn Action graphs.
PARENT_NAMES = {
    "ntu25": {
        "spine_base": "spine_mid", "spine_mid": "spine_shoulder", "neck": "spine_shoulder", "head": "neck",
        "left_shoulder": "spine_shoulder", "left_elbow": "left_shoulder", "left_wrist": "left_elbow",
        "left_hand": "left_wrist", "right_shoulder": "spine_shoulder", "right_elbow": "right_shoulder",
        "right_wrist": "right_elbow", "right_hand": "right_wrist", "left_hip": "spine_base", "left_knee": "left_hip",
        "left_ankle": "left_knee", "left_foot": "left_ankle", "right_hip": "spine_base", "right_knee": "right_hip",
        "right_ankle": "right_knee", "right_foot": "right_ankle", "spine_shoulder": "spine_shoulder",
        "left_hand_tip": "left_hand", "left_thumb": "left_hand", "right_hand_tip": "right_hand",
        "right_thumb": "right_hand",
    },
    "ucla20": {
        "hip_center": "spine", "spine": "spine", "shoulder_center": "spine", "head": "shoulder_center",
        "left_shoulder": "shoulder_center", "left_elbow": "left_shoulder", "left_wrist": "left_elbow",
        "left_hand": "left_wrist", "right_shoulder": "shoulder_center", "right_elbow": "right_shoulder",
        "right_wrist": "right_elbow", "right_hand": "right_wrist", "left_hip": "hip_center", "left_knee": "left_hip",
        "left_ankle": "left_knee", "left_foot": "left_ankle", "right_hip": "hip_center", "right_knee": "right_hip",
        "right_ankle": "right_knee", "right_foot": "right_ankle",
    },
    "penn13": {
        "head": "head", "left_shoulder": "head", "right_shoulder": "head", "left_elbow": "left_shoulder",
        "right_elbow": "right_shoulder", "left_wrist": "left_elbow", "right_wrist": "right_elbow",
        "left_hip": "left_shoulder", "right_hip": "right_shoulder", "left_knee": "left_hip", "right_knee": "right_hip",
        "left_ankle": "left_knee", "right_ankle": "right_knee",
    },
}


@pytest.mark.parametrize("name", sorted(PARENT_NAMES))
def test_parents_by_name(name):
    lay = get_layout(name)
    assert list(lay.joints) == list(PARENT_NAMES[name])  # storage order (Kinect v2 / v1 / Penn documentation)
    assert {lay.joints[v]: lay.joints[p] for v, p in enumerate(lay.parents)} == PARENT_NAMES[name]


def test_coco_flip_pairs_are_pyskls():
    assert get_layout("coco17").flip_pairs == tuple((i, i + 1) for i in range(1, 17, 2))


def _heights(kp: np.ndarray, up: bool) -> np.ndarray:
    """Mean height of each joint over frames [N, V, C] where it is present (y up, or image y down)."""
    present = np.any(kp != 0, axis=-1)
    y = np.where(present, kp[..., 1], 0).sum(0) / present.sum(0)
    return y if up else -y


def test_joint_orders_match_real_skeletons(data_root):
    """The index -> name of each Kinect/Penn layout agrees with where those joints are in real data:
    head above the spine above the hips, knees, ankles, feet; every left joint on the same side."""
    from skelact.data.convert.ntu import convert_ntu
    from skelact.data.convert.penn import read_penn_mat
    from skelact.data.convert.ucla import read_ucla_json

    ntu = convert_ntu(data_root / "ntu_raw", dims=3)[0]["annotations"]
    ucla = sorted((data_root / "nwucla" / "all_sqe").glob("*.json"))[:40]
    penn = sorted((data_root / "penn_action" / "labels").glob("*.mat"))[:60]
    clips = {  # name -> ([N, V, C] joints of many frames, y points up)
        "ntu25": (np.concatenate([a["keypoint"].reshape(-1, 25, 3) for a in ntu]), True),
        "ucla20": (np.concatenate([read_ucla_json(p)[1] for p in ucla]), True),
        "penn13": (np.concatenate([read_penn_mat(p)[0]["keypoint"][0] for p in penn]), False),
    }
    spine = {"ntu25": ["head", "neck", "spine_shoulder", "spine_mid", "spine_base"],
             "ucla20": ["head", "shoulder_center", "spine", "hip_center"], "penn13": ["head"]}
    for name, (kp, up) in clips.items():
        lay = get_layout(name)
        h = dict(zip(lay.joints, _heights(kp, up), strict=True))
        for side in ("left", "right"):
            legs = [f"{side}_{j}" for j in ("knee", "ankle", "foot") if f"{side}_{j}" in h]
            chain = [*spine[name], *legs] if name != "penn13" else ["head", f"{side}_shoulder", f"{side}_hip", *legs]
            assert [h[j] for j in chain] == sorted((h[j] for j in chain), reverse=True), (name, chain)
            assert h[f"{side}_shoulder"] > h[f"{side}_elbow"] > h[f"{side}_hip"] > h[f"{side}_knee"], name
        if name != "penn13":  # Kinect: people face the camera, so left joints share one side
            signs = {np.sign(np.median(kp[:, a, 0] - kp[:, b, 0])) for a, b in lay.flip_pairs}
            assert len(signs) == 1, name

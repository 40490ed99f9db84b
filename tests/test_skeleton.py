"""Skeleton layouts: built-ins, parents, flip permutations and user YAML layouts."""

from __future__ import annotations

import numpy as np
import pytest

from skelact.skeleton import COCO17_TO_PENN13, LayoutError, get_layout, infer_layout, list_layouts

EXPECTED = {"coco17": 17, "ntu25": 25, "penn13": 13, "ucla20": 20}


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
    assert infer_layout(lay.num_joints) is lay


def test_list_and_unknown():
    assert list_layouts() == ["coco17", "ntu25", "penn13", "ucla20"]
    with pytest.raises(LayoutError, match="unknown layout 'body99'"):
        get_layout("body99")


def test_coco_parents_exact():
    assert get_layout("coco17").parents.tolist() == [0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14]


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

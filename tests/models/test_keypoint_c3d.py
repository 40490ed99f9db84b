"""The keypoint 3D-CNN's DFS joint order on a user's layout of thousands of joints: no RecursionError
(a 2000-joint chain crashed `train --model kpc3d` with "unexpected RecursionError"), same order as before."""

from __future__ import annotations

from skelact.models.keypoint_c3d import dfs_joint_order
from skelact.skeleton import Layout, get_layout


def _recursive(layout: Layout) -> list[int]:
    """The former recursive definition, as the reference."""
    children: list[list[int]] = [[] for _ in range(layout.num_joints)]
    for j, p in enumerate(layout.parents):
        if j != layout.root:
            children[int(p)].append(j)
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children[j]:
            visit(c)
            order.append(j)

    visit(layout.root)
    return order


def test_same_order_as_the_recursive_walk_on_builtin_layouts() -> None:
    for name in ("coco17", "penn13", "ntu25", "ucla20"):
        layout = get_layout(name)
        assert dfs_joint_order(layout) == _recursive(layout), name


def test_a_chain_of_5000_joints() -> None:
    v = 5000
    layout = Layout(name="chain", joints=tuple(f"j{i}" for i in range(v)),
                    edges=tuple((i, i + 1) for i in range(v - 1)))
    order = dfs_joint_order(layout)
    assert order == list(range(v)) + list(range(v - 2, -1, -1)) and len(order) == 2 * v - 1

"""Models: keypoint 3D-CNN, ST-GCN++ and PoseConv3D, behind one registry.

Every model maps ``(N, M, T, V, C)`` float32 (batch, persons, frames, joints, channels) to
``(N, num_classes)`` logits and has ``forward_features`` / ``forward_head``. Heatmap models take
C = 3 (pixel x, y, score) and draw their heatmaps inside ``forward`` on the input's device.
"""

from .ensemble import StreamEnsemble, StreamSpec, create_ensemble
from .flops import count_macs, count_params
from .heatmap import (
    PoseHeatmap,
    compact_boxes,
    crop_to_boxes,
    flip_keypoints,
    joint_heatmaps,
    limb_heatmaps,
    random_resized_boxes,
    single_heatmaps,
)
from .keypoint_c3d import KeypointC3D, dfs_joint_order
from .poseconv3d import C3DLight, PoseConv3D, SlowOnly
from .registry import ModelInfo, create_model, list_models, model_info, register_model
from .stgcn import STGCNPlusPlus, spatial_partitions

__all__ = [
    "ModelInfo", "create_model", "list_models", "model_info", "register_model",
    "count_macs", "count_params", "StreamEnsemble", "StreamSpec", "create_ensemble",
    "KeypointC3D", "dfs_joint_order", "STGCNPlusPlus", "spatial_partitions",
    "PoseConv3D", "C3DLight", "SlowOnly",
    "PoseHeatmap", "joint_heatmaps", "limb_heatmaps", "single_heatmaps",
    "compact_boxes", "random_resized_boxes", "crop_to_boxes", "flip_keypoints",
]

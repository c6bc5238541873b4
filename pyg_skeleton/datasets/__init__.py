r"""Data sets, BVH motion files, virtual cameras and lifting samples."""
from __future__ import annotations

from .bandai import BandaiMocap, default_bandai_path
from .builtin import BuiltinMotion, builtin_motion
from .bvh import (
                  BVH,
                  BVHJoint,
                  JointMap,
                  forward_kinematics,
                  joint_map_presets,
                  load_bvh_positions,
                  read_bvh,
                  resample,
)
from .camera import (
                  CameraRig,
                  denormalize_screen,
                  flip_pose,
                  flip_test,
                  normalize_screen,
                  root_relative,
)
from .h36m import (
                  H36MCamera,
                  H36MPoses,
                  h36m_camera_samples,
                  load_h36m_2d,
                  load_h36m_3d,
                  load_h36m_cameras,
                  reduce_32_to_17,
)
from .lifting import (
                  DATASETS,
                  LiftingDataset,
                  LiftingOptions,
                  LiftingTensors,
                  TensorBatches,
                  load_lifting,
                  load_lifting_splits,
                  register_dataset,
                  render_lifting,
)
from .synthetic import synthetic_poses
from .wild import WildCameras, corrupt_keypoints, normalize_keypoints, render_wild, scale_bones

__all__ = [
    'BVH', 'BVHJoint', 'JointMap', 'forward_kinematics', 'joint_map_presets',
    'load_bvh_positions', 'read_bvh', 'resample',
    'BandaiMocap', 'default_bandai_path',
    'H36MCamera', 'H36MPoses', 'h36m_camera_samples', 'load_h36m_2d', 'load_h36m_3d',
    'load_h36m_cameras', 'reduce_32_to_17',
    'CameraRig', 'denormalize_screen', 'flip_pose', 'flip_test', 'normalize_screen',
    'root_relative', 'synthetic_poses', 'BuiltinMotion', 'builtin_motion',
    'WildCameras', 'corrupt_keypoints', 'normalize_keypoints', 'render_wild', 'scale_bones',
    'LiftingDataset', 'LiftingTensors', 'TensorBatches', 'load_lifting', 'load_lifting_splits',
    'render_lifting', 'DATASETS', 'LiftingOptions', 'register_dataset',
]

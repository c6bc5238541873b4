r"""Built-in **synthetic** poses: no data file, nothing downloaded.

Poses of a parametric Human3.6M-17 body are drawn by sampling joint angles
uniformly within anatomical limits (hip and shoulder flexion / abduction /
twist, knee and elbow flexion, torso bend and twist, neck) and running
forward kinematics on a skeleton whose bone lengths vary per sample (a
global scale of ~6 % and per-bone scales of ~4 %, left and right equal).
Poses are in metres, y up, the subject faces +z at yaw 0 and its lowest
joint touches the floor (y = 0); the yaw is uniform.

These are **synthetic** poses: numbers measured on them say nothing about
real motion; everything that reports them labels them "synthetic".
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .bvh import euler_to_matrix

__all__ = ['synthetic_poses', 'SYNTHETIC_SKELETONS', 'H36M17_BODY']

# Joint -> (parent, rest direction of the bone from the parent, mean length in m).
# Subject faces +z, y up, its left is +x.
H36M17_BODY: Dict[str, Tuple[str, Tuple[float, float, float], float]] = {
    'Hip': ('', (0, 0, 0), 0.0),
    'RHip': ('Hip', (-1, 0, 0), 0.13),
    'RKnee': ('RHip', (0, -1, 0), 0.45),
    'RFoot': ('RKnee', (0, -1, 0), 0.44),
    'LHip': ('Hip', (1, 0, 0), 0.13),
    'LKnee': ('LHip', (0, -1, 0), 0.45),
    'LFoot': ('LKnee', (0, -1, 0), 0.44),
    'Spine': ('Hip', (0, 1, 0), 0.23),
    'Thorax': ('Spine', (0, 1, 0), 0.25),
    'Neck/Nose': ('Thorax', (0, 0.95, 0.3), 0.11),
    'Head': ('Neck/Nose', (0, 1, 0), 0.115),
    'LShoulder': ('Thorax', (1, 0, 0), 0.15),
    'LElbow': ('LShoulder', (0, -1, 0), 0.28),
    'LWrist': ('LElbow', (0, -1, 0), 0.25),
    'RShoulder': ('Thorax', (-1, 0, 0), 0.15),
    'RElbow': ('RShoulder', (0, -1, 0), 0.28),
    'RWrist': ('RElbow', (0, -1, 0), 0.25),
}

# Rotation limits (degrees) of each joint, applied to its child bones as the
# intrinsic Euler angles Z, X, Y about the parent frame. Positive X moves a
# downward bone backwards (-z), positive Z moves it to the subject's left.
_LIMITS = {
    'Hip': ((-10, 10), (-15, 25), (0, 0)),          # pelvis tilt (yaw drawn separately)
    'RHip': ((-40, 10), (-110, 30), (-30, 30)),     # abduction outwards, flexion forwards
    'LHip': ((-10, 40), (-110, 30), (-30, 30)),
    'RKnee': ((0, 0), (0, 135), (0, 0)),            # flexes backwards
    'LKnee': ((0, 0), (0, 135), (0, 0)),
    'Spine': ((-20, 20), (-5, 45), (-30, 30)),      # forward bend is +x for an upward bone
    'Thorax': ((-10, 10), (-5, 20), (-15, 15)),
    'Neck/Nose': ((-25, 25), (-30, 40), (-60, 60)),
    'LShoulder': ((-20, 170), (-170, 50), (-70, 70)),
    'RShoulder': ((-170, 20), (-170, 50), (-70, 70)),
    'LElbow': ((0, 0), (-145, 0), (-60, 60)),         # forearm forwards
    'RElbow': ((0, 0), (-145, 0), (-60, 60)),
}

SYNTHETIC_SKELETONS = {'h36m17': H36M17_BODY}

_SYMMETRIC = {'RHip': 'LHip', 'RKnee': 'LKnee', 'RFoot': 'LFoot', 'RShoulder': 'LShoulder',
              'RElbow': 'LElbow', 'RWrist': 'LWrist'}


def synthetic_poses(num: int, seed: int = 0, skeleton: str = 'h36m17',
                    bone_scale_std: float = 0.04, body_scale_std: float = 0.06,
                    floor: bool = True) -> np.ndarray:
    r"""Samples :obj:`num` **synthetic** world poses :obj:`[num, 17, 3]`
    (float32, metres, y up).

    Args:
        num (int): Number of poses.
        seed (int): Random seed (the output depends only on the arguments).
        skeleton (str): Layout; :obj:`'h36m17'` is supported.
        bone_scale_std (float): Relative std of each bone length.
        body_scale_std (float): Relative std of the overall body size.
        floor (bool): Move each pose so its lowest joint is at y = 0.
    """
    if skeleton not in SYNTHETIC_SKELETONS:
        raise ValueError(f"synthetic poses exist for {sorted(SYNTHETIC_SKELETONS)}, "
                         f"not {skeleton!r}")
    body = SYNTHETIC_SKELETONS[skeleton]
    names = list(body)
    rng = np.random.default_rng(seed)
    body_scale = np.clip(rng.normal(1.0, body_scale_std, num), 0.8, 1.2)
    bone_scale = {}
    for n in names:
        if n in _SYMMETRIC.values():
            continue
        s = np.clip(rng.normal(1.0, bone_scale_std, num), 0.88, 1.12)
        bone_scale[n] = s
        if n in _SYMMETRIC:
            bone_scale[_SYMMETRIC[n]] = s

    rot_w = {}
    pos = np.zeros((num, len(names), 3))
    for j, n in enumerate(names):
        parent, direction, length = body[n]
        if parent:
            p = names.index(parent)
            d = np.asarray(direction, dtype=np.float64)
            d = d / np.linalg.norm(d)
            bone = d * (length * body_scale * bone_scale[n])[:, None]
            pos[:, j] = pos[:, p] + np.einsum('nab,nb->na', rot_w[parent], bone)
        lim = _LIMITS.get(n, ((0, 0), (0, 0), (0, 0)))
        angles = np.stack([rng.uniform(lo, hi, num) for lo, hi in lim], axis=-1)
        local = euler_to_matrix(angles, 'ZXY')
        if not parent:
            yaw = rng.uniform(-180, 180, num)
            local = euler_to_matrix(yaw[:, None], 'Y') @ local
            rot_w[n] = local
        else:
            rot_w[n] = rot_w[parent] @ local
    if floor:
        pos[..., 1] -= pos[..., 1].min(axis=1, keepdims=True)
    else:
        pos[..., 1] += 0.95
    return pos.astype(np.float32)

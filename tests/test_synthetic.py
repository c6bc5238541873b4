"""Synthetic poses on several skeletons, checked with independent NumPy
geometry on the generated positions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets import load_lifting
from pyg_skeleton.datasets.synthetic import (
    BODY_SCALE_CLIP,
    BONE_SCALE_CLIP,
    SYNTHETIC_SKELETONS,
    body_parents,
    synthetic_body,
    synthetic_poses,
)

TABLE = json.loads((Path(__file__).resolve().parents[1] / 'pyg_skeleton' / 'data'
                    / 'synthetic_bodies.json').read_text())['bodies']
PRESETS = ['h36m17', 'h36m16', 'smpl24']
# knee joints (hip -> knee -> ankle) and elbows (shoulder -> elbow -> wrist) by name
KNEES = {'h36m17': [('RHip', 'RKnee', 'RFoot', 'LHip', 'RHip'),
                    ('LHip', 'LKnee', 'LFoot', 'LHip', 'RHip')],
         'smpl24': [('right_hip', 'right_knee', 'right_ankle', 'left_hip', 'right_hip'),
                    ('left_hip', 'left_knee', 'left_ankle', 'left_hip', 'right_hip')]}
KNEES['h36m16'] = KNEES['h36m17']
ELBOWS = {'h36m17': [('RShoulder', 'RElbow', 'RWrist'), ('LShoulder', 'LElbow', 'LWrist')],
          'smpl24': [('right_shoulder', 'right_elbow', 'right_wrist'),
                     ('left_shoulder', 'left_elbow', 'left_wrist')]}
ELBOWS['h36m16'] = ELBOWS['h36m17']


def angle(a, b):
    c = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


@pytest.mark.parametrize('name', PRESETS)
def test_presets_have_tables_and_parents(name):
    assert set(PRESETS) <= set(SYNTHETIC_SKELETONS)
    sk = Skeleton.preset(name)
    joints = TABLE[name]['joints']
    # parents of the table (by name), mapped by hand to the preset's order
    by_name = {j['name']: j['parent'] for j in joints}
    parents = [-1 if by_name[n] is None else sk.joint_names.index(by_name[n])
               for n in sk.joint_names]
    assert parents == list(sk.parents) == body_parents(synthetic_body(name))
    p = synthetic_poses(50, seed=2, skeleton=name)
    assert p.shape == (50, sk.num_joints, 3) and np.isfinite(p).all()
    np.testing.assert_allclose(p[..., 1].min(1), 0, atol=1e-6)


@pytest.mark.parametrize('name', PRESETS)
def test_bone_lengths_and_symmetry(name):
    sk = Skeleton.preset(name)
    p = synthetic_poses(2000, seed=3, skeleton=name).astype(np.float64)
    length = {j['name']: j['length'] for j in TABLE[name]['joints']}
    lo = BODY_SCALE_CLIP[0] * BONE_SCALE_CLIP[0]
    hi = BODY_SCALE_CLIP[1] * BONE_SCALE_CLIP[1]
    bones = {}
    for j, par in enumerate(sk.parents):
        if par < 0:
            continue
        n = sk.joint_names[j]
        bones[n] = np.linalg.norm(p[:, j] - p[:, par], axis=-1)
        ratio = bones[n] / length[n]
        assert lo - 1e-5 <= ratio.min() and ratio.max() <= hi + 1e-5, n
        assert 0.97 < ratio.mean() < 1.03 and ratio.std() > 0.02, n
    # left and right bones are equally long in every pose
    for a, b in sk.flip_pairs:
        na, nb = sk.joint_names[a], sk.joint_names[b]
        np.testing.assert_allclose(bones[na], bones[nb], rtol=1e-5)
    # the pose distribution is mirror symmetric: in a heading frame (the hips
    # along +x), the mean pose equals its mirror image
    (h_l, h_r) = [sk.joint_names.index(n) for n in KNEES[name][0][3:]]
    lat = p[:, h_l] - p[:, h_r]
    yaw = np.arctan2(lat[:, 2], lat[:, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    q = p - p[:, :1]
    x = c[:, None] * q[..., 0] + s[:, None] * q[..., 2]
    z = -s[:, None] * q[..., 0] + c[:, None] * q[..., 2]
    local = np.stack([x, q[..., 1], z], -1)
    mean = local.mean(0)
    perm = np.arange(sk.num_joints)
    for a, b in sk.flip_pairs:
        perm[a], perm[b] = b, a
    mirrored = mean[perm] * [-1, 1, 1]
    np.testing.assert_allclose(mean, mirrored, atol=0.02)


@pytest.mark.parametrize('name', PRESETS)
def test_joint_limits(name):
    sk = Skeleton.preset(name)
    p = synthetic_poses(3000, seed=4, skeleton=name).astype(np.float64)
    idx = sk.joint_names.index
    for hip, knee, ankle, left_hip, right_hip in KNEES[name]:
        thigh, shin = p[:, idx(knee)] - p[:, idx(hip)], p[:, idx(ankle)] - p[:, idx(knee)]
        flex = angle(thigh, shin)
        assert flex.max() <= 135 + 1e-3 and flex.max() > 100
        # never hyper-extended: the shin bends backwards, so thigh x shin points
        # to the subject's left (the pelvis axis right hip -> left hip)
        lateral = p[:, idx(left_hip)] - p[:, idx(right_hip)]
        side = (np.cross(thigh, shin) * lateral).sum(-1) / np.linalg.norm(lateral, axis=-1)
        assert side.min() > -1e-6
    for shoulder, elbow, wrist in ELBOWS[name]:
        upper, fore = p[:, idx(elbow)] - p[:, idx(shoulder)], p[:, idx(wrist)] - p[:, idx(elbow)]
        assert angle(upper, fore).max() <= 145 + 1e-3


def test_user_body_table_and_errors():
    # a user table: a three-joint leg, no library edit
    body = {'name': 'leg', 'joints': [
        {'name': 'hip', 'parent': None, 'direction': [0, 0, 0], 'length': 0},
        {'name': 'knee', 'parent': 'hip', 'direction': [0, -1, 0], 'length': 0.4,
         'limits': {'X': [0, 90]}},
        {'name': 'ankle', 'parent': 'knee', 'direction': [0, -1, 0], 'length': 0.4}]}
    p = synthetic_poses(100, seed=0, skeleton=body, bone_scale_std=0, body_scale_std=0)
    assert p.shape == (100, 3, 3)
    np.testing.assert_allclose(np.linalg.norm(p[:, 2] - p[:, 1], axis=-1), 0.4, rtol=1e-5)
    assert body_parents(synthetic_body(body)) == [-1, 0, 1]
    with pytest.raises(ValueError, match='no synthetic body table'):
        synthetic_poses(3, skeleton='no_such_skeleton')
    with pytest.raises(ValueError, match='earlier joint'):
        synthetic_poses(3, skeleton={'joints': body['joints'][::-1]})
    with pytest.raises(ValueError, match='exactly one root'):
        synthetic_poses(3, skeleton={'joints': [dict(j, parent=None) for j in body['joints']]})
    bad = json.loads(json.dumps(TABLE['h36m17']))
    bad['joints'][4]['limits']['Z'] = [-40, 10]  # LHip limits no longer mirror RHip's
    with pytest.raises(ValueError, match='not mirror images'):
        synthetic_poses(3, skeleton=dict(bad, name='h36m17'))
    wrong = json.loads(json.dumps(TABLE['h36m16']))
    with pytest.raises(ValueError, match='differ from those of the preset'):
        synthetic_poses(3, skeleton=dict(wrong, name='h36m17'))


def test_load_lifting_synthetic_skeleton():
    tr, te = load_lifting('synthetic', synthetic_train=20, synthetic_test=5, views=1,
                          skeleton='smpl24')
    assert tr.num_joints == 24 and te.num_joints == 24 and 'smpl24' in tr.description
    with pytest.raises(ValueError, match='no synthetic body table'):
        load_lifting('synthetic', synthetic_train=2, synthetic_test=2, skeleton='no_such')

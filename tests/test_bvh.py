from __future__ import annotations

import numpy as np
import pytest

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets.bvh import (
    JointMap,
    bone_lengths,
    euler_to_matrix,
    forward_kinematics,
    joint_map_presets,
    load_bvh_positions,
    parse_bvh,
    read_bvh,
    resample,
)


@pytest.fixture
def bandai(shared_data):
    """The Bandai samples (shared data): the npz and the BVH files it was
    made from."""
    npz, folder = shared_data('mocap/bandai2_h36m17.npz', 'mocap/bvh_samples')
    samples = sorted(folder.glob('*.bvh'))
    if not samples:
        pytest.skip(f'no BVH samples in {folder}')
    return npz, samples


# A two-bone arm with unusual channel orders, a position channel below the
# root and End Sites.
TOY = """HIERARCHY
ROOT Root
{
  OFFSET 1 2 3
  CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
  JOINT Upper
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT Lower
    {
      OFFSET 0 5 0
      CHANNELS 4 Xrotation Yposition Zrotation Xposition
      End Site
      {
        OFFSET 0 2 0
      }
    }
  }
  JOINT Side
  {
    OFFSET 3 0 0
    CHANNELS 0
    End Site
    {
      OFFSET 1 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.1
0 0 0 0 0 0  0 0 0  0 5 0 0
10 0 0 90 0 0  90 0 0  0 7 90 1
"""


def test_parse_toy_hierarchy():
    bvh = parse_bvh(TOY)
    assert bvh.joint_names == ['Root', 'Upper', 'Lower', 'Lower_End', 'Side', 'Side_End']
    assert bvh.parents == [-1, 0, 1, 2, 0, 4]
    assert bvh.num_frames == 2 and bvh.fps == pytest.approx(10)
    assert bvh.motion.shape == (2, 13)
    assert bvh.channel('Lower', 'Yposition').tolist() == [5, 7]


def test_fk_toy_by_hand():
    bvh = parse_bvh(TOY)
    pos = forward_kinematics(bvh)
    # frame 0: root position channels (0, 0, 0) replace its OFFSET
    np.testing.assert_allclose(pos[0, :4], [[0, 0, 0], [0, 10, 0], [0, 15, 0], [0, 17, 0]])
    np.testing.assert_allclose(pos[0, 5], [4, 0, 0])
    # frame 1: root at x=10, yawed 90 deg about y; Upper rolled 90 deg about z;
    # Lower's position channels replace its offset by (1, 7, 0) and it turns 90 deg about z
    ry = euler_to_matrix([90.0], 'Y')
    rz = euler_to_matrix([90.0], 'Z')
    root = np.array([10.0, 0, 0])
    upper = root + ry @ [0, 10, 0]
    lower = upper + ry @ rz @ [1, 7, 0]
    end = lower + ry @ rz @ rz @ [0, 2, 0]
    np.testing.assert_allclose(pos[1, 1], upper, atol=1e-12)
    np.testing.assert_allclose(pos[1, 2], lower, atol=1e-12)
    np.testing.assert_allclose(pos[1, 3], end, atol=1e-12)
    # 'add' mode adds position channels to the OFFSET instead
    pos_add = forward_kinematics(bvh, position_mode='add')
    np.testing.assert_allclose(pos_add[0, 0], [1, 2, 3])


def test_euler_intrinsic_order():
    r = euler_to_matrix(np.array([30.0, 40.0, 50.0]), 'ZXY')
    rz, rx, ry = (euler_to_matrix([a], ax) for a, ax in ((30.0, 'Z'), (40.0, 'X'), (50.0, 'Y')))
    np.testing.assert_allclose(r, rz @ rx @ ry)
    np.testing.assert_allclose(euler_to_matrix([90.0], 'Z') @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize('text,match', [
    ('nothing', 'not a BVH'),
    (TOY.replace('OFFSET 0 10 0', 'OFFSET 0 ten 0'), 'expected a number'),
    (TOY.replace('Frames: 2', 'Frames: 3'), 'expected 3 frames'),
    (TOY.replace('Xrotation Yposition', 'Wrotation Yposition'), 'unknown channel'),
    (TOY.replace('  }\n}\nMOTION', '  }\nMOTION'), 'unbalanced'),
])
def test_malformed(text, match):
    with pytest.raises(ValueError, match=match):
        parse_bvh(text)


def test_joint_map_synthesised_joints():
    pos = np.array([[[0, 0, 0], [0, 1, 0], [2, 1, 0]]], dtype=float)
    jm = JointMap({'a': 'A', 'top': {'extend': ['A', 'B'], 'length': 0.5},
                   'mid': {'midpoint': ['B', 'C']}, 'q': {'lerp': ['A', 'C'], 't': 0.25},
                   'c': {'mean': ['A', 'B', 'C']}}, scale=1.0)
    out = jm.apply(pos, ['A', 'B', 'C'])
    np.testing.assert_allclose(out[0], [[0, 0, 0], [0, 1.5, 0], [1, 1, 0], [0.5, 0.25, 0],
                                        [2 / 3, 2 / 3, 0]])
    with pytest.raises(ValueError, match='missing'):
        jm.apply(pos, ['A', 'B', 'X'])
    with pytest.raises(ValueError, match='length'):
        JointMap({'t': {'extend': ['A', 'B']}})


def test_presets_are_data():
    assert {'bandai_h36m17', 'cmu_h36m17'} <= set(joint_map_presets())
    h36m = Skeleton.preset('h36m17')
    for name in ('bandai_h36m17', 'cmu_h36m17'):
        jm = JointMap.preset(name)
        assert jm.target == 'h36m17'
        assert jm.target_names == h36m.joint_names
    with pytest.raises(ValueError, match='unknown joint map'):
        JointMap.preset('nope')


def test_cmu_map_on_cmu_shaped_rig():
    # a minimal CMU-named rig: every joint the map reads, zero motion
    names = ['Hips', 'LeftUpLeg', 'LeftLeg', 'LeftFoot', 'RightUpLeg', 'RightLeg', 'RightFoot',
             'Spine', 'Spine1', 'LeftArm', 'LeftForeArm', 'LeftHand',
             'RightArm', 'RightForeArm', 'RightHand', 'Neck', 'Neck1', 'Head']
    lines = ['HIERARCHY', 'ROOT Hips', '{', 'OFFSET 0 0 0',
             'CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation']
    for n in names[1:]:
        lines += [f'JOINT {n}', '{', 'OFFSET 0 1 0', 'CHANNELS 3 Zrotation Yrotation Xrotation']
    lines += ['End Site', '{', 'OFFSET 0 1 0', '}'] + ['}'] * len(names)
    lines += ['MOTION', 'Frames: 1', 'Frame Time: 0.0083333',
              ' '.join(['0'] * (6 + 3 * (len(names) - 1)))]
    bvh = parse_bvh('\n'.join(lines))
    # the chain puts joint k at height k; Head_End is the End Site of the last joint
    pos = forward_kinematics(bvh)
    names_all = bvh.joint_names
    assert names_all[-1] == 'Head_End'
    out = JointMap.preset('cmu_h36m17').apply(pos, names_all)
    assert out.shape == (1, 17, 3)
    np.testing.assert_allclose(out[0, 10], pos[0, -1] * 0.0564444)
    np.testing.assert_allclose(out[0, 7], 0.5 * (pos[0, 0] + pos[0, names_all.index('Neck')])
                               * 0.0564444)


def test_resample():
    x = np.arange(10, dtype=float)[:, None]
    np.testing.assert_array_equal(resample(x, 30, 10)[:, 0], [0, 3, 6, 9])
    y = resample(x, 30, 20)  # non-integer ratio: interpolation
    np.testing.assert_allclose(y[:, 0], np.arange(0, 9.01, 1.5))
    assert resample(x, 30, None) is x


def test_samples_match_npz(bandai):
    npz, samples = bandai
    data = np.load(npz, allow_pickle=False)
    files = list(data['seq_file'])
    joints = JointMap.preset('bandai_h36m17').joints
    assert list(data['bvh_joint_for_h36m'][:10]) == [
        joints[n] for n in Skeleton.preset('h36m17').joint_names[:10]]
    for path in samples:
        pos, fps = load_bvh_positions(path, 'bandai_h36m17', fps=10)
        s = files.index(path.name)
        a, n = data['seq_start'][s], data['seq_len'][s]
        ref = data['positions'][a:a + n]
        assert fps == 10 and pos.shape == ref.shape
        assert np.abs(pos - ref).max() < 1e-3  # ~1 mm (it is exact to float32 in practice)


def test_samples_rig_and_bone_lengths(bandai):
    npz, samples = bandai
    data = np.load(npz, allow_pickle=False)
    for path in samples[:4]:
        bvh = read_bvh(path)
        joints = [j for j in bvh.joints if not j.end_site]
        assert [j.name for j in joints] == list(data['bvh_joint_names'])
        pos = forward_kinematics(bvh) * 0.01
        real = [i for i, j in enumerate(bvh.joints) if not j.end_site]
        parents = [real.index(bvh.parents[i]) if bvh.parents[i] >= 0 else -1 for i in real]
        assert parents == list(data['bvh_parents'])
        lengths = bone_lengths(pos[:, real], parents)
        assert lengths[:, 2:].std(0).max() < 1e-6  # rigid bones below Hips over all frames
        offsets = np.linalg.norm(np.stack([bvh.joints[i].offset for i in real]) * 0.01, axis=-1)
        np.testing.assert_allclose(lengths[0, 2:], offsets[2:], atol=1e-6)
        actor = [a for a in range(3) if np.allclose(
            data['actor_bvh_offsets_m'][a, 1], bvh.joints[1].offset * 0.01, atol=1e-5)]
        assert len(actor) == 1

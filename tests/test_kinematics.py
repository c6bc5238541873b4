from __future__ import annotations

import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.kinematics import KinematicTree, bone_decompose, forward_kinematics

pytestmark = pytest.mark.usefixtures('one_thread')

H36M = Skeleton.preset('h36m17')


def random_pose(*shape, n=17, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(*shape, n, 3, generator=g, dtype=dtype)
    return pose - pose[..., :1, :]


@pytest.mark.parametrize('frame', ['camera', 'body'])
def test_round_trip_random(frame):
    tree = KinematicTree.from_skeleton(H36M, frame)
    pose = random_pose(4, 5)
    lengths, dirs = tree.decompose(pose)
    assert lengths.shape == (4, 5, 16) and dirs.shape == (4, 5, 16, 3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(4, 5, 16, dtype=torch.float64))
    torch.testing.assert_close(tree(lengths, dirs), pose, atol=1e-12, rtol=0)
    # float32 too, and translation is ignored
    pose32 = pose.float() + torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(tree.roundtrip(pose32), pose.float(), atol=1e-5, rtol=0)


def test_lengths_and_camera_directions_by_hand():
    tree = KinematicTree([-1, 0, 1, 0])                 # chain 0-1-2 and a branch 0-3
    pose = torch.tensor([[0., 0, 0], [0, 2, 0], [3, 2, 4], [-1, 0, 0]])
    lengths, dirs = tree.decompose(pose)
    torch.testing.assert_close(lengths, torch.tensor([2., 5, 1]))
    torch.testing.assert_close(dirs, torch.tensor([[0., 1, 0], [.6, 0, .8], [-1, 0, 0]]))
    torch.testing.assert_close(tree(lengths, dirs), pose)
    # same bones from the skeleton's own bone list, in the same (child) order
    assert KinematicTree.from_skeleton(H36M).bone_children == H36M.bones()[:, 0].tolist()


def test_body_frame_is_view_invariant_except_root_bones():
    tree = KinematicTree.from_skeleton(H36M, 'body')
    assert tree.frame_joints == (1, 4, 7)
    pose = random_pose(8)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64,
                                      generator=torch.Generator().manual_seed(1)))[0]
    rot = rot * torch.det(rot).sign()
    _, d = tree.decompose(pose)
    _, d_rot = tree.decompose(pose @ rot.T)
    local = tree.local_mask
    torch.testing.assert_close(d_rot[:, local], d[:, local])
    torch.testing.assert_close(d_rot[:, ~local], d[:, ~local] @ rot.T)


def test_normalize_keeps_lengths_and_functional_forms():
    tree = KinematicTree.from_skeleton(H36M, 'body')
    raw = torch.randn(6, 16, 3, dtype=torch.float64)
    lengths = torch.rand(16, dtype=torch.float64) + 0.1
    pose = tree(lengths, raw, normalize=True)
    torch.testing.assert_close(tree.decompose(pose)[0], lengths.expand(6, 16))
    pose = random_pose(3)
    lengths, dirs = bone_decompose(pose, H36M.parents)
    torch.testing.assert_close(forward_kinematics(lengths, dirs, H36M.parents), pose)


def test_validation():
    with pytest.raises(ValueError, match='root'):
        KinematicTree([0, 0])
    with pytest.raises(ValueError, match='frame'):
        KinematicTree([-1, 0], frame='local')
    with pytest.raises(ValueError, match='frame_joints'):
        KinematicTree([-1, 0, 1], frame='body')
    with pytest.raises(ValueError, match='expected'):
        KinematicTree.from_skeleton(H36M).decompose(torch.zeros(16, 3))


def test_levels_are_vectorised():
    tree = KinematicTree.from_skeleton(H36M)
    assert len(tree._levels) == max(tree.depth) == 5          # one step per depth level
    seen = sorted(j for joints, _, _ in tree._levels for j in joints.tolist())
    assert seen == list(range(1, 17))


@pytest.mark.parametrize('frame', ['camera', 'body'])
def test_gradcheck(frame):
    tree = KinematicTree.from_skeleton(H36M, frame)
    g = torch.Generator().manual_seed(2)
    lengths = (torch.rand(2, 16, dtype=torch.float64, generator=g) + 0.5).requires_grad_()
    dirs = torch.randn(2, 16, 3, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(lambda b, d: tree(b, d, normalize=True), (lengths, dirs))
    pose = random_pose(2, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: tree.decompose(p), (pose,))


@pytest.mark.parametrize('frame', ['camera', 'body'])
def test_round_trip_bandai(frame, shared_data):
    from pyg_skeleton.datasets.bandai import BandaiMocap
    data = BandaiMocap(shared_data('mocap/bandai2_h36m17.npz'))
    pose = torch.tensor(data.positions[::97], dtype=torch.float64)
    pose = pose - pose[:, :1]
    tree = KinematicTree.from_skeleton(H36M, frame)
    lengths, dirs = tree.decompose(pose)
    assert (lengths > 0.01).all()
    torch.testing.assert_close(tree(lengths, dirs), pose, atol=1e-12, rtol=0)
    pose32 = pose.float()
    torch.testing.assert_close(tree.roundtrip(pose32), pose32, atol=1e-6, rtol=0)


def test_body_frame_degenerate_pose_raises():
    tree = KinematicTree.from_skeleton(H36M, frame='body')
    a, b, c = tree.frame_joints
    pose = random_pose(3)
    assert torch.allclose(tree.roundtrip(pose), pose, atol=1e-10)
    hips = pose.clone()
    hips[1, b] = hips[1, a]              # coincident hips in one pose of three
    with pytest.raises(ValueError, match=rf"frame_joints=\({a}, {b}, {c}\).*1 pose.*"
                                         rf"joints {a} and {b} coincide"):
        tree.decompose(hips)
    spine = pose.clone()
    spine[2, c] = 0.3 * (spine[2, a] - spine[2, b])   # spine along the hip axis
    with pytest.raises(ValueError, match=rf"bone to joint {c} is parallel"):
        tree.decompose(spine)
    # Forward kinematics checks the frame bones it is given, too.
    lengths, dirs = tree.decompose(pose)
    dirs = dirs.clone()
    bone = tree.bone_children.index(b)
    dirs[0, bone] = dirs[0, tree.bone_children.index(a)]
    lengths = lengths.clone()
    lengths[0, bone] = lengths[0, tree.bone_children.index(a)]
    with pytest.raises(ValueError, match='coincide'):
        tree(lengths, dirs)

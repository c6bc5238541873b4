"""Bad inputs across the metrics, losses, kinematics, camera and k-hop APIs:
each raises a ValueError whose one-line message names the problem, instead
of a silent number or a raw IndexError / broadcast / ZeroDivisionError."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets.camera import (
    CameraRig,
    denormalize_screen,
    normalize_screen,
    project,
    ring_yaws,
)
from pyg_skeleton.kinematics import KinematicTree
from pyg_skeleton.metrics import MetricAccumulator, auc, group_mean, mpjpe, n_mpjpe, p_mpjpe, pck
from pyg_skeleton.nn.loss import SemGCNLoss
from pyg_skeleton.nn.models.hgn import HGNLoss
from pyg_skeleton.transforms.khop import KHopEdges, khop_edges

H36M = Skeleton.preset('h36m17')
NAN, INF = float('nan'), float('inf')


def raises(match):
    """pytest.raises for a ValueError with a one-line message."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(ValueError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = self.ctx.__exit__(*exc)
            assert '\n' not in str(self.info.value)
            return out
    return _Check()


@pytest.fixture
def poses():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 17, 3, generator=g, dtype=torch.float64)
    return t + 0.1 * torch.randn(4, 17, 3, generator=g, dtype=torch.float64), t


# ------------------------------------------------------------------ metrics

@pytest.mark.parametrize('fn', [mpjpe, p_mpjpe, n_mpjpe, pck, auc])
def test_metric_mask_weights(fn, poses):
    p, t = poses
    mask = torch.ones(4, 17)
    mask[0, 3] = -1.0
    with raises('non-negative'):
        fn(p, t, mask=mask)
    mask[0, 3] = NAN
    with raises('finite'):
        fn(p, t, mask=mask)
    with raises(r'mask of shape \[16\] does not broadcast'):
        fn(p, t, mask=torch.ones(16))


def test_metric_shapes_and_reduction(poses):
    p, t = poses
    with raises('same shape'):
        mpjpe(p, t[:, :16])
    with raises('unknown reduction'):
        mpjpe(p, t, reduction='sum')


def test_pck_auc_arguments(poses):
    p, t = poses
    for thr in (-0.1, NAN, INF):
        with raises("'threshold' must be a finite number >= 0"):
            pck(p, t, threshold=thr)
        with raises("'max_threshold' must be a finite number >= 0"):
            auc(p, t, max_threshold=thr)
    for n in (0, -3, 2.5, True):
        with raises("'num_thresholds' must be an integer >= 1"):
            auc(p, t, num_thresholds=n)
    # Edge values that are still defined: PCK at 0, one threshold.
    assert pck(p, t, threshold=0.0).item() == 0.0
    assert auc(p, t, num_thresholds=1).item() == 0.0


def test_group_mean_arguments():
    v = torch.tensor([1.0, 2.0, 3.0])
    with raises(r"'labels' has ids in \[0, 3\], outside \[0, 1\]"):
        group_mean(v, torch.tensor([0, 1, 3]), num_groups=2)
    with raises('outside'):
        group_mean(v, torch.tensor([0, -1, 1]), num_groups=2)
    with raises("'labels' has 2 entries for 3 samples"):
        group_mean(v, torch.tensor([0, 1]))
    with raises("'weights' has 2 entries for 3 values"):
        group_mean(v, torch.tensor([0, 1, 1]), weights=torch.ones(2))
    with raises('non-negative'):
        group_mean(v, torch.tensor([0, 1, 1]), weights=torch.tensor([1.0, -1.0, 1.0]))
    with raises("'num_groups' must be an integer >= 1"):
        group_mean(v, torch.tensor([0, 1, 1]), num_groups=0)
    # Zero total weight is "no sample", not a perfect 0.
    out = group_mean(v, torch.tensor([0, 1, 1]), weights=torch.tensor([0.0, 1.0, 1.0]))
    assert math.isnan(out[0]) and out[1] == 2.5


def test_accumulator_arguments(poses):
    p, t = poses
    for kwargs, match in [(dict(num_joints=0), 'num_joints'),
                          (dict(num_joints=17, num_groups=-1), 'num_groups'),
                          (dict(num_joints=17, scale=0.0), 'scale'),
                          (dict(num_joints=17, scale=NAN), 'scale'),
                          (dict(num_joints=17, pck_threshold=-1.0), 'pck_threshold')]:
        with raises(match):
            MetricAccumulator(**kwargs)
    acc = MetricAccumulator(17, num_groups=3)
    with raises(r"'groups' has ids in \[0, 3\], outside \[0, 2\] for num_groups=3"):
        acc.update(p, t, groups=torch.tensor([0, 1, 2, 3]))
    with raises('outside'):
        acc.update(p, t, groups=torch.tensor([0, -1, 2, 2]))
    with raises("'groups' has 3 entries for 4 samples"):
        acc.update(p, t, groups=torch.tensor([0, 1, 2]))
    with raises(r'expects predicted and target joints of the same shape \[\.\.\., 17, D\]'):
        acc.update(p[:, :16], t[:, :16])
    with raises('does not broadcast'):
        acc.update(p, t, mask=torch.ones(4, 16))
    with raises('non-negative'):
        acc.update(p, t, mask=-torch.ones(4, 17))
    with raises('num_groups=0'):
        MetricAccumulator(17).update(p, t, groups=torch.zeros(4, dtype=torch.long))
    with raises("'group_names' has 2 names"):
        acc.compute(['a', 'b'])
    # Nothing was accumulated by the failed calls; nothing scored is NaN.
    res = acc.compute()
    assert res['num_joints_evaluated'] == 0 and math.isnan(res['mpjpe'])


# ------------------------------------------------------------------- losses

def test_hgn_loss_masks_match_meshes():
    pose = torch.ones(2, 17, 3)
    mesh = [torch.zeros(2, 4, 3), torch.zeros(2, 6, 3)]
    target = [torch.ones(2, 4, 3), torch.ones(2, 6, 3)]
    loss = HGNLoss()
    # One mask for two meshes used to drop the second mesh term silently.
    with raises('got 1 masks for 2 meshes'):
        loss(pose, mesh, torch.zeros(2, 17, 3), target, [None])
    with raises('got 3 masks for 2 meshes'):
        loss(pose, mesh, torch.zeros(2, 17, 3), target, [None, None, None])
    with raises(r'boolean mask of shape \[6\]'):
        loss(pose, mesh, torch.zeros(2, 17, 3), target, [None, torch.ones(5, dtype=torch.bool)])
    with raises('boolean mask'):
        loss(pose, mesh, torch.zeros(2, 17, 3), target, [None, torch.ones(6)])
    full = loss(pose, mesh, torch.zeros(2, 17, 3), target, [None, None])
    assert torch.isclose(full, torch.tensor(17 * 3 + 0.01 * (12 + 18.)))


def test_semgcn_loss_arguments():
    for w in (-1.0, NAN, INF):
        with raises('bone_weight'):
            SemGCNLoss(H36M, bone_weight=w)
    with raises(r'\[\.\.\., 17, D\]'):
        SemGCNLoss(H36M)(torch.zeros(2, 16, 3), torch.zeros(2, 16, 3))


# --------------------------------------------------------------- kinematics

@pytest.mark.parametrize('parents,bad', [([-1, 5], r'parents\[1\] = 5'),
                                         ([-1, 0, -2], r'parents\[2\] = -2'),
                                         ([-1, 1], r'parents\[1\] = 1')])
def test_kinematic_tree_parents(parents, bad):
    with raises(bad + r' is not a joint of the \d+-joint tree'):
        KinematicTree(parents)


def test_kinematic_tree_arguments():
    for eps in (0.0, -1.0, NAN):
        with raises('eps'):
            KinematicTree([-1, 0], eps=eps)
    tree = KinematicTree.from_skeleton(H36M)
    dirs = torch.zeros(2, 16, 3)
    with raises(r'expected bone lengths \[\.\.\., 16\]'):
        tree(torch.ones(2, 15), dirs)
    with raises('do not broadcast'):
        tree(torch.ones(3, 16), dirs)


# ------------------------------------------------------------------- camera

@pytest.mark.parametrize('size', [0, -5, NAN, INF])
def test_screen_sizes(size):
    uv = np.zeros((3, 2))
    with raises("'width' must be a positive finite number"):
        normalize_screen(uv, size, 1000)
    with raises("'height' must be a positive finite number"):
        normalize_screen(torch.zeros(3, 2), 1000, size)
    with raises("'width'"):
        denormalize_screen(uv, size, 1000)


def test_camera_rig_arguments():
    for n in (0, -1, 2.0):
        with raises("'num_views' must be a positive integer"):
            CameraRig.test(n)
        with raises("'num_views'"):
            CameraRig.train(n)
        with raises("'num_views'"):
            ring_yaws(n)
    poses = np.random.default_rng(0).normal(size=(2, 17, 3))
    for rig, match in [(CameraRig(num_views=0), 'num_views'),
                       (CameraRig(distance=0.0), 'distance'),
                       (CameraRig(distance=(6.0, 4.0)), 'low end above'),
                       (CameraRig(cam_height=NAN), 'cam_height'),
                       (CameraRig(focal=0.0), 'focal'),
                       (CameraRig(width=0), 'width'),
                       (CameraRig(look_at_joint=17), "'look_at_joint' 17")]:
        with raises(match):
            rig.views(poses)
    with raises(r'expected world poses \[F, N, 3\]'):
        CameraRig().views(poses[0])
    with raises('focal'):
        project(np.array([[0.0, 0.0, 5.0]]), -1000.0, (500.0, 500.0))


# -------------------------------------------------------------------- k-hop

@pytest.mark.parametrize('hop', [INF, NAN, 0, -1, 1.5, True])
def test_khop_max_hop(hop):
    with raises("'max_hop' must be a positive integer"):
        khop_edges(H36M.edge_index, 17, hop)
    with raises("'max_hop' must be a positive integer"):
        KHopEdges(hop)


def test_khop_other_arguments():
    with raises("'num_nodes' must be a positive integer"):
        khop_edges(H36M.edge_index, 0, 2)
    with raises("'num_nodes'"):
        khop_edges(H36M.edge_index, 17.5, 2)
    with raises('integer tensor'):
        khop_edges(H36M.edge_index.float(), 17, 2)
    with raises(r'outside \[0, 10\)'):
        khop_edges(H36M.edge_index, 10, 2)
    with raises("'KHopEdges' needs data with an 'edge_index'"):
        KHopEdges(2)(Data(x=torch.zeros(3, 1)))


def test_root_relative_root():
    from pyg_skeleton.datasets.camera import root_relative
    pose = torch.randn(2, 5, 3)
    torch.testing.assert_close(root_relative(pose, 2), pose - pose[:, 2:3])
    for root in (5, -1, 1.0):
        with raises(r"'root' .* is not a joint of 5-joint poses"):
            root_relative(pose, root)


# ------------------------------------------------ operators and topologies

def test_operator_arguments():
    from pyg_skeleton.nn.conv import HCSFConv, KHopConv, PreAggConv, SemGraphConv
    from pyg_skeleton.nn.topology import Topology
    ei = H36M.edge_index
    for cin, cout in [(2.5, 4), (4, NAN), (0, 4), (True, 4)]:
        for cls in (SemGraphConv, PreAggConv, KHopConv):
            with raises('needs positive channel sizes, as integers'):
                cls(cin, cout, ei)
    for k in (INF, NAN, -1, 1.5):
        with raises("'KHopConv' needs an integer k >= 0"):
            KHopConv(4, 4, ei, k=k)
        with raises("'HCSFConv' needs an integer L >= 0"):
            HCSFConv(4, 4, ei, L=k)
    with raises('integer node ids'):
        Topology(ei.float())
    with raises("'num_nodes' must be an integer"):
        Topology(ei, 17.0)
    with raises(r'outside \[0, 9\]'):
        Topology(ei, 10)
    topo = Topology(ei)
    with raises(r"expects 32 edge weights and features \[\.\.\., 17, C\]"):
        topo.aggregate(torch.ones(3), torch.ones(2, 17, 4))
    with raises(r"expects 32 edge weights"):
        topo.aggregate(torch.ones(32), torch.ones(2, 16, 4))
    with raises(r"expects 49 slot weights"):
        topo.aggregate_pair(torch.ones(3), torch.ones(2, 17, 4), torch.ones(8, 4))
    with raises("needs 'num_nodes'"):
        topo.softmax(torch.ones(49), ei)


@pytest.mark.parametrize('kwargs, msg', [
    (dict(batch_size=0), 'batch size must be an integer of at least 1'),
    (dict(batch_size=-3), 'batch size'),
    (dict(batch_size=2.5), 'batch size'),
    (dict(batch_size=4, world_size=0), 'world size'),
    (dict(batch_size=4, world_size=2, rank=2), 'rank 2 is not below'),
    (dict(batch_size=3, world_size=2), 'not divisible'),
])
def test_tensor_batches_bad_sizes(kwargs, msg):
    from pyg_skeleton.datasets import LiftingTensors, TensorBatches
    d = LiftingTensors(torch.zeros(10, 17, 2), torch.zeros(10, 17, 3),
                       torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=msg):
        TensorBatches(d, **kwargs)

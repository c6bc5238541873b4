"""Custom skeletons end to end: a 21-joint hand, a quadruped with a tail,
two persons without an edge between them and a permuted Human3.6M skeleton,
through every operator of ``pyg_skeleton.nn.conv``, SemGCN, SkeletalGNN,
the camera rigs, the kinematic tree and the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pyg_skeleton.nn.conv as conv
from pyg_skeleton import Skeleton
from pyg_skeleton.cli.main import main
from pyg_skeleton.datasets import CameraRig, WildCameras, synthetic_poses
from pyg_skeleton.datasets.lifting import load_lifting_splits
from pyg_skeleton.kinematics import KinematicTree
from pyg_skeleton.nn.models.semgcn import SemGCN
from pyg_skeleton.nn.models.skeletal_gnn import SkeletalGNN

H36M = Skeleton.preset('h36m17')


def hand21():
    # wrist, then four joints per finger (thumb to little finger)
    parents = [-1]
    for finger in range(5):
        parents += [0, 1 + 4 * finger, 2 + 4 * finger, 3 + 4 * finger]
    return Skeleton.from_parents(parents, centre=0, name='hand21')


def quadruped():
    # 0 pelvis, 1-3 spine to withers, 4 neck, 5 head, 6-8 / 9-11 hind legs,
    # 12-14 / 15-17 front legs, 18-21 tail
    parents = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 0, 9, 10, 3, 12, 13, 3, 15, 16,
               0, 18, 19, 20]
    return Skeleton.from_parents(
        parents, centre=2, name='quadruped',
        flip_pairs=[(6, 9), (7, 10), (8, 11), (12, 15), (13, 16), (14, 17)])


def two_persons():
    parents = H36M.parents + [p + 17 if p >= 0 else -1 for p in H36M.parents]
    return Skeleton.from_parents(
        parents, joint_names=[f'a_{n}' for n in H36M.joint_names]
        + [f'b_{n}' for n in H36M.joint_names], centre=7,
        flip_pairs=H36M.flip_pairs + [(a + 17, b + 17)
                                      for a, b in H36M.flip_pairs],
        name='two_persons', require_connected=False)


PERM = torch.tensor([5, 12, 0, 16, 3, 9, 14, 1, 8, 11, 2, 15, 7, 4, 10, 13,
                     6])  # new joint k is old joint PERM[k]


def permuted_h36m():
    old_to_new = torch.empty(17, dtype=torch.long)
    old_to_new[PERM] = torch.arange(17)
    parents = [-1 if H36M.parents[int(o)] < 0
               else int(old_to_new[H36M.parents[int(o)]]) for o in PERM]
    return Skeleton.from_parents(
        parents, joint_names=[H36M.joint_names[int(o)] for o in PERM],
        centre=int(old_to_new[7]),
        flip_pairs=[(int(old_to_new[a]), int(old_to_new[b]))
                    for a, b in H36M.flip_pairs],
        groups=[[int(old_to_new[j]) for j in g] for g in H36M.groups],
        name='h36m17_permuted')


SKELETONS = {'hand21': hand21, 'quadruped': quadruped,
             'two_persons': two_persons, 'h36m17_permuted': permuted_h36m}

CONVS = {
    'SemGraphConv': lambda i, o, s: conv.SemGraphConv(i, o, s.edge_index,
                                                      s.num_joints),
    'FullSharingConv': lambda i, o, s: conv.FullSharingConv(
        i, o, s.edge_index, s.num_joints),
    'PreAggConv': lambda i, o, s: conv.PreAggConv(i, o, s.edge_index,
                                                  s.num_joints),
    'PostAggConv': lambda i, o, s: conv.PostAggConv(i, o, s.edge_index,
                                                    s.num_joints),
    'ConvStyleConv': lambda i, o, s: conv.ConvStyleConv(
        i, o, s.edge_index, s.centre, s.num_joints),
    'NoSharingConv': lambda i, o, s: conv.NoSharingConv(i, o, s.edge_index,
                                                        s.num_joints),
    'HCSFConv': lambda i, o, s: conv.HCSFConv(i, o, s.edge_index,
                                              s.num_joints),
    'DynamicHCSFConv': lambda i, o, s: conv.DynamicHCSFConv(
        i, o, s.edge_index, s.num_joints),
    'KHopConv': lambda i, o, s: conv.KHopConv(i, o, s.edge_index,
                                              s.num_joints, k=2),
    'MixHopSkeletonConv': lambda i, o, s: conv.MixHopSkeletonConv(
        i, o, s.edge_index, s.num_joints),
    'MSHopConv': lambda i, o, s: conv.MSHopConv(i, o, s.edge_index,
                                                s.num_joints),
}


def test_every_operator_is_covered():
    assert sorted(CONVS) == sorted(conv.__all__)


@pytest.mark.parametrize('skeleton', sorted(SKELETONS))
@pytest.mark.parametrize('name', sorted(CONVS))
def test_operator_forward_backward(skeleton, name):
    sk = SKELETONS[skeleton]()
    torch.manual_seed(0)
    layer = CONVS[name](6, 12, sk)
    x = torch.randn(3, sk.num_joints, 6, requires_grad=True)
    out = layer(x)
    assert out.shape == (3, sk.num_joints, 12)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in layer.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize('skeleton', sorted(SKELETONS))
def test_models_forward_backward(skeleton):
    sk = SKELETONS[skeleton]()
    torch.manual_seed(0)
    x = torch.randn(4, sk.num_joints, 2)
    for model in (SemGCN(sk, hidden_channels=16, num_layers=1),
                  SemGCN(sk, hidden_channels=16, num_layers=1,
                         conv='conv_style'),
                  SemGCN(sk, hidden_channels=16, num_layers=1,
                         non_local=True),
                  SkeletalGNN(sk, hidden_channels=16)):
        out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert out.shape == (4, sk.num_joints, 3)
        out.sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def permute_state(original, permuted, n):
    """The state of :obj:`original` for :obj:`permuted`, the same layer on
    the permuted skeleton: per-node tensors (every axis of size N) and
    per-edge tensors (a leading axis of the layer's edge slots, self-loops
    included, mapped by joint pair) permuted, the rest copied."""
    slot = None
    if hasattr(original, 'topology'):
        old, new = original.topology, permuted.topology
        key = {(int(s), int(d)): k for k, (s, d) in enumerate(
            zip(old.src.tolist(), old.dst.tolist()))}
        slot = torch.tensor([key[(int(PERM[s]), int(PERM[d]))]
                             for s, d in zip(new.src.tolist(),
                                             new.dst.tolist())])
    out = {}
    for name, value in original.state_dict().items():
        if n in value.shape:
            for dim, size in enumerate(value.shape):
                if size == n:
                    value = value.index_select(dim, PERM)
        elif slot is not None and value.dim() and \
                value.size(0) == slot.numel():
            value = value[slot]
        out[name] = value
    return out


@pytest.mark.parametrize('name', sorted(CONVS))
def test_permuted_h36m_equivariance(name):
    perm_sk = permuted_h36m()
    torch.manual_seed(0)
    original = CONVS[name](5, 8, H36M)
    permuted = CONVS[name](5, 8, perm_sk)
    with torch.no_grad():  # random values everywhere, logits included
        for p in original.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    permuted.load_state_dict(permute_state(original, permuted, 17))
    original.eval()
    permuted.eval()
    x = torch.randn(2, 17, 5)
    torch.testing.assert_close(permuted(x[:, PERM]), original(x)[:, PERM])


def naive_hops(sk, source):
    nbrs = {i: set() for i in range(sk.num_joints)}
    for i, j in sk.edge_index.t().tolist():
        nbrs[i].add(j)
    hop, frontier = {source: 0}, [source]
    while frontier:
        nxt = []
        for i in frontier:
            for j in nbrs[i]:
                if j not in hop:
                    hop[j] = hop[i] + 1
                    nxt.append(j)
        frontier = nxt
    return hop


def test_conv_style_two_persons_one_centre_each():
    sk = two_persons()
    layer = CONVS['ConvStyleConv'](4, 4, sk)
    expected = naive_hops(sk, 7)
    expected.update(naive_hops(sk, 24))  # the second person's spine
    assert layer.hop.tolist() == [expected[i] for i in range(34)]
    # each person typed as the single skeleton: the same input gives the
    # same output on both, and the second person uses the 'closer' weight
    single = CONVS['ConvStyleConv'](4, 4, H36M)
    single.load_state_dict({k: v for k, v in layer.state_dict().items()
                            if v.dim() == 0 or v.size(0) != 34 + 2 * 32},
                           strict=False)
    x = torch.randn(2, 17, 4)
    out = layer(torch.cat([x, x], 1))
    torch.testing.assert_close(out[:, 17:], out[:, :17])
    assert (~layer.farther).sum() == 2 * (~single.farther).sum()


def test_conv_style_centre_of_a_component_is_least_eccentric():
    # a path 0-1-2-3-4 and a separate path 5-6-7: centres 2 (given) and 6
    ei = torch.tensor([[0, 1, 2, 3, 5, 6], [1, 2, 3, 4, 6, 7]])
    layer = conv.ConvStyleConv(2, 2, ei, 2, 8)
    assert layer.hop.tolist() == [2, 1, 0, 1, 2, 1, 0, 1]


def test_conv_style_large_component_without_centre_is_an_error(monkeypatch):
    import pyg_skeleton.nn.conv.conv_style_conv as module
    monkeypatch.setattr(module, 'MAX_COMPONENT_NODES', 3)
    ei = torch.tensor([[0, 1, 3, 4, 5], [1, 2, 4, 5, 6]])
    with pytest.raises(ValueError, match='component of 4 nodes'):
        conv.ConvStyleConv(2, 2, ei, 0, 7)


def test_camera_rig_targets_relative_to_the_root():
    sk = Skeleton.preset('mpi_inf_3dhp17')
    assert sk.root == 14
    poses = synthetic_poses(3, skeleton='mpi_inf_3dhp17')
    rig = CameraRig(num_views=2, root=sk.root)
    views = rig.views(poses)
    assert np.abs(views['y'][:, 14]).max() == 0
    # against the camera-frame pose recovered from the joint-0 rig
    joint0 = CameraRig(num_views=2).views(poses)['y']
    np.testing.assert_allclose(views['y'], joint0 - joint0[:, 14:15],
                               atol=1e-5)
    with pytest.raises(ValueError, match="'root' 17"):
        CameraRig(root=17).views(poses)
    train, _, test = load_lifting_splits(
        'synthetic', skeleton='mpi_inf_3dhp17', synthetic_train=4,
        synthetic_test=2, views=1, val_fraction=0)
    assert train.y[:, 14].abs().max() == 0 and test.y[:, 14].abs().max() == 0
    assert train.y[:, 0].abs().max() > 0


def test_npz_positions_targets_relative_to_the_root(tmp_path):
    path = tmp_path / 'poses.npz'
    np.savez(path, positions=synthetic_poses(20, skeleton='mpi_inf_3dhp17'))
    sk = Skeleton.preset('mpi_inf_3dhp17')
    for skeleton in ('mpi_inf_3dhp17', sk):
        train, _, test = load_lifting_splits(str(path), skeleton=skeleton,
                                             views=1, val_fraction=0)
        assert train.y[:, 14].abs().max() == 0
        assert test.y[:, 14].abs().max() == 0


def test_wild_cameras_root():
    poses = synthetic_poses(3, skeleton='mpi_inf_3dhp17').astype(np.float64)
    cam = WildCameras().sample(poses, np.random.default_rng(0), root=14)
    assert np.abs(cam['y'][:, 14]).max() < 1e-12
    with pytest.raises(ValueError, match="'root' 20"):
        WildCameras().sample(poses, np.random.default_rng(0), root=20)


def test_skeleton_forest_roots_and_json_roundtrip(tmp_path):
    sk = two_persons()
    assert sk.roots == [0, 17] and sk.root == 0
    path = tmp_path / 'two.json'
    sk.save(path)
    assert Skeleton.load(path) == sk
    with pytest.raises(ValueError, match='several roots'):
        Skeleton.from_parents(sk.parents)


def test_kinematic_tree_forest():
    sk = two_persons()
    tree = KinematicTree.from_skeleton(sk)
    single = KinematicTree.from_skeleton(H36M)
    assert tree.roots == [0, 17] and tree.num_bones == 32
    torch.manual_seed(0)
    pose = torch.randn(5, 34, 3)
    lengths, dirs = tree.decompose(pose)
    # each tree as the single skeleton, independently
    for half in (slice(0, 17), slice(17, 34)):
        l1, d1 = single.decompose(pose[:, half])
        bones = slice(0, 16) if half.start == 0 else slice(16, 32)
        torch.testing.assert_close(lengths[:, bones], l1)
        torch.testing.assert_close(dirs[:, bones], d1)
    # forward kinematics: every root at the origin, or placed
    rel = tree(lengths, dirs)
    torch.testing.assert_close(rel[:, :17], pose[:, :17] - pose[:, :1])
    torch.testing.assert_close(rel[:, 17:], pose[:, 17:] - pose[:, 17:18])
    placed = tree(lengths, dirs, root_positions=pose[:, [0, 17]])
    torch.testing.assert_close(placed, pose)
    with pytest.raises(ValueError, match='single root'):
        KinematicTree(sk.parents, frame='body', frame_joints=(1, 4, 7))
    with pytest.raises(ValueError, match=r'root positions \[..., 2, 3\]'):
        tree(lengths, dirs, root_positions=torch.zeros(5, 3))


H36M_ON_SMPL = {'Hip': 'pelvis', 'RHip': 'right_hip', 'RKnee': 'right_knee',
                'RFoot': 'right_ankle', 'LHip': 'left_hip',
                'LKnee': 'left_knee', 'LFoot': 'left_ankle',
                'Spine': 'spine2', 'Thorax': 'spine3', 'Neck/Nose': 'neck',
                'Head': 'head', 'LShoulder': 'left_shoulder',
                'LElbow': 'left_elbow', 'LWrist': 'left_wrist',
                'RShoulder': 'right_shoulder', 'RElbow': 'right_elbow',
                'RWrist': 'right_wrist'}


def skeleton_file(tmp_path, sk, body_map=None):
    d = sk.to_dict()
    if body_map is not None:
        d['body_map'] = body_map
    path = tmp_path / f'{sk.name}.json'
    path.write_text(json.dumps(d))
    return path


def test_synthetic_poses_of_a_skeleton_with_a_body_map(tmp_path):
    sk = permuted_h36m()
    path = skeleton_file(tmp_path, sk, {'body': 'smpl24',
                                        'joints': H36M_ON_SMPL})
    loaded = Skeleton.load(path)
    assert loaded.body_map['body'] == 'smpl24'
    poses = synthetic_poses(4, seed=3, skeleton=loaded, floor=False)
    # the smpl24 body's joints, in the skeleton's order
    smpl = synthetic_poses(4, seed=3, skeleton='smpl24', floor=False)
    names = Skeleton.preset('smpl24').joint_names
    idx = [names.index(H36M_ON_SMPL[n]) for n in loaded.joint_names]
    np.testing.assert_allclose(poses, smpl[:, idx], atol=1e-6)
    # the body map survives a save and load
    again = tmp_path / 'again.json'
    loaded.save(again)
    assert Skeleton.load(again).body_map == loaded.body_map
    with pytest.raises(ValueError, match="missing \\['Head'\\]"):
        Skeleton.from_dict(dict(sk.to_dict(), body_map={
            'body': 'smpl24', 'joints': {k: v for k, v in H36M_ON_SMPL.items()
                                         if k != 'Head'}}))
    with pytest.raises(ValueError, match="no 'body_map'"):
        synthetic_poses(2, skeleton=hand21())


TINY = ['--dataset', 'synthetic', '--synthetic-train', '64',
        '--synthetic-test', '16', '--views', '1', '--batch-size', '32',
        '--hidden-channels', '8', '--num-layers', '1', '--no-progress',
        '--no-plots', '--epochs', '1']


def test_cli_trains_on_a_skeleton_json(tmp_path, capsys):
    sk = permuted_h36m()
    path = skeleton_file(tmp_path, sk, {'body': 'smpl24',
                                        'joints': H36M_ON_SMPL})
    out = tmp_path / 'run'
    assert main(['train', *TINY, '--skeleton', str(path),
                 '--out', str(out)]) == 0
    ckpt = torch.load(out / 'last.pt', weights_only=True)
    assert Skeleton.from_dict(ckpt['skeleton']) == Skeleton.load(path)
    capsys.readouterr()
    assert main(['evaluate', '--checkpoint', str(out / 'best.pt')]) == 0


def test_cli_skeleton_json_without_body_map_names_the_options(tmp_path,
                                                              capsys):
    path = skeleton_file(tmp_path, hand21())
    code = main(['train', *TINY, '--skeleton', str(path),
                 '--out', str(tmp_path / 'run')])
    err = capsys.readouterr().err
    assert code != 0 and 'body_map' in err and '--dataset FILE.npz' in err
    code = main(['train', *TINY, '--skeleton', str(tmp_path / 'no.json'),
                 '--out', str(tmp_path / 'run2')])
    assert code != 0 and 'no.json' in capsys.readouterr().err


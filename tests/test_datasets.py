from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets import (
    BandaiMocap,
    CameraRig,
    H36MPoses,
    LiftingDataset,
    TensorBatches,
    denormalize_screen,
    flip_pose,
    flip_test,
    load_h36m_2d,
    load_lifting,
    normalize_screen,
    reduce_32_to_17,
    synthetic_poses,
)
from pyg_skeleton.datasets.h36m import H36M_32_TO_17

from _helpers import SHARED_DATA

NPZ = SHARED_DATA / 'mocap' / 'bandai2_h36m17.npz'
needs_bandai = pytest.mark.skipif(not NPZ.exists(),
                                  reason=f'Bandai data not found at {NPZ} (../shared)')
H36M17 = Skeleton.preset('h36m17')


def test_normalize_screen_roundtrip():
    uv = np.array([[0.0, 0.0], [1000.0, 500.0], [500.0, 1000.0]])
    n = normalize_screen(uv, 1000, 1000)
    np.testing.assert_allclose(n, [[-1, -1], [1, 0], [0, 1]])
    # non-square: divided by the width, aspect ratio kept
    n2 = normalize_screen(np.array([[0.0, 0.0], [1000.0, 500.0]]), 1000, 500)
    np.testing.assert_allclose(n2, [[-1, -0.5], [1, 0.5]])
    np.testing.assert_allclose(denormalize_screen(torch.tensor(n2), 1000, 500).numpy(),
                               [[0, 0], [1000, 500]])


def test_camera_views_geometry():
    poses = synthetic_poses(10, seed=1)
    poses[:, :, 0] += 3.0  # far from the origin: cameras follow the subject
    rig = CameraRig.test(4)
    v = rig.views(poses)
    assert v['x'].shape == (40, 17, 2) and v['y'].shape == (40, 17, 3)
    np.testing.assert_allclose(v['y'][:, 0], 0, atol=1e-6)  # root-relative
    # camera-frame bone lengths equal world bone lengths (rigid transform)
    par = np.array(H36M17.parents[1:])
    wl = np.linalg.norm(poses[:, 1:] - poses[:, par], axis=-1)
    cl = np.linalg.norm(v['y'][:, 1:] - v['y'][:, par], axis=-1).reshape(10, 4, 16)
    np.testing.assert_allclose(cl, np.repeat(wl[:, None], 4, 1), atol=1e-5)
    # the root is seen at the image centre horizontally; the subject is upright (head up = -v)
    assert np.abs(v['pixels'][:, 0, 0] - 500).max() < 1e-3
    assert (v['pixels'][:, 10, 1] < v['pixels'][:, 3, 1]).mean() > 0.6
    assert np.abs(v['x']).max() < 1.0
    # random rig: distances 4-6 m give a plausible pixel height of ~1.7 m people
    vr = CameraRig.train(2).views(poses, seed=0)
    assert vr['x'].shape == (20, 17, 2)


def test_flip_and_flip_test():
    x = torch.randn(5, 17, 2)
    f = flip_pose(x, H36M17)
    assert torch.equal(flip_pose(f, H36M17), x)
    assert torch.equal(f[:, 1, 0], -x[:, 4, 0])

    class Equivariant(torch.nn.Module):
        def forward(self, inp):
            return torch.cat([inp, inp[..., 1:]], -1)

    model = Equivariant()
    out = flip_test(model, x, H36M17)
    torch.testing.assert_close(out, model(x))  # an equivariant model is unchanged


def test_synthetic_poses():
    p = synthetic_poses(500, seed=0)
    assert p.shape == (500, 17, 3) and p.dtype == np.float32
    np.testing.assert_array_equal(p, synthetic_poses(500, seed=0))
    assert np.isfinite(p).all()
    assert np.allclose(p[..., 1].min(1), 0, atol=1e-6)  # on the floor
    femur = np.linalg.norm(p[:, 2] - p[:, 1], axis=-1)
    assert 0.3 < femur.min() and femur.max() < 0.61 and femur.std() > 0.01
    np.testing.assert_allclose(femur, np.linalg.norm(p[:, 5] - p[:, 4], axis=-1), rtol=1e-5)
    knee = p[:, 3] - p[:, 2]
    assert np.all(knee[:, 1] < 0.45)
    with pytest.raises(ValueError, match='synthetic poses exist'):
        synthetic_poses(3, skeleton='no_such_skeleton')


def test_lifting_dataset_pyg_batching_and_tensor_path():
    train, test = load_lifting('synthetic', synthetic_train=50, synthetic_test=10, views=2)
    assert train.synthetic and 'synthetic' in train.description
    assert len(train) == 100 and len(test) == 20
    ds = LiftingDataset(train, H36M17)
    d = ds[3]
    assert d.x.shape == (17, 2) and d.y.shape == (17, 3) and d.num_nodes == 17
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch.x.shape == (136, 2) and batch.num_graphs == 8
    assert batch.edge_index.shape[1] == 8 * H36M17.edge_index.shape[1]
    torch.testing.assert_close(batch.x.view(8, 17, 2), train.x[:8])

    tb = TensorBatches(train, 32, seed=1)
    tb.set_epoch(0)
    batches = list(tb)
    assert len(batches) == 3 and batches[0][0].shape == (32, 17, 2)
    # two ranks see exactly the single-process global batches
    ranks = [TensorBatches(train, 32, seed=1, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(0)
    for k, (x, y, g, idx) in enumerate(batches):
        union = torch.cat([list(r)[k][3] for r in ranks])
        assert sorted(union.tolist()) == sorted(idx.tolist())
    tb.set_epoch(1)
    assert not torch.equal(next(iter(tb))[3], batches[0][3])
    assert torch.equal(list(tb.iterate(1))[0][3], list(tb)[1][3])  # resuming mid-epoch


def test_nan_check():
    train, _ = load_lifting('synthetic', synthetic_train=5, synthetic_test=5, views=1)
    train.x[2, 3, 0] = float('nan')
    with pytest.raises(ValueError, match='1 samples have NaN'):
        train.check_finite('training data')


def write_h36m(tmp_path, subjects=('S1', 'S5', 'S9', 'S11')):
    rng = np.random.default_rng(0)
    pos = {s: {'Walking 1': rng.normal(size=(6, 32, 3)).astype(np.float32),
               'Eating': rng.normal(size=(4, 32, 3)).astype(np.float32)} for s in subjects}
    path = tmp_path / 'data_3d_h36m.npz'
    np.savez_compressed(path, positions_3d=pos)
    pos2d = {s: {a: [rng.normal(size=(len(v), 17, 2)) for _ in range(4)]
                 for a, v in d.items()} for s, d in pos.items()}
    meta = {'layout_name': 'h36m', 'num_joints': 17,
            'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    path2 = tmp_path / 'data_2d_h36m_gt.npz'
    np.savez_compressed(path2, positions_2d=pos2d, metadata=meta)
    return path, path2, pos


def test_h36m_reader(tmp_path):
    path, path2, pos = write_h36m(tmp_path)
    poses = H36MPoses(path)
    assert poses.positions.shape == (40, 17, 3)
    assert poses.action_names == ['Eating', 'Walking']
    train, test = poses.split()
    assert len(train) == 20 and len(test) == 20
    # 32 -> 17 reduction and z-up -> y-up
    ref = pos['S1']['Eating'][:, H36M_32_TO_17]
    np.testing.assert_allclose(poses.positions[:4], np.stack(
        [ref[..., 0], ref[..., 2], -ref[..., 1]], -1))
    assert reduce_32_to_17(np.zeros((2, 32, 3))).shape == (2, 17, 3)
    d2, meta = load_h36m_2d(path2)
    assert meta['num_joints'] == 17 and len(d2['S9']['Eating']) == 4
    tr, te = load_lifting('h36m', path, views=2)
    assert len(tr) == 40 and len(te) == 40 and te.group_names == ['Eating', 'Walking']
    with pytest.raises(ValueError, match='positions_3d'):
        H36MPoses(path2)
    with pytest.raises(FileNotFoundError):
        H36MPoses(tmp_path / 'missing.npz')


@needs_bandai
def test_bandai_reader():
    data = BandaiMocap(NPZ)
    assert data.positions.shape[1:] == (17, 3) and data.fps == 10
    assert data.actors == [0, 1, 2]
    train, test = data.split(test_actor=2)
    assert len(train) + len(test) == len(data)
    assert set(data.actor[test]) == {2} and 2 not in set(data.actor[train])
    walks = data.subset(contents=['walk'], actors=[0])
    assert set(data.content[walks]) == {data.content_names.index('walk')}
    seq = next(data.sequences(styles=['normal']))
    assert seq['style'] == data.style_names.index('normal') and seq['positions'].ndim == 3
    with pytest.raises(ValueError, match='unknown content'):
        data.subset(contents=['swim'])
    with pytest.raises(ValueError, match='test actor'):
        data.split(test_actor=7)


def test_bandai_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        BandaiMocap(tmp_path / 'nope.npz')
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='cannot read'):
        BandaiMocap(bad)
    other = tmp_path / 'other.npz'
    np.savez(other, positions=np.zeros((3, 17, 3)))
    with pytest.raises(ValueError, match='missing arrays'):
        BandaiMocap(other)


# ------------------------------------------------------------------ validation

@needs_bandai
def test_bandai_validation_holds_out_whole_sequences():
    from pyg_skeleton.datasets.lifting import hold_out_groups, load_lifting_splits
    data = BandaiMocap(NPZ)
    tr, te = data.split(test_actor=2)
    mask = hold_out_groups(data.sequence[tr], data.actor[tr], 0.1, seed=0)
    train_seq, val_seq = set(data.sequence[tr[~mask]]), set(data.sequence[tr[mask]])
    assert train_seq and val_seq and not train_seq & val_seq   # no sequence on both sides
    assert not val_seq & set(data.sequence[te])
    for actor in (0, 1):                                        # ~10 % of each actor's sequences
        n = (data.seq_actor == actor).sum()
        k = sum(data.seq_actor[s] == actor for s in val_seq)
        assert k == round(0.1 * n)
    # load_lifting_splits renders exactly those frames through the evaluation cameras
    train, val, test = load_lifting_splits('bandai', NPZ, views=1, val_fraction=0.1)
    expect = CameraRig.test(1).views(data.positions[tr[mask]])
    np.testing.assert_allclose(val.y.numpy(), expect['y'], atol=1e-6)
    assert len(train) == (~mask).sum() and len(test) == len(te) and val.split == 'val'
    t2, te2 = load_lifting('bandai', NPZ, views=1)                # unchanged 2-tuple API
    assert len(t2) == len(tr) and torch.equal(te2.y, test.y)


def test_npz_and_synthetic_validation(tmp_path):
    from pyg_skeleton.datasets.lifting import load_lifting_splits
    pos = np.random.default_rng(0).normal(size=(100, 17, 3)) * 0.3
    path = tmp_path / 'p.npz'
    np.savez(path, positions=pos)
    train, val, test = load_lifting_splits(str(path), views=1, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (72, 18, 10)     # 20 % of the 90 train frames
    expect = CameraRig.test(1).views(pos[72:90])
    np.testing.assert_allclose(val.y.numpy(), expect['y'], atol=1e-6)
    tr2, v2, te2 = load_lifting_splits(str(path), views=1, val_fraction=0)
    assert v2 is None and len(tr2) == 90
    with pytest.raises(ValueError, match='val_fraction'):
        load_lifting_splits(str(path), val_fraction=1.0)
    # synthetic: the validation poses have their own seed
    tr, va, te = load_lifting_splits('synthetic', synthetic_train=40, synthetic_test=10,
                                     views=1, val_fraction=0.25, seed=3)
    assert len(va) == 10 and va.synthetic
    ref = CameraRig.test(1).views(synthetic_poses(10, seed=3 + 2_000_003))
    np.testing.assert_allclose(va.y.numpy(), ref['y'], atol=1e-6)
    assert not np.isin(np.round(va.y.numpy(), 5), np.round(tr.y.numpy(), 5)).all(-1).all(-1).any()


def test_h36m_validation_holds_out_takes(tmp_path):
    from pyg_skeleton.datasets.lifting import hold_out_groups, load_lifting_splits
    path, _, _ = write_h36m(tmp_path)
    poses = H36MPoses(path)
    assert poses.take_names[:2] == ['S1/Eating', 'S1/Walking 1']
    tr, te = poses.split()
    mask = hold_out_groups(poses.take[tr], poses.subject[tr], 0.5, seed=0)
    # one of the two takes of each training subject, whole
    for s in np.unique(poses.subject[tr]):
        held = set(poses.take[tr[mask]][poses.subject[tr[mask]] == s])
        assert len(held) == 1 and not held & set(poses.take[tr[~mask]])
    train, val, test = load_lifting_splits('h36m', path, views=1, val_fraction=0.5)
    assert len(train) + len(val) == 20 and len(val) == mask.sum() and len(test) == 20


# ------------------------------------------- synthetic poses of every preset

# per preset: the head joint and the pelvis joints (their midpoint), by name
HEAD_PELVIS = {'coco17': ('nose', ['left_hip', 'right_hip']),
               'ntu25': ('head', ['spine_base']),
               'mpi_inf_3dhp17': ('head_top', ['pelvis'])}


def test_every_preset_has_synthetic_poses():
    from pyg_skeleton.datasets.synthetic import synthetic_skeletons
    assert set(synthetic_skeletons()) == set(Skeleton.presets())
    for name in Skeleton.presets():
        sk = Skeleton.preset(name)
        p = synthetic_poses(20, seed=1, skeleton=name)
        assert p.shape == (20, sk.num_joints, 3) and np.isfinite(p).all(), name
        np.testing.assert_allclose(p[..., 1].min(1), 0, atol=1e-6)  # on the floor


@pytest.mark.parametrize('name', sorted(HEAD_PELVIS))
def test_mapped_presets_look_like_people(name):
    sk = Skeleton.preset(name)
    p = synthetic_poses(3000, seed=2, skeleton=name).astype(np.float64)
    idx = sk.joint_names.index
    bone = {sk.joint_names[j]: np.linalg.norm(p[:, j] - p[:, q], axis=-1)
            for j, q in enumerate(sk.parents) if q >= 0}
    # left and right bones: equally long on average (within 2 %), and the
    # limbs (bones between body joints) in every pose
    for a, b in sk.flip_pairs:
        na, nb = sk.joint_names[a], sk.joint_names[b]
        if na in bone:
            assert abs(bone[na].mean() / bone[nb].mean() - 1) < 0.02, (na, nb)
    for side in ('left', 'right'):
        upper = np.linalg.norm(p[:, idx(f'{side}_elbow')] - p[:, idx(f'{side}_shoulder')], axis=-1)
        fore = np.linalg.norm(p[:, idx(f'{side}_wrist')] - p[:, idx(f'{side}_elbow')], axis=-1)
        thigh = np.linalg.norm(p[:, idx(f'{side}_knee')] - p[:, idx(f'{side}_hip')], axis=-1)
        shin = np.linalg.norm(p[:, idx(f'{side}_ankle')] - p[:, idx(f'{side}_knee')], axis=-1)
        # adult proportions (metres; bodies are scaled by 0.8 to 1.2 and
        # bones by 0.88 to 1.12): upper arm, forearm, thigh, shin
        for length, lo, hi in ((upper, 0.18, 0.38), (fore, 0.16, 0.36), (thigh, 0.28, 0.55),
                               (shin, 0.28, 0.55)):
            assert lo < length.min() and length.max() < hi
        if side == 'left':
            left = (upper, fore, thigh, shin)
    for a, b in zip(left, (upper, fore, thigh, shin)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # the head is above the pelvis in every pose (y up), and in the most
    # upright poses the head is a person's height over the ankles
    head, pelvis = HEAD_PELVIS[name]
    centre = p[:, [idx(j) for j in pelvis]].mean(1)
    assert (p[:, idx(head), 1] - centre[:, 1]).min() > 0.1
    ankles = p[:, [idx('left_ankle'), idx('right_ankle')], 1].min(1)
    assert 1.35 < (p[:, idx(head), 1] - ankles).max() < 2.0
    # the face is on the head: nose in front of the ears (subject faces +z
    # in its heading frame: the hips along +x)
    if name == 'coco17':
        lat = p[:, idx('left_hip')] - p[:, idx('right_hip')]
        fwd = np.cross(lat, [0.0, 1.0, 0.0])  # left (+x) cross up (+y) = forward (+z)
        ears = (p[:, idx('left_ear')] + p[:, idx('right_ear')]) / 2
        ahead = ((p[:, idx('nose')] - ears) * fwd).sum(-1) / np.linalg.norm(fwd, axis=-1)
        assert np.median(ahead) > 0.05


def test_user_joint_map_and_errors():
    import copy

    from pyg_skeleton.datasets.synthetic import JOINT_MAPS
    # a two-point skeleton of your own on the smpl24 body: the offset is
    # carried by the head (constant distance to it) and scales with the body
    jmap = {'name': 'mine', 'body': 'smpl24',
            'joints': {'top': {'joint': 'head', 'offset': [0, 0.12, 0]}, 'root': 'pelvis'}}
    p = synthetic_poses(50, seed=0, skeleton=jmap, bone_scale_std=0, body_scale_std=0,
                        floor=False)
    head = synthetic_poses(50, seed=0, skeleton='smpl24', bone_scale_std=0, body_scale_std=0,
                           floor=False)[:, 15]
    np.testing.assert_allclose(np.linalg.norm(p[:, 0] - head, axis=-1), 0.12, rtol=1e-5)
    assert p.shape == (50, 2, 3)
    bad = copy.deepcopy(JOINT_MAPS['coco17'])
    bad['joints']['left_eye'] = {'joint': 'head', 'offset': [-0.032, 0.035, 0.075]}
    with pytest.raises(ValueError, match='not mirror images'):
        synthetic_poses(2, skeleton=bad)
    with pytest.raises(ValueError, match="must name a joint of body 'smpl24'"):
        synthetic_poses(2, skeleton=dict(jmap, joints={'x': 'nose'}))
    with pytest.raises(ValueError, match="'body' must be one of"):
        synthetic_poses(2, skeleton=dict(jmap, body='coco17'))


# ------------------------------------------------------------ dataset registry

def _ring_dataset(data, options):
    # a registered dataset: 40 poses of a random walk, last quarter for test,
    # the validation frames the last of the training ones
    from pyg_skeleton.datasets.synthetic import synthetic_poses
    pos = synthetic_poses(40, seed=7)
    n_val = 5 if options.use_val else 0
    tr, va, te = options.split(np.arange(30 - n_val), np.arange(30 - n_val, 30),
                               np.arange(30, 40))
    return options.render(pos, tr, va, te, description='ring (test data)')


@pytest.fixture
def ring_dataset():
    from pyg_skeleton.datasets.lifting import DATASETS, register_dataset
    register_dataset('ring', _ring_dataset)
    yield 'ring'
    del DATASETS['ring']


def test_registered_dataset_loads(ring_dataset):
    from pyg_skeleton.datasets.camera import CameraRig
    from pyg_skeleton.datasets.lifting import dataset_actors, load_lifting_splits, render_lifting
    from pyg_skeleton.datasets.synthetic import synthetic_poses
    train, val, test = load_lifting_splits('ring', views=2, frame_step=2, seed=3,
                                           val_fraction=0.1)
    # the reference: the same frames rendered by hand through the same rigs and seeds
    pos = synthetic_poses(40, seed=7)
    want_train = render_lifting(pos[np.arange(25)[::2]], CameraRig.train(2), seed=3)
    want_val = render_lifting(pos[np.arange(25, 30)[::2]], CameraRig.test(2), seed=5)
    want_test = render_lifting(pos[np.arange(30, 40)[::2]], CameraRig.test(2), seed=4)
    for got, want in ((train, want_train), (val, want_val), (test, want_test)):
        assert torch.equal(got.x, want.x) and torch.equal(got.y, want.y)
    assert train.description == 'ring (test data)' and val.split == 'val'
    tr, va, te = load_lifting_splits('ring', views=1, val_fraction=0)
    assert va is None and len(tr) == 30
    assert dataset_actors('ring') is None


def test_register_dataset_refuses_file_names():
    from pyg_skeleton.datasets.lifting import register_dataset
    for bad in ('', 'mine.npz'):
        with pytest.raises(ValueError, match='dataset name'):
            register_dataset(bad, _ring_dataset)


def test_registered_dataset_on_the_command_line(ring_dataset, tmp_path, capsys):
    import json

    from pyg_skeleton.cli import main
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'ring', '--views', '2', '--batch-size', '8',
                 '--hidden-channels', '8', '--num-layers', '1', '--epochs', '1',
                 '--no-progress', '--no-plots', '--out', str(out)]) == 0
    config = json.loads((out / 'config.json').read_text())
    assert config['dataset'] == 'ring (test data)'
    assert config['samples'] == {'train': 50, 'val': 10, 'test': 20}
    capsys.readouterr()
    # evaluate takes a registered name from the checkpoint (it is not a file)
    assert main(['evaluate', '--checkpoint', str(out / 'best.pt')]) == 0
    assert 'ring (test data)' in capsys.readouterr().out

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import pyg_skeleton
from pyg_skeleton.cli import main
from pyg_skeleton.datasets import load_lifting
from pyg_skeleton.datasets.builtin import (
    BUILTIN_MOTION_PATH,
    CMU_ACKNOWLEDGEMENT,
    builtin_motion,
)
from pyg_skeleton.datasets.wild import WildCameras
from pyg_skeleton.inference import MIN_VISIBLE, gaussian_smooth, lift, load_intrinsics
from pyg_skeleton.lifter import (
    DEFAULT_LIFTER,
    Lifter,
    evaluate_lifter,
    pretrained_lifters,
)

from _helpers import ROOT, SHARED_DATA


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    lifter = Lifter('nosharing', hidden_channels=8, num_layers=1)
    path = tmp_path_factory.mktemp('lifter') / 'tiny.pt'
    lifter.save(path)
    return path


def sequence(n=40, seed=0):
    seq = dict(builtin_motion('test').sequences())['bvh/131_01'][:n]
    return WildCameras(distance=(5, 6), off_centre=0.1, roll=(-5, 5), elevation=(5, 15)).sample(
        seq, np.random.default_rng(seed), shared=True)


# ------------------------------------------------------------ built-in data

def test_builtin_motion_splits():
    train, test, all_ = builtin_motion('train'), builtin_motion('test'), builtin_motion('all')
    assert len(train) + len(test) == len(all_) > 19_000
    assert train.positions.shape[1:] == (17, 3)
    test_subjects = {test.subjects[s] for s in np.unique(test.sequence)}
    train_subjects = {train.subjects[s] for s in np.unique(train.sequence)}
    assert '131' in test_subjects and '131' not in train_subjects
    assert not set(np.unique(train.sequence)) & set(np.unique(test.sequence))
    # glitch frames are marked: no joint moves faster than 15 m/s between two
    # consecutive valid frames of a sequence, and the loader drops the others
    with np.load(BUILTIN_MOTION_PATH, allow_pickle=False) as z:
        p, seq, valid = z['positions_mm'] / 1000.0, z['sequence'], z['valid']
    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1).max(-1) * 30.0
    both = valid[1:] & valid[:-1] & (seq[1:] == seq[:-1])
    assert speed[both].max() < 15.0 and (speed[(seq[1:] == seq[:-1])] > 15.0).any()
    assert len(all_) == valid.sum()
    with pytest.raises(ValueError, match='split'):
        builtin_motion('val')


def test_builtin_motion_ships_its_acknowledgement():
    with np.load(BUILTIN_MOTION_PATH, allow_pickle=False) as z:
        assert str(z['acknowledgement']) == CMU_ACKNOWLEDGEMENT
    assert CMU_ACKNOWLEDGEMENT in (ROOT / 'NOTICE').read_text()


def test_builtin_motion_rebuilds_from_shared(shared_data):
    cmu = shared_data('mocap/cmu')
    import importlib.util
    spec = importlib.util.spec_from_file_location('build', ROOT / 'scripts' /
                                                  'build_builtin_motion.py')
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    fresh = build.build(SHARED_DATA.parent)
    with np.load(BUILTIN_MOTION_PATH, allow_pickle=False) as z:
        for k in ('positions_mm', 'sequence', 'valid', 'seq_names', 'seq_split'):
            assert np.array_equal(z[k], fresh[k]), k
        # int16 millimetres hold the source to half a millimetre
        src = np.load(cmu / 'cmu_bvh_h36m17.npz', allow_pickle=False)['positions']
        assert np.abs(z['positions_mm'][-len(src):] / 1000.0 - src).max() <= 0.0005 + 1e-7


# ------------------------------------------------------------------ lifter

def test_lifter_save_load_roundtrip(tiny):
    a = Lifter.load(tiny)
    x = torch.randn(5, 17, 3)
    torch.manual_seed(0)
    b = Lifter('nosharing', hidden_channels=8, num_layers=1)
    assert torch.allclose(a(x), b.eval()(x))
    out = a(x)
    assert out.shape == (5, 17, 3) and torch.allclose(out[:, 0], torch.zeros(5, 3))


def test_lifter_file_keeps_module_versions(tmp_path):
    torch.manual_seed(0)
    lifter = Lifter('nosharing', hidden_channels=8, num_layers=1)
    lifter.save(tmp_path / 'l.pt')
    state = torch.load(tmp_path / 'l.pt', weights_only=True)['state_dict']
    assert state._metadata == lifter.state_dict()._metadata
    assert any(m.get('version') == 2 for m in state._metadata.values())  # BatchNorm's
    loaded = Lifter.load(tmp_path / 'l.pt')
    for k, v in lifter.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def _write(path, obj):
    torch.save(obj, path)
    return path


def test_lifter_load_rejects_bad_files(tiny, tmp_path):
    good = torch.load(tiny, weights_only=True)
    cases = {
        'format tag': dict(good, format='other'),
        'options must name': dict(good, options={'arch': 'nosharing'}),
        'unknown lifter architecture': dict(good, options=dict(good['options'], arch='x')),
        'hidden_channels must be': dict(good, options=dict(good['options'],
                                                           hidden_channels=20000)),
        'NaN or infinite': dict(good, state_dict={
            k: (v.clone().fill_(float('nan')) if v.is_floating_point() else v)
            for k, v in good['state_dict'].items()}),
        'has shape': dict(good, state_dict={k: (v[..., :1] if v.dim() >= 2 else v)
                                            for k, v in good['state_dict'].items()}),
        'do not fit': dict(good, state_dict={'x': torch.zeros(1)}),
    }
    for msg, obj in cases.items():
        with pytest.raises(ValueError, match=msg):
            Lifter.load(_write(tmp_path / 'bad.pt', obj))
    (tmp_path / 'junk.pt').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='not a readable lifter file'):
        Lifter.load(tmp_path / 'junk.pt')
    with pytest.raises(FileNotFoundError):
        Lifter.load(tmp_path / 'missing.pt')
    with pytest.raises(ValueError, match='unknown pretrained lifter'):
        Lifter.pretrained('nope')


def test_lift_is_flip_equivariant(tiny):
    lifter = Lifter.load(tiny)
    cam = sequence(8)
    uv = cam['pixels']
    mirrored = uv.copy()
    mirrored[..., 0] = 2000.0 - mirrored[..., 0]
    perm = lifter.skeleton.flip_permutation.numpy()
    a = lifter.lift(uv)
    b = lifter.lift(mirrored[:, perm])
    assert torch.allclose(lifter.skeleton.flip(b, lateral_axis=0), a, atol=1e-5)


def test_bundled_lifters():
    names = pretrained_lifters()
    assert {'semgcn', 'nosharing'} <= set(names) and DEFAULT_LIFTER in names
    size = sum((pyg_skeleton.lifter.PRETRAINED_DIR / f'{n}.pt').stat().st_size for n in names)
    assert size + BUILTIN_MOTION_PATH.stat().st_size < 10e6
    for name in names:
        card = Lifter.pretrained(name).card
        for key in ('data', 'cameras', 'augmentation', 'metrics_builtin_test_mm', 'command'):
            assert key in card, (name, key)
        assert 'CMU' in card['data'] and 'Bandai' not in json.dumps(card)


def test_bundled_default_lifter_on_held_out_motion():
    # the card's number, re-measured on a subsample: the weights do what the card says
    lifter = Lifter.pretrained(DEFAULT_LIFTER)
    test = builtin_motion('test').positions[::25]
    m = evaluate_lifter(lifter, test, WildCameras(), seed=2)
    card = lifter.card['metrics_builtin_test_mm']['wild cameras, clean']
    assert m['mpjpe'] < 110 and m['p_mpjpe'] < 80
    assert m['mpjpe'] == pytest.approx(card['mpjpe'], rel=0.15)
    lost = evaluate_lifter(lifter, test, WildCameras(), seed=2, drop=2)
    assert lost['mpjpe'] < 1.3 * m['mpjpe']


# --------------------------------------------------------------- smoothing

def test_gaussian_smooth_matches_a_loop():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(30, 17, 3))
    frame = np.r_[np.arange(12), np.arange(14, 32)]   # a gap splits two runs
    p[20] = np.nan                                    # and a NaN pose
    sigma = 1.7
    out = gaussian_smooth(p, frame, sigma)
    ref = np.full_like(p, np.nan)
    runs = [list(range(0, 12)), list(range(12, 20)), list(range(21, 30))]
    r = int(np.ceil(3 * sigma))
    for run in runs:
        for i in run:
            w = [np.exp(-0.5 * ((j - i) / sigma) ** 2) if abs(j - i) <= r else 0 for j in run]
            ref[i] = sum(wj * p[j] for wj, j in zip(w, run)) / sum(w)
    assert np.isnan(out[20]).all()
    ok = ~np.isnan(ref).any((1, 2))
    assert np.allclose(out[ok], ref[ok])
    shuffled = rng.permutation(30)   # order of the rows does not matter
    assert np.allclose(gaussian_smooth(p[shuffled], frame[shuffled], sigma)[ok[shuffled]],
                       out[shuffled][ok[shuffled]])


# -------------------------------------------------------------------- lift

def test_lift_array_and_file_agree(tiny, tmp_path):
    cam = sequence(10)
    kp = np.concatenate([cam['pixels'], np.ones((10, 17, 1))], -1)
    a = lift(kp, format='h36m17', checkpoint=tiny)
    np.save(tmp_path / 'kp.npy', kp)
    b = lift(tmp_path / 'kp.npy', format='h36m17', checkpoint=tiny)
    assert np.allclose(a.poses, b.poses)
    assert a.poses.shape == (10, 17, 3) and np.isfinite(a.poses).all()
    assert np.allclose(a.poses, Lifter.load(tiny).lift(cam['pixels']).numpy(), atol=1e-6)


def test_lift_masks_and_refuses_too_few_joints(tiny):
    cam = sequence(4)
    kp = np.concatenate([cam['pixels'], np.ones((4, 17, 1))], -1)
    kp[0, :, 2] = 0.0                     # nothing confident
    kp[1, :17 - MIN_VISIBLE + 1, 2] = 0.1  # one joint short
    kp[2, 13, 2] = 0.0                    # one wrist missing: still lifted
    with pytest.warns(UserWarning, match='fewer than 6 visible joints'):
        r = lift(kp, format='h36m17', checkpoint=tiny)
    assert np.isnan(r.poses[:2]).all() and np.isfinite(r.poses[2:]).all()
    assert not r.mask[2, 13] and r.mask[3].all()


def test_lift_bad_inputs(tiny, tmp_path):
    kp = np.zeros((2, 17, 2))
    with pytest.raises(ValueError, match='format='):
        lift(kp, checkpoint=tiny)
    with pytest.raises(ValueError, match='min_confidence'):
        lift(kp, format='coco17', min_confidence=2.0, checkpoint=tiny)
    with pytest.raises(ValueError, match='smooth'):
        lift(kp, format='coco17', smooth=-1, checkpoint=tiny)
    with pytest.raises(ValueError, match='image size'):
        lift(kp, format='coco17', image_size=(0, 100), checkpoint=tiny)
    with pytest.raises(ValueError, match='unknown'):
        lift(kp, format='nope', checkpoint=tiny)
    with pytest.raises(ValueError, match=r'\[T, J, 2\]'):
        lift(np.zeros((2, 17, 5)), format='coco17', checkpoint=tiny)
    with pytest.raises(ValueError, match='17'):
        lift(np.zeros((2, 15, 2)), format='coco17', checkpoint=tiny)
    with pytest.raises(ValueError, match='no (pose has|sample)'):   # nothing at all to lift
        lift(np.full((2, 17, 2), np.nan), format='coco17', checkpoint=tiny)


def test_lift_warns_about_unusual_cameras(tiny):
    cam = sequence(6)
    uv = cam['pixels']
    centre = np.array([500.0, 500.0])
    upside_down = 2 * centre - uv                 # rotated by 180 degrees in the image
    kp = np.concatenate([upside_down, np.ones((6, 17, 1))], -1)
    with pytest.warns(UserWarning, match='torso is rotated'):
        lift(kp, format='h36m17', checkpoint=tiny)
    kp = np.concatenate([uv, np.ones((6, 17, 1))], -1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')            # an ordinary view: no warning
        lift(kp, format='h36m17', checkpoint=tiny,
             intrinsics={'focal_length': float(cam['focal'][0]),
                         'width': float(cam['image_size'][0, 0]),
                         'height': float(cam['image_size'][0, 1])})
    with pytest.warns(UserWarning, match='from the camera'):   # 10x the focal length
        lift(kp, format='h36m17', checkpoint=tiny,
             intrinsics={'focal_length': 10 * float(cam['focal'][0]), 'center': [500, 500]})
    far = kp.copy()
    far[..., :2] += 3 * cam['focal'][0]           # far off the optical axis
    with pytest.warns(UserWarning, match='off the optical axis'):
        lift(far, format='h36m17', checkpoint=tiny,
             intrinsics={'focal_length': float(cam['focal'][0]), 'center': [500, 500]})


def test_load_intrinsics(tmp_path):
    p = tmp_path / 'k.json'
    p.write_text(json.dumps({'focal_length': [1000, 1010], 'center': [320, 240]}))
    k = load_intrinsics(p)
    assert k['focal_length'].tolist() == [1000, 1010] and k['center'].tolist() == [320, 240]
    for bad, msg in (({'center': [1, 2]}, 'focal_length'), ({'focal_length': -5}, 'positive'),
                     ({'focal_length': 'x'}, 'numbers'),
                     ({'focal_length': 1000, 'center': [1, float('inf')]}, 'finite')):
        with pytest.raises(ValueError, match=msg):
            load_intrinsics(bad)
    p.write_text('[' * 100000)
    with pytest.raises(ValueError, match='not valid JSON'):
        load_intrinsics(p)


def test_lift_smoothing(tiny):
    cam = sequence(30)
    kp = np.concatenate([cam['pixels'] + np.random.default_rng(0).normal(
        scale=4, size=cam['pixels'].shape), np.ones((30, 17, 1))], -1)
    raw = lift(kp, format='h36m17', checkpoint=tiny)
    smooth = lift(kp, format='h36m17', checkpoint=tiny, smooth=2.0)
    assert smooth.smoothed == 2.0
    assert np.allclose(smooth.poses, gaussian_smooth(raw.poses, raw.frame, 2.0), atol=1e-6)


def test_lift_result_files(tiny, tmp_path):
    pytest.importorskip('matplotlib')
    cam = sequence(12)
    kp = np.concatenate([cam['pixels'], np.ones((12, 17, 1))], -1)
    r = lift(kp, format='h36m17', checkpoint=tiny)
    written = r.save(tmp_path / 'out')
    assert {p.name for p in written} == {'poses3d.npz', 'poses3d.json', 'lift.png', 'lift.gif'}
    with np.load(tmp_path / 'out' / 'poses3d.npz', allow_pickle=False) as z:
        assert np.allclose(z['poses'], r.poses)
    js = json.loads((tmp_path / 'out' / 'poses3d.json').read_text())
    assert js['units'] == 'metres' and len(js['poses']) == 12
    assert np.allclose(js['poses'][3]['joints_3d'], r.poses[3], atol=1e-5)
    assert js['joint_names'][0] == 'Hip'


# --------------------------------------------------------------------- CLI

def coco_results(path, cam):
    # COCO-17 from the h36m17 projection: eyes/ears/nose placed around the head
    h = cam['pixels']
    coco = np.zeros((len(h), 17, 2))
    m = {5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}
    for c, j in m.items():
        coco[:, c] = h[:, j]
    coco[:, 0] = h[:, 9]
    for c, dx in ((1, -5), (2, 5), (3, -12), (4, 12)):
        coco[:, c] = 0.5 * (h[:, 9] + h[:, 10]) + [dx, 0]
    rows = [{'image_id': i, 'category_id': 1, 'score': 0.9,
             'keypoints': np.concatenate([coco[i], np.full((17, 1), 0.9)], -1).ravel().tolist()}
            for i in range(len(h))]
    path.write_text(json.dumps(rows))
    return path


def test_cli_lift(tiny, tmp_path, capsys):
    src = coco_results(tmp_path / 'dets.json', sequence(6))
    assert main(['lift', str(src), '--checkpoint', str(tiny), '--no-plots']) == 0
    out = tmp_path / 'dets_3d'
    assert (out / 'poses3d.npz').is_file() and (out / 'poses3d.json').is_file()
    assert '6 of 6 poses lifted' in capsys.readouterr().out
    # an existing result is never overwritten silently
    assert main(['lift', str(src), '--checkpoint', str(tiny)]) == 2
    assert 'already holds lifted poses' in capsys.readouterr().err
    assert main(['lift', str(src), '--checkpoint', str(tiny), '--overwrite',
                 '--no-plots']) == 0
    for argv, msg in ((['lift'], 'required'), (['lift', str(tmp_path / 'none.json')], 'not found'),
                      (['lift', str(src), '--model', 'semgcn', '--checkpoint', str(tiny)],
                       'not both'),
                      (['lift', str(src), '--out', str(src)], 'not a folder'),
                      (['lift', str(src), '--format', 'nope', '--checkpoint', str(tiny)],
                       'unknown'),
                      (['lift', str(src), '--model', 'nope'], 'unknown pretrained lifter'),
                      (['lift', str(src), '--checkpoint', str(src)], 'not a readable lifter'),
                      (['lift', str(src), '--image-size', '0', '10', '--checkpoint', str(tiny)],
                       'image size')):
        capsys.readouterr()
        if '--out' not in argv and len(argv) > 1:
            argv = argv + ['--out', str(tmp_path / 'fresh')]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    assert main(['lift', '--list-formats']) == 0
    assert 'coco17' in capsys.readouterr().out.split()


def test_demo_command(tmp_path, capsys):
    pytest.importorskip('matplotlib')
    out = tmp_path / 'demo'
    assert main(['demo', '--steps', '4', '--out', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'held-out' in text and 'bundled lifter' in text and 'from scratch' in text
    report = json.loads((out / 'report.json').read_text())
    clean = report['held_out'][0]
    assert clean['condition'] == 'clean 2D' and clean['mpjpe'] < 110
    for name in ('samples.png', 'lift.png', 'lift.gif', 'poses3d.npz', 'small_lifter.pt'):
        assert (out / name).stat().st_size > 1000, name
    Lifter.load(out / 'small_lifter.pt')


def test_training_data_that_is_a_keypoint_file_points_to_lift(tmp_path):
    np.savez(tmp_path / 'kp.npz', keypoints=np.zeros((4, 17, 3), np.float32))
    with pytest.raises(ValueError, match='pyg-skeleton lift'):
        load_lifting(str(tmp_path / 'kp.npz'))

"""Human3.6M with real 2D inputs and cameras: a tiny fake dataset in the
VideoPose3D layout whose 2D are exact projections of the 3D through known
cameras, checked with independent NumPy geometry."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pyg_skeleton.datasets import load_lifting
from pyg_skeleton.datasets.camera import denormalize_screen
from pyg_skeleton.datasets.h36m import (
    H36MCamera,
    h36m_camera_samples,
    load_h36m_cameras,
    quaternion_to_matrix,
)
from pyg_skeleton.datasets.lifting import load_lifting_splits

KEEP = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]  # 32 -> 17, by hand
W, H = 1000, 1002


def look_at(cam, target):
    """World (z up) to camera (x right, y down, z forward) rotation, by hand."""
    f = (target - cam) / np.linalg.norm(target - cam)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    return np.stack([r, d, f])


def matrix_to_quaternion(m):
    """(w, x, y, z) of a rotation matrix (trace method; fine away from 180 deg)."""
    w = 0.5 * np.sqrt(max(1.0 + np.trace(m), 1e-12))
    return np.array([w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w),
                     (m[1, 0] - m[0, 1]) / (4 * w)])


def make_cameras():
    """Per subject: two cameras, one given by quaternion, one by matrix."""
    cams, truth = {}, {}
    for si, s in enumerate(['S1', 'S9']):
        entries, mats = [], []
        for k, pos in enumerate([(3.0 + si, -4.0, 1.5), (-4.5, -2.0 - si, 1.8)]):
            c = np.array(pos)
            R = look_at(c, np.array([0.1, 0.2, 1.0]))
            f, ctr = (1150.0 + 5 * k, 1148.0 - 3 * si), (510.0 + k, 505.0 - k)
            e = {'id': f'cam{k}', 'width': W, 'height': H if k == 0 else W,
                 'focal_length': list(f), 'center': list(ctr),
                 'translation': (c * 1000).tolist()}                       # millimetres
            if k == 0:
                e['orientation'] = matrix_to_quaternion(R.T).tolist()     # camera-to-world
            else:
                e['rotation'] = R.tolist()                                # world-to-camera
            entries.append(e)
            mats.append((R, c, np.array(f), np.array(ctr), e['width'], e['height']))
        cams[s], truth[s] = entries, mats
    return {'translation_unit': 'mm', 'subjects': cams}, truth


def pinhole(p, f, c):
    return p[..., :2] / p[..., 2:3] * f + c


def write_dataset(tmp_path, extra_frames=2, layout='h36m'):
    rng = np.random.default_rng(0)
    takes = {'S1': {'Walking 1': 50, 'Eating': 40}, 'S9': {'Walking': 50}}
    cams_json, truth = make_cameras()
    pos3, pos2 = {}, {}
    for s, acts in takes.items():
        pos3[s], pos2[s] = {}, {}
        for a, T in acts.items():
            p = rng.normal(scale=0.3, size=(T, 32, 3)) + [0.2, -0.1, 1.0]
            pos3[s][a] = p.astype(np.float32)
            views = []
            for k, (R, c, f, ctr, w, h) in enumerate(truth[s]):
                pc = (p[:, KEEP].astype(np.float32).astype(np.float64) - c) @ R.T
                uv = pinhole(pc, f, ctr)
                if k == 0 and s == 'S1' and a == 'Walking 1':   # a longer 2D sequence
                    uv = np.concatenate([uv, uv[-1:].repeat(extra_frames, 0)])
                views.append(uv.astype(np.float32))
            pos2[s][a] = views
    p3, p2, pc = tmp_path / 'data_3d_h36m.npz', tmp_path / 'data_2d_h36m_gt.npz', \
        tmp_path / 'cameras.json'
    np.savez_compressed(p3, positions_3d=pos3)   # pickled dicts, as the real files
    np.savez_compressed(p2, positions_2d=pos2, metadata={
        'layout_name': layout, 'num_joints': 17,
        'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]})
    pc.write_text(json.dumps(cams_json))
    return p3, p2, pc, pos3, pos2, truth


def test_quaternion_to_matrix_by_hand():
    a = np.deg2rad(30)
    q = [np.cos(a / 2), 0, 0, np.sin(a / 2)]  # 30 deg about z
    np.testing.assert_allclose(quaternion_to_matrix(q), [[np.cos(a), -np.sin(a), 0],
                                                         [np.sin(a), np.cos(a), 0], [0, 0, 1]],
                               atol=1e-12)


def test_camera_samples_geometry(tmp_path):
    p3, p2, pc, pos3, pos2, truth = write_dataset(tmp_path)
    with pytest.warns(UserWarning, match='trimmed to the shorter'):
        d = h36m_camera_samples(p3, p2, pc)
    assert d['subject_names'] == ['S1', 'S9'] and d['action_names'] == ['Eating', 'Walking']
    assert d['take_names'] == ['S1/Eating', 'S1/Walking 1', 'S9/Walking']
    assert d['x'].shape == (2 * (50 + 40 + 50), 17, 2) and d['y'].shape[1:] == (17, 3)
    np.testing.assert_allclose(d['y'][:, 0], 0, atol=1e-7)   # root-relative
    for i in np.linspace(0, len(d['x']) - 1, 25).round().astype(int):
        s = d['subject_names'][d['subject'][i]]
        take = d['take_names'][d['take'][i]].split('/')[1]
        cams = [c for c in truth[s]]
        k = [e['id'] for e in json.loads(pc.read_text())['subjects'][s]].index(
            d['camera_ids'][d['camera'][i]])
        R, c, f, ctr, w, h = cams[k]
        t = d['frame'][i]
        world = pos3[s][take][t, KEEP].astype(np.float64)
        cam = (world - c) @ R.T                                  # independent transform
        np.testing.assert_allclose(d['y'][i], cam - cam[:1], atol=2e-5)
        np.testing.assert_allclose(d['root'][i], cam[0], atol=1e-4)
        # the 3D in the camera frame projects onto the given 2D
        absolute = d['y'][i].astype(np.float64) + d['root'][i]
        np.testing.assert_allclose(pinhole(absolute, f, ctr), pos2[s][take][k][t], atol=2e-3)
        # 2D normalised by this camera's width, keeping the aspect ratio
        np.testing.assert_allclose(2 * pos2[s][take][k][t] / w - [1, h / w], d['x'][i],
                                   atol=1e-5)
        np.testing.assert_allclose(denormalize_screen(d['x'][i], w, h), pos2[s][take][k][t],
                                   atol=1e-3)


def test_load_lifting_real_cameras(tmp_path):
    p3, p2, pc, *_ = write_dataset(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tr, te = load_lifting('h36m', p3, inputs_2d=p2, cameras=pc)
        assert len(tr) == 2 * (50 + 40) and len(te) == 2 * 50
        assert 'real cameras' in tr.description and te.group_names == ['Eating', 'Walking']
        tr2, va, te2 = load_lifting_splits('h36m', p3, inputs_2d=p2, cameras=pc,
                                           val_fraction=0.5, seed=1)
        # one of S1's two takes (both camera views) is held out whole
        assert {len(tr2), len(va)} == {2 * 50, 2 * 40} and len(te2) == len(te)
        assert len(tr2) + len(va) == len(tr)
        tr3, _ = load_lifting('h36m', p3, inputs_2d=p2, cameras=pc, frame_step=5)
        assert len(tr3) == 2 * (10 + 8)
    with pytest.raises(ValueError, match='inputs_2d'):
        load_lifting('h36m', p3, inputs_2d=p2)
    with pytest.raises(ValueError, match='inputs_2d'):
        load_lifting('synthetic', inputs_2d=p2, cameras=pc)


def test_project_with_distortion():
    cam = H36MCamera('c', 1000, 1000, np.array([1000.0, 1000.0]), np.array([500.0, 500.0]),
                     np.array([0.1, 0.01, 0.0]), np.array([0.001, -0.002]), np.eye(3),
                     np.zeros(3))
    p = np.array([0.3, -0.2, 2.0])
    x, y = 0.15, -0.1
    r2 = x * x + y * y
    rad = 1 + 0.1 * r2 + 0.01 * r2 ** 2
    xd = x * rad + 2 * 0.001 * x * y + -0.002 * (r2 + 2 * x * x)
    yd = y * rad + 0.001 * (r2 + 2 * y * y) + 2 * -0.002 * x * y
    np.testing.assert_allclose(cam.project(p), [1000 * xd + 500, 1000 * yd + 500])
    np.testing.assert_allclose(cam.project(p, distort=False), [650, 400])


def test_frame_mismatch_and_layout_errors(tmp_path):
    p3, p2, pc, *_ = write_dataset(tmp_path, extra_frames=10)
    with pytest.raises(ValueError, match='60 2D frames but 50 3D frames'):
        h36m_camera_samples(p3, p2, pc)
    sub = tmp_path / 'coco'
    sub.mkdir()
    p3, p2, pc, *_ = write_dataset(sub, layout='coco')
    with pytest.raises(ValueError, match="layout 'coco'"):
        h36m_camera_samples(p3, p2, pc)


def cam_error(tmp_path, doc):
    path = tmp_path / 'c.json'
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ValueError) as e:
        load_h36m_cameras(path)
    msg = str(e.value)
    assert '\n' not in msg
    return msg


def test_camera_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='cameras file not found'):
        load_h36m_cameras(tmp_path / 'none.json')
    good, _ = make_cameras()
    assert len(load_h36m_cameras(good)['S1']) == 2
    assert 'cannot read' in cam_error(tmp_path, '{not json')
    assert "'subjects'" in cam_error(tmp_path, {'translation_unit': 'mm'})
    assert 'translation_unit' in cam_error(tmp_path, dict(good, translation_unit='inch'))

    def with_cam(**change):
        cam = dict(good['subjects']['S1'][0])
        for k, v in change.items():
            if v is None:
                cam.pop(k)
            else:
                cam[k] = v
        return {'translation_unit': 'mm', 'subjects': {'S1': [cam]}}

    assert "missing 'center'" in cam_error(tmp_path, with_cam(center=None))
    assert 'exactly one' in cam_error(tmp_path, with_cam(rotation=np.eye(3).tolist()))
    assert 'exactly one' in cam_error(tmp_path, with_cam(orientation=None))
    assert 'unit quaternion' in cam_error(tmp_path, with_cam(orientation=[1, 1, 0, 0]))
    assert 'not a rotation' in cam_error(
        tmp_path, with_cam(orientation=None, rotation=(2 * np.eye(3)).tolist()))
    assert 'not a rotation' in cam_error(
        tmp_path, with_cam(orientation=None, rotation=np.diag([1, 1, -1]).tolist()))
    assert "'rotation' must be" in cam_error(tmp_path, with_cam(orientation=None,
                                                                rotation=[1, 2]))
    assert "'focal_length' must be positive" in cam_error(tmp_path,
                                                          with_cam(focal_length=[-1, 5]))
    assert "'width'" in cam_error(tmp_path, with_cam(width=0))
    assert "'center' must be 2" in cam_error(tmp_path, with_cam(center=[1, 2, 3]))
    assert "'radial_distortion' must be 3" in cam_error(tmp_path,
                                                        with_cam(radial_distortion=[0.1]))
    assert 'non-empty list' in cam_error(tmp_path, {'translation_unit': 'm',
                                                    'subjects': {'S1': []}})
    twice = with_cam()
    twice['subjects']['S1'] *= 2
    assert 'repeated camera ids' in cam_error(tmp_path, twice)


def test_pairing_errors(tmp_path):
    p3, p2, pc, *_ = write_dataset(tmp_path)
    doc = json.loads(pc.read_text())
    one = dict(doc, subjects={'S1': doc['subjects']['S1']})
    with pytest.raises(ValueError, match='no cameras for subject S9'):
        h36m_camera_samples(p3, p2, one)
    three = dict(doc, subjects=dict(doc['subjects'], S9=doc['subjects']['S9'] + [
        dict(doc['subjects']['S9'][0], id='cam2')]))
    with pytest.raises(ValueError, match='2 camera views of 2D keypoints but 3 cameras'):
        h36m_camera_samples(p3, p2, three)
    with pytest.raises(ValueError, match='subject S7 not in the file'):
        h36m_camera_samples(p3, p2, pc, subjects=['S7'])
    # a 2D file without one of the 3D takes
    with np.load(p2, allow_pickle=True) as f:
        d2, meta = f['positions_2d'].item(), f['metadata'].item()
    del d2['S1']['Eating']
    np.savez(tmp_path / 'missing.npz', positions_2d=d2, metadata=meta)
    with pytest.raises(ValueError, match='no 2D keypoints for S1/Eating'):
        h36m_camera_samples(p3, tmp_path / 'missing.npz', pc)
    with pytest.raises(FileNotFoundError):
        h36m_camera_samples(p3, tmp_path / 'none.npz', pc)


class _RunsCode:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg, ))


@pytest.mark.parametrize('protocol', [2, 3, 5])
def test_videopose3d_files_load_without_allow_pickle(tmp_path, monkeypatch, protocol):
    import pickle

    from pyg_skeleton.datasets.h36m import load_h36m_2d, load_h36m_3d
    p3, p2, pc, pos3, pos2, _ = write_dataset(tmp_path)
    # the reader never calls np.load(allow_pickle=True) nor pickle.load
    real_load = np.load

    def no_pickle_load(*args, allow_pickle=False, **kwargs):
        assert not allow_pickle
        return real_load(*args, allow_pickle=allow_pickle, **kwargs)

    monkeypatch.setattr(np, 'load', no_pickle_load)
    monkeypatch.setattr(pickle, 'load', None)
    d3 = load_h36m_3d(p3)
    d2, meta = load_h36m_2d(p2)
    monkeypatch.undo()
    assert d3.keys() == pos3.keys() and d2.keys() == pos2.keys()
    for s in pos3:
        assert d3[s].keys() == pos3[s].keys()
        for a in pos3[s]:
            np.testing.assert_array_equal(d3[s][a], pos3[s][a])
            assert d3[s][a].dtype == pos3[s][a].dtype
            assert len(d2[s][a]) == len(pos2[s][a])
            for got, want in zip(d2[s][a], pos2[s][a]):
                np.testing.assert_array_equal(got, want)
    assert meta == {'layout_name': 'h36m', 'num_joints': 17,
                    'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    # an uncompressed archive written with another pickle protocol reads the same
    import io
    import zipfile
    other = tmp_path / f'p{protocol}.npz'
    with zipfile.ZipFile(other, 'w') as zf:
        buf, arr = io.BytesIO(), np.array(pos3, dtype=object)
        np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
        pickle.dump(arr, buf, protocol=protocol)
        zf.writestr('positions_3d.npy', buf.getvalue())
    d = load_h36m_3d(other)
    np.testing.assert_array_equal(d['S9']['Walking'], pos3['S9']['Walking'])


@pytest.mark.parametrize('call', ['system', 'eval'])
def test_h36m_file_that_runs_code_is_refused(tmp_path, call):
    import builtins
    import os

    from pyg_skeleton.datasets.h36m import load_h36m_2d, load_h36m_3d
    marker = tmp_path / 'pwned'
    payload = (_RunsCode(os.system, f'touch {marker}') if call == 'system'
               else _RunsCode(builtins.eval, f"open({str(marker)!r}, 'w').close()"))
    evil = tmp_path / 'evil.npz'
    np.savez(evil, positions_3d=np.array({'S1': {'Walking': payload}}, dtype=object))
    with pytest.raises(ValueError, match=f"evil.npz: refused to load global.*{call}"):
        load_h36m_3d(evil)
    # the same payload hidden in the metadata of a 2D file
    np.savez(evil, positions_2d=np.array({'S1': {}}, dtype=object),
             metadata=np.array({'layout_name': payload}, dtype=object))
    with pytest.raises(ValueError, match='refused to load global'):
        load_h36m_2d(evil)
    assert not marker.exists()
    # other malformed content: one-line errors naming the file
    np.savez(evil, positions_3d=np.array({'S1': {'Walking': 'text'}}, dtype=object))
    with pytest.raises(ValueError, match='evil.npz.*numeric arrays'):
        load_h36m_3d(evil)
    np.savez(evil, positions_3d=np.arange(3))
    with pytest.raises(ValueError, match='evil.npz: positions_3d must be a dict'):
        load_h36m_3d(evil)
    evil.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises(ValueError, match='cannot read .*evil.npz'):
        load_h36m_3d(evil)


def test_camera_file_numbers_and_nesting(tmp_path):
    good, _ = make_cameras()
    doc = json.dumps(good)
    width = json.dumps(good['subjects']['S1'][0]['width'])
    for bad in ('Infinity', 'NaN', '-Infinity', '1e999'):
        msg = cam_error(tmp_path, doc.replace(f'"width": {width}', f'"width": {bad}', 1))
        assert 'c.json' in msg and ('JSON' in msg or "'width'" in msg), msg
    msg = cam_error(tmp_path, '[' * 100000 + ']' * 100000)
    assert 'c.json' in msg and 'nested too deeply' in msg
    # a dict with an infinite width (not from JSON) is refused too
    cam = dict(good['subjects']['S1'][0], width=float('inf'))
    with pytest.raises(ValueError, match="'width' must be a positive whole number"):
        load_h36m_cameras({'translation_unit': 'mm', 'subjects': {'S1': [cam]}})

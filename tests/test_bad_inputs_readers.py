"""Hostile files and bad inputs across the readers: truncated, garbage,
NaN-laden and oversized files, out-of-range or fractional indices.

Every reader must answer with one ``ValueError`` line that names the problem
and the file (or key), never with an empty or NaN result, a raw numpy/torch
error or a ``MemoryError``.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import zipfile

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets.bandai import BandaiMocap
from pyg_skeleton.datasets.bvh import JointMap, parse_bvh, read_bvh, resample
from pyg_skeleton.datasets.lifting import load_lifting_splits
from pyg_skeleton.mesh import (
    HEMPool,
    HEMUnpool,
    Mesh,
    MeshHierarchy,
    check_mesh,
    faces_to_edge_index,
    hem_coarsen,
    hem_pool,
    hem_unpool,
    mesh_from_arrays,
    read_mesh,
    read_npz,
    read_obj,
    read_ply,
)
from pyg_skeleton.mesh.io import npz_members, read_npz_arrays

TET_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
TET_F = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])


def one_line(exc_info, *parts):
    """The error is a single line and mentions every part."""
    msg = str(exc_info.value)
    assert '\n' not in msg, msg
    for part in parts:
        assert str(part) in msg, (part, msg)
    return msg


# --------------------------------------------------------------- npz crafting

def npy_bytes(shape, descr='<f8', data=b''):
    """An .npy member whose header claims `shape` followed by `data`."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {'descr': descr, 'fortran_order': False, 'shape': tuple(shape)})
    return buf.getvalue() + data


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, 'w', compression) as zf:
        for name, raw in members.items():
            zf.writestr(name + '.npy', raw)


def arr_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_npz_header_claiming_1e13_rows_is_refused_before_allocating(tmp_path):
    path = tmp_path / 'bomb.npz'
    write_zip(path, {'vertices': npy_bytes((10**13, 3), data=b'\0' * 72),
                     'faces': arr_bytes(TET_F)})
    with pytest.raises(ValueError) as e:     # the old reader: MemoryError
        read_npz(path)
    one_line(e, path, "'vertices'", '10000000000000', 'holds 72 bytes')
    with pytest.raises(ValueError) as e:
        npz_members(path)
    one_line(e, path, "'vertices'")


def test_npz_compressed_member_claiming_more_than_deflate_can_produce(tmp_path):
    path = tmp_path / 'deflate.npz'
    write_zip(path, {'vertices': arr_bytes(np.zeros((4000, 3)))}, zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    # raise the uncompressed size in the central directory entry to 3.5 GiB
    cd = raw.rfind(b'PK\x01\x02')
    compressed = struct.unpack_from('<I', raw, cd + 20)[0]
    assert 0xE0000000 > 1100 * compressed + 4096
    struct.pack_into('<I', raw, cd + 24, 0xE0000000)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as e:
        read_npz_arrays(path)
    one_line(e, path, "'vertices'", 'more than deflate can produce')


@pytest.mark.parametrize('case', ['truncated', 'garbage', 'object', 'corrupt'])
def test_npz_mesh_bad_archives(tmp_path, case):
    path = tmp_path / f'{case}.npz'
    if case in ('truncated', 'corrupt'):
        np.savez_compressed(path, vertices=np.random.default_rng(0).random((500, 3)),
                            faces=TET_F)
        raw = bytearray(path.read_bytes())
        if case == 'truncated':
            raw = raw[:len(raw) // 2]
        else:  # flip bytes in the middle of the first member's deflate stream
            for i in range(200, 240):
                raw[i] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif case == 'garbage':
        path.write_bytes(bytes(range(256)) * 8)
    else:
        np.savez(path, vertices=np.array([{'x': 1}], dtype=object), faces=TET_F)
    with pytest.raises(ValueError) as e:
        read_npz(path)
    one_line(e, path)


def test_npz_mesh_nan_vertices_and_empty_mesh(tmp_path):
    v = TET_V.copy()
    v[2, 1] = np.nan
    np.savez(tmp_path / 'nan.npz', vertices=v, faces=TET_F)
    with pytest.raises(ValueError) as e:                    # read_npz alone, no check_mesh
        read_npz(tmp_path / 'nan.npz')
    one_line(e, tmp_path / 'nan.npz', 'NaN', 'vertex 2')
    np.savez(tmp_path / 'empty.npz', vertices=np.zeros((0, 3)),
             faces=np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError) as e:
        read_mesh(tmp_path / 'empty.npz')
    one_line(e, tmp_path / 'empty.npz', 'no vertices')


def test_npz_helper_loads_the_same_arrays_as_numpy(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {'a': rng.random((7, 3)), 'b': np.arange(5, dtype=np.int16),
              'c': np.array(['x', 'yz']), 'd': np.float32(2.5)}
    np.savez_compressed(tmp_path / 'ok.npz', **arrays)
    out = read_npz_arrays(tmp_path / 'ok.npz')
    assert sorted(out) == sorted(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == np.asarray(a).dtype and np.array_equal(out[k], a)
    assert npz_members(tmp_path / 'ok.npz')['a'] == ((7, 3), np.dtype('<f8'))
    with pytest.raises(ValueError) as e:
        read_npz_arrays(tmp_path / 'ok.npz', required=['zz'])
    one_line(e, tmp_path / 'ok.npz', "no array 'zz'")


# ----------------------------------------------------------------- OBJ / PLY

def test_obj_binary_garbage_is_not_an_empty_mesh(tmp_path):
    path = tmp_path / 'garbage.obj'
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(ValueError) as e:     # the old reader: an empty mesh
        read_mesh(path)
    one_line(e, path, 'binary')
    path = tmp_path / 'text.obj'
    path.write_text('hello\nworld\n')
    with pytest.raises(ValueError) as e:
        read_mesh(path)
    one_line(e, path, 'no vertices')
    path.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\n')
    with pytest.raises(ValueError) as e:
        read_obj(path)
    one_line(e, path, 'no faces')


def test_obj_face_index_reported_as_written(tmp_path):
    path = tmp_path / 'zero.obj'
    path.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n')
    with pytest.raises(ValueError) as e:     # the old reader: "face index 3"
        read_obj(path)
    msg = one_line(e, f'{path}:4:', 'face index 0')
    assert 'face index 3' not in msg
    path.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\n\nf 1 2 9\n')
    with pytest.raises(ValueError) as e:
        read_obj(path)
    one_line(e, f'{path}:5:', 'face index 9', '3 vertices')
    path.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -4\n')
    with pytest.raises(ValueError) as e:
        read_obj(path)
    one_line(e, f'{path}:4:', 'face index -4')
    # valid relative indices still work: -1 is the last vertex so far
    path.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n')
    assert read_obj(path).face.tolist() == [[0], [1], [2]]


def test_obj_nan_vertex_refused_by_the_reader(tmp_path):
    path = tmp_path / 'nan.obj'
    path.write_text('v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n')
    with pytest.raises(ValueError) as e:     # the old reader returned NaN
        read_obj(path)
    one_line(e, path, 'NaN', 'vertex 1')


PLY_HEAD = ('ply\nformat {fmt} 1.0\nelement vertex 4\nproperty float x\nproperty float y\n'
            'property float z\nelement face 4\nproperty list uchar {it} vertex_indices\n'
            'end_header\n')


def ply_binary(faces=TET_F, it='int', idx_dtype='<i4'):
    body = TET_V.astype('<f4').tobytes()
    for f in faces:
        body += struct.pack('<B', len(f)) + np.asarray(f).astype(idx_dtype).tobytes()
    return PLY_HEAD.format(fmt='binary_little_endian', it=it).encode() + body


def test_ply_binary_reference_and_truncations(tmp_path):
    path = tmp_path / 'tet.ply'
    path.write_bytes(ply_binary())
    mesh = read_ply(path)
    assert mesh.face.tolist() == TET_F.T.tolist()
    full = ply_binary()
    head = len(PLY_HEAD.format(fmt='binary_little_endian', it='int'))
    for cut in (head + 10, head + 48 + 3, len(full) - 2):    # in vertices, faces, last face
        path.write_bytes(full[:cut])
        with pytest.raises(ValueError) as e:  # old: "buffer is smaller than requested size"
            read_ply(path)
        one_line(e, path, 'truncated')


def test_ply_float_face_indices_and_negative_list_length(tmp_path):
    path = tmp_path / 'float.ply'
    faces = TET_F.astype(float)
    faces[1, 2] = 2.5
    path.write_bytes(ply_binary(faces, it='float', idx_dtype='<f4'))
    with pytest.raises(ValueError) as e:     # the old reader truncated 2.5 to 2
        read_ply(path)
    one_line(e, path, 'non-integral')
    path.write_bytes(ply_binary(TET_F.astype(float), it='float', idx_dtype='<f4'))
    assert read_ply(path).face.tolist() == TET_F.T.tolist()   # integral floats are fine
    head = PLY_HEAD.format(fmt='binary_little_endian', it='int').replace('uchar', 'char')
    body = TET_V.astype('<f4').tobytes() + struct.pack('<b', -1) + b'\0' * 60
    path.write_bytes(head.encode() + body)
    with pytest.raises(ValueError) as e:
        read_ply(path)
    one_line(e, path, 'negative list length')


def test_ply_ascii_truncated_and_bad_header(tmp_path):
    path = tmp_path / 'a.ply'
    body = '\n'.join(' '.join(map(str, v)) for v in TET_V) + '\n3 0 2 1\n3 0 1'
    path.write_text(PLY_HEAD.format(fmt='ascii', it='int') + body)
    with pytest.raises(ValueError) as e:
        read_ply(path)
    one_line(e, path, 'face')
    path.write_text(PLY_HEAD.format(fmt='ascii', it='int').replace('vertex 4', 'vertex four'))
    with pytest.raises(ValueError) as e:     # old: int('four') without the file
        read_ply(path)
    one_line(e, path, 'bad PLY header line', 'vertex four')
    path.write_text(PLY_HEAD.format(fmt='ascii', it='int')
                    + '0 0 0\n1 0 0\n0 one 0\n0 0 1\n' + '3 0 2 1\n' * 4)
    with pytest.raises(ValueError) as e:
        read_ply(path)
    one_line(e, path, 'not a number')


# ------------------------------------------------------------- faces to edges

def test_faces_to_edge_index_refuses_bad_faces_and_matches_a_loop():
    faces = torch.tensor([[0, 1, 2], [2, 1, 3]])
    ei = faces_to_edge_index(faces, 5)
    expected = set()
    for f in faces.tolist():
        for k in range(3):
            a, b = f[k], f[(k + 1) % 3]
            expected |= {(a, b), (b, a)}
    assert set(map(tuple, ei.t().tolist())) == expected
    for bad, num_nodes, what in (([[0, 1, -1]], 3, 'negative index -1'),
                                 ([[0, 1, 3]], 3, 'index 3, out of range for 3'),
                                 ([[0.0, 1.5, 2.0]], 3, 'must hold integers'),
                                 ([[0.0, float('nan'), 2.0]], 3, 'must hold integers')):
        with pytest.raises(ValueError) as e:   # old: an invalid graph or truncation
            faces_to_edge_index(torch.tensor(bad), num_nodes)
        one_line(e, what)


def test_fractional_faces_refused_by_mesh_from_arrays_and_check_mesh():
    faces = TET_F.astype(float)
    faces[0, 1] = 2.4
    with pytest.raises(ValueError) as e:
        mesh_from_arrays(TET_V, faces)
    one_line(e, 'must hold integers', '2.4')
    mesh = Mesh(pos=torch.tensor(TET_V).float(), face=torch.tensor(faces.T),
                meta={'source': 'm.obj'})
    with pytest.raises(ValueError) as e:
        check_mesh(mesh)
    one_line(e, 'm.obj', 'must hold integers')
    ok = mesh_from_arrays(TET_V, TET_F.astype(float))
    assert ok.face.dtype == torch.long and ok.face.tolist() == TET_F.T.tolist()


# ------------------------------------------------------- coarsening, pooling

@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -1.0, 0.0])
def test_hem_coarsen_refuses_non_finite_or_non_positive_weights(bad):
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    w = torch.tensor([1.0, bad, 1.0])
    with pytest.raises(ValueError) as e:   # old: NaN passed the `w <= 0` test
        hem_coarsen(ei, 4, levels=1, edge_weight=w)
    one_line(e, 'finite positive edge weights')


def test_hem_coarsen_refuses_fractional_indices_and_bad_weight_shape():
    with pytest.raises(ValueError) as e:
        hem_coarsen(torch.tensor([[0.0, 1.5], [1.0, 2.0]]), 3, levels=1)
    one_line(e, "'edge_index' must hold integers")
    with pytest.raises(ValueError) as e:
        hem_coarsen(torch.tensor([[0, 1], [1, 2]]), 3, levels=1,
                    edge_weight=torch.ones(3))
    one_line(e, "'edge_weight' must be [2]")
    c = hem_coarsen(torch.tensor([[0.0, 1.0], [1.0, 2.0]]), 3, levels=1)
    assert c.num_nodes == [3, 2]                 # integral floats are fine


def test_hem_pool_and_unpool_out_of_range_indices():
    x = torch.arange(8.0).view(4, 2)
    index = torch.tensor([0, 0, 1, 2])
    w = torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64)
    out = hem_pool(x, index, w, 3)
    ref = torch.zeros(3, 2)
    for i in range(4):                           # a naive loop
        ref[index[i]] += w[i].float() * x[i]
    assert torch.allclose(out, ref)
    with pytest.raises(ValueError) as e:         # old: INDICES element out of DATA bounds
        hem_pool(x, index, w, 2)
    one_line(e, 'hem_pool', 'cluster 2', '2 coarse nodes')
    with pytest.raises(ValueError) as e:
        hem_pool(x, torch.tensor([0, -1, 1, 0]), w, 3)
    one_line(e, 'hem_pool', 'cluster -1')
    with pytest.raises(ValueError) as e:
        hem_pool(x, index, w[:3], 3)
    one_line(e, 'hem_pool', "'weight' must be [4]")
    coarse = torch.arange(6.0).view(3, 2)
    assert torch.equal(hem_unpool(coarse, index), coarse[index])
    with pytest.raises(ValueError) as e:         # old: index out of range in self
        hem_unpool(coarse[:2], index)
    one_line(e, 'hem_unpool', 'cluster 2', '2 coarse nodes')
    with pytest.raises(ValueError) as e:
        hem_unpool(coarse[:2], index, batch=torch.zeros(2, dtype=torch.long))
    one_line(e, 'hem_unpool', 'cluster 2')
    with pytest.raises(ValueError) as e:
        HEMPool(index, w, 2)
    one_line(e, 'HEMPool', 'cluster 2')
    with pytest.raises(ValueError) as e:
        HEMUnpool(index, 2)
    one_line(e, 'HEMUnpool', 'cluster 2')
    with pytest.raises(ValueError) as e:
        HEMUnpool(index, 3)(coarse[:2])
    one_line(e, 'HEMUnpool', 'expected 3 nodes')


# ------------------------------------------------------------- MeshHierarchy

def grid_hierarchy(padded=True):
    n = 6
    idx = torch.arange(n * n).view(n, n)
    ei = torch.cat([torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)]),
                    torch.stack([idx[:-1].reshape(-1), idx[1:].reshape(-1)])], 1)
    pos = torch.stack(torch.meshgrid(torch.arange(float(n)), torch.arange(float(n)),
                                     indexing='ij'), -1).view(-1, 2)
    return MeshHierarchy.from_edge_index(ei, n * n, levels=3, pos=pos, padded=padded)


def test_hierarchy_load_roundtrip_still_exact(tmp_path):
    h = grid_hierarchy()
    h.save(tmp_path / 'h.pt')
    h2 = MeshHierarchy.load(tmp_path / 'h.pt')
    assert h2.num_nodes == h.num_nodes and h2.rounds == h.rounds
    for a, b in zip(h.clusters + h.perms + h.weighted_edge_index,
                    h2.clusters + h2.perms + h2.weighted_edge_index):
        assert torch.equal(a, b)
    assert torch.equal(h2.pos, h.pos)


def test_hierarchy_load_refuses_edge_index_out_of_range(tmp_path):
    d = grid_hierarchy().to_dict()
    d['edge_index'][1] = d['edge_index'][1].clone()
    d['edge_index'][1][0, 0] = 1073741825
    torch.save(d, tmp_path / 'bad.pt')
    with pytest.raises(ValueError) as e:         # the old loader accepted it
        MeshHierarchy.load(tmp_path / 'bad.pt')
    one_line(e, tmp_path / 'bad.pt', "'edge_index'[1]", '1073741825')


def test_hierarchy_load_of_a_list_and_of_garbage(tmp_path):
    torch.save([1, 2, 3], tmp_path / 'list.pt')
    with pytest.raises(ValueError) as e:
        MeshHierarchy.load(tmp_path / 'list.pt')
    one_line(e, tmp_path / 'list.pt', 'not a saved MeshHierarchy', 'list')
    (tmp_path / 'garbage.pt').write_bytes(b'\x80\x02garbage' * 50)
    with pytest.raises(ValueError) as e:
        MeshHierarchy.load(tmp_path / 'garbage.pt')
    msg = one_line(e, tmp_path / 'garbage.pt', 'cannot read as a saved MeshHierarchy')
    assert 'weights_only' not in msg             # never advise unsafe loading


def _edit(d, key, level, fn):
    d[key] = list(d[key])
    d[key][level] = fn(d[key][level].clone())
    return d


@pytest.mark.parametrize('edit, parts', [
    (lambda d: _edit(d, 'clusters', 0, lambda c: c.fill_(0).index_fill_(0, torch.tensor([1]),
                                                                        99)),
     ["'clusters'[0]", 'index 99']),
    (lambda d: _edit(d, 'clusters', 1, lambda c: torch.zeros_like(c)),
     ["'clusters'[1]", 'without members']),
    (lambda d: _edit(d, 'clusters', 0, lambda c: c[:-1]), ["'clusters'[0]", 'integer tensor']),
    (lambda d: _edit(d, 'clusters', 0, lambda c: c.double()), ["'clusters'[0]", 'integer']),
    (lambda d: _edit(d, 'edge_weight', 0, lambda w: w.index_fill_(0, torch.tensor([0]),
                                                                  float('nan'))),
     ["'edge_weight'[0]", 'NaN']),
    (lambda d: _edit(d, 'edge_weight', 2, lambda w: w[:-1]), ["'edge_weight'[2]"]),
    (lambda d: _edit(d, 'perms', 0, lambda p: p.flip(0)), ["'perms'[0]", 'clusters']),
    (lambda d: _edit(d, 'perms', 1, lambda p: torch.zeros_like(p)),
     ["'perms'[1]", 'not a permutation']),
    (lambda d: d.update(pos=torch.full((36, 2), float('nan'))) or d, ["'pos'", 'NaN']),
    (lambda d: d.update(pos=torch.zeros(35, 2)) or d, ["'pos'"]),
    (lambda d: d.update(num_nodes=[36, 'x', 9, 5]) or d, ["'num_nodes'"]),
    (lambda d: d.update(num_nodes=[36, 10**12, 9, 5]) or d, ["'num_nodes'", 'increase']),
    (lambda d: d.update(rounds=[1]) or d, ["'rounds'"]),
    (lambda d: d.update(edge_index=d['edge_index'][:2]) or d, ["'edge_index'", '4 entries']),
])
def test_hierarchy_from_dict_names_the_bad_key(edit, parts):
    d = edit(grid_hierarchy().to_dict())
    with pytest.raises(ValueError) as e:
        MeshHierarchy.from_dict(d, source='h.pt')
    one_line(e, 'h.pt', *parts)


# ------------------------------------------------------------------------ BVH

def bvh_text(n, layout):
    """A BVH with `n` End Sites: one per joint ('joints') or all under the
    root ('root')."""
    lines = ['HIERARCHY', 'ROOT Hips', '{', 'OFFSET 0 0 0',
             'CHANNELS 3 Xposition Yposition Zposition']
    for i in range(n):
        if layout == 'root':
            lines += ['End Site', '{', f'OFFSET {i} 1 0', '}']
        else:
            lines += [f'JOINT J{i}', '{', 'OFFSET 0 1 0', 'CHANNELS 1 Zrotation',
                      'End Site', '{', 'OFFSET 0 1 0', '}', '}']
    channels = 3 + (n if layout == 'joints' else 0)
    lines += ['}', 'MOTION', 'Frames: 2', 'Frame Time: 0.1'] + [' '.join(['0'] * channels)] * 2
    return '\n'.join(lines) + '\n'


def traced_lines(fn, *args):
    """Lines of Python executed in `fn`'s module while it runs: a
    deterministic operation count (wall time is too noisy on a shared
    machine)."""
    filename = fn.__code__.co_filename
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename != filename:
            return None
        if event == 'line':
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize('layout', ['joints', 'root'])
def test_bvh_parsing_is_linear_in_end_sites(layout):
    small = traced_lines(parse_bvh, bvh_text(100, layout))
    big = traced_lines(parse_bvh, bvh_text(1600, layout))      # 16x the End Sites
    # linear: about 16; the old parser rebuilt the set of all joint names for
    # every End Site (and walked every taken suffix): 90x and 180x here
    assert big / small < 20, big / small


def test_bvh_end_site_names_match_a_naive_rule():
    text = '\n'.join([
        'HIERARCHY', 'ROOT A', '{', 'OFFSET 0 0 0', 'CHANNELS 1 Xrotation',
        'JOINT A_End2', '{', 'OFFSET 0 1 0', 'End Site', '{', 'OFFSET 0 1 0', '}', '}',
        'End Site', '{', 'OFFSET 1 0 0', '}',
        'End Site', '{', 'OFFSET 2 0 0', '}',
        'End Site', '{', 'OFFSET 3 0 0', '}',
        '}', 'MOTION', 'Frames: 1', 'Frame Time: 0.5', '0', ''])
    names = [j.name for j in parse_bvh(text).joints]
    # naive rule: <parent>_End, else the lowest free <parent>_End<k>, k >= 2
    assert names == ['A', 'A_End2', 'A_End2_End', 'A_End', 'A_End3', 'A_End4']


# sha256 (first 16 hex) of every real sample as parsed by the parser before
# the linear End Site naming (joint names, parents, channels, offsets,
# motion, frame time)
REAL_DIGESTS = {
    'bvh_samples/dataset-2_raise-up-both-hands_exhausted_010.bvh': 'be77c48681064fad',
    'bvh_samples/dataset-2_raise-up-both-hands_feminine_022.bvh': '0e63e72b3412e209',
    'bvh_samples/dataset-2_raise-up-left-hand_exhausted_032.bvh': '7d6222ce67025f27',
    'bvh_samples/dataset-2_raise-up-left-hand_masculine_006.bvh': 'f682344d60595fed',
    'bvh_samples/dataset-2_raise-up-left-hand_youthful_056.bvh': 'a2ee82c21d07c363',
    'bvh_samples/dataset-2_raise-up-right-hand_feminine_048.bvh': 'a49049c5135db974',
    'bvh_samples/dataset-2_raise-up-right-hand_masculine_009.bvh': 'aa54f1280899dbde',
    'bvh_samples/dataset-2_run_exhausted_031.bvh': '0da3b2cfec34f581',
    'bvh_samples/dataset-2_run_feminine_023.bvh': '42c438cceecf6169',
    'bvh_samples/dataset-2_run_masculine_014.bvh': '38f489effea217c1',
    'bvh_samples/dataset-2_walk-turn-left_exhausted_018.bvh': '7b223cf322e97218',
    'bvh_samples/dataset-2_walk-turn-left_normal_001.bvh': 'bb11467d75fdab5c',
    'cmu/bvh/01_01.bvh': '1415da176199f686',
    'cmu/bvh/01_14.bvh': '2483b1098583b68a',
    'cmu/bvh/02_01.bvh': '65da5738e47a37bc',
    'cmu/bvh/131_01.bvh': '11e81b86a81c45e0',
    'cmu/bvh/131_02.bvh': '40ef7db03de7ee5a',
    'cmu/bvh/131_03.bvh': '98a9b7a271cfe91e',
}


def bvh_digest(b):
    h = hashlib.sha256()
    for j in b.joints:
        h.update(repr((j.name, j.parent, j.channels, j.channel_start, j.end_site)).encode())
        h.update(np.ascontiguousarray(j.offset, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(b.motion, dtype=np.float64).tobytes())
    h.update(repr(b.frame_time).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize('name', sorted(REAL_DIGESTS))
def test_bvh_real_samples_parse_as_before(name, shared_data):
    assert bvh_digest(read_bvh(shared_data(f'mocap/{name}'))) == REAL_DIGESTS[name]


GOOD_BVH = ('HIERARCHY\nROOT R\n{\nOFFSET 0 0 0\nCHANNELS 2 Xposition Zrotation\n'
            'End Site\n{\nOFFSET 0 1 0\n}\n}\nMOTION\nFrames: 2\nFrame Time: 0.5\n'
            '1 2\n3 4\n')


@pytest.mark.parametrize('old, new, parts', [
    ('Frame Time: 0.5', 'Frame Time: nan', ['Frame Time', 'nan']),
    ('Frame Time: 0.5', 'Frame Time: inf', ['Frame Time']),
    ('3 4\n', '3 nan\n', ['NaN', 'frame 1', "'R'", 'Zrotation']),
    ('1 2\n', 'inf 2\n', ['frame 0', 'Xposition']),
    ('OFFSET 0 1 0', 'OFFSET 0 nan 0', ['line 8', 'finite']),
    ('CHANNELS 2', 'CHANNELS 2.5', ['line 5', 'CHANNELS']),
    ('CHANNELS 2', 'CHANNELS -1', ['line 5', 'CHANNELS']),
    ('CHANNELS 2', 'CHANNELS nan', ['line 5', 'CHANNELS']),
    ('Frames: 2', 'Frames: -2', ['Frames']),
    ('3 4\n', '3 four\n', ['not a number']),
])
def test_bvh_nan_and_malformed_values(tmp_path, old, new, parts):
    assert np.array_equal(parse_bvh(GOOD_BVH).motion, [[1, 2], [3, 4]])
    path = tmp_path / 'bad.bvh'
    path.write_text(GOOD_BVH.replace(old, new))
    with pytest.raises(ValueError) as e:         # the old parser returned NaN silently
        read_bvh(path)
    one_line(e, path, *parts)


def test_bvh_non_utf8_and_binary(tmp_path):
    path = tmp_path / 'latin.bvh'
    path.write_bytes(GOOD_BVH.replace('ROOT R', 'ROOT R\xe9').encode('latin-1'))
    with pytest.raises(ValueError) as e:         # old: a raw UnicodeDecodeError
        read_bvh(path)
    one_line(e, path, 'line 2', 'not UTF-8', '0xe9')
    path.write_bytes(b'\0\1\2' * 100)
    with pytest.raises(ValueError) as e:
        read_bvh(path)
    one_line(e, path, 'binary')


def test_resample_rates():
    x = np.arange(5.0)[:, None]
    assert np.allclose(resample(x, 4, 2)[:, 0], [0, 2, 4])
    assert np.allclose(resample(x, 2, 3)[:, 0], [0, 2 / 3, 4 / 3, 2, 8 / 3, 10 / 3, 4])
    for src, dst in ((0, 10), (10, 0), (-5, 10), (10, -5), (float('nan'), 10),
                     (10, float('nan')), (float('inf'), 10)):
        with pytest.raises(ValueError) as e:     # old: ZeroDivisionError or garbage
            resample(x, src, dst)
        one_line(e, 'fps', 'positive and finite')


def test_joint_map_and_skeleton_load_of_bad_json(tmp_path):
    for name, loader in (('map.json', JointMap.load), ('skel.json', Skeleton.load)):
        path = tmp_path / name
        path.write_text(json.dumps([1, 2, 3]))
        with pytest.raises(ValueError) as e:     # old: TypeError / AttributeError
            loader(path)
        one_line(e, path, 'dict', 'list')
        path.write_text('{"joints": ')
        with pytest.raises(ValueError) as e:
            loader(path)
        one_line(e, path)
        path.write_bytes(b'{"name": "\xff"}')
        with pytest.raises(ValueError) as e:
            loader(path)
        one_line(e, path)
    path = tmp_path / 'skel.json'
    path.write_text(json.dumps({'parents': 5}))
    with pytest.raises(ValueError) as e:
        Skeleton.load(path)
    one_line(e, path)
    path = tmp_path / 'map.json'
    path.write_text(json.dumps({'joints': {'a': 'b'}, 'scale': float('nan')}))
    with pytest.raises(ValueError) as e:
        JointMap.load(path)
    one_line(e, path, 'scale')


def test_skeleton_refuses_fractional_indices():
    assert Skeleton.from_parents([-1, 0.0, 1.0]).parents == [-1, 0, 1]   # integral floats
    for kwargs, parts in (({'parents': [-1, 0, 0.5]}, ['parent of joint 2', '0.5']),
                          ({'parents': [-1, 0, True]}, ['parent of joint 2', 'True']),
                          ({'parents': [-1, 0, '1']}, ['parent of joint 2'])):
        with pytest.raises(ValueError) as e:     # old: 0.5 silently became 0
            Skeleton.from_dict(kwargs)
        one_line(e, *parts)
    with pytest.raises(ValueError) as e:
        Skeleton.from_edges([(0, 1), (1, 2.5)])
    one_line(e, 'edge index', '2.5')
    with pytest.raises(ValueError) as e:
        Skeleton.from_parents([-1, 0, 0], centre=1.5)
    one_line(e, 'centre', '1.5')
    with pytest.raises(ValueError) as e:
        Skeleton.from_parents([-1, 0, 0], flip_pairs=[(1, 2.2)])
    one_line(e, 'flip pair')
    with pytest.raises(ValueError) as e:
        Skeleton.from_dict([[-1, 0]])
    one_line(e, 'dict', 'list')


# --------------------------------------------------------------------- Bandai

def bandai_arrays(frames=(3, 2)):
    """A tiny valid Bandai-layout file: sequences of the given lengths."""
    F = sum(frames)
    S = len(frames)
    start = np.cumsum([0] + list(frames[:-1]))
    return dict(
        positions=np.random.default_rng(0).random((F, 17, 3)).astype(np.float32),
        sequence=np.repeat(np.arange(S), frames).astype(np.int32),
        actor=np.repeat(np.arange(S) % 2, frames).astype(np.int16),
        content=np.zeros(F, np.int16), style=np.zeros(F, np.int16),
        content_names=np.array(['walk']), style_names=np.array(['normal']),
        seq_file=np.array([f's{i}.bvh' for i in range(S)]),
        seq_start=start.astype(np.int64), seq_len=np.array(frames, np.int64),
        seq_actor=(np.arange(S) % 2).astype(np.int16), seq_content=np.zeros(S, np.int16),
        seq_style=np.zeros(S, np.int16), fps=np.float32(10))


def test_bandai_small_file_reads_back(tmp_path):
    np.savez(tmp_path / 'ok.npz', **bandai_arrays())
    data = BandaiMocap(tmp_path / 'ok.npz')
    seqs = list(data.sequences())
    assert [len(s['positions']) for s in seqs] == [3, 2] and data.fps == 10


@pytest.mark.parametrize('edit, parts', [
    (lambda a: a.update(seq_start=np.array([0, 4])), ['sequence 1', 's1.bvh', '[4, 6)']),
    (lambda a: a.update(seq_start=np.array([0, 7])), ['seq_start[1] = 7']),
    (lambda a: a.update(seq_len=np.array([3, 0])), ['sequence 1']),
    (lambda a: a.update(seq_start=np.array([0, -1])), ['seq_start[1] = -1']),
    (lambda a: a['positions'].__setitem__((4, 3, 1), np.nan), ['NaN', 'frame 4']),
    (lambda a: a.update(content=np.array([0, 0, 5, 0, 0], np.int16)), ['content[2] = 5']),
    (lambda a: a.update(sequence=np.array([0, 0, 0, 1, 2], np.int32)), ['sequence[4] = 2']),
    (lambda a: a.update(actor=np.zeros(5)), ['actor', 'integer']),
    (lambda a: a.update(seq_len=np.array([3, 2, 1])), ['seq_len', 'integer array [2]']),
    (lambda a: a.update(fps=np.float32(np.nan)), ['fps']),
])
def test_bandai_bad_contents(tmp_path, edit, parts):
    arrays = bandai_arrays()
    edit(arrays)
    path = tmp_path / 'bad.npz'
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as e:         # seq_start past the end: old gave []
        BandaiMocap(path)
    one_line(e, path, *parts)


def test_bandai_oversized_header(tmp_path):
    arrays = bandai_arrays()
    members = {k: arr_bytes(v) for k, v in arrays.items()}
    members['positions'] = npy_bytes((10**13, 17, 3), '<f4', b'\0' * 64)
    write_zip(tmp_path / 'bomb.npz', members)
    with pytest.raises(ValueError) as e:         # old: MemoryError
        BandaiMocap(tmp_path / 'bomb.npz')
    one_line(e, tmp_path / 'bomb.npz', "'positions'")


# -------------------------------------------------------- lifting .npz files

def test_lifting_npz_positions_checked(tmp_path):
    path = tmp_path / 'bomb.npz'
    write_zip(path, {'positions': npy_bytes((10**13, 17, 3), data=b'\0' * 8)})
    with pytest.raises(ValueError) as e:         # old: MemoryError
        load_lifting_splits(str(path), views=1)
    one_line(e, path, "'positions'")
    pos = np.random.default_rng(0).random((20, 17, 3))
    pos[13, 2, 0] = np.nan
    np.savez(tmp_path / 'nan.npz', positions=pos)
    with pytest.raises(ValueError) as e:         # old: NaN went into the splits
        load_lifting_splits(str(tmp_path / 'nan.npz'), views=1)
    one_line(e, tmp_path / 'nan.npz', 'NaN', 'frame 13')
    np.savez(tmp_path / 'one.npz', positions=pos[:1])
    with pytest.raises(ValueError) as e:         # old: an empty training split
        load_lifting_splits(str(tmp_path / 'one.npz'), views=1)
    one_line(e, tmp_path / 'one.npz', 'too few')

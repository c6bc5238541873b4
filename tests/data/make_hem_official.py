"""Fixtures of HGN's official HEM coarsening (lib/coarsening.py and the
build_graph of lib/graph_utils.py, qingshi9974/BMVC2021-Hierarchical-Graph-
Networks-for-3D-Human-Pose-Estimation commit 5d38681) on generated meshes
and graphs, the MakeHuman body and the MHR levels of detail.

Run (NumPy 1.24.4, SciPy 1.11.4, Python 3.11):
    python make_hem_fixtures.py OFFICIAL_DIR SHARED_MESHES OUT_DIR
OFFICIAL_DIR holds the two official files, unchanged; np.bool (removed in
NumPy 1.24) is set to bool and torch stubbed before they are imported."""
from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay

assert np.__version__ == '1.24.4', np.__version__
official, shared, out_dir = map(Path, sys.argv[1:4])
np.bool = bool
_t = types.ModuleType('torch')
_t.autograd = types.SimpleNamespace(Function=object)
sys.modules.setdefault('torch', _t)
sys.path.insert(0, str(official))
import coarsening  # noqa: E402
from graph_utils import build_graph  # noqa: E402


def run(W, levels):
    with contextlib.redirect_stdout(io.StringIO()):
        graphs, parents = coarsening.HEM(W, levels)
        perms = coarsening.compute_perm(parents)
    return [g.shape[0] for g in graphs], parents, perms


def grid_faces(rows, cols, flip=False):
    f = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            if flip and (r + c) % 2:
                f += [[a, b, e], [a, e, d]]
            else:
                f += [[a, b, d], [b, e, d]]
    return np.array(f)


def torus_faces(m, k):
    f = []
    for i in range(m):
        for j in range(k):
            a, b = i * k + j, i * k + (j + 1) % k
            d, e = ((i + 1) % m) * k + j, ((i + 1) % m) * k + (j + 1) % k
            f += [[a, b, d], [b, e, d]]
    return np.array(f)


def uv_sphere_faces(lat, lon):
    # poles 0 and 1, rings of lon vertices
    f = []

    def ring(i, j):
        return 2 + i * lon + j % lon

    for j in range(lon):
        f.append([0, ring(0, j), ring(0, j + 1)])
        f.append([1, ring(lat - 1, j + 1), ring(lat - 1, j)])
    for i in range(lat - 1):
        for j in range(lon):
            f += [[ring(i, j), ring(i + 1, j), ring(i, j + 1)],
                  [ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)]]
    return np.array(f)


rng = np.random.default_rng(2020)
cases = {}
cases['grid'] = dict(faces=grid_faces(9, 13), levels=5)
cases['grid_flip'] = dict(faces=grid_faces(12, 10, flip=True), levels=5)
cases['torus'] = dict(faces=torus_faces(16, 10), levels=6)
cases['sphere'] = dict(faces=uv_sphere_faces(9, 14), levels=5)
pts = rng.random((300, 2))
cases['delaunay'] = dict(faces=Delaunay(pts).simplices, levels=6)
# relabelled at random, so node 0 need not neighbour node 1 and the
# official row-0 overrun reads a non-neighbour
perm = rng.permutation(300)
cases['delaunay_shuffled'] = dict(faces=perm[Delaunay(rng.random((300, 2))).simplices], levels=6)
# a random graph (edges, no faces): a ring plus random chords, many ties
n = 120
ring = np.stack([np.arange(n), (np.arange(n) + 1) % n], 1)
chords = rng.integers(0, n, (150, 2))
chords = chords[chords[:, 0] != chords[:, 1]]
cases['random_graph'] = dict(edges=np.concatenate([ring, chords]), num_nodes=n, levels=5)
mh = np.load(shared / 'makehuman_body.npz')
big = {'makehuman': dict(faces=mh['faces'], levels=9)}
lods = np.load(shared / 'mhr' / 'mhr_lods.npz')
for k, lv in ((3, 8), (4, 7), (5, 6), (6, 5)):
    big[f'mhr_lod{k}'] = dict(faces=lods[f'lod{k}_faces'], levels=lv)


def pack(store, name, case, keep_input):
    if 'faces' in case:
        f = case['faces'].astype(np.int64)
        W = build_graph(f, f.max() + 1)
        if keep_input:
            store[f'{name}/faces'] = f.astype(np.int16)
    else:
        e, nn = case['edges'], case['num_nodes']
        A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(nn, nn))
        W = sp.csr_matrix(((A + A.T) > 0).astype(np.float32))
        store[f'{name}/edges'] = e.astype(np.int16)
    sizes, parents, perms = run(W, case['levels'])
    store[f'{name}/num_nodes'] = np.array(sizes)
    store[f'{name}/clusters'] = np.concatenate(parents).astype(np.int16)
    # the padded orderings of the three coarsest levels (HGN's 96/48/24)
    store[f'{name}/perms'] = np.concatenate(perms[-3:]).astype(np.int16)
    print(name, sizes)


small, large = {}, {}
for name, case in cases.items():
    pack(small, name, case, True)
for name, case in big.items():
    pack(large, name, case, False)
for store in (small, large):
    store['numpy_version'] = np.array(np.__version__)
np.savez_compressed(out_dir / 'hem_official_generated.npz', **small)
np.savez_compressed(out_dir / 'hem_official_meshes.npz', **large)

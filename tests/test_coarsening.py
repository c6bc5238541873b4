from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.utils import to_undirected

from pyg_skeleton.mesh import (
    HEMPool,
    HEMUnpool,
    MeshHierarchy,
    binary_tree_permutations,
    connected_components,
    faces_to_edge_index,
    hem_coarsen,
    hem_pool,
    hem_unpool,
    pool_weights,
    read_mesh,
)

from _helpers import SHARED_DATA

MAKEHUMAN = SHARED_DATA / 'meshes' / 'makehuman_body.npz'


def grid_faces(rows, cols):
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    return torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])


def grid_graph(rows, cols):
    return faces_to_edge_index(grid_faces(rows, cols), rows * cols), \
        rows * cols


def random_graph(n, extra, seed, weighted=False):
    g = torch.Generator().manual_seed(seed)
    parents = [int(torch.randint(0, i, (1, ), generator=g))
               for i in range(1, n)]
    edges = [[c + 1, p] for c, p in enumerate(parents)]
    edges += torch.randint(0, n, (extra, 2), generator=g).tolist()
    ei = torch.tensor(edges).t()
    ei = ei[:, ei[0] != ei[1]]
    if weighted:
        w = torch.randint(1, 4, (ei.size(1), ), generator=g).double()
        ei, w = to_undirected(ei, w, num_nodes=n, reduce='max')
        return ei, n, w
    return to_undirected(ei, num_nodes=n), n, None


def naive_hem(edge_index, n, weight, levels, score='xavier', order='degree',
              seed=None):
    """The sequential vertex-order HEM, written plainly with dicts."""
    W = {}
    for (i, j), w in zip(edge_index.t().tolist(),
                         (weight.tolist() if weight is not None else
                          [1.0] * edge_index.size(1))):
        if i != j:
            W[(i, j)] = max(W.get((i, j), 0.0), w)
            W[(j, i)] = W[(i, j)]
    clusters = []
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    for _ in range(levels):
        deg = [0.0] * n
        nbrs = [[] for _ in range(n)]
        for (i, j), w in W.items():
            deg[i] += w
            if i != j:
                nbrs[i].append(j)
        if order == 'degree':
            visit = sorted(range(n), key=lambda i: (deg[i], i))
        elif order == 'random':
            visit = torch.randperm(n, generator=g).tolist()
        else:
            visit = list(range(n))
        rank = {v: r for r, v in enumerate(visit)}
        marked = [False] * n
        cluster = [-1] * n
        count = 0
        for i in visit:
            if marked[i]:
                continue
            marked[i] = True
            best, best_j = None, None
            for j in nbrs[i]:
                if marked[j]:
                    continue
                if score == 'xavier':
                    s = ((2 * W[(i, j)] + W.get((i, i), 0) + W.get((j, j), 0))
                         / (deg[i] + deg[j]))
                else:
                    s = W[(i, j)] * (1 / deg[i] + 1 / deg[j])
                if (best is None or s > best
                        or (s == best and rank[j] < rank[best_j])):
                    best, best_j = s, j
            cluster[i] = count
            if best_j is not None:
                marked[best_j] = True
                cluster[best_j] = count
            count += 1
        new = {}
        for (i, j), w in W.items():
            key = (cluster[i], cluster[j])
            new[key] = new.get(key, 0.0) + w
        W, n = new, count
        clusters.append(cluster)
    return clusters


GRAPHS = {
    'random_tree_chords': lambda: random_graph(120, 60, seed=1),
    'random_weighted': lambda: random_graph(150, 200, seed=2, weighted=True),
    'grid': lambda: grid_graph(9, 11) + (None, ),
}


@pytest.mark.parametrize('name', sorted(GRAPHS))
@pytest.mark.parametrize('score', ['xavier', 'graclus'])
@pytest.mark.parametrize('method', ['parallel', 'greedy'])
def test_hem_matches_naive_loop(name, score, method):
    ei, n, w = GRAPHS[name]()
    ref = naive_hem(ei, n, w, levels=4, score=score)
    out = hem_coarsen(ei, n, levels=4, edge_weight=w, score=score,
                      method=method)
    assert [c.tolist() for c in out.clusters] == ref


def test_hem_random_order_matches_naive_loop():
    ei, n, w = random_graph(100, 80, seed=3)
    # the library draws one permutation per level from one generator
    out = hem_coarsen(ei, n, levels=3, order='random', seed=5)
    ref = naive_hem(ei, n, w, levels=3, order='random', seed=5)
    assert [c.tolist() for c in out.clusters] == ref
    again = hem_coarsen(ei, n, levels=3, order='random', seed=5,
                        method='greedy')
    assert all(torch.equal(a, b) for a, b in zip(out.clusters,
                                                 again.clusters))
    other = hem_coarsen(ei, n, levels=3, order='random', seed=6)
    assert any(not torch.equal(a, b) for a, b in zip(out.clusters,
                                                     other.clusters))


def check_levels(c, edge_index, n):
    assert c.num_nodes[0] == n
    connected = connected_components(edge_index, n)[0] == 1
    for level, cluster in enumerate(c.clusters):
        n_fine, n_coarse = c.num_nodes[level], c.num_nodes[level + 1]
        assert cluster.numel() == n_fine  # every vertex exactly once
        sizes = torch.bincount(cluster, minlength=n_coarse)
        assert sizes.numel() == n_coarse
        assert int(sizes.min()) >= 1 and int(sizes.max()) <= 2
        # a pair is always joined by an edge of the fine graph
        u, v, _, _ = c.graphs[level]
        pairs = (cluster[u] == cluster[v]).sum()
        assert int(pairs) == int((sizes == 2).sum())
        # maximal matching: no edge joins two singletons
        single = sizes[cluster] == 1
        assert not bool((single[u] & single[v]).any())
        # the coarse graph keeps the total weight
        w0 = c.edge_weight[level].sum()
        assert torch.isclose(c.edge_weight[level + 1].sum(), w0)
        if connected:
            ei = c.edge_index[level + 1]
            assert connected_components(ei, n_coarse)[0] == 1


@pytest.mark.parametrize('name', sorted(GRAPHS))
def test_invariants(name):
    ei, n, w = GRAPHS[name]()
    c = hem_coarsen(ei, n, max_nodes=5, edge_weight=w)
    assert c.num_nodes[-1] <= 5
    check_levels(c, ei, n)


def test_invariants_makehuman_or_grid():
    if MAKEHUMAN.exists():
        mesh = read_mesh(MAKEHUMAN)
        ei, n = mesh.edge_index(), mesh.num_vertices
    else:
        ei, n = grid_graph(60, 40)
    c = hem_coarsen(ei, n, max_nodes=49)
    check_levels(c, ei, n)
    assert c.num_nodes[-1] <= 49
    if MAKEHUMAN.exists():
        assert c.num_nodes == [13380, 7069, 3740, 1969, 1048, 553, 297, 159,
                               85, 44]


def test_disconnected_and_errors():
    ei, n = grid_graph(4, 4)
    ei = torch.cat([ei, ei + 16], 1)
    c = hem_coarsen(ei, 32, max_nodes=2)
    assert c.num_nodes[-1] == 2
    with pytest.raises(ValueError, match='no edge is left'):
        hem_coarsen(ei, 32, max_nodes=1)
    with pytest.raises(ValueError, match="'levels' or 'max_nodes'"):
        hem_coarsen(ei, 32)
    with pytest.raises(ValueError, match='Unknown method'):
        hem_coarsen(ei, 32, levels=1, method='fast')
    with pytest.raises(ValueError, match='outside'):
        hem_coarsen(ei, 20, levels=1)


def naive_perm(parents, n_coarsest):
    """Defferrard-style binary-tree ordering, written with lists."""
    indices = [list(range(n_coarsest))]
    for parent in reversed(parents):
        n_fine = len(parent)
        fake = n_fine
        new = []
        for i in indices[0]:
            children = [k for k, p in enumerate(parent) if p == i]
            if len(children) == 0:
                children = [fake, fake + 1]
                fake += 2
            elif len(children) == 1:
                children = [children[0], fake]
                fake += 1
            new.extend(sorted(children))
        indices.insert(0, new)
    return indices


def test_binary_tree_permutations():
    ei, n, _ = random_graph(90, 40, seed=4)
    c = hem_coarsen(ei, n, levels=4)
    perms = binary_tree_permutations(c.clusters, c.num_nodes)
    ref = naive_perm([cl.tolist() for cl in c.clusters], c.num_nodes[-1])
    assert [p.tolist() for p in perms] == ref
    for level, perm in enumerate(perms):
        assert perm.numel() == c.num_nodes[-1] * 2**(4 - level)
        real = perm[perm < c.num_nodes[level]]
        assert sorted(real.tolist()) == list(range(c.num_nodes[level]))
    # parents sit at position k // 2
    for level in range(4):
        fine, coarse = perms[level], perms[level + 1]
        for k, node in enumerate(fine.tolist()):
            if node < c.num_nodes[level]:
                assert coarse[k // 2] == c.clusters[level][node]


# -- pooling and hierarchy --------------------------------------------------


@pytest.fixture(scope='module')
def hierarchy():
    faces = grid_faces(12, 10)
    pos = torch.stack(torch.meshgrid(torch.arange(12.), torch.arange(10.),
                                     indexing='ij'), -1).reshape(-1, 2)
    pos = torch.cat([pos, torch.zeros(120, 1)], 1)
    from pyg_skeleton.mesh import Mesh
    return MeshHierarchy.from_mesh(Mesh(pos=pos, face=faces.t()), max_nodes=6,
                                   padded=True)


@pytest.mark.parametrize('mode', ['dyadic', 'mean'])
def test_pool_unpool_constant(hierarchy, mode):
    h = hierarchy
    for s in range(len(h)):
        for t in range(s, len(h)):
            x = torch.full((3, h.num_nodes[s], 4), 2.5, dtype=torch.float64)
            y = h.pool(x, s, t, mode)
            assert y.shape == (3, h.num_nodes[t], 4)
            assert torch.allclose(y, torch.full_like(y, 2.5))
            assert torch.allclose(h.unpool(y, t, s), x)


def test_pool_dyadic_vs_mean(hierarchy):
    h = hierarchy
    P = None
    for level in range(h.num_levels):  # the official product P_0 P_1 ...
        c = h.clusters[level]
        size = torch.bincount(c).double()
        Pl = torch.zeros(h.num_nodes[level], h.num_nodes[level + 1],
                         dtype=torch.float64)
        Pl[torch.arange(c.numel()), c] = 1.0 / size[c]
        P = Pl if P is None else P @ Pl
    x = torch.randn(h.num_nodes[0], 3, dtype=torch.float64)
    assert torch.allclose(h.pool(x, 0, -1, 'dyadic'), P.t() @ x)
    assert torch.allclose(h.pool_op(0, -1).matrix().to_dense(), P)
    index = h.assignment(0, -1)
    mean = torch.zeros(h.num_nodes[-1], 3, dtype=torch.float64).index_add_(
        0, index, x) / torch.bincount(index).double().unsqueeze(1)
    assert torch.allclose(h.pool(x, 0, -1, 'mean'), mean)
    assert torch.allclose(h.level_positions(-1, 'mean').double(),
                          h.pool(h.pos.double(), 0, -1, 'mean'), atol=1e-5)


def test_pool_disjoint_batch_equals_static(hierarchy):
    h = hierarchy
    x = torch.randn(4, h.num_nodes[1], 5)
    batch = torch.arange(4).repeat_interleave(h.num_nodes[1])
    static = h.pool(x, 1, 3)
    disjoint = h.pool(x.reshape(-1, 5), 1, 3, batch=batch)
    assert torch.allclose(disjoint, static.reshape(-1, 5), atol=1e-6)
    up = h.unpool(static.reshape(-1, 5), 3, 1, batch=batch)
    assert torch.allclose(up, h.unpool(static, 3, 1).reshape(-1, 5))
    with pytest.raises(ValueError, match='whole graphs'):
        hem_pool(x.reshape(-1, 5)[:-1], h.assignment(1, 3),
                 torch.ones(h.num_nodes[1]), h.num_nodes[3], batch=batch)


@pytest.mark.parametrize('trailing', [(), (5, ), (2, 3)],
                         ids=['1d', '2d', '3d'])
def test_pool_unpool_disjoint_layouts_match_a_loop(hierarchy, trailing):
    # Every disjoint entry point against a loop over the graphs and nodes,
    # bit for bit: the disjoint batch is the static one laid out flat.
    h = hierarchy
    index, weight = h.assignment(1, 3), pool_weights(h.clusters, 1, 3)
    n, nc, b = h.num_nodes[1], h.num_nodes[3], 3
    x = torch.randn((b * n, ) + trailing, dtype=torch.float64)
    fine = torch.arange(b).repeat_interleave(n)
    coarse = torch.arange(b).repeat_interleave(nc)
    pooled = torch.zeros((b * nc, ) + trailing, dtype=torch.float64)
    for g in range(b):
        for i in range(n):
            pooled[g * nc + index[i]] += weight[i] * x[g * n + i]
    assert torch.equal(hem_pool(x, index, weight, nc, batch=fine), pooled)
    assert torch.equal(HEMPool(index, weight, nc)(x, fine), pooled)
    mask = torch.rand(n) > 0.3
    up = torch.stack([pooled[g * nc + index[i]] * mask[i]
                      for g in range(b) for i in range(n)])
    unpool = HEMUnpool(index, nc, mask)
    # The coarse input's batch vector, or the fine output's (which
    # MeshHierarchy.unpool's callers have passed):
    for batch in (coarse, fine):
        assert torch.equal(hem_unpool(pooled, index, mask, batch), up)
        assert torch.equal(unpool(pooled, batch), up)


def test_pool_unpool_refuse_batches_of_other_graphs(hierarchy):
    h = hierarchy
    index, weight = h.assignment(1, 3), pool_weights(h.clusters, 1, 3)
    n, nc = h.num_nodes[1], h.num_nodes[3]
    x = torch.randn(2 * n, 4)
    # The rows of two graphs, split one node off: graphs of n - 1 and n + 1.
    ragged = torch.ones(2 * n, dtype=torch.long)
    ragged[:n - 1] = 0
    calls = {
        'hem_pool': lambda batch: hem_pool(x, index, weight, nc, batch),
        'HEMPool': lambda batch: HEMPool(index, weight, nc)(x, batch),
        'hem_unpool': lambda batch: hem_unpool(x[:2 * nc], index,
                                               batch=batch[:2 * nc]),
        'HEMUnpool': lambda batch: HEMUnpool(index, nc)(x[:2 * nc],
                                                       batch[:2 * nc]),
    }
    for owner, call in calls.items():
        size = nc if 'unpool' in owner.lower() else n
        bad = ragged if size == n else torch.tensor([0] * (nc - 1) +
                                                    [1] * (nc + 1))
        with pytest.raises(ValueError) as e:
            call(bad)
        assert str(e.value) == (
            f"'{owner}' needs a disjoint batch of whole graphs: every graph "
            f"must have exactly {size} nodes (row {size - 1} is in graph 1, "
            f"not 0)")
        with pytest.raises(ValueError, match=f"^'{owner}' needs a sorted"):
            call(bad.flip(0))


def test_pool_gradient(hierarchy):
    h = hierarchy
    x = torch.randn(2, h.num_nodes[0], 3, dtype=torch.float64,
                    requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: h.pool(t, 0, 2), (x, ))


def test_padded_layout(hierarchy):
    h = hierarchy
    for level in range(len(h)):
        x = torch.randn(2, h.num_nodes[level], 3)
        xp = h.pad(x, level)
        assert xp.size(1) == h.num_padded(level)
        assert torch.equal(h.unpad(xp, level), x)
        assert bool((xp[:, ~h.real_mask(level)] == 0).all())
        ei = h.padded_edge_index(level)
        assert bool(h.real_mask(level)[ei].all())
    x = torch.randn(2, h.num_nodes[0], 3, dtype=torch.float64)
    pp = h.pool_op(0, -2, padded=True)
    assert torch.allclose(h.unpad(pp(h.pad(x, 0)), -2), h.pool(x, 0, -2))
    up = h.unpool_op(-1, -2, padded=True)
    y = torch.randn(2, h.num_nodes[-1], 3, dtype=torch.float64)
    assert torch.allclose(h.unpad(up(h.pad(y, -1)), -2), h.unpool(y, -1, -2))
    assert bool((up(h.pad(y, -1))[:, ~h.real_mask(-2)] == 0).all())


def test_save_load(hierarchy, tmp_path):
    h = hierarchy
    h.save(tmp_path / 'h.pt')
    raw = torch.load(tmp_path / 'h.pt', weights_only=True)
    assert raw['format'] == 'pyg_skeleton.MeshHierarchy'
    h2 = MeshHierarchy.load(tmp_path / 'h.pt')
    assert h2.num_nodes == h.num_nodes
    for level in range(len(h)):
        assert torch.equal(h2.edge_index(level), h.edge_index(level))
        assert torch.equal(h2.padded_edge_index(level),
                           h.padded_edge_index(level))
    assert all(torch.equal(a, b) for a, b in zip(h2.clusters, h.clusters))
    assert torch.equal(h2.pos, h.pos)
    assert h2.summary() == h.summary()


def test_coarsen_cli(tmp_path, capsys):
    import argparse

    import numpy as np

    from pyg_skeleton.mesh import coarsen_cli
    faces = grid_faces(8, 9).numpy()
    verts = np.random.default_rng(0).random((72, 3))
    np.savez(tmp_path / 'grid.npz', vertices=verts, faces=faces)
    parser = argparse.ArgumentParser()
    coarsen_cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / 'grid.npz'), '-o',
                              str(tmp_path / 'h.pt'), '--max-nodes', '5',
                              '--padded'])
    assert coarsen_cli.run(args) == 0
    out = capsys.readouterr().out
    assert '72 vertices' in out and 'padded' in out
    h = MeshHierarchy.load(tmp_path / 'h.pt')
    assert h.num_nodes[0] == 72 and h.num_nodes[-1] <= 5
    assert (tmp_path / 'h.png').stat().st_size > 0
    args = parser.parse_args([str(tmp_path / 'missing.obj')])
    assert coarsen_cli.run(args) == 2


# --- matching cost independent of the vertex numbering ---------------------

MHR = SHARED_DATA / 'meshes' / 'mhr' / 'mhr_lods.npz'


def ring_numbering(rows, cols):
    """New id of every grid vertex: concentric square rings around the
    centre, each ring by angle (the numbering of a scanned or generated
    mesh that makes chains of waiting edges span the mesh)."""
    y, x = np.mgrid[:rows, :cols]
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    ring = np.maximum(np.abs(y - cy), np.abs(x - cx)).ravel()
    angle = np.arctan2((y - cy).ravel(), (x - cx).ravel())
    perm = np.lexsort((angle, ring))
    new_id = np.empty(rows * cols, dtype=np.int64)
    new_id[perm] = np.arange(rows * cols)
    return torch.from_numpy(new_id)


def bfs_numbering(edge_index, n):
    """New id of every vertex in breadth-first order from vertex 0: the
    rings of any connected mesh."""
    nbrs = [[] for _ in range(n)]
    for i, j in edge_index.t().tolist():
        nbrs[i].append(j)
    new_id = torch.full((n, ), -1, dtype=torch.long)
    queue, count = [0], 0
    new_id[0] = 0
    for i in queue:
        for j in sorted(nbrs[i]):
            if new_id[j] < 0:
                count += 1
                new_id[j] = count
                queue.append(j)
    assert count == n - 1
    return new_id


def numberings(edge_index, n, ring=None):
    g = torch.Generator().manual_seed(0)
    return {'original': edge_index,
            'random': torch.randperm(n, generator=g)[edge_index],
            'rings': (ring if ring is not None
                      else bfs_numbering(edge_index, n))[edge_index]}


def round_bound(num_edges):
    """The documented bound on the vectorised rounds of one level."""
    return 1 + int(np.log(max(num_edges, 2)) / -np.log(0.9)) + 1


def same_clusters(a, b):
    return a.num_nodes == b.num_nodes and all(
        torch.equal(x, y) for x, y in zip(a.clusters, b.clusters))


@pytest.mark.parametrize('numbering', ['original', 'random', 'rings'])
def test_ring_numbered_grid_bounded_rounds(numbering, monkeypatch):
    ei, n = grid_graph(32, 32)
    ei = numberings(ei, n, ring_numbering(32, 32))[numbering]
    c = hem_coarsen(ei, n, max_nodes=20)
    ref = naive_hem(ei, n, None, levels=c.num_levels)
    assert [x.tolist() for x in c.clusters] == ref
    assert same_clusters(c, hem_coarsen(ei, n, max_nodes=20, method='greedy'))
    edges = [g[0].numel() for g in c.graphs]
    assert all(r <= round_bound(e) for r, e in zip(c.rounds, edges))
    # rounds alone (no sequential finish): the same clusters, and on the
    # ring numbering one round per ring link, far above the bound
    import pyg_skeleton.mesh.coarsening as coarsening
    monkeypatch.setattr(coarsening, '_MIN_PROGRESS', 0.0)
    monkeypatch.setattr(coarsening, '_SCAN_EDGES', 0)
    rounds_only = hem_coarsen(ei, n, max_nodes=20)
    assert same_clusters(c, rounds_only)
    if numbering == 'rings':
        assert rounds_only.rounds[0] > 5 * round_bound(edges[0])
    # the sequential pass alone: the same clusters
    monkeypatch.setattr(coarsening, '_SCAN_EDGES', 10**9)
    scan_only = hem_coarsen(ei, n, max_nodes=20)
    assert same_clusters(c, scan_only) and sum(scan_only.rounds) == 0


@pytest.mark.parametrize('name', sorted(GRAPHS))
@pytest.mark.parametrize('score', ['xavier', 'graclus'])
def test_rounds_only_and_scan_only_match_naive_loop(name, score,
                                                    monkeypatch):
    import pyg_skeleton.mesh.coarsening as coarsening
    ei, n, w = GRAPHS[name]()
    ref = naive_hem(ei, n, w, levels=4, score=score)
    for progress, small in ((0.0, 0), (0.1, 0), (0.5, 0)):
        monkeypatch.setattr(coarsening, '_MIN_PROGRESS', progress)
        monkeypatch.setattr(coarsening, '_SCAN_EDGES', small)
        out = hem_coarsen(ei, n, levels=4, edge_weight=w, score=score)
        assert [c.tolist() for c in out.clusters] == ref


def real_meshes():
    out = []
    if MAKEHUMAN.exists():
        mesh = read_mesh(MAKEHUMAN)
        out.append(('makehuman', mesh.edge_index(), mesh.num_vertices))
    if MHR.exists():
        z = np.load(MHR)
        for k in (6, 4):
            f = torch.from_numpy(z[f'lod{k}_faces'].astype(np.int64))
            n = int(z[f'lod{k}_vertices'].shape[0])
            out.append((f'mhr_lod{k}', faces_to_edge_index(f, n), n))
    return out


@pytest.mark.skipif(not MAKEHUMAN.exists() and not MHR.exists(),
                    reason='../shared/data/meshes (MakeHuman, MHR) absent')
@pytest.mark.parametrize('numbering', ['original', 'random', 'rings'])
def test_real_meshes_any_numbering(numbering):
    for name, ei, n in real_meshes():
        ei = numberings(ei, n)[numbering]
        c = hem_coarsen(ei, n, max_nodes=49)
        assert same_clusters(c, hem_coarsen(ei, n, max_nodes=49,
                                            method='greedy')), name
        edges = [g[0].numel() for g in c.graphs]
        assert all(r <= round_bound(e) for r, e in zip(c.rounds, edges)), \
            (name, c.rounds)

r"""``pyg_skeleton.utils``: each graph algorithm against networkx or a naive
loop, and the validators' one-line errors."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.utils import to_undirected

import pyg_skeleton.utils.graph as graph
from pyg_skeleton import Skeleton
from pyg_skeleton.utils import (
    as_index_tensor,
    bfs,
    check_edge_index,
    check_partition,
    check_positive_int,
    connected_components,
    edge_key,
    edge_lookup,
    faces_to_edges,
    hop_counts,
)


def random_graph(n, m, seed, directed=False):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, m), generator=g)
    return ei if directed else to_undirected(ei, num_nodes=n)


def nx_graph(edge_index, n, directed):
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(map(tuple, edge_index.t().tolist()))
    return g


@pytest.mark.parametrize('directed', [False, True])
@pytest.mark.parametrize('max_hop', [None, 1, 3])
def test_bfs_matches_networkx_shortest_paths(directed, max_hop):
    n = 40
    ei = random_graph(n, 50, seed=3, directed=directed)
    sources = torch.tensor([0, 7, 7, 39])  # a repeated source too
    row, node, hop = bfs(ei, n, sources, max_hop=max_hop)
    got = {(int(r), int(v)): int(h) for r, v, h in zip(row, node, hop)}
    assert len(got) == row.numel()  # each pair once
    g = nx_graph(ei, n, directed)
    expected = {}
    for r, s in enumerate(sources.tolist()):
        lengths = nx.single_source_shortest_path_length(g, s, cutoff=max_hop)
        expected.update({(r, v): d for v, d in lengths.items() if v != s})
    assert got == expected
    # Ordered by hop.
    assert bool((hop[1:] >= hop[:-1]).all())


def test_bfs_in_blocks_gives_the_same_pairs(monkeypatch):
    n = 30
    ei = random_graph(n, 45, seed=1)
    whole = bfs(ei, n)
    monkeypatch.setattr(graph, 'BFS_BLOCK_ENTRIES', 2 * n)  # two sources a block
    blocked = bfs(ei, n)
    key = lambda t: sorted(zip(*(x.tolist() for x in t)))  # noqa: E731
    assert key(whole) == key(blocked)


def test_bfs_ignores_self_loops_and_duplicates():
    ei = torch.tensor([[0, 0, 0, 1, 1], [0, 1, 1, 2, 1]])
    row, node, hop = bfs(ei, 3, torch.tensor([0]))
    assert node.tolist() == [1, 2] and hop.tolist() == [1, 2]


def test_hop_counts_matches_networkx_with_unreachable_nodes():
    # Two components: 0-1-2-3 and 4-5.
    ei = to_undirected(torch.tensor([[0, 1, 2, 4], [1, 2, 3, 5]]))
    table = hop_counts(ei, 6, torch.tensor([1, 5]))
    g = nx_graph(ei, 6, directed=False)
    for r, s in enumerate([1, 5]):
        lengths = nx.single_source_shortest_path_length(g, s)
        assert table[r].tolist() == [lengths.get(v, -1) for v in range(6)]


def test_skeleton_hops_match_networkx():
    skeleton = Skeleton.preset('h36m17')
    g = nx_graph(skeleton.edge_index, skeleton.num_joints, directed=False)
    expected = dict(nx.all_pairs_shortest_path_length(g))
    dist = skeleton.hop_distance
    for i in range(skeleton.num_joints):
        assert dist[i].tolist() == [expected[i][j] for j in range(skeleton.num_joints)]


def test_edge_lookup_matches_a_loop():
    n = 12
    ei = random_graph(n, 30, seed=5)
    key, order = torch.sort(edge_key(ei, n))
    assert key.tolist() == sorted(int(d) * n + int(s) for s, d in ei.t().tolist())
    query = ei[:, torch.randperm(ei.size(1))]
    pos = edge_lookup(key, edge_key(query, n))
    for (s, d), p in zip(query.t().tolist(), pos.tolist()):
        assert tuple(ei[:, order[p]].tolist()) == (s, d)
    # A missing key gets a valid position that does not hold it.
    missing = torch.tensor([n * n + 5, -1])
    pos = edge_lookup(key, missing)
    assert bool(((pos >= 0) & (pos < key.numel())).all())
    assert bool((key[pos] != missing).all())


def test_connected_components_match_networkx():
    n = 50
    ei = random_graph(n, 30, seed=2)  # sparse: many components
    count, labels = connected_components(ei, n)
    components = list(nx.connected_components(nx_graph(ei, n, directed=False)))
    assert count == len(components)
    for comp in components:
        comp = sorted(comp)
        assert len(set(labels[comp].tolist())) == 1
    # Numbered in order of each component's smallest node.
    firsts = sorted(min(c) for c in components)
    assert labels[firsts].tolist() == list(range(count))


def test_connected_components_take_edges_as_undirected():
    count, labels = connected_components(torch.tensor([[2], [0]]), 4)
    assert count == 3 and labels.tolist() == [0, 1, 0, 2]


def test_faces_to_edges_matches_a_loop_and_pyg():
    from torch_geometric.data import Data
    from torch_geometric.transforms import FaceToEdge
    face = torch.tensor([[0, 1, 2], [1, 3, 4], [2, 2, 4]])  # [3, F], one degenerate
    ei = faces_to_edges(face, 5)
    expected = set()
    for f in face.t().tolist():
        for k in range(3):
            a, b = f[k], f[(k + 1) % 3]
            if a != b:
                expected |= {(a, b), (b, a)}
    assert sorted(map(tuple, ei.t().tolist())) == sorted(expected)
    nondegenerate = face[:, :2]
    pyg = FaceToEdge()(Data(face=nondegenerate, num_nodes=5)).edge_index
    assert torch.equal(faces_to_edges(nondegenerate, 5), pyg)


def test_faces_to_edges_reads_four_rows_as_quads_not_tetrahedra():
    # PyG's FaceToEdge reads [4, F] as tetrahedra (all six pairs); a quad
    # has its four boundary edges only.
    from torch_geometric.data import Data
    from torch_geometric.transforms import FaceToEdge
    face = torch.tensor([[0, 1, 2, 3], [2, 3, 4, 5], [2, 2, 4, 5]]).t()  # [4, F]
    ei = faces_to_edges(face, 6)
    expected = set()
    for f in face.t().tolist():
        for k in range(4):
            a, b = f[k], f[(k + 1) % 4]
            if a != b:
                expected |= {(a, b), (b, a)}
    assert sorted(map(tuple, ei.t().tolist())) == sorted(expected)
    tetra = FaceToEdge()(Data(face=face, num_nodes=6)).edge_index
    assert (0, 2) in set(map(tuple, tetra.t().tolist())) - expected


@pytest.mark.parametrize('face, num_nodes, message', [
    (torch.tensor([0, 1, 2]), None, r'shape \[k, F\]'),
    (torch.tensor([[0], [1], [-1]]), None, 'negative index -1'),
    (torch.tensor([[0], [1], [3]]), 3, 'index 3, out of range for 3'),
    (torch.tensor([[0.0], [1.5], [2.0]]), 3, 'must hold integers'),
])
def test_faces_to_edges_errors(face, num_nodes, message):
    with pytest.raises(ValueError, match=message):
        faces_to_edges(face, num_nodes)


@pytest.mark.parametrize('edge_index, num_nodes, message', [
    ([[0, 1], [1, 0]], None, 'integer tensor'),
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), None, 'integer tensor'),
    (torch.tensor([0, 1]), None, r'shape \[2, num_edges\]'),
    (torch.tensor([[0, 3], [1, 0]]), 3, r'outside \[0, 3\)'),
    (torch.tensor([[0, -1], [1, 0]]), 3, r'outside \[0, 3\)'),
    (torch.tensor([[0], [1]]), 0, 'positive integer'),
    (torch.tensor([[0], [1]]), True, 'positive integer'),
    (torch.empty(2, 0, dtype=torch.long), None, 'at least one node'),
])
def test_check_edge_index_errors(edge_index, num_nodes, message):
    with pytest.raises(ValueError, match=message):
        check_edge_index(edge_index, num_nodes)


def test_check_edge_index_returns_long_and_count():
    ei, n = check_edge_index(torch.tensor([[0, 4], [1, 2]], dtype=torch.int32))
    assert ei.dtype == torch.long and n == 5


@pytest.mark.parametrize('groups, num_nodes, message', [
    ([[0, 1], [2]], 4, 'node 3 is in no group'),
    ([[0, 1], [1, 2]], 3, 'node 1 is in more than one group'),
    ([[0, 5]], 2, r'node 5 is outside \[0, 2\)'),
    ([[0], []], 1, 'Group 1'),
    ([[0, 1.5]], 2, 'non-integer node index 1.5'),
    ([[0, True]], 2, 'non-integer'),
    ([], None, 'at least one group'),
    ('01', None, 'sequence of node-index sequences'),
])
def test_check_partition_errors(groups, num_nodes, message):
    with pytest.raises(ValueError, match=message):
        check_partition(groups, num_nodes)


def test_check_partition_accepts_tensors_and_names_the_node_kind():
    assert check_partition(torch.tensor([[1, 0], [2, 3]])) == [[1, 0], [2, 3]]
    with pytest.raises(ValueError, match='joint 2 is in no group'):
        check_partition([[0, 1]], 3, node='joint')


@pytest.mark.parametrize('value', [0, -1, 1.5, float('nan'), float('inf'), True, '2'])
def test_check_positive_int_errors(value):
    with pytest.raises(ValueError, match="'k' must be a positive integer"):
        check_positive_int(value, 'k')


def test_check_positive_int_accepts_integral_floats():
    assert check_positive_int(2.0, 'k') == 2


def test_as_index_tensor():
    assert as_index_tensor([1.0, 2.0], 'x').tolist() == [1, 2]
    for bad, shown in (([1.5], '1.5'), ([float('nan')], 'nan'), ([True], 'booleans')):
        with pytest.raises(ValueError, match=f'x must hold integers.*{shown}'):
            as_index_tensor(bad, 'x')

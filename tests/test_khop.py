from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from pyg_skeleton import Skeleton
from pyg_skeleton.transforms.khop import KHopEdges, khop_edges


def random_graph(n, extra, seed, connected=True):
    g = torch.Generator().manual_seed(seed)
    edges = []
    if connected:
        edges = [[i, int(torch.randint(0, i, (1, ), generator=g))]
                 for i in range(1, n)]
    for _ in range(extra):
        i, j = torch.randint(0, n, (2, ), generator=g).tolist()
        if i != j:
            edges.append([i, j])
    return to_undirected(torch.tensor(edges).t(), num_nodes=n), n


def networkx_pairs(edge_index, n, max_hop, directed=False):
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edge_index.t().tolist())
    pairs = {}
    for src, lengths in nx.all_pairs_shortest_path_length(graph,
                                                          cutoff=max_hop):
        for dst, k in lengths.items():
            if k > 0:
                pairs[(src, dst)] = k
    return pairs


def as_dict(edge_index, hop):
    return {(int(s), int(t)): int(k)
            for (s, t), k in zip(edge_index.t().tolist(), hop)}


@pytest.mark.parametrize('preset', Skeleton.presets())
@pytest.mark.parametrize('max_hop', [1, 2, 5, 20])
def test_matches_networkx_on_presets(preset, max_hop):
    skeleton = Skeleton.preset(preset)
    n = skeleton.num_joints
    ei, hop = khop_edges(skeleton.edge_index, n, max_hop)
    assert as_dict(ei, hop) == networkx_pairs(skeleton.edge_index, n, max_hop)
    assert int(hop.max()) == min(max_hop, skeleton.max_hop)
    # the hop distance of the skeleton agrees
    dist = skeleton.hop_distance
    assert torch.equal(dist[ei[0], ei[1]], hop)


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('connected', [True, False])
def test_matches_networkx_on_random_graphs(seed, connected):
    edge_index, n = random_graph(60, 25, seed, connected)
    for max_hop in (1, 3, 6):
        ei, hop = khop_edges(edge_index, n, max_hop)
        assert as_dict(ei, hop) == networkx_pairs(edge_index, n, max_hop)


def test_directed_graph_follows_edge_direction():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 1]])
    ei, hop = khop_edges(edge_index, 5, 4)
    assert as_dict(ei, hop) == networkx_pairs(edge_index, 5, 4,
                                              directed=True)


def test_order_dtype_and_duplicates():
    skeleton = Skeleton.preset('h36m17')
    ei, hop = khop_edges(skeleton.edge_index, 17, 3)
    assert ei.dtype == hop.dtype == torch.long
    key = ei[1] * 17 + ei[0]
    assert torch.equal(key, key.sort().values)  # by target, then source
    # self-loops and duplicate edges of the input are ignored
    loops = torch.arange(17).repeat(2, 1)
    noisy = torch.cat([skeleton.edge_index, skeleton.edge_index, loops], 1)
    ei2, hop2 = khop_edges(noisy, 17, 3)
    assert torch.equal(ei, ei2) and torch.equal(hop, hop2)


def test_isolated_nodes_and_empty_graph():
    ei, hop = khop_edges(torch.empty(2, 0, dtype=torch.long), 4, 3)
    assert ei.shape == (2, 0) and hop.shape == (0, )
    ei, hop = khop_edges(torch.tensor([[0], [1]]), 3, 2)
    assert as_dict(ei, hop) == {(0, 1): 1}


def test_mesh_sized_graph():
    # a triangulated 100 x 100 grid: 10,000 nodes
    rows = cols = 100
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    edges = torch.cat([torch.stack([a, b]), torch.stack([a, c]),
                       torch.stack([a, d]), torch.stack([b, d]),
                       torch.stack([c, d])], 1)
    edge_index = to_undirected(edges, num_nodes=rows * cols)
    ei, hop = khop_edges(edge_index, rows * cols, 3)
    # spot-check some sources against networkx
    graph = nx.Graph(edge_index.t().tolist())
    for s in [0, 517, 5050, 9999]:
        lengths = nx.single_source_shortest_path_length(graph, s, cutoff=3)
        mask = ei[0] == s
        assert {int(t): int(k) for t, k in zip(ei[1, mask], hop[mask])} == {
            t: k for t, k in lengths.items() if k > 0}
    # an interior node of this triangulation has 6 / 12 / 18 nodes at hops
    # 1 / 2 / 3
    inner = ei[0] == 5050
    assert torch.bincount(hop[inner]).tolist() == [0, 6, 12, 18]


def test_transform_and_disjoint_batch():
    skeleton = Skeleton.preset('h36m17')
    transform = KHopEdges(2)
    assert repr(transform) == 'KHopEdges(max_hop=2)'
    data = transform(skeleton.to_data(x=torch.randn(17, 2)))
    ei, hop = khop_edges(skeleton.edge_index, 17, 2)
    assert torch.equal(data.khop_edge_index, ei)
    assert torch.equal(data.khop_distance, hop)
    small = transform(Data(x=torch.randn(2, 2),
                           edge_index=torch.tensor([[0, 1], [1, 0]]),
                           num_nodes=2))
    batch = Batch.from_data_list([data, small, data])
    assert torch.equal(batch.khop_edge_index,
                       torch.cat([ei, small.khop_edge_index + 17,
                                  ei + 19], 1))
    assert torch.equal(batch.khop_distance,
                       torch.cat([hop, small.khop_distance, hop]))


def test_errors():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match='positive integer'):
        khop_edges(edge_index, 2, 0)
    with pytest.raises(ValueError, match='positive integer'):
        khop_edges(edge_index, 2, 1.5)
    with pytest.raises(ValueError, match='positive integer'):
        KHopEdges(0)
    with pytest.raises(ValueError, match='outside'):
        khop_edges(edge_index, 1, 1)
    with pytest.raises(ValueError, match='num_nodes'):
        khop_edges(edge_index, 0, 1)
    with pytest.raises(ValueError, match=r'shape \[2, num_edges\]'):
        khop_edges(edge_index.view(-1), 2, 1)


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('max_hop', [1, 2, 4])
def test_topology_hop_slots(seed, max_hop):
    """Topology(max_hop=L): the one-hop slots of Topology(max_hop=1) first,
    unchanged, then every pair at 2..L hops (networkx), by hop and then
    row-major."""
    from pyg_skeleton.nn.topology import Topology
    edge_index, n = random_graph(30, 10, seed, connected=seed != 2)
    one = Topology(edge_index, n)
    topo = Topology(edge_index, n, max_hop=max_hop)
    s = one.num_slots
    assert topo.num_slots == s and torch.equal(topo.key, one.key)
    assert torch.equal(topo.hop_src[:s], one.src)
    assert torch.equal(topo.hop_dst[:s], one.dst)
    assert torch.equal(topo.hop[:s], (one.src != one.dst).long())
    far = {(int(j), int(i)): int(k) for j, i, k in zip(
        topo.hop_src[s:], topo.hop_dst[s:], topo.hop[s:])}
    reference = networkx_pairs(edge_index, n, max_hop)
    expected = {p: k for p, k in reference.items() if k >= 2}
    assert far == expected and len(far) == topo.num_hop_slots - s
    order = [(k, i, j) for (j, i), k in far.items()]
    assert order == sorted(order)
    assert topo.furthest == max(reference.values())
    assert torch.equal(topo.hop_edge_index,
                       torch.stack([topo.hop_src, topo.hop_dst]))


def test_topology_max_hop_errors():
    from pyg_skeleton.nn.topology import Topology
    edge_index, n = random_graph(5, 0, 0)
    for bad in (0, -1, 1.5, float('nan')):
        with pytest.raises(ValueError, match='max_hop'):
            Topology(edge_index, n, max_hop=bad)

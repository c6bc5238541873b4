"""A NaN or Inf feature at one joint reaches only the joints within the
layer's receptive field, on the dense small-graph path as on the
message-passing path (``0 * nan`` in a dense product used to spread it to
every joint)."""
from __future__ import annotations

import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn.conv import (
    ConvStyleConv,
    FullSharingConv,
    HCSFConv,
    KHopConv,
    MixHopSkeletonConv,
    MSHopConv,
    NoSharingConv,
    PostAggConv,
    PreAggConv,
    SemGraphConv,
)
from pyg_skeleton.nn.topology import Topology
from pyg_skeleton.transforms.khop import khop_edges

SK = Skeleton.preset('h36m17')
N = 17


def hop_distance():
    """All-pairs hop distances by breadth-first search, [N, N]."""
    nbrs = [[] for _ in range(N)]
    for a, b in SK.edge_index.t().tolist():
        nbrs[a].append(b)
    dist = torch.full((N, N), N + 1)
    for s in range(N):
        dist[s, s] = 0
        frontier = [s]
        while frontier:
            nxt = []
            for u in frontier:
                for v in nbrs[u]:
                    if dist[s, v] > dist[s, u] + 1:
                        dist[s, v] = dist[s, u] + 1
                        nxt.append(v)
            frontier = nxt
    return dist


DIST = hop_distance()


def batch_edge_index(copies):
    ei = SK.edge_index
    return torch.cat([ei + b * N for b in range(copies)], dim=1)


# name -> (layer factory, receptive field in hops, message-passing call)
def _ws(cls, **kw):
    return (lambda c: cls(c, c, SK.edge_index, num_nodes=N, **kw), 1, 'edge_index')


LAYERS = {
    'SemGraphConv': (lambda c: SemGraphConv(c, c, SK.edge_index, N), 1, 'self_loops'),
    'SemGraphConv-channelwise': (lambda c: SemGraphConv(c, c, SK.edge_index, N,
                                                        channelwise=True), 1, 'self_loops'),
    'FullSharingConv': _ws(FullSharingConv),
    'PreAggConv': _ws(PreAggConv),
    'PostAggConv': _ws(PostAggConv),
    'NoSharingConv': _ws(NoSharingConv),
    'ConvStyleConv': (lambda c: ConvStyleConv(c, c, SK.edge_index, SK.centre, N), 1,
                      'edge_index'),
    'HCSFConv': (lambda c: HCSFConv(c, c, SK.edge_index, N, S=1, L=2), 2, 'khop'),
    'KHopConv': (lambda c: KHopConv(c, c, SK.edge_index, N, k=2), 2, 'khop'),
    'MixHopSkeletonConv': (lambda c: MixHopSkeletonConv(c, c, SK.edge_index, N,
                                                        hops=(1, 3)), 3, 'khop'),
    'MSHopConv': (lambda c: MSHopConv(c, c, SK.edge_index, N, hops=(1, 2)), 2, 'khop'),
}


def message_passing(layer, x, how, reach):
    """The layer on a disjoint batch [B N, C] through its edge path."""
    b = x.size(0)
    flat = x.reshape(b * N, -1)
    if how == 'khop':
        ei, hop = khop_edges(batch_edge_index(b), b * N, reach)
        return layer(flat, ei, hop).view(b, N, -1)
    ei = batch_edge_index(b)
    if how == 'self_loops':
        # Self-loops make the edge list no exact tiling of the graph, so the
        # layer takes its message-passing path (it ignores them otherwise).
        loops = torch.arange(b * N).repeat(2, 1)
        ei = torch.cat([ei, loops], dim=1)
    return layer(flat, ei).view(b, N, -1)


@pytest.mark.parametrize('name', list(LAYERS))
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_nonfinite_stays_in_receptive_field(name, bad):
    make, reach, how = LAYERS[name]
    torch.manual_seed(0)
    layer = make(8).eval()
    x = torch.randn(3, N, 8)
    j = 10  # a joint of the left arm chain in h36m17
    x[1, j, 2] = bad
    with torch.no_grad():
        dense = layer(x)                       # static batch: the dense path
        edges = message_passing(layer, x, how, reach)
        clean = x.clone()
        clean[1, j] = 0.0
        ref = layer(clean)
    inside = DIST[j] <= reach                  # joints that may see joint j
    assert 0 < int(inside.sum()) < N
    for out in (dense, edges):
        # Untouched samples and joints outside the field are finite and do
        # not depend on joint j at all.
        assert torch.isfinite(out[[0, 2]]).all()
        assert torch.isfinite(out[1, ~inside]).all()
        torch.testing.assert_close(out[1, ~inside], ref[1, ~inside])
        torch.testing.assert_close(out[[0, 2]], ref[[0, 2]])
        assert not torch.isfinite(out[1, j]).all()
    torch.testing.assert_close(dense[1, ~inside], edges[1, ~inside])


@pytest.mark.parametrize('channelwise', [False, True])
@pytest.mark.parametrize('with_self', [False, True])
def test_topology_aggregate_nonfinite_matches_edge_sum(channelwise, with_self):
    topo = Topology(SK.edge_index, N)
    torch.manual_seed(1)
    c = 4
    value = torch.rand((topo.num_edges, c) if channelwise else (topo.num_edges, ))
    self_value = torch.rand(N) if with_self else None
    h = torch.randn(2, N, c)
    h[0, 3, 1] = float('nan')
    h[1, 7, 0] = float('-inf')
    got = topo.aggregate(value, h, self_value)
    # Naive loop over the edges of the topology (slot order).
    ref = torch.zeros(2, N, c)
    src, dst = topo.src[topo.nbr_slot], topo.dst[topo.nbr_slot]
    for e in range(topo.num_edges):
        w = value[e]
        ref[:, dst[e]] += w * h[:, src[e]]
    if with_self:
        ref += self_value.view(N, 1) * h
    torch.testing.assert_close(got, ref, equal_nan=True)

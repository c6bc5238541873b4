from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_skeleton import Skeleton
from pyg_skeleton.nn.conv.dynamic_hcsf_conv import DynamicHCSFConv
from pyg_skeleton.nn.conv.hcsf_conv import HCSFConv
from pyg_skeleton.nn.conv.khop_conv import KHopConv
from pyg_skeleton.nn.conv.mixhop_skeleton_conv import MixHopSkeletonConv
from pyg_skeleton.nn.conv.mshop_conv import MSHopConv
from pyg_skeleton.nn.topology import DENSE_MAX_NODES
from pyg_skeleton.transforms.khop import KHopEdges

from _helpers import random_graph, skeleton_graph

pytestmark = pytest.mark.operator


GRAPHS = {
    'h36m17': skeleton_graph('h36m17'),
    'ntu25': skeleton_graph('ntu25'),
    'random40': (random_graph(40, 12, seed=1), 40),
    # more nodes than DENSE_MAX_NODES (as random40): the CSR product, and
    # D-HCSF's 'hop' candidates by default
    'random150': (random_graph(150, 60, seed=2), 150),
}


def distances(edge_index, n):
    """[N, N] shortest-path lengths d(j -> i) at [i, j] from networkx, -1
    where unreachable."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edge_index.t().tolist())
    dist = torch.full((n, n), -1, dtype=torch.long)
    for j, lengths in nx.all_pairs_shortest_path_length(graph):
        for i, k in lengths.items():
            dist[i, j] = k
    return dist


def hop_sets(edge_index, n, hops):
    """[len(hops), N, N] 0/1 masks: mask[g, i, j] = 1 if d(j, i) in hops[g]
    (hops[g] a set of hop counts)."""
    dist = distances(edge_index, n)
    mask = torch.zeros(len(hops), n, n)
    for g, group in enumerate(hops):
        for i in range(n):
            for j in range(n):
                if int(dist[i, j]) in group:
                    mask[g, i, j] = 1.0
    return mask


def aggregate(mask, x, normalize=True):
    """Loop reference of s[..., i, g] = sum_j mask[g, i, j] x[..., j] / n."""
    g_count, n, _ = mask.shape
    out = x.new_zeros(x.shape[:-2] + (n, g_count, x.size(-1)))
    for g in range(g_count):
        for i in range(n):
            total = mask[g, i].sum() if normalize else 1.0
            neighbours = mask[g, i].nonzero().view(-1).tolist()
            for j in neighbours:
                out[..., i, g, :] += x[..., j, :] / total
    return out


def hcsf_from_aggregates(conv, agg):
    """The HCSF equations applied literally to hop aggregates
    [..., N, L+1, C]: per-hop maps, then F_k on the close hops and F_a on the
    groups, with concatenations and projections as written."""
    s = conv.S
    fuse_k, fuse_a = conv.fusion
    h = [agg[..., k, :] @ lin.weight.t() for k, lin in enumerate(conv.lins)]
    close = h[:s + 1]
    if fuse_k == 'concat' and s > 0:
        h_close = torch.cat(close, -1) @ conv.lin_close.weight.t()
    elif fuse_k == 'mul':
        h_close = math.prod(close)
    else:
        h_close = sum(close)
    far = h[s + 1:]
    if not far:
        out = h_close
    elif fuse_a == 'concat':
        out = torch.cat([h_close] + far, -1) @ conv.lin_fuse.weight.t()
    else:
        up = [f @ u.weight.t() for f, u in zip(far, conv.lins_up)]
        out = h_close * math.prod(up) if fuse_a == 'mul' else h_close + sum(
            up)
    return out + conv.bias


def hcsf_reference(conv, edge_index, x):
    n = x.size(-2)
    mask = hop_sets(edge_index, n, [{k} for k in range(conv.L + 1)])
    return hcsf_from_aggregates(conv, aggregate(mask, x, conv.normalize))


def make_hcsf(graph, cin=3, cout=8, dtype=torch.float32, seed=0, **kwargs):
    edge_index, n = GRAPHS[graph]
    torch.manual_seed(seed)
    conv = HCSFConv(cin, cout, edge_index, n, **kwargs).to(dtype)
    with torch.no_grad():
        conv.bias.normal_()
    return conv


# ------------------------------------------------------------------ HCSF


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('hops', [(0, 0), (1, 2), (2, 4)])
def test_hcsf_matches_dense_reference(graph, hops):
    S, L = hops
    edge_index, n = GRAPHS[graph]
    conv = make_hcsf(graph, S=S, L=L, d=0.5)
    x = torch.randn(2, n, 3)
    ref = hcsf_reference(conv, edge_index, x)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(conv(x[1]), ref[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('fusion', ['add', 'mul', ('mul', 'concat'),
                                    ('concat', 'mul'), ('add', 'concat')])
@pytest.mark.parametrize('graph', ['ntu25', 'random150'])
def test_hcsf_fusions_match_dense_reference(fusion, graph):
    edge_index, n = GRAPHS[graph]
    conv = make_hcsf(graph, S=1, L=3, d=0.5, fusion=fusion)
    x = torch.randn(2, n, 3)
    torch.testing.assert_close(conv(x), hcsf_reference(conv, edge_index, x),
                               atol=1e-5, rtol=1e-4)


def test_hcsf_without_normalisation():
    edge_index, n = GRAPHS['h36m17']
    conv = make_hcsf('h36m17', S=1, L=3, normalize=False)
    x = torch.randn(2, n, 3)
    torch.testing.assert_close(conv(x), hcsf_reference(conv, edge_index, x),
                               atol=1e-5, rtol=1e-4)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_squeezed_widths_and_parameter_counts():
    h36m = GRAPHS['h36m17'][0]
    conv = HCSFConv(128, 128, h36m, S=1, L=2, d=1 / 8)
    assert conv.squeezed == [16]  # 128 / 8
    assert [lin.weight.size(0) for lin in conv.lins] == [128, 128, 16]
    # W_0, W_1 (128x128 each), W_2 (128x16), P_k (256 -> 128),
    # P_a (128 + 16 -> 128), bias
    expected = (2 * 128 * 128 + 128 * 16 + 256 * 128 + 144 * 128 + 128)
    assert count(conv) == expected == 86_144
    # add / mul: U_2 (16 -> 128) instead of the two projections
    expected_add = 2 * 128 * 128 + 128 * 16 + 16 * 128 + 128
    assert count(HCSFConv(128, 128, h36m, fusion='add')) == expected_add
    assert count(HCSFConv(128, 128, h36m, fusion='mul')) == expected_add

    ntu = GRAPHS['ntu25'][0]
    conv = HCSFConv(64, 64, ntu, S=5, L=7, d=1 / 8)
    assert conv.squeezed == [8, 1]  # 64 / 8 = 8; 64 / 64 = 1
    expected = (6 * 64 * 64 + 64 * (8 + 1) + 6 * 64 * 64 + (64 + 9) * 64 + 64)
    assert count(conv) == expected
    # widths shrink below one: clamped at one
    conv = HCSFConv(16, 16, ntu, S=0, L=6, d=1 / 4)
    assert conv.squeezed == [4, 1, 1, 1, 1, 1]
    # d = 1: no squeezing; S = 0: no close projection
    conv = HCSFConv(5, 7, ntu, S=0, L=2, d=1)
    assert conv.squeezed == [7, 7] and conv.lin_close is None
    assert count(conv) == 3 * 5 * 7 + (7 * 3) * 7 + 7
    # L = S: no far groups, no fusion projection
    conv = HCSFConv(5, 7, ntu, S=2, L=2, bias=False)
    assert conv.lin_fuse is None
    assert count(conv) == 3 * 5 * 7 + 3 * 7 * 7


def test_hcsf_batching():
    edge_index, n = GRAPHS['h36m17']
    conv = make_hcsf('h36m17', S=1, L=2, d=0.5)
    x = torch.randn(2, 3, n, 3)
    out = conv(x)
    loop = torch.stack([torch.stack([conv(x[b, t]) for t in range(3)])
                        for b in range(2)])
    torch.testing.assert_close(out, loop, atol=1e-5, rtol=1e-4)
    # disjoint batch; the transform's larger max_hop is ignored beyond L
    datas = [KHopEdges(4)(Skeleton.preset('h36m17').to_data(x=x[0, t]))
             for t in range(3)]
    batch = Batch.from_data_list(datas)
    disjoint = conv(batch.x, batch.khop_edge_index, batch.khop_distance)
    torch.testing.assert_close(disjoint.view(3, n, -1), out[0], atol=1e-5,
                               rtol=1e-4)


def test_hcsf_disjoint_batch_of_different_graphs():
    # on given hop pairs the layer works for any graph
    conv = make_hcsf('h36m17', S=1, L=2, d=0.5)
    graphs = [GRAPHS['h36m17'], GRAPHS['random40']]
    xs = [torch.randn(n, 3) for _, n in graphs]
    batch = Batch.from_data_list([
        KHopEdges(2)(Skeleton.preset('h36m17').to_data(x=xs[0])),
        KHopEdges(2)(Data(x=xs[1], edge_index=graphs[1][0], num_nodes=40)),
    ])
    out = conv(batch.x, batch.khop_edge_index, batch.khop_distance)
    torch.testing.assert_close(out[:17], conv(xs[0]), atol=1e-5, rtol=1e-4)
    ref = hcsf_reference(conv, graphs[1][0], xs[1])
    torch.testing.assert_close(out[17:], ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('graph', ['h36m17', 'random150'])
def test_hcsf_gradcheck(graph):
    edge_index, n = GRAPHS[graph]
    conv = make_hcsf(graph, cin=2, cout=3, dtype=torch.float64, S=1, L=2,
                     d=0.5)
    x = torch.randn(1, n, 2, dtype=torch.float64, requires_grad=True)
    params = tuple(conv.parameters())
    fast = n > DENSE_MAX_NODES
    assert torch.autograd.gradcheck(lambda x, *_: conv(x), (x, *params),
                                    fast_mode=fast)
    # the message-passing path on a disjoint batch
    batch = Batch.from_data_list(
        [KHopEdges(2)(Data(edge_index=edge_index, num_nodes=n))] * 2)
    x2 = torch.randn(2 * n, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *_: conv(x, batch.khop_edge_index, batch.khop_distance),
        (x2, *params), fast_mode=True)


def test_hcsf_mul_gradcheck():
    conv = make_hcsf('h36m17', cin=2, cout=3, dtype=torch.float64, S=1, L=2,
                     d=0.5, fusion='mul')
    x = torch.randn(17, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *_: conv(x),
                                    (x, *conv.parameters()))


def test_hcsf_compile_without_graph_breaks():
    # the dense path here; the message-passing path in the dynamic test
    conv = make_hcsf('h36m17', S=1, L=2)
    x = torch.randn(2, 17, 3)
    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x), conv(x), atol=1e-5, rtol=1e-4)


def test_hcsf_errors_and_clipping():
    edge_index, n = GRAPHS['h36m17']
    with pytest.raises(ValueError, match='S <= L'):
        HCSFConv(4, 4, edge_index, S=3, L=2)
    for d in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r'd in \(0, 1\]'):
            HCSFConv(4, 4, edge_index, d=d)
    with pytest.raises(ValueError, match='integer S'):
        HCSFConv(4, 4, edge_index, S=-1)
    with pytest.raises(ValueError, match='integer L'):
        HCSFConv(4, 4, edge_index, L=1.5)
    with pytest.raises(ValueError, match='unknown fusion'):
        HCSFConv(4, 4, edge_index, fusion='max')
    with pytest.raises(ValueError, match='positive channel sizes'):
        HCSFConv(0, 4, edge_index)
    # L beyond the furthest hop (8 on h36m17): warned and clipped
    with pytest.warns(UserWarning, match='L=10 is beyond the furthest hop 8'):
        conv = HCSFConv(4, 4, edge_index, S=1, L=10)
    assert conv.L == 8 and len(conv.squeezed) == 7
    with pytest.warns(UserWarning, match='S=9 is beyond'):
        conv = HCSFConv(4, 4, edge_index, S=9, L=10)
    assert conv.S == conv.L == 8
    conv = HCSFConv(4, 4, edge_index)
    with pytest.raises(ValueError, match=r'shape \[..., num_nodes, 4\]'):
        conv(torch.randn(n, 3))
    with pytest.raises(ValueError, match='built for a graph of 17 nodes'):
        conv(torch.randn(2, 16, 4))
    with pytest.raises(ValueError, match="needs 'khop_distance'"):
        conv(torch.randn(n, 4), khop_edge_index=edge_index)


def test_repr():
    edge_index, _ = GRAPHS['h36m17']
    assert repr(HCSFConv(2, 128, edge_index)) == (
        'HCSFConv(2, 128, num_nodes=17, S=1, L=2, d=0.125, squeezed=[16], '
        'fusion=concat)')
    assert repr(KHopConv(2, 4, edge_index, k=2)) == (
        'KHopConv(2, 4, num_nodes=17, k=2)')
    assert 'graph=ori' in repr(DynamicHCSFConv(2, 4, edge_index))


# ------------------------------------------------------------- baselines


@pytest.mark.parametrize('graph', ['ntu25', 'random150'])
def test_baselines_match_dense_reference(graph):
    edge_index, n = GRAPHS[graph]
    x = torch.randn(2, n, 3)
    torch.manual_seed(0)
    dist_sets = {k: set(range(k + 1)) for k in (1, 3, 5)}

    khop = KHopConv(3, 6, edge_index, n, k=3)
    agg = aggregate(hop_sets(edge_index, n, [dist_sets[3]]), x)[..., 0, :]
    torch.testing.assert_close(khop(x), agg @ khop.lin.weight.t() +
                               khop.lin.bias, atol=1e-5, rtol=1e-4)

    mask = hop_sets(edge_index, n, [dist_sets[k] for k in (1, 3, 5)])
    agg = aggregate(mask, x)
    mix = MixHopSkeletonConv(3, 8, edge_index, n, hops=(1, 3, 5))
    assert mix.widths == [3, 3, 2]
    ref = torch.cat([agg[..., g, :] @ lin.weight.t()
                     for g, lin in enumerate(mix.lins)], -1) + mix.bias
    torch.testing.assert_close(mix(x), ref, atol=1e-5, rtol=1e-4)

    ms = MSHopConv(3, 6, edge_index, n, hops=(1, 3, 5))
    ref = sum(agg[..., g, :] @ lin.weight.t()
              for g, lin in enumerate(ms.lins)) / 3 + ms.bias
    torch.testing.assert_close(ms(x), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('graph', ['h36m17', 'random150'])
@pytest.mark.parametrize('make', [
    lambda e, n: KHopConv(3, 6, e, n, k=3),
    lambda e, n: MixHopSkeletonConv(3, 8, e, n, hops=(1, 3)),
    lambda e, n: MSHopConv(3, 6, e, n, hops=(1, 3)),
    lambda e, n: HCSFConv(3, 8, e, n, S=1, L=3),
], ids=['khop', 'mixhop', 'mshop', 'hcsf'])
def test_static_path_runs_through_propagate(graph, make, monkeypatch):
    """The static hop aggregation goes through PyG's propagate with the
    graph's sparse adjacency (its hooks fire and can replace the result),
    and its message_and_aggregate is the dense product of the groups' hop
    weights (written here from hop sets found by networkx)."""
    edge_index, n = GRAPHS[graph]
    conv = make(edge_index, n)
    x = torch.randn(2, n, 3)
    seen = []
    hook = conv.register_message_and_aggregate_forward_hook(
        lambda m, inputs, out: seen.append((inputs[0], out)))
    out = conv(x)
    hook.remove()
    assert len(seen) == 1
    adj_t, agg = seen[0]
    assert adj_t.layout == torch.sparse_csr and adj_t.shape == (n, n)
    groups = torch.zeros(conv.num_groups, conv.max_hop_used + 1,
                         dtype=torch.bool)
    groups[conv.membership.bool()] = True
    mask = hop_sets(edge_index, n, [set(g.nonzero().view(-1).tolist())
                                    for g in groups])
    torch.testing.assert_close(agg, aggregate(mask, x), atol=1e-5,
                               rtol=1e-4)
    # A hook's result replaces the aggregation:
    hook = conv.register_message_and_aggregate_forward_hook(
        lambda m, inputs, out: torch.zeros_like(out))
    zero = conv(x)
    hook.remove()
    assert not torch.equal(zero, out)
    torch.testing.assert_close(zero, conv(torch.zeros_like(x)))
    # Without hooks, the same kernel without PyG's dispatch, bit for bit:
    calls = []
    propagate = conv.propagate
    monkeypatch.setattr(conv, 'propagate',
                        lambda *a, **k: calls.append(1) or propagate(*a, **k))
    assert torch.equal(conv(x), out) and calls == [1]
    monkeypatch.undo()
    assert torch.equal(conv(x), out)


def test_baselines_batching_counts_and_errors():
    edge_index, n = GRAPHS['ntu25']
    x = torch.randn(3, n, 4)
    batch = Batch.from_data_list(
        [KHopEdges(7)(Skeleton.preset('ntu25').to_data(x=x[b]))
         for b in range(3)])
    for conv in (KHopConv(4, 6, edge_index, k=5),
                 MixHopSkeletonConv(4, 6, edge_index),
                 MSHopConv(4, 6, edge_index)):
        out = conv(batch.x, batch.khop_edge_index, batch.khop_distance)
        torch.testing.assert_close(out.view(3, n, -1), conv(x), atol=1e-5,
                                   rtol=1e-4)
        x4 = torch.randn(2, 3, n, 4)
        torch.testing.assert_close(conv(x4), conv(x4.view(6, n, 4)).view(
            2, 3, n, -1), atol=1e-5, rtol=1e-4)
    assert count(KHopConv(4, 6, edge_index)) == 4 * 6 + 6
    assert count(MixHopSkeletonConv(4, 6, edge_index)) == 4 * 6 + 6
    assert count(MSHopConv(4, 6, edge_index)) == 3 * 4 * 6 + 6
    with pytest.warns(UserWarning, match='k=20 is beyond the furthest hop 12'):
        assert KHopConv(4, 6, edge_index, k=20).k == 12
    with pytest.warns(UserWarning, match='beyond the furthest hop 12'):
        assert MSHopConv(4, 6, edge_index, hops=(1, 13)).hops == [1, 12]
    with pytest.raises(ValueError, match='cannot split'):
        MixHopSkeletonConv(4, 2, edge_index)
    with pytest.raises(ValueError, match='integer hop'):
        MSHopConv(4, 6, edge_index, hops=(1, -1))
    with pytest.raises(ValueError, match='built for a graph of 25 nodes'):
        KHopConv(4, 6, edge_index)(torch.randn(17, 4))


# ------------------------------------------------------- dynamic graphs


def temporal_embedding(conv2d, x, stride, dilation):
    """The (F, 1) convolution written as a loop over taps: x [B, T, N, C]
    -> [B, C_out, T', N], zero padding dilation * (F - 1) // 2."""
    w, bias = conv2d.weight[..., 0], conv2d.bias  # [C_out, C_in, F]
    f = w.size(-1)
    pad = dilation * (f - 1) // 2
    t_in = x.size(1)
    t_out = (t_in + 2 * pad - dilation * (f - 1) - 1) // stride + 1
    out = x.new_zeros(x.size(0), w.size(0), t_out, x.size(2))
    for t in range(t_out):
        for tap in range(f):
            src = t * stride + tap * dilation - pad
            if 0 <= src < t_in:
                out[:, :, t] += torch.einsum('oc,bnc->bon', w[:, :, tap],
                                             x[:, src])
        out[:, :, t] += bias.view(1, -1, 1)
    return out


def dynamic_reference(conv, edge_index, x):
    """Eq. 8 with dense matrices and loops, x [B, T, N, C]."""
    b, t, n, _ = x.shape
    k_count, c_h = conv.L + 1, conv.embed_channels
    hop_mask = hop_sets(edge_index, n, [{k} for k in range(k_count)])
    adj = torch.zeros(b, k_count, n, n, dtype=x.dtype)
    if conv.graph_weight is not None:
        if conv.candidates == 'all':
            adj += conv.graph_weight.permute(1, 0, 2)  # [N, K, N] -> [K, N, N]
        else:
            # graph_weight is laid out by target, then source (documented)
            src, dst = conv.hop_edge_index
            order = sorted(range(src.numel()),
                           key=lambda e: (int(dst[e]), int(src[e])))
            for r, e in enumerate(order):
                adj[:, conv.hop[e], dst[e], src[e]] += conv.graph_weight[r]
    if conv.offset:
        theta = temporal_embedding(conv.theta, x, conv.temporal_stride,
                                   conv.temporal_dilation)
        phi = temporal_embedding(conv.phi, x, conv.temporal_stride,
                                 conv.temporal_dilation)
        frames = theta.size(2)
        theta = theta.view(b, k_count, c_h, frames, n)
        phi = phi.view(b, k_count, c_h, frames, n)
        for s in range(b):
            for k in range(k_count):
                for i in range(n):
                    for j in range(n):
                        if conv.candidates == 'hop' and not hop_mask[k, i, j]:
                            continue
                        dot = (theta[s, k, :, :, i] * phi[s, k, :, :, j]).sum()
                        adj[s, k, i, j] += conv.alpha * torch.tanh(
                            dot / frames)
    agg = torch.einsum('bkij,btjc->btikc', adj, x)
    return hcsf_from_aggregates(conv, agg)


def make_dynamic(name, cin=3, cout=8, dtype=torch.float32, seed=0,
                 alpha_value=0.7, **kwargs):
    edge_index, n = GRAPHS[name]
    torch.manual_seed(seed)
    conv = DynamicHCSFConv(cin, cout, edge_index, n, **kwargs).to(dtype)
    with torch.no_grad():
        conv.bias.normal_()
        if isinstance(conv.alpha, torch.nn.Parameter):
            conv.alpha.fill_(alpha_value)
        if conv.graph_weight is not None:
            conv.graph_weight.add_(0.1 * torch.randn_like(conv.graph_weight))
    return conv


DYNAMIC_CASES = {
    'eq8': dict(),
    'eq8_temporal': dict(temporal_kernel=3),
    'strided_dilated': dict(temporal_kernel=3, temporal_stride=2,
                            temporal_dilation=2),
    'only_M_dense': dict(graph='dense', offset=False),
    'only_O': dict(graph=None, alpha=1.0),
    'M_plus_O': dict(alpha=1.0, fusion='mul'),
    'hop_candidates': dict(candidates='hop', temporal_kernel=3),
}


@pytest.mark.parametrize('case', DYNAMIC_CASES)
def test_dynamic_matches_dense_reference(case):
    edge_index, n = GRAPHS['h36m17']
    conv = make_dynamic('h36m17', S=1, L=2, d=0.5, **DYNAMIC_CASES[case])
    x = torch.randn(2, 5, n, 3)
    ref = dynamic_reference(conv, edge_index, x)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-4)
    # [B, N, C]: single frames, one offset per sample
    ref = dynamic_reference(conv, edge_index, x[:, :1])[:, 0]
    torch.testing.assert_close(conv(x[:, 0]), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('case', ['eq8_temporal', 'hop_candidates'])
def test_dynamic_static_path_runs_through_propagate(case, monkeypatch):
    """The static path's aggregation is PyG message passing: with 'all'
    candidates the product with the samples' hop graphs is
    message_and_aggregate (PyG's propagate runs it when a hook is set),
    with 'hop' candidates messages over the hop pairs; either way Eq. 8."""
    edge_index, n = GRAPHS['h36m17']
    conv = make_dynamic('h36m17', S=1, L=2, d=0.5, **DYNAMIC_CASES[case])
    x = torch.randn(2, 5, n, 3)
    seen = []
    hooks = [conv.register_message_and_aggregate_forward_hook(
        lambda m, inputs, out: seen.append('fused')),
        conv.register_propagate_forward_hook(
            lambda m, inputs, out: seen.append('propagate'))]
    out = conv(x)
    for hook in hooks:
        hook.remove()
    assert seen == (['fused', 'propagate'] if case == 'eq8_temporal' else
                    ['propagate'])
    torch.testing.assert_close(out, dynamic_reference(conv, edge_index, x),
                               atol=1e-5, rtol=1e-4)
    assert torch.equal(conv(x), out)


def test_dynamic_large_graph_uses_hop_pairs():
    edge_index, n = GRAPHS['random150']
    conv = make_dynamic('random150', S=1, L=2, d=0.5, temporal_kernel=3)
    assert conv.candidates == 'hop'
    assert conv.graph_weight.numel() == n + conv.num_hop_pairs
    x = torch.randn(1, 3, n, 3)
    torch.testing.assert_close(conv(x), dynamic_reference(conv, edge_index, x),
                               atol=1e-5, rtol=1e-4)


def test_dynamic_initial_graphs():
    edge_index, n = GRAPHS['h36m17']
    x = torch.randn(3, n, 3)
    static = make_hcsf('h36m17', S=1, L=2)
    # 'ori' with alpha = 0 (the initial value) is the static HCSF layer
    torch.manual_seed(0)
    dyn = DynamicHCSFConv(3, 8, edge_index, S=1, L=2)
    dyn.load_state_dict(static.state_dict(), strict=False)
    assert float(dyn.alpha) == 0.0
    torch.testing.assert_close(dyn(x), static(x), atol=1e-6, rtol=1e-5)
    # 'dense' and 'rand' rows sum to one over all candidates of each hop
    for graph in ('dense', 'rand'):
        conv = DynamicHCSFConv(3, 8, edge_index, graph=graph, offset=False)
        torch.testing.assert_close(conv.graph_weight.sum(-1),
                                   torch.ones(n, 3))
    conv = DynamicHCSFConv(3, 8, edge_index, graph='dense', offset=False)
    assert torch.all(conv.graph_weight == 1 / n)
    # alpha fixed: a buffer, not a parameter
    conv = DynamicHCSFConv(3, 8, edge_index, alpha=1.0)
    assert 'alpha' not in dict(conv.named_parameters())


def test_dynamic_parameter_count():
    edge_index, n = GRAPHS['h36m17']
    static = count(HCSFConv(16, 16, edge_index, S=1, L=2, d=1 / 8))
    conv = DynamicHCSFConv(16, 16, edge_index, S=1, L=2, d=1 / 8,
                           temporal_kernel=3, embed_channels=4)
    # M_k on all pairs, theta and phi (3 hops x 4 channels, kernel 3 x 16
    # inputs + bias, twice), alpha
    assert count(conv) == static + 3 * n * n + 2 * (3 * 4 * (3 * 16 + 1)) + 1
    conv = DynamicHCSFConv(16, 16, edge_index, graph=None, alpha=1.0,
                           embed_channels=4)
    assert count(conv) == static + 2 * (3 * 4 * (16 + 1))


def test_dynamic_batching():
    edge_index, n = GRAPHS['h36m17']
    conv = make_dynamic('h36m17', temporal_kernel=3)
    x = torch.randn(2, 3, 4, n, 3)  # [B1, B2, T, N, C]
    out = conv(x)
    # one offset per clip: [T, N, C] alone would be T single frames
    torch.testing.assert_close(out[1, 2], conv(x[1, 2:3])[0], atol=1e-5,
                               rtol=1e-4)
    # a single sample [N, C] and a static batch [B, N, C]
    x3 = torch.randn(4, n, 3)
    torch.testing.assert_close(conv(x3)[2], conv(x3[2]), atol=1e-5,
                               rtol=1e-4)
    batch = Batch.from_data_list(
        [KHopEdges(3)(Skeleton.preset('h36m17').to_data(x=x3[b]))
         for b in range(4)])
    torch.testing.assert_close(
        conv(batch.x, batch.khop_edge_index, batch.khop_distance).view(
            4, n, -1), conv(x3), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='different copies'):
        shifted = batch.khop_edge_index.clone()
        shifted[0, 0] = (shifted[0, 0] + n) % (4 * n)
        conv(batch.x, shifted, batch.khop_distance)
    with pytest.raises(ValueError, match='not a multiple of the 17 nodes'):
        conv(torch.randn(20, 3), batch.khop_edge_index, batch.khop_distance)
    with pytest.raises(ValueError, match='built for a graph of 17 nodes'):
        conv(torch.randn(2, 3, 16, 3))


@pytest.mark.parametrize('candidates', ['all', 'hop'])
def test_dynamic_gradcheck(candidates):
    conv = make_dynamic('h36m17', cin=2, cout=3, dtype=torch.float64, S=1,
                        L=2, d=0.5, embed_channels=2, temporal_kernel=3,
                        candidates=candidates)
    x = torch.randn(1, 3, 17, 2, dtype=torch.float64, requires_grad=True)
    params = tuple(conv.parameters())
    assert torch.autograd.gradcheck(lambda x, *_: conv(x), (x, *params),
                                    fast_mode=True)


def test_dynamic_compile_without_graph_breaks():
    # per-pair offsets and message passing over the stored hop pairs
    conv = make_dynamic('h36m17', temporal_kernel=3, candidates='hop')
    x = torch.randn(2, 4, 17, 3)
    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x), conv(x), atol=1e-5, rtol=1e-4)


def test_dynamic_errors():
    edge_index, _ = GRAPHS['h36m17']
    with pytest.raises(ValueError, match='unknown graph initialisation'):
        DynamicHCSFConv(3, 4, edge_index, graph='eye')
    with pytest.raises(ValueError, match='needs M_k'):
        DynamicHCSFConv(3, 4, edge_index, graph=None, offset=False)
    with pytest.raises(ValueError, match='unknown candidates'):
        DynamicHCSFConv(3, 4, edge_index, candidates='some')
    with pytest.raises(ValueError, match="alpha='learn'"):
        DynamicHCSFConv(3, 4, edge_index, alpha='fixed')
    with pytest.raises(ValueError, match='temporal_kernel'):
        DynamicHCSFConv(3, 4, edge_index, temporal_kernel=0)
    with pytest.raises(ValueError, match='S <= L'):
        DynamicHCSFConv(3, 4, edge_index, S=3, L=1)


# ------------------------------- PyG's protocol: forward(x, edge_index)


def drop_edges(edge_index, pairs):
    """edge_index without the edges (both directions) of ``pairs``."""
    keep = torch.ones(edge_index.size(1), dtype=torch.bool)
    for a, b in pairs:
        keep &= ~(((edge_index[0] == a) & (edge_index[1] == b))
                  | ((edge_index[0] == b) & (edge_index[1] == a)))
    return edge_index[:, keep]


HOP_CONVS = {
    'KHopConv': lambda e, n: KHopConv(3, 6, e, n, k=2),
    'HCSFConv': lambda e, n: HCSFConv(3, 6, e, n, S=1, L=3, d=0.5),
    'HCSFConv-mul': lambda e, n: HCSFConv(3, 6, e, n, S=1, L=2, d=0.5,
                                          fusion='mul'),
    'MixHopSkeletonConv': lambda e, n: MixHopSkeletonConv(3, 6, e, n,
                                                          hops=(1, 2)),
    'MSHopConv': lambda e, n: MSHopConv(3, 6, e, n, hops=(1, 3)),
    'DynamicHCSFConv': lambda e, n: DynamicHCSFConv(3, 6, e, n, alpha=0.5),
    'DynamicHCSFConv-hop': lambda e, n: DynamicHCSFConv(
        3, 6, e, n, alpha=0.5, candidates='hop'),
}


def group_sets(conv):
    """The hop counts of each aggregation group of a static hop operator."""
    if isinstance(conv, HCSFConv):
        return [{k} for k in range(conv.L + 1)]
    if isinstance(conv, KHopConv):
        return [set(range(conv.k + 1))]
    return [set(range(k + 1)) for k in conv.hops]


def static_reference(conv, edge_index, x):
    """The operator's output on any graph: its hop sets from networkx
    (loops over nodes), then its maps written out."""
    agg = aggregate(hop_sets(edge_index, x.size(-2), group_sets(conv)), x)
    if isinstance(conv, HCSFConv):
        return hcsf_from_aggregates(conv, agg)
    if isinstance(conv, KHopConv):
        return agg[..., 0, :] @ conv.lin.weight.t() + conv.lin.bias
    outs = [agg[..., g, :] @ lin.weight.t() for g, lin in enumerate(conv.lins)]
    if isinstance(conv, MixHopSkeletonConv):
        return torch.cat(outs, -1) + conv.bias
    return sum(outs) / len(outs) + conv.bias


def dynamic_pairs_reference(conv, edge_index, x, pairs):
    """D-HCSF on a disjoint batch x [B N, C] given as hop pairs
    {(j, i): k} (global ids), with loops: A_k[i, k, j] of the layer (from
    its own hop_graphs) counts where (j, i) is given at hop k, for the
    self-loops, and with candidates='all' for every entry that is not a
    hop-k pair of the layer's graph (those come from the given pairs)."""
    n = conv.num_nodes
    b = x.size(0) // n
    adj = conv.hop_graphs(x.view(b, 1, n, -1)).expand(b, -1, -1, -1) \
        if conv.candidates == 'all' else None
    dist = distances(edge_index, n)
    agg = x.new_zeros(b * n, conv.L + 1, x.size(-1))
    if conv.candidates == 'hop':
        weights = conv.hop_graphs(x.view(b, 1, n, -1)).expand(b, -1)
        slot = {(int(j), int(i)): e for e, (j, i) in
                enumerate(conv.hop_edge_index.t().tolist())}
    for s in range(b):
        for i in range(n):
            for k in range(conv.L + 1):
                for j in range(n):
                    given = pairs.get((s * n + j, s * n + i)) == k
                    if conv.candidates == 'all':
                        layer_pair = k >= 1 and int(dist[i, j]) == k
                        if given or not layer_pair:
                            agg[s * n + i, k] += adj[s, i, k, j] * x[s * n + j]
                    elif (k == 0 and i == j) or given:
                        w = weights[s, slot[(j, i)]]
                        agg[s * n + i, k] += w * x[s * n + j]
    return hcsf_from_aggregates(conv, agg)


@pytest.mark.parametrize('name', HOP_CONVS)
@pytest.mark.parametrize('graph', ['h36m17', 'random150'])
def test_disjoint_batch_of_whole_copies_is_static(name, graph):
    """conv(batch.x, batch.edge_index) on whole copies (one-hop graph, any
    order of edges) takes the static kernel: identical to conv(x)."""
    if name.startswith('Dynamic') and graph == 'random150':
        pytest.skip('D-HCSF on the skeleton only (its reference is dense)')
    edge_index, n = GRAPHS[graph]
    torch.manual_seed(0)
    conv = HOP_CONVS[name](edge_index, n)
    x = torch.randn(3, n, 3)
    batch = Batch.from_data_list([Data(x=x[b], edge_index=edge_index,
                                       num_nodes=n) for b in range(3)])
    shuffled = batch.edge_index[:, torch.randperm(batch.edge_index.size(1))]
    for ei in (batch.edge_index, shuffled):
        out = conv(batch.x, ei)
        assert torch.equal(out, conv(x).flatten(0, 1))


@pytest.mark.parametrize('name', HOP_CONVS)
@pytest.mark.parametrize('graph', ['h36m17', 'random40'])
def test_dropped_edges_match_loop_reference(name, graph):
    """A one-hop edge_index with edges dropped from copy 1 (the skeleton
    falls apart; the random graph's cycles make some pairs farther)
    aggregates over the hop sets of that graph, from its own shortest paths
    (networkx, in the test)."""
    edge_index, n = GRAPHS[graph]
    torch.manual_seed(0)
    conv = HOP_CONVS[name](edge_index, n)
    if name.startswith('Dynamic'):
        with torch.no_grad():
            conv.graph_weight.add_(0.1 * torch.randn_like(conv.graph_weight))
    x = torch.randn(2 * n, 3)
    cut = [(0, 1), (8, 11)] if graph == 'h36m17' else edge_index[:, :6:2].t()
    dropped = drop_edges(edge_index, cut.tolist() if torch.is_tensor(cut)
                         else cut)
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n),
                                  Data(edge_index=dropped, num_nodes=n)])
    if not name.startswith('Dynamic'):
        out = conv(x, batch.edge_index)
        # the intact copy is the layer's graph
        torch.testing.assert_close(out[:n], conv(x[:n]), atol=1e-5,
                                   rtol=1e-4)
        ref = static_reference(conv, batch.edge_index, x)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        return
    dist = distances(batch.edge_index, 2 * n)
    pairs = {(j, i): int(dist[i, j]) for i in range(2 * n)
             for j in range(2 * n) if 1 <= int(dist[i, j]) <= conv.L}
    layer = distances(edge_index, n)
    farther = {p for p, k in pairs.items()
               if int(layer[p[1] % n, p[0] % n]) != k}
    assert bool(farther) == (graph == 'random40')
    if conv.candidates == 'hop' and farther:
        # 'hop' candidates hold weights for the layer's hop-k pairs only
        with pytest.raises(ValueError, match='not a hop pair'):
            conv(x, batch.edge_index)
        return
    ref = dynamic_pairs_reference(conv, edge_index, x, pairs)
    torch.testing.assert_close(conv(x, batch.edge_index), ref, atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize('name', HOP_CONVS)
def test_hop_pairs_calls_unchanged(name):
    """The hop pairs of KHopEdges, positional (the old call) or by keyword,
    give what the one-hop edge_index of the same batch gives."""
    edge_index, n = GRAPHS['h36m17']
    torch.manual_seed(0)
    conv = HOP_CONVS[name](edge_index, n)
    x = torch.randn(2, n, 3)
    batch = Batch.from_data_list([KHopEdges(4)(Data(
        x=x[b], edge_index=edge_index, num_nodes=n)) for b in range(2)])
    old = conv(batch.x, batch.khop_edge_index, batch.khop_distance)
    new = conv(batch.x, khop_edge_index=batch.khop_edge_index,
               khop_distance=batch.khop_distance)
    assert torch.equal(old, new)
    torch.testing.assert_close(old, conv(batch.x, batch.edge_index),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(old, conv(x).flatten(0, 1), atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize('name', HOP_CONVS)
def test_protocol_errors(name):
    edge_index, n = GRAPHS['h36m17']
    conv = HOP_CONVS[name](edge_index, n)
    x = torch.randn(2 * n, 3)
    batch = Batch.from_data_list([KHopEdges(2)(Data(
        edge_index=edge_index, num_nodes=n))] * 2)
    kei, kd = batch.khop_edge_index, batch.khop_distance
    with pytest.raises(ValueError, match="needs 'khop_distance'"):
        conv(x, khop_edge_index=kei)
    with pytest.raises(ValueError, match='not both'):
        conv(x, batch.edge_index, kd, khop_edge_index=kei)
    with pytest.raises(ValueError, match="'khop_distance' without"):
        conv(x[:n], khop_distance=kd)
    with pytest.raises(ValueError, match='is not an edge of the layer'):
        conv(x, torch.tensor([[0, 5], [5, 0]]))
    with pytest.raises(ValueError, match='not a multiple of the 17 nodes'):
        conv(x[:-1], edge_index)
    conv.explain = True
    try:
        with pytest.raises(ValueError, match='explain the hop pairs'):
            conv(x, batch.edge_index)
    finally:
        conv.explain = False
    if name.startswith('Dynamic'):
        # Samples [B, N, F] take the layer's own graph as edge_index (one
        # offset per sample); copies of it need the disjoint layout.
        assert torch.equal(conv(x.view(2, n, 3), edge_index),
                           conv(x.view(2, n, 3)))
        with pytest.raises(ValueError, match=r'shape \[B \* 17, 3\]'):
            conv(x.view(1, 2 * n, 3), batch.edge_index)
    if name == 'DynamicHCSFConv-hop':
        # 'hop' candidates hold weights for the layer's hop-k pairs only
        wrong = kd.clone()
        wrong[0] = 3 - wrong[0]
        with pytest.raises(ValueError, match='not a hop pair'):
            conv(x, khop_edge_index=kei, khop_distance=wrong)


def test_one_dense_threshold():
    """One rule for one-hop and hop graphs: dense up to DENSE_MAX_NODES
    nodes, CSR above; D-HCSF's 'auto' candidates (the shape of its learned
    graph) do not follow the kernel threshold."""
    import pyg_skeleton.nn.topology as topology
    with pytest.warns(DeprecationWarning, match='DENSE_MAX_NODES'):
        assert topology.TOPOLOGY_DENSE_MAX_NODES == DENSE_MAX_NODES
    for n in (DENSE_MAX_NODES, DENSE_MAX_NODES + 1):
        ring = torch.arange(n)
        edge_index = torch.cat([torch.stack([ring, (ring + 1) % n]),
                                torch.stack([(ring + 1) % n, ring])], 1)
        conv = HCSFConv(3, 4, edge_index, n, S=1, L=2)
        dense = n <= DENSE_MAX_NODES
        assert (conv.dense_adj is not None) == dense
        assert (conv.csr_value is not None) == (not dense)
        x = torch.randn(2, n, 3)
        torch.testing.assert_close(conv(x), hcsf_reference(conv, edge_index,
                                                           x),
                                   atol=1e-5, rtol=1e-4)
    assert DynamicHCSFConv(3, 4, *GRAPHS['random40']).candidates == 'all'
    assert DynamicHCSFConv(3, 4, *GRAPHS['random150']).candidates == 'hop'


@pytest.mark.parametrize('name', ['HCSFConv', 'DynamicHCSFConv',
                                  'DynamicHCSFConv-hop'])
def test_dropped_edges_gradcheck(name):
    edge_index, n = GRAPHS['h36m17']
    torch.manual_seed(0)
    conv = HOP_CONVS[name](edge_index, n).double()
    dropped = drop_edges(edge_index, [(0, 1)])
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n),
                                  Data(edge_index=dropped, num_nodes=n)])
    x = torch.randn(2 * n, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(conv.parameters())
    assert torch.autograd.gradcheck(
        lambda x, *_: conv(x, batch.edge_index), (x, *params),
        fast_mode=True)


# ------------------------------------- one order: the topology's hop slots

ZERO_HOP_CONVS = {
    'HCSFConv-L0': lambda e, n: HCSFConv(3, 6, e, n, S=0, L=0),
    'KHopConv-k0': lambda e, n: KHopConv(3, 6, e, n, k=0),
    'DynamicHCSFConv-hop-L0': lambda e, n: DynamicHCSFConv(
        3, 6, e, n, S=0, L=0, candidates='hop'),
}


@pytest.mark.parametrize('name', [*HOP_CONVS, *ZERO_HOP_CONVS])
@pytest.mark.parametrize('graph', ['h36m17', 'random150'])
def test_hop_pairs_are_the_topology_slots(name, graph):
    """The pairs a hop operator aggregates over are its Topology's slots
    within its hops, in the topology's order (one-hop slots, then hop 2,
    3, ...), as a view from one hop on; as a set they are the hop sets of
    networkx's shortest paths."""
    edge_index, n = GRAPHS[graph]
    conv = {**HOP_CONVS, **ZERO_HOP_CONVS}[name](edge_index, n)
    topology, hops = conv.topology, conv.max_hop_used
    keep = topology.hop <= hops
    assert torch.equal(conv.hop_edge_index, topology.hop_edge_index[:, keep])
    assert torch.equal(conv.hop, topology.hop[keep])
    if hops >= 1:
        assert conv.hop.data_ptr() == topology.hop.data_ptr()
        assert (conv.hop_edge_index.data_ptr()
                == topology.hop_edge_index.data_ptr())
    dist = distances(edge_index, n)
    expected = {(j, i, int(dist[i, j])) for i in range(n) for j in range(n)
                if 0 <= int(dist[i, j]) <= hops}
    pairs = [(j, i, k) for (j, i), k in zip(conv.hop_edge_index.t().tolist(),
                                            conv.hop.tolist())]
    assert len(pairs) == len(expected) and set(pairs) == expected
    assert conv.num_hop_pairs == len(expected) - n


def test_dynamic_hop_graph_weight_layout():
    """The 'hop' graph weight keeps its layout, one weight per hop pair
    sorted by target, then source, whatever the order of the topology's
    slots (which differ: the far hops follow all one-hop slots), so that
    saved weights load as they were written; the layer reads weight r for
    the r-th pair of that order."""
    for graph in ('h36m17', 'random150'):
        edge_index, n = GRAPHS[graph]
        conv = DynamicHCSFConv(3, 8, edge_index, n, S=1, L=3, d=0.5,
                               candidates='hop', graph='ori', offset=False)
        src, dst = conv.hop_edge_index
        order = sorted(range(src.numel()),
                       key=lambda e: (int(dst[e]), int(src[e])))
        assert order != list(range(src.numel()))
        pairs, hops = conv.graph_weight_pairs()
        assert torch.equal(pairs, conv.hop_edge_index[:, order])
        assert torch.equal(hops, conv.hop[order])
        # 'ori': each pair's weight is its group's normalisation
        expected = torch.stack([conv.group_norm[dst[e], conv.hop[e]]
                                for e in order])
        assert torch.equal(conv.graph_weight.detach(), expected)
        # a weight per pair that names the pair reaches that pair
        with torch.no_grad():
            conv.graph_weight.copy_(torch.tensor(
                [float(int(dst[e]) * n + int(src[e])) for e in order]))
            a = conv.hop_graphs(torch.randn(1, 1, n, 3))[0]
        assert torch.equal(a, (dst * n + src).to(a.dtype))


def test_dynamic_hop_random_initial_graph_layout():
    """'rand' draws its weights in the layout's order (as before the
    topology's slot order was used): the same seed gives the same start,
    and each target's weights of one hop sum to one."""
    edge_index, n = GRAPHS['random150']
    conv = DynamicHCSFConv(3, 8, edge_index, n, S=1, L=2, d=0.5,
                           candidates='hop', graph='rand', offset=False)
    src, dst = conv.hop_edge_index
    order = sorted(range(src.numel()),
                   key=lambda e: (int(dst[e]), int(src[e])))
    torch.manual_seed(7)
    initial = conv._initial_graph()  # what reset_parameters copies
    torch.manual_seed(7)
    value = torch.rand(len(order))
    groups = torch.tensor([int(dst[e]) * 3 + int(conv.hop[e]) for e in order])
    total = torch.zeros(conv.num_nodes * 3).index_add_(0, groups, value)
    torch.testing.assert_close(initial, value / total[groups])


def test_dynamic_graph_weight_pairs_need_hop_candidates():
    conv = make_dynamic('h36m17', candidates='all')
    with pytest.raises(ValueError, match=r"applies to candidates='hop'; with "
                       r"'all' graph_weight is laid out \[N, L\+1, N\]"):
        conv.graph_weight_pairs()

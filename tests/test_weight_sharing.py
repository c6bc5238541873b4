from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import (
    ConvStyleConv,
    FullSharingConv,
    NoSharingConv,
    PostAggConv,
    PreAggConv,
    SemGCN,
    SemGraphConv,
)
from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS
from pyg_skeleton.nn.topology import DENSE_MAX_NODES

from _helpers import random_graph

pytestmark = pytest.mark.operator

H36M17 = Skeleton.preset('h36m17')

# name -> (class, extra constructor arguments); 'conv_style' also gets the
# graph's centre.
VARIANTS = {
    'vanilla': (FullSharingConv, {}),
    'full_decoupled': (FullSharingConv, dict(decoupled=True)),
    'pre_agg': (PreAggConv, {}),
    'pre_agg_decoupled': (PreAggConv, dict(decoupled=True)),
    'post_agg': (PostAggConv, {}),
    'post_agg_decoupled': (PostAggConv, dict(decoupled=True)),
    'conv_style': (ConvStyleConv, {}),
    'no_sharing': (NoSharingConv, {}),
}


# name -> (edge_index, num_nodes, centre)
GRAPHS = {
    'h36m17': (H36M17.edge_index, 17, H36M17.centre),
    'random30': (random_graph(30, 12, seed=1), 30, 4),
}
LARGE = (random_graph(2000, 1000, seed=2), 2000, 0)


def make_conv(variant, graph, cin=4, cout=5, edge_weights='learnable',
              seed=0, dtype=torch.float32):
    edge_index, n, centre = graph
    cls, kwargs = VARIANTS[variant]
    if cls is ConvStyleConv:
        kwargs = dict(kwargs, centre=centre)
    torch.manual_seed(seed)
    conv = cls(cin, cout, edge_index, num_nodes=n, edge_weights=edge_weights,
               **kwargs).to(dtype)
    with torch.no_grad():  # away from the initial values
        conv.weight.normal_()
        conv.bias.normal_()
        if edge_weights == 'learnable':
            conv.logits.normal_()
    return conv


# --------------------------------------------------------------------------
# Loop-based references, written from the equations of the paper


def dense_edge_weights(conv, edge_index, n):
    """a[i, j] over the mask A + I (of the given edges), with explicit loops.

    'learnable': the softmax over j of the logits, logit k belonging to the
    k-th non-zero of the layer's own A + I read row by row (target i, then
    source j); 'fixed': the row-normalised D^-1 (A + I)."""
    layout = torch.eye(n, dtype=torch.bool)
    layout[conv.topology.dst, conv.topology.src] = True
    mask = torch.eye(n, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    slot = torch.full((n, n), -1, dtype=torch.long)
    a = torch.zeros(n, n, dtype=conv.weight.dtype)
    k = 0
    for i in range(n):
        for j in range(n):
            if layout[i, j]:
                slot[i, j] = k
                k += 1
        if conv.edge_weights == 'fixed':
            for j in range(n):
                if mask[i, j]:
                    a[i, j] = 1.0 / int(mask[i].sum())
        else:
            z = sum(torch.exp(conv.logits[slot[i, j]]) for j in range(n)
                    if mask[i, j])
            for j in range(n):
                if mask[i, j]:
                    a[i, j] = torch.exp(conv.logits[slot[i, j]]) / z
    return a, mask, slot


def centre_distance(edge_index, n, centre):
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edge_index.t().tolist())
    dist = nx.single_source_shortest_path_length(graph, centre)
    return [dist.get(v, math.inf) for v in range(n)]


def reference(variant, conv, x, edge_index=None):
    """h_i of each scheme for x of shape [..., N, C], one (i, j) at a time."""
    n = conv.num_nodes
    if edge_index is None:
        edge_index = conv.topology.edge_index
    a, mask, slot = dense_edge_weights(conv, edge_index, n)
    W = conv.weight
    decoupled = VARIANTS[variant][1].get('decoupled', False)
    if variant == 'conv_style':
        d = centre_distance(conv.topology.edge_index, n, conv.centre)
    out = []
    for i in range(n):
        h = x.new_zeros(x.shape[:-2] + (conv.out_channels, ))
        neighbor_sum = x.new_zeros(x.shape[:-2] + (conv.in_channels, ))
        self_term = x.new_zeros(x.shape[:-2] + (conv.in_channels, ))
        for j in range(n):
            if not mask[i, j]:
                continue
            xj = x[..., j, :]
            if variant.startswith('post_agg'):
                if i == j:
                    self_term = a[i, i] * xj
                else:
                    neighbor_sum = neighbor_sum + a[i, j] * xj
                continue
            if variant.startswith('vanilla') or variant.startswith('full'):
                w = W[0] if i == j or not decoupled else W[1]
            elif variant.startswith('pre_agg'):
                w = W[i] if i == j and decoupled else W[(n if decoupled else
                                                         0) + j]
            elif variant == 'conv_style':
                if i == j:
                    w = W[0]
                elif d[j] >= d[i]:  # farther, or equally far
                    w = W[1]
                else:
                    w = W[2]
            else:  # no_sharing
                w = W[slot[i, j]]
            h = h + a[i, j] * (xj @ w)
        if variant == 'post_agg':
            h = (self_term + neighbor_sum) @ W[i]
        elif variant == 'post_agg_decoupled':
            h = self_term @ W[i] + neighbor_sum @ W[n + i]
        out.append(h + conv.bias)
    return torch.stack(out, dim=-2)


@pytest.mark.parametrize('edge_weights', ['learnable', 'fixed'])
@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_matches_loop_reference(variant, graph, edge_weights):
    conv = make_conv(variant, GRAPHS[graph], edge_weights=edge_weights)
    x = torch.randn(3, conv.num_nodes, 4)
    ref = reference(variant, conv, x)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('variant', VARIANTS)
def test_subset_of_edges_matches_loop_reference(variant):
    # Dropped edges (e.g. DropEdge) keep their weights' identity and
    # re-normalise the edge weights over what is left.
    edge_index, n, _ = GRAPHS['random30']
    conv = make_conv(variant, GRAPHS['random30'])
    keep = torch.rand(edge_index.size(1),
                      generator=torch.Generator().manual_seed(3)) < 0.6
    sub = edge_index[:, keep]
    x = torch.randn(2, n, 4)
    torch.testing.assert_close(conv(x, sub), reference(variant, conv, x, sub),
                               atol=1e-5, rtol=1e-4)
    # ... also in a disjoint batch where each copy drops different edges
    batch = Batch.from_data_list([Data(x=x[0], edge_index=sub),
                                  Data(x=x[1], edge_index=edge_index)])
    out = conv(batch.x, batch.edge_index).view(2, n, -1)
    torch.testing.assert_close(out[0], conv(x[0], sub), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1], conv(x[1]), atol=1e-5, rtol=1e-4)


def test_fixed_edge_weights_are_the_normalised_adjacency():
    edge_index, n, _ = GRAPHS['random30']
    conv = make_conv('pre_agg', GRAPHS['random30'], edge_weights='fixed')
    assert 'logits' not in dict(conv.named_parameters())
    assert 'logits' not in conv.state_dict()
    _, a_neighbor, a_self = conv.topology.softmax(conv.logits)
    deg = torch.bincount(edge_index[1], minlength=n).float() + 1
    torch.testing.assert_close(a_self, 1 / deg)
    t = conv.topology
    torch.testing.assert_close(a_neighbor, 1 / deg[t.dst[t.nbr_slot]])


# --------------------------------------------------------------------------
# Batching: node identity survives every input mode


def check_input_modes(conv, edge_index, n, b=3, atol=1e-5):
    x = torch.randn(b, n, conv.in_channels)
    static = conv(x)
    one_by_one = torch.stack([conv(x[k]) for k in range(b)])
    torch.testing.assert_close(one_by_one, static, atol=atol, rtol=1e-4)
    torch.testing.assert_close(conv(x, edge_index), static, atol=atol,
                               rtol=1e-4)
    batch = Batch.from_data_list(
        [Data(x=x[k], edge_index=edge_index) for k in range(b)])
    disjoint = conv(batch.x, batch.edge_index)
    torch.testing.assert_close(disjoint.view(b, n, -1), static, atol=atol,
                               rtol=1e-4)
    # any number of leading dimensions, e.g. [B, T, N, C]
    x4 = x.view(1, b, n, -1)
    torch.testing.assert_close(conv(x4), static.unsqueeze(0), atol=atol,
                               rtol=1e-4)
    # an edge order that is not the layer's
    perm = torch.randperm(edge_index.size(1))
    torch.testing.assert_close(conv(x, edge_index[:, perm]), static,
                               atol=atol, rtol=1e-4)


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_input_modes_agree(variant, graph):
    conv = make_conv(variant, GRAPHS[graph])
    check_input_modes(conv, *GRAPHS[graph][:2])


@pytest.mark.parametrize('graph', ['h36m17', 'large'])
@pytest.mark.parametrize('variant', VARIANTS)
def test_batch_of_whole_copies_takes_the_static_kernel(variant, graph,
                                                       monkeypatch):
    """A disjoint batch of whole copies (in any edge order) runs the static
    kernel on x.view(B, N, C): bit for bit the static batch; any other
    edge_index, and explain mode, pass messages along its edges, which
    agree to float tolerance."""
    edge_index, n, _ = LARGE if graph == 'large' else GRAPHS[graph]
    conv = make_conv(variant, LARGE if graph == 'large' else GRAPHS[graph])
    b = 3
    x = torch.randn(b, n, 4)
    static = conv(x)
    batch = Batch.from_data_list([Data(edge_index=edge_index,
                                       num_nodes=n)] * b)
    ei = batch.edge_index[:, torch.randperm(batch.edge_index.size(1))]
    layouts = []
    transform = conv.transform
    monkeypatch.setattr(conv, 'transform', lambda x, e, *args: layouts.append(
        e is None) or transform(x, e, *args))
    out = conv(x.view(b * n, 4), ei)
    assert layouts == [True]
    assert torch.equal(out.view(b, n, -1), static)
    # Self-loops in the input keep it from being recognised: messages.
    loops = torch.arange(b * n).repeat(2, 1)
    general = conv(x.view(b * n, 4), torch.cat([ei, loops], 1))
    assert layouts == [True, False]
    torch.testing.assert_close(general.view(b, n, -1), static, atol=1e-4,
                               rtol=1e-4)
    # An explainer's edge mask weights the input's own edges.
    conv.explain, conv._edge_mask = True, torch.ones(ei.size(1))
    conv._apply_sigmoid = False
    try:
        explained = conv(x.view(b * n, 4), ei)
    finally:
        conv.explain, conv._edge_mask = False, None
    assert layouts == [True, False, False]
    torch.testing.assert_close(explained.view(b, n, -1), static, atol=1e-4,
                               rtol=1e-4)


@pytest.mark.parametrize('graph', ['h36m17', 'large'])
@pytest.mark.parametrize('variant', [v for v in VARIANTS if v != 'no_sharing'])
def test_static_path_runs_through_propagate(variant, graph, monkeypatch):
    """The static aggregation goes through PyG's propagate with the graph's
    sparse adjacency (its hooks fire), whose message_and_aggregate runs
    Topology.aggregate: bit for bit the kernel called directly, as the
    layer did before it used propagate."""
    conv = make_conv(variant, LARGE if graph == 'large' else GRAPHS[graph])
    n = conv.num_nodes
    x = torch.randn(2, n, 4)
    seen = []
    hook = conv.register_message_and_aggregate_forward_hook(
        lambda m, inputs, out: seen.append(inputs[0]))
    out = conv(x)
    # Two aggregations in the convolution-style layer (closer and farther
    # neighbours), one otherwise.
    assert len(seen) == (2 if variant == 'conv_style' else 1)
    adj_t = seen[0]
    assert adj_t.layout == torch.sparse_csr and adj_t.shape == (n, n)
    assert adj_t.col_indices().equal(conv.topology.neighbor_edge_index[0])
    hook.remove()
    if graph == 'h36m17':  # the loop reference is slow on 2,000 nodes
        torch.testing.assert_close(out, reference(variant, conv, x),
                                   atol=1e-4, rtol=1e-4)

    def direct(edge_index, x, alpha, self_value, size=None):
        assert edge_index is conv.topology.adj_t()
        return conv.topology.aggregate(alpha, x, self_value)

    monkeypatch.setattr(conv, 'propagate', direct)
    assert torch.equal(conv(x), out)


@pytest.mark.parametrize('graph', ['h36m17', 'large'])
def test_no_sharing_static_path_runs_through_propagate(graph, monkeypatch):
    """NoSharingConv's own per-slot kernel is its message_and_aggregate on
    the graph's sparse adjacency: hooks fire, and the result is the loop
    reference (one matrix per slot)."""
    conv = make_conv('no_sharing', LARGE if graph == 'large' else
                     GRAPHS[graph])
    n = conv.num_nodes
    x = torch.randn(2, n, 4)
    seen = []
    hook = conv.register_message_and_aggregate_forward_hook(
        lambda m, inputs, out: seen.append(inputs[0]))
    out = conv(x)
    hook.remove()
    assert len(seen) == 1 and seen[0].layout == torch.sparse_csr
    if graph == 'h36m17':  # the loop reference is slow on 2,000 nodes
        torch.testing.assert_close(out, reference('no_sharing', conv, x),
                                   atol=1e-4, rtol=1e-4)
    calls = []
    propagate = conv.propagate
    monkeypatch.setattr(conv, 'propagate',
                        lambda *a, **k: calls.append(1) or propagate(*a, **k))
    assert torch.equal(conv(x), out) and calls == [1]


@pytest.mark.parametrize('variant', VARIANTS)
def test_large_graph(variant):
    # 2,000 nodes: the sparse aggregation kernel, per-node and per-edge
    # banks of thousands of matrices, no Python loop over either.
    edge_index, n, _ = LARGE
    assert n > DENSE_MAX_NODES
    conv = make_conv(variant, LARGE, cin=3, cout=2)
    if variant == 'no_sharing':
        assert conv.weight.size(0) == n + edge_index.size(1)
    check_input_modes(conv, edge_index, n, b=2, atol=1e-4)
    assert conv(torch.randn(2, n, 3)).is_contiguous()


@pytest.mark.parametrize('graph', ['h36m17', 'large'])
@pytest.mark.parametrize('variant', VARIANTS)
def test_empty_static_batch(variant, graph):
    # A batch of no samples gives no samples (it raised on the reshape).
    edge_index, n, centre = LARGE if graph == 'large' else GRAPHS[graph]
    conv = make_conv(variant, (edge_index, n, centre), cin=3, cout=2)
    for shape in [(0, n, 3), (2, 0, n, 3)]:
        x = torch.randn(shape, requires_grad=True)
        out = conv(x)
        assert out.shape == shape[:-1] + (2, )
        out.sum().backward()
        assert x.grad.shape == x.shape


# --------------------------------------------------------------------------
# Equivalences, conv-style types, initialisation, parameter counts


@pytest.mark.parametrize('graph', GRAPHS)
def test_decoupled_full_sharing_is_sem_graph_conv(graph):
    edge_index, n, _ = GRAPHS[graph]
    torch.manual_seed(0)
    sem = SemGraphConv(4, 5, edge_index, num_nodes=n)
    conv = FullSharingConv(4, 5, edge_index, num_nodes=n, decoupled=True)
    with torch.no_grad():
        sem.logits.normal_()
        conv.logits.copy_(sem.logits)
        conv.weight[0].copy_(sem.lin_self.weight.t())
        conv.weight[1].copy_(sem.lin_neighbor.weight.t())
        conv.bias.copy_(sem.bias)
    x = torch.randn(3, n, 4)
    torch.testing.assert_close(conv(x), sem(x))
    batch = Batch.from_data_list([Data(x=x[k], edge_index=edge_index)
                                  for k in range(3)])
    torch.testing.assert_close(conv(batch.x, batch.edge_index),
                               sem(batch.x, batch.edge_index))


# operators.md §4.3: the official code's type masks on Human3.6M-17, centre 7,
# as (target i, source j)
OFFICIAL_FARTHER = [(0, 1), (0, 4), (1, 2), (2, 3), (4, 5), (5, 6), (7, 0),
                    (7, 8), (8, 9), (8, 11), (8, 14), (9, 10), (11, 12),
                    (12, 13), (14, 15), (15, 16)]
OFFICIAL_CLOSER = [(0, 7), (1, 0), (2, 1), (3, 2), (4, 0), (5, 4), (6, 5),
                   (8, 7), (9, 8), (10, 9), (11, 8), (12, 11), (13, 12),
                   (14, 8), (15, 14), (16, 15)]


def edge_types(conv):
    t = conv.topology
    src, dst = t.src[t.nbr_slot].tolist(), t.dst[t.nbr_slot].tolist()
    pairs = list(zip(dst, src))
    farther = conv.farther.tolist()
    return ({p for p, f in zip(pairs, farther) if f},
            {p for p, f in zip(pairs, farther) if not f})


def test_conv_style_types_match_official_code():
    conv = ConvStyleConv(2, 3, H36M17.edge_index, H36M17.centre)
    assert conv.centre == 7
    farther, closer = edge_types(conv)
    assert farther == set(OFFICIAL_FARTHER)
    assert closer == set(OFFICIAL_CLOSER)


def test_conv_style_keeps_every_self_term():
    # The official masks drop RWrist's (16) self term; we keep it: with only
    # the self matrix non-zero, every node still gets a_ii x_i W_self.
    conv = make_conv('conv_style', GRAPHS['h36m17'], edge_weights='fixed')
    with torch.no_grad():
        conv.weight[1:].zero_()
        conv.bias.zero_()
    x = torch.randn(17, 4)
    deg = torch.bincount(H36M17.edge_index[1], minlength=17) + 1
    expected = (x @ conv.weight[0]) / deg.unsqueeze(-1)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x)[16].abs().sum() > 0


def test_conv_style_equal_distance_counts_as_farther():
    # Triangle 0-1-2 with centre 0: nodes 1 and 2 are both one hop away.
    # Nodes 3-4 form a component that cannot reach the centre: it gets its
    # own centre, the least eccentric node (a tie: the lower index, 3).
    edge_index = to_undirected(torch.tensor([[0, 0, 1, 3], [1, 2, 2, 4]]))
    conv = ConvStyleConv(2, 3, edge_index, centre=0, num_nodes=5)
    farther, closer = edge_types(conv)
    assert farther == {(0, 1), (0, 2), (1, 2), (2, 1), (3, 4)}
    assert closer == {(1, 0), (2, 0), (4, 3)}
    # the same rule on the edge_index path, checked through the output:
    # with the 'closer' matrix zeroed, only self and farther edges remain
    with torch.no_grad():
        conv.weight[2].zero_()
    x = torch.randn(5, 2)
    out = conv(x, edge_index)
    torch.testing.assert_close(out, conv(x))
    a = 1 / 3  # nodes 1 and 2 have degree 2 plus the self-loop
    expected_1 = a * (x[1] @ conv.weight[0] + x[2] @ conv.weight[1])
    torch.testing.assert_close(out[1], expected_1 + conv.bias)


def test_conv_style_centre_errors():
    with pytest.raises(ValueError, match='needs a centre node'):
        ConvStyleConv(2, 3, H36M17.edge_index, None)
    with pytest.raises(ValueError, match='centre node 17 is outside'):
        ConvStyleConv(2, 3, H36M17.edge_index, 17)
    no_centre = Skeleton.from_parents([-1, 0, 1, 1, 3, 0], name='toy')
    assert no_centre.centre is None
    with pytest.raises(ValueError, match='needs a centre node'):
        GRAPH_CONVS['conv_style'](2, 3, no_centre)
    with pytest.raises(ValueError, match='needs a centre node'):
        SemGCN(no_centre, conv='conv_style')


@pytest.mark.parametrize('variant,n_slices', [
    ('vanilla', 1), ('full_decoupled', 2), ('conv_style', 3), ('pre_agg', 17),
    ('post_agg_decoupled', 34), ('no_sharing', 49)
])
def test_initialisation_matches_official_code(variant, n_slices):
    cls, kwargs = VARIANTS[variant]
    if cls is ConvStyleConv:
        kwargs = dict(centre=7)
    conv = cls(128, 64, H36M17.edge_index, **kwargs)
    assert conv.weight.shape == (n_slices, 128, 64)
    # Xavier-uniform (gain 1.414) of the stacked [n, F_in, F_out] tensor
    bound = 1.414 * math.sqrt(6.0 / (64 * (128 + n_slices)))
    assert bound * 0.9 < conv.weight.abs().max() <= bound
    assert conv.bias.abs().max() <= 1 / math.sqrt(64)
    assert torch.equal(conv.logits, torch.ones(49))


@pytest.mark.parametrize('name,expected', [
    ('vanilla', 135_661),
    ('full_decoupled', 267_373),
    ('conv_style', 399_085),
    ('pre_agg', 2_243_053),
    ('post_agg', 2_243_053),
    ('pre_agg_decoupled', 4_482_157),
    ('post_agg_decoupled', 4_482_157),
    ('no_sharing', 6_457_837),
])
def test_semgcn_parameter_counts(name, expected):
    # operators.md §4.4: hidden 128, 4 residual blocks, 49 logits per layer
    model = SemGCN('h36m17', conv=name)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.randn(2, 17, 2)).shape == (2, 17, 3)


def test_fixed_edge_weights_parameter_count():
    conv = PreAggConv(6, 10, H36M17.edge_index, edge_weights='fixed')
    assert sum(p.numel() for p in conv.parameters()) == 17 * 6 * 10 + 10
    conv = NoSharingConv(6, 10, H36M17.edge_index, bias=False)
    assert sum(p.numel() for p in conv.parameters()) == 49 * 6 * 10 + 49


# --------------------------------------------------------------------------
# Gradients and compilation


@pytest.mark.parametrize('edge_weights', ['learnable', 'fixed'])
@pytest.mark.parametrize('variant', VARIANTS)
def test_gradcheck(variant, edge_weights):
    edge_index, n, _ = GRAPHS['random30']
    conv = make_conv(variant, GRAPHS['random30'], cin=2, cout=3,
                     edge_weights=edge_weights, dtype=torch.float64)
    x = torch.randn(2, n, 2, dtype=torch.float64, requires_grad=True)
    params = [p for p in (conv.weight, conv.logits) if p.requires_grad]
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n)] *
                                 2)

    def static(x, *_):
        return conv(x)

    def disjoint(x, *_):
        return conv(x.reshape(2 * n, 2), batch.edge_index)

    assert torch.autograd.gradcheck(static, (x, *params))
    assert torch.autograd.gradcheck(disjoint, (x, *params))


@pytest.mark.parametrize('variant', VARIANTS)
def test_gradcheck_large_graph(variant):
    edge_index, n, _ = LARGE
    conv = make_conv(variant, LARGE, cin=2, cout=2, dtype=torch.float64)
    x = torch.randn(2, n, 2, dtype=torch.float64, requires_grad=True)

    def static(x, *_):
        return conv(x)

    assert torch.autograd.gradcheck(static, (x, conv.weight, conv.logits),
                                    fast_mode=True)


@pytest.mark.parametrize('variant', ['pre_agg_decoupled', 'no_sharing'])
def test_compile_without_graph_breaks(variant):
    conv = make_conv(variant, GRAPHS['h36m17'])
    x = torch.randn(2, 17, 4)
    edge_index = H36M17.edge_index
    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x), conv(x), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(compiled(x[0], edge_index), conv(x[0]),
                               atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------
# Errors and repr


@pytest.mark.parametrize('variant', VARIANTS)
def test_bad_input(variant):
    conv = make_conv(variant, GRAPHS['h36m17'])
    edge_index = H36M17.edge_index
    with pytest.raises(ValueError, match=r'shape \[..., num_nodes, 4\]'):
        conv(torch.randn(17, 3))
    with pytest.raises(ValueError, match='built for a graph of 17 nodes but '
                       'got 16'):
        conv(torch.randn(16, 4))
    with pytest.raises(ValueError, match='not a multiple of 17'):
        conv(torch.randn(20, 4), edge_index)
    with pytest.raises(ValueError, match='node ids out of range'):
        conv(torch.randn(17, 4), torch.tensor([[0], [17]]))
    with pytest.raises(ValueError, match='node ids out of range'):
        conv(torch.randn(17, 4), torch.tensor([[-1], [0]]))
    with pytest.raises(ValueError, match=r'Edge \(0 -> 5\) is not an edge'):
        conv(torch.randn(17, 4), torch.tensor([[0], [5]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="'edge_weights' must be one of"):
        PreAggConv(2, 3, H36M17.edge_index, edge_weights='uniform')
    with pytest.raises(ValueError, match='positive channel sizes'):
        NoSharingConv(0, 3, H36M17.edge_index)


def test_repr():
    ei = H36M17.edge_index
    assert repr(FullSharingConv(2, 128, ei)) == (
        "FullSharingConv(2, 128, num_nodes=17, num_edges=32, "
        "decoupled=False, edge_weights='learnable')")
    assert repr(PreAggConv(2, 128, ei, decoupled=True)) == (
        "PreAggConv(2, 128, num_nodes=17, num_edges=32, decoupled=True, "
        "edge_weights='learnable')")
    assert repr(PostAggConv(2, 128, ei, edge_weights='fixed')) == (
        "PostAggConv(2, 128, num_nodes=17, num_edges=32, decoupled=False, "
        "edge_weights='fixed')")
    assert repr(ConvStyleConv(2, 128, ei, 7)) == (
        "ConvStyleConv(2, 128, num_nodes=17, num_edges=32, centre=7, "
        "edge_weights='learnable')")
    assert repr(NoSharingConv(2, 128, ei)) == (
        "NoSharingConv(2, 128, num_nodes=17, num_edges=32, "
        "edge_weights='learnable')")


def test_conv_style_on_a_bare_graph_with_and_without_centre():
    # GRAPH_CONVS['conv_style'] takes (edge_index, num_nodes, centre): the
    # layer of that centre, with hops from it as networkx counts them
    ei, n, _ = GRAPHS['random30']
    built = GRAPH_CONVS['conv_style'](2, 3, (ei, n, 11))
    assert isinstance(built, ConvStyleConv) and built.centre == 11
    hops = nx.single_source_shortest_path_length(
        nx.Graph(ei.t().tolist()), 11)
    assert built.hop.tolist() == [hops[v] for v in range(n)]
    reference = ConvStyleConv(2, 3, ei, 11, n)
    reference.load_state_dict(built.state_dict())
    x = torch.randn(4, n, 2)
    torch.testing.assert_close(built(x), reference(x))

    # without a centre (2-tuple or None): what to pass, in one line
    message = ("The graph convolution 'conv_style' needs a centre node to "
               "tell closer from farther neighbours; pass the graph as "
               "(edge_index, num_nodes, centre)")
    for graph in ((ei, n), (ei, n, None)):
        with pytest.raises(ValueError) as info:
            GRAPH_CONVS['conv_style'](2, 3, graph)
        assert str(info.value) == message
    # a skeleton without one is told how to give it one
    no_centre = Skeleton.from_parents([-1, 0, 1, 1, 3, 0], name='toy')
    with pytest.raises(ValueError) as info:
        GRAPH_CONVS['conv_style'](2, 3, no_centre)
    assert str(info.value) == (
        "The graph convolution 'conv_style' needs a centre node to tell "
        "closer from farther neighbours; give the skeleton one, e.g. "
        "Skeleton(..., centre=7)")
    # a centre outside the graph: the layer's own message
    with pytest.raises(ValueError, match=r'^The centre node 30 is outside '
                       r'\[0, 29\]$'):
        GRAPH_CONVS['conv_style'](2, 3, (ei, n, 30))

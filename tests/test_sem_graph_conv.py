from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.typing import WITH_TORCH_SPARSE
from torch_geometric.utils import to_undirected

from pyg_skeleton.nn import SemGraphConv, topology
from pyg_skeleton.nn.topology import DENSE_MAX_NODES

from _helpers import random_graph

pytestmark = pytest.mark.operator

H36M17_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]


def tree_edge_index(parents):
    edges = [[c, p] for c, p in enumerate(parents) if p >= 0]
    return to_undirected(torch.tensor(edges).t(), num_nodes=len(parents))


def dense_reference(conv, x, edge_index=None):
    """SemGCN Eq. 2/3 and 9 with dense matrices, written from the paper: the
    logits fill the non-zeros of A + I row by row (target i, then source j),
    everything else is -inf before a row softmax."""
    n = conv.num_nodes
    ei = conv.topology.edge_index if edge_index is None else edge_index
    full_mask = torch.eye(n, dtype=torch.bool)
    full_mask[ei[1], ei[0]] = True
    # slot of (i, j) in the layer's layout: k-th non-zero of the layer's
    # own A + I, row-major
    layout = torch.eye(n, dtype=torch.bool)
    layout[conv.topology.dst, conv.topology.src] = True
    channels = conv.out_channels if conv.channelwise else 1
    logits = torch.full((channels, n, n), -math.inf, dtype=x.dtype)
    k = 0
    for i in range(n):
        for j in range(n):
            if layout[i, j]:
                if full_mask[i, j]:
                    logits[:, i, j] = conv.logits[k]
                k += 1
    att = torch.softmax(logits, dim=-1)  # [channels, i, j]
    eye = torch.eye(n, dtype=x.dtype)
    h0 = x @ conv.lin_self.weight.t()
    h1 = x @ conv.lin_neighbor.weight.t()
    # out[..., i, c] = sum_j att[c, i, j] * (h0 if i == j else h1)[..., j, c]
    out = (torch.einsum('cij,...jc->...ic', att * eye, h0) +
           torch.einsum('cij,...jc->...ic', att * (1 - eye), h1))
    return out if conv.bias is None else out + conv.bias


def make_conv(edge_index, n, cin=5, cout=7, channelwise=False, seed=0,
              dtype=torch.float32, bias=True):
    torch.manual_seed(seed)
    conv = SemGraphConv(cin, cout, edge_index, num_nodes=n,
                        channelwise=channelwise, bias=bias).to(dtype)
    with torch.no_grad():  # away from the uniform start
        conv.logits.normal_()
    return conv


GRAPHS = {
    'h36m17': (tree_edge_index(H36M17_PARENTS), 17),
    'random30': (random_graph(30, 15, seed=1), 30),
    # more nodes than DENSE_MAX_NODES: the sparse CSR kernel
    'random300': (random_graph(300, 200, seed=2), 300),
}


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('channelwise', [False, True])
def test_matches_dense_reference(graph, channelwise):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, channelwise=channelwise)
    x = torch.randn(3, n, 5)
    ref = dense_reference(conv, x)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(conv(x[0]), ref[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('channelwise', [False, True])
def test_without_bias(graph, channelwise):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, channelwise=channelwise, bias=False)
    assert conv.bias is None
    x = torch.randn(3, n, 5)
    ref = dense_reference(conv, x)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(conv(x[0]), ref[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(conv(x[0], edge_index), ref[0], atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize('graph,sparse', [('random30', False),
                                          ('random300', True)])
def test_graph_size_picks_the_kernel(graph, sparse, monkeypatch):
    calls = []
    apply = topology._CSRMatmul.apply
    monkeypatch.setattr(topology._CSRMatmul, 'apply',
                        lambda *args: calls.append(1) or apply(*args))
    edge_index, n = GRAPHS[graph]
    assert (n > DENSE_MAX_NODES) == sparse
    out = make_conv(edge_index, n)(torch.randn(2, n, 5))
    assert len(calls) == int(sparse)
    assert out.is_contiguous()


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('channelwise', [False, True])
def test_static_edge_index_and_disjoint_batch_agree(graph, channelwise):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, channelwise=channelwise)
    b = 4
    x = torch.randn(b, n, 5)
    static = conv(x)
    torch.testing.assert_close(conv(x, edge_index), static, atol=1e-5,
                               rtol=1e-4)
    batch = Batch.from_data_list(
        [Data(x=x[i], edge_index=edge_index) for i in range(b)])
    disjoint = conv(batch.x, batch.edge_index)
    torch.testing.assert_close(disjoint.view(b, n, -1), static, atol=1e-5,
                               rtol=1e-4)
    # [B, T, N, C]: any number of leading dimensions
    x4 = torch.randn(2, 3, n, 5)
    torch.testing.assert_close(conv(x4), conv(x4.reshape(6, n, 5)).view(
        2, 3, n, -1), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('graph', ['h36m17', 'random300'])
@pytest.mark.parametrize('channelwise', [False, True])
def test_batch_of_whole_graphs_takes_the_static_kernel(graph, channelwise,
                                                       monkeypatch):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, channelwise=channelwise)
    b = 3
    x = torch.randn(b, n, 5)
    static = conv(x)
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n)] *
                                 b)
    ei = batch.edge_index[:, torch.randperm(batch.edge_index.size(1))]
    calls = []
    aggregate_pair = conv.topology.aggregate_pair
    monkeypatch.setattr(conv.topology, 'aggregate_pair',
                        lambda *args: calls.append(1) or aggregate_pair(*args))
    out = conv(x.view(b * n, 5), ei)
    assert len(calls) == 1
    torch.testing.assert_close(out.view(b, n, -1), static)
    # The message-passing path on the same graph (self-loops in the input
    # keep it from being recognised) agrees.
    loops = torch.arange(b * n).repeat(2, 1)
    general = conv(x.view(b * n, 5), torch.cat([ei, loops], 1))
    assert len(calls) == 1
    torch.testing.assert_close(general.view(b, n, -1), static, atol=1e-5,
                               rtol=1e-4)
    # As many edges as whole copies have, but of a copy the input lacks.
    with pytest.raises(ValueError, match='node ids out of range'):
        conv(x[0], edge_index + n)
    # As many edges as whole copies have, but one duplicated in place of
    # another: not whole copies.
    dup = ei.clone()
    dup[:, 0] = dup[:, 1]
    conv(x.view(b * n, 5), dup)
    assert len(calls) == 1


def test_graph_without_edges():
    conv = make_conv(torch.empty(2, 0, dtype=torch.long), 3)
    x = torch.randn(2, 3, 5)
    ref = conv.lin_self(x) + conv.bias  # a_ii = 1
    torch.testing.assert_close(conv(x), ref)
    empty = torch.empty(2, 0, dtype=torch.long)
    torch.testing.assert_close(conv(x.view(6, 5), empty), ref.view(6, -1))


def test_edge_order_of_the_input_does_not_matter():
    edge_index, n = GRAPHS['random30']
    conv = make_conv(edge_index, n)
    x = torch.randn(2, n, 5)
    perm = torch.randperm(edge_index.size(1))
    torch.testing.assert_close(conv(x, edge_index[:, perm]), conv(x),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('channelwise', [False, True])
def test_subset_of_edges_renormalises(channelwise):
    # Dropping edges (e.g. DropEdge) keeps the remaining logits and
    # re-normalises the softmax over what is left.
    edge_index, n = GRAPHS['random30']
    conv = make_conv(edge_index, n, channelwise=channelwise)
    keep = torch.rand(edge_index.size(1)) < 0.6
    sub = edge_index[:, keep]
    x = torch.randn(2, n, 5)
    torch.testing.assert_close(conv(x, sub), dense_reference(conv, x, sub),
                               atol=1e-5, rtol=1e-4)


def test_self_loops_in_input_are_ignored():
    edge_index, n = GRAPHS['h36m17']
    conv = make_conv(edge_index, n)
    loops = torch.arange(n).repeat(2, 1)
    x = torch.randn(n, 5)
    torch.testing.assert_close(conv(x, torch.cat([edge_index, loops], 1)),
                               conv(x))


def test_sparse_adjacency_inputs():
    edge_index, n = GRAPHS['random30']
    conv = make_conv(edge_index, n)
    x = torch.randn(n, 5)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0),
                                    torch.ones(edge_index.size(1)), (n, n))
    torch.testing.assert_close(conv(x, adj_t), conv(x), atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(conv(x, adj_t.to_sparse_csr()), conv(x),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason='torch-sparse not installed')
def test_sparse_tensor_input():
    from torch_sparse import SparseTensor
    edge_index, n = GRAPHS['random30']
    conv = make_conv(edge_index, n, channelwise=True)
    b = 3
    x = torch.randn(b, n, 5)
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n)] *
                                 b)
    adj_t = SparseTensor(row=batch.edge_index[1], col=batch.edge_index[0],
                         sparse_sizes=(b * n, b * n))
    torch.testing.assert_close(
        conv(x.view(b * n, 5), adj_t).view(b, n, -1), conv(x), atol=1e-5,
        rtol=1e-4)


def test_initialisation_matches_official_code():
    edge_index, n = GRAPHS['h36m17']
    conv = SemGraphConv(128, 64, edge_index)
    # logits start at 1: alpha is the row-normalised A + I
    ei, alpha = conv.edge_weights()
    deg = torch.bincount(ei[1], minlength=n).float()
    torch.testing.assert_close(alpha, 1.0 / deg[ei[1]])
    # Xavier-uniform (gain 1.414) of a stacked [2, 128, 64] tensor
    bound = 1.414 * math.sqrt(6.0 / (64 * (128 + 2)))
    for w in (conv.lin_self.weight, conv.lin_neighbor.weight):
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.9 * bound
    assert conv.bias.abs().max() <= 1 / math.sqrt(64)
    # the official channel-wise layer draws its bias from U(+-1/sqrt(in))
    ch = SemGraphConv(16, 256, edge_index, channelwise=True)
    assert 1 / math.sqrt(256) < ch.bias.abs().max() <= 1 / math.sqrt(16)


def test_edge_weights_layout_is_row_major():
    edge_index, n = GRAPHS['h36m17']
    conv = SemGraphConv(2, 4, edge_index)
    ei, alpha = conv.edge_weights()
    # the k-th non-zero of the dense A + I read row by row (target, source)
    dense = torch.eye(n, dtype=torch.bool)
    dense[edge_index[1], edge_index[0]] = True
    expected = dense.nonzero()  # row-major: (target, source)
    assert torch.equal(ei.flip(0).t(), expected)
    assert alpha.shape == (49, )
    assert SemGraphConv(2, 4, edge_index,
                        channelwise=True).edge_weights()[1].shape == (49, 4)
    # per target, the weights sum to one
    sums = torch.zeros(n).index_add_(0, ei[1], alpha)
    torch.testing.assert_close(sums, torch.ones(n))


@pytest.mark.parametrize('channelwise', [False, True])
def test_parameter_count(channelwise):
    for graph in GRAPHS:
        edge_index, n = GRAPHS[graph]
        cin, cout = 6, 10
        conv = SemGraphConv(cin, cout, edge_index, num_nodes=n,
                            channelwise=channelwise)
        e = edge_index.size(1)
        expected = 2 * cin * cout + (n + e) * (cout if channelwise else
                                               1) + cout
        assert sum(p.numel() for p in conv.parameters()) == expected
    assert sum(p.numel() for p in SemGraphConv(
        2, 128, GRAPHS['h36m17'][0]).parameters()) == 2 * 2 * 128 + 49 + 128


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('channelwise', [False, True])
def test_gradcheck(graph, channelwise):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, cin=2, cout=3, channelwise=channelwise,
                     dtype=torch.float64)
    x = torch.randn(2, n, 2, dtype=torch.float64, requires_grad=True)
    params = (conv.logits, conv.lin_self.weight, conv.lin_neighbor.weight,
              conv.bias)

    def static(x, *_):
        return conv(x)

    def disjoint(x, *_):
        # One edge dropped, so that message passing runs rather than the
        # static kernel a batch of whole graphs takes.
        batch = Batch.from_data_list([Data(edge_index=edge_index,
                                           num_nodes=n)] * 2)
        return conv(x.reshape(2 * n, 2), batch.edge_index[:, 1:])

    # the fast (random projection) mode keeps the 300-node graph quick
    fast = n > DENSE_MAX_NODES
    assert torch.autograd.gradcheck(static, (x, *params), fast_mode=fast)
    assert torch.autograd.gradcheck(disjoint, (x, *params), fast_mode=fast)


def test_sparse_kernel_gradients_match_dense_reference():
    edge_index, n = GRAPHS['random300']
    conv = make_conv(edge_index, n, dtype=torch.float64)
    x = torch.randn(3, n, 5, dtype=torch.float64, requires_grad=True)
    inputs = [x, conv.logits, conv.lin_self.weight, conv.lin_neighbor.weight,
              conv.bias]
    grads = torch.autograd.grad(conv(x).square().sum(), inputs)
    ref = torch.autograd.grad(dense_reference(conv, x).square().sum(), inputs)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize('frozen', ['x', 'logits', 'weights'])
def test_sparse_kernel_with_frozen_inputs(frozen):
    # The kernel's backward skips what needs no gradient: every remaining
    # gradient must still match, with and without a bias.
    n = 40
    edge_index = random_graph(n, 20, seed=2)
    assert n > DENSE_MAX_NODES
    for bias in [True, False]:
        conv = make_conv(edge_index, n, dtype=torch.float64, bias=bias)
        x = torch.randn(3, n, 5, dtype=torch.float64,
                        requires_grad=frozen != 'x')
        params = {'logits': [conv.logits],
                  'weights': [conv.lin_self.weight, conv.lin_neighbor.weight]}
        for p in params.get(frozen, []):
            p.requires_grad_(False)
        inputs = [t for t in [x, *conv.parameters()] if t.requires_grad]
        grads = torch.autograd.grad(conv(x).square().sum(), inputs)
        ref = torch.autograd.grad(dense_reference(conv, x).square().sum(),
                                  inputs)
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g, r)


@pytest.mark.parametrize('graph', ['h36m17', 'random300'])
def test_compile_without_graph_breaks(graph):
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n)
    x = torch.randn(2, n, 5)
    torch._dynamo.reset()
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x), conv(x), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(compiled(x[0], edge_index), conv(x[0]),
                               atol=1e-5, rtol=1e-4)


def test_repr():
    edge_index, _ = GRAPHS['h36m17']
    assert repr(SemGraphConv(2, 128, edge_index)) == (
        'SemGraphConv(2, 128, num_nodes=17, num_edges=32, '
        'channelwise=False)')


def test_bad_input():
    edge_index, n = GRAPHS['h36m17']
    conv = SemGraphConv(5, 7, edge_index)
    with pytest.raises(ValueError, match='shape \\[..., num_nodes, 5\\]'):
        conv(torch.randn(n, 4))
    with pytest.raises(ValueError, match='built for a graph of 17 nodes'):
        conv(torch.randn(34, 5))
    with pytest.raises(ValueError, match='not a multiple of the 17 nodes'):
        conv(torch.randn(20, 5), edge_index)
    with pytest.raises(ValueError, match=r'Edge \(0 -> 5\) is not an edge'):
        conv(torch.randn(n, 5), torch.tensor([[0], [5]]))
    with pytest.raises(ValueError, match='between different copies'):
        conv(torch.randn(2 * n, 5), torch.tensor([[0], [17 + 1]]))
    with pytest.raises(ValueError, match='duplicate edges'):
        SemGraphConv(2, 3, torch.cat([edge_index, edge_index[:, :1]], 1))
    with pytest.raises(ValueError, match='outside'):
        SemGraphConv(2, 3, edge_index, num_nodes=10)
    with pytest.raises(ValueError, match='positive channel sizes'):
        SemGraphConv(0, 3, edge_index)
    with pytest.raises(ValueError, match='shape \\[2, num_edges\\]'):
        SemGraphConv(2, 3, edge_index.t())


@pytest.mark.parametrize('graph', ['random30', 'random300'])
def test_topology_aggregate_on_a_static_batch(graph):
    # y_i = sum_j a_ij h_j + a_ii h_i against a loop over the edges
    edge_index, n = GRAPHS[graph]
    topo = topology.Topology(edge_index, n)
    value = torch.rand(topo.num_edges)
    self_value = torch.rand(n)
    h = torch.randn(3, n, 4)
    ref = self_value.view(-1, 1) * h
    src, dst = topo.col, topo.dst[topo.nbr_slot]
    for e in range(topo.num_edges):
        ref[:, dst[e]] += value[e] * h[:, src[e]]
    out = topo.aggregate(value, h, self_value)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert out.is_contiguous()


@pytest.mark.parametrize('num_nodes', [17, 100])
@pytest.mark.parametrize('channelwise', [False, True])
def test_empty_static_batch(num_nodes, channelwise):
    # A batch of no samples gives no samples, on the dense (17 nodes) and
    # the sparse (100 nodes) kernels.
    chain = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    conv = SemGraphConv(3, 2, to_undirected(chain), num_nodes,
                        channelwise=channelwise)
    for shape in [(0, num_nodes, 3), (2, 0, num_nodes, 3)]:
        x = torch.randn(shape, requires_grad=True)
        out = conv(x)
        assert out.shape == shape[:-1] + (2, )
        out.sum().backward()
        assert x.grad.shape == x.shape


@pytest.mark.parametrize('graph', ['h36m17', 'random300'])
@pytest.mark.parametrize('channelwise', [False, True])
def test_static_path_runs_through_propagate(graph, channelwise):
    """A static batch and a disjoint batch of whole copies go through
    PyG's propagate with the graph's sparse adjacency, so its hooks see
    them, and its message_and_aggregate runs the static kernel: the output
    is bit for bit Topology.aggregate_pair of the parameters (what the
    layer computed before it used propagate), and the dense formula."""
    edge_index, n = GRAPHS[graph]
    conv = make_conv(edge_index, n, channelwise=channelwise)
    x = torch.randn(3, n, 5)
    seen = []
    hooks = [
        conv.register_propagate_forward_pre_hook(
            lambda m, inputs: seen.append(('pre', inputs[0]))),
        conv.register_message_and_aggregate_forward_hook(
            lambda m, inputs, out: seen.append(('fused', out.shape))),
        conv.register_propagate_forward_hook(
            lambda m, inputs, out: seen.append(('post', out.shape))),
    ]
    out = conv(x)
    assert [s[0] for s in seen] == ['pre', 'fused', 'post']
    adj_t = seen[0][1]
    assert adj_t.layout == torch.sparse_csr and adj_t.shape == (n, n)
    # The adjacency holds the layer's graph: row i the sources of i.
    crow, col = adj_t.crow_indices(), adj_t.col_indices()
    row = torch.repeat_interleave(torch.arange(n), crow.diff())
    expected = {(j, i) for j, i in edge_index.t().tolist()}
    assert set(zip(col.tolist(), row.tolist())) == expected
    assert col.numel() == len(expected)

    _, alpha = conv.edge_weights()
    weight = torch.cat([conv.lin_self.weight, conv.lin_neighbor.weight])
    old = conv.topology.aggregate_pair(alpha, x, weight, conv.bias)
    assert torch.equal(out, old)
    torch.testing.assert_close(out, dense_reference(conv, x), atol=1e-5,
                               rtol=1e-4)
    with torch.no_grad():  # the inference cache: the same kernel again
        assert torch.equal(conv(x), old)

    # A disjoint batch of whole copies takes the same path.
    seen.clear()
    batch = Batch.from_data_list([Data(edge_index=edge_index,
                                       num_nodes=n)] * 3)
    disjoint = conv(x.view(3 * n, 5), batch.edge_index)
    assert [s[0] for s in seen] == ['pre', 'fused', 'post']
    assert torch.equal(disjoint.view(3, n, -1), old)

    # A hook's return value replaces the aggregation (which adds the bias
    # in its product), as on any PyG layer.
    hooks.append(conv.register_propagate_forward_hook(
        lambda m, inputs, out: torch.zeros_like(out)))
    assert torch.equal(conv(x), torch.zeros_like(old))
    for hook in hooks:
        hook.remove()
    assert torch.equal(conv(x), old)


def test_static_adjacency_is_rebuilt_where_the_module_goes():
    """The sparse adjacency is kept out of the buffers: a module that used
    it deep-copies, pickles (a sparse CSR tensor cannot) and moves to
    another device."""
    edge_index, n = GRAPHS['h36m17']
    conv = make_conv(edge_index, n)
    x = torch.randn(2, n, 5)
    ref = conv(x)
    hook = conv.register_propagate_forward_hook(lambda m, inputs, out: None)
    conv(x)  # through propagate: the adjacency is built
    hook.remove()  # (a local function does not pickle)
    assert '_adj_t' in conv.topology.__dict__
    with torch.no_grad():  # and the inference cache filled
        conv(x)
    torch.save(conv, io.BytesIO())
    assert torch.equal(copy.deepcopy(conv)(x), ref)
    meta = copy.deepcopy(conv).to('meta')
    assert meta.topology.adj_t().device.type == 'meta'
    assert meta(x.to('meta')).shape == ref.shape


def test_propagate_is_called_when_observed(monkeypatch):
    """propagate_static calls PyG's propagate whenever something could see
    it (a hook, propagate replaced on the instance) and otherwise runs the
    same message_and_aggregate and update itself: the output is the same
    bit for bit."""
    edge_index, n = GRAPHS['h36m17']
    conv = make_conv(edge_index, n)
    x = torch.randn(2, n, 5)
    ref = conv(x)
    calls = []
    propagate = type(conv).propagate
    monkeypatch.setattr(type(conv), 'propagate', lambda self, *args, **kw:
                        calls.append(1) or propagate(self, *args, **kw))
    assert torch.equal(conv(x), ref) and calls == []
    hook = conv.register_message_and_aggregate_forward_pre_hook(
        lambda m, inputs: None)
    assert torch.equal(conv(x), ref) and calls == [1]
    hook.remove()
    # update runs on both paths, as in PyG's fused propagate.
    monkeypatch.setattr(conv, 'update', lambda out: 2 * out)
    assert torch.equal(conv(x), 2 * ref)
    conv.propagate = lambda *args, **kw: calls.append(2) or propagate(
        conv, *args, **kw)
    assert torch.equal(conv(x), 2 * ref) and calls == [1, 2]

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.func import functional_call

from pyg_skeleton.nn.non_local import NonLocalBlock

pytestmark = [pytest.mark.operator, pytest.mark.usefixtures('one_thread')]

# SemGCN's 16-joint groups (equal sizes) and the 17-joint groups of the
# weight-sharing fork (one group of three).
GROUPS16 = [[2, 3], [5, 6], [1, 4], [0, 7], [8, 9], [14, 15], [11, 12],
            [10, 13]]
GROUPS17 = [[2, 3], [5, 6], [1, 4], [0, 7], [8, 9, 10], [15, 16], [12, 13],
            [11, 14]]
AFFINITIES = ['concatenation', 'embedded_gaussian']


def num_nodes_of(groups, default=7):
    return default if groups is None else sum(len(g) for g in groups)


def make_block(in_channels=6, inter_channels=4, groups=None,
               affinity='concatenation', batch_norm=True, seed=0):
    """A float64 block with every parameter and running statistic random and
    non-zero, so that the block is far from the identity."""
    torch.manual_seed(seed)
    block = NonLocalBlock(in_channels, inter_channels, groups=groups,
                          affinity=affinity, batch_norm=batch_norm).double()
    with torch.no_grad():
        for lin in (block.theta, block.phi, block.g, block.out):
            lin.weight.normal_(0.0, 0.7)
            lin.bias.normal_(0.0, 0.5)
        if block.concat_weight is not None:
            block.concat_weight.normal_(0.0, 0.7)
        if block.bn is not None:
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.normal_(0.0, 0.5)
            block.bn.running_mean.normal_(0.0, 0.5)
            block.bn.running_var.uniform_(0.5, 2.0)
    return block


def reference(block, graphs, train):
    """SemGCN Eq. 4 (concatenation affinity of supplement Eq. 10, or Wang et
    al.'s embedded Gaussian) for a list of graphs [N_b, F], written with
    explicit loops over queries i and keys k. Keys and values are max-pooled
    per group when the block has groups. BatchNorm uses the running
    statistics (eval) or the biased statistics over all nodes of all graphs
    (train)."""
    W_t, b_t = block.theta.weight, block.theta.bias
    W_p, b_p = block.phi.weight, block.phi.bias
    W_g, b_g = block.g.weight, block.g.bias
    W_o, b_o = block.out.weight, block.out.bias

    pre = []  # W_out y_i + b_out of every node of every graph
    for x in graphs:
        n = x.size(0)
        theta = [W_t @ x[i] + b_t for i in range(n)]
        phi = [W_p @ x[j] + b_p for j in range(n)]
        g = [W_g @ x[j] + b_g for j in range(n)]
        if block.groups is None:
            keys, values = phi, g
        else:
            keys = [torch.stack([phi[j] for j in grp]).max(dim=0).values
                    for grp in block.groups]
            values = [torch.stack([g[j] for j in grp]).max(dim=0).values
                      for grp in block.groups]
        K = len(keys)
        for i in range(n):
            if block.affinity == 'concatenation':
                w = block.concat_weight
                f = [torch.relu(w @ torch.cat([theta[i], keys[k]])) / K
                     for k in range(K)]
            else:
                s = [theta[i] @ keys[k] for k in range(K)]
                m = max(float(v.detach()) for v in s)
                e = [torch.exp(v - m) for v in s]
                total = sum(e)
                f = [v / total for v in e]
            y = sum(f[k] * values[k] for k in range(K))
            pre.append(W_o @ y + b_o)
    h = torch.stack(pre)

    bn = block.bn
    if bn is not None:
        if train:
            mean = h.mean(dim=0)
            var = ((h - mean)**2).mean(dim=0)
        else:
            mean, var = bn.running_mean, bn.running_var
        h = (h - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    out = torch.cat(list(graphs), dim=0) + h
    return list(out.split([x.size(0) for x in graphs]))


def disjoint(graphs):
    x = torch.cat(graphs, dim=0)
    batch = torch.cat([
        torch.full((g.size(0), ), b, dtype=torch.long)
        for b, g in enumerate(graphs)
    ])
    return x, batch


# Reference checks ###########################################################


@pytest.mark.parametrize('groups', [None, GROUPS16, GROUPS17],
                         ids=['nogroups', 'equal', 'unequal'])
@pytest.mark.parametrize('affinity', AFFINITIES)
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_static_batch_matches_reference(groups, affinity, train):
    block = make_block(groups=groups, affinity=affinity)
    block.train(train)
    n = num_nodes_of(groups)
    x = torch.randn(3, n, 6, dtype=torch.float64)
    expected = torch.stack(reference(block, list(x), train))
    out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, x)


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_no_batch_norm_matches_reference(affinity):
    block = make_block(groups=GROUPS17, affinity=affinity, batch_norm=False)
    assert block.bn is None
    x = torch.randn(2, 17, 6, dtype=torch.float64)
    expected = torch.stack(reference(block, list(x), train=True))
    torch.testing.assert_close(block(x), expected)


def test_single_graph_input():
    block = make_block(groups=GROUPS17).eval()
    x = torch.randn(17, 6, dtype=torch.float64)
    out = block(x)
    assert out.shape == (17, 6)
    torch.testing.assert_close(out, block(x.unsqueeze(0))[0])
    torch.testing.assert_close(out, reference(block, [x], train=False)[0])


def test_grouped_keys_differ_from_official_pairing():
    # The official code max-pools consecutive pairs of the reordered joints
    # (group size of the first group); with unequal groups that pairs joints
    # across groups. Our keys follow the groups, so the outputs differ.
    block = make_block(groups=GROUPS17).eval()
    order = [v for grp in GROUPS17 for v in grp]
    pairs = [order[2 * k:2 * k + 2] for k in range(len(order) // 2)]
    paired = make_block(groups=GROUPS17).eval()
    paired.groups = pairs  # only used by the reference
    x = torch.randn(2, 17, 6, dtype=torch.float64)
    ours = torch.stack(reference(block, list(x), train=False))
    official_like = torch.stack(reference(paired, list(x), train=False))
    torch.testing.assert_close(block(x), ours)
    assert not torch.allclose(ours, official_like)


def test_batch_norm_running_statistics():
    block = make_block(groups=GROUPS16).train()
    old_mean = block.bn.running_mean.clone()
    old_var = block.bn.running_var.clone()
    captured = []
    block.bn.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach()))
    x = torch.randn(4, 16, 6, dtype=torch.float64)
    block(x)
    h = captured[0]  # W_out y + b_out of all B * N nodes
    assert h.shape == (4 * 16, 6)
    m = block.bn.momentum
    torch.testing.assert_close(block.bn.running_mean,
                               (1 - m) * old_mean + m * h.mean(0))
    torch.testing.assert_close(block.bn.running_var,
                               (1 - m) * old_var + m * h.var(0))


# Identity at initialisation #################################################


@pytest.mark.parametrize('groups', [None, GROUPS17])
@pytest.mark.parametrize('affinity', AFFINITIES)
@pytest.mark.parametrize('batch_norm', [True, False])
def test_identity_at_initialisation(groups, affinity, batch_norm):
    torch.manual_seed(1)
    block = NonLocalBlock(16, groups=groups, affinity=affinity,
                          batch_norm=batch_norm)
    n = num_nodes_of(groups)
    x = 3 * torch.randn(4, n, 16)
    for train in (True, False):
        block.train(train)
        assert torch.equal(block(x), x)
        assert torch.equal(block(x[0]), x[0])
        flat, batch = x.reshape(-1, 16), torch.arange(4).repeat_interleave(n)
        assert torch.equal(block(flat, batch), flat)
    if groups is None:
        flat, batch = disjoint([x[0, :3], x[1], x[2, :5]])
        assert torch.equal(block(flat, batch), flat)


def test_reset_parameters():
    block = make_block(groups=GROUPS17)
    block.reset_parameters()
    assert torch.all(block.bn.weight == 0) and torch.all(block.bn.bias == 0)
    assert torch.all(block.bn.running_mean == 0)
    assert torch.all(block.bn.running_var == 1)
    for lin in (block.theta, block.phi, block.g, block.out):
        assert torch.all(lin.bias == 0)
        assert lin.weight.abs().sum() > 0
    assert block.concat_weight.abs().sum() > 0
    x = torch.randn(2, 17, 6, dtype=torch.float64)
    assert torch.equal(block(x), x)

    # Kaiming-normal (fan-in, gain sqrt(2)) on the projections:
    torch.manual_seed(0)
    big = NonLocalBlock(512, 256)
    std = math.sqrt(2.0 / 512)
    assert abs(big.theta.weight.std().item() - std) < 0.05 * std
    std = math.sqrt(2.0 / 512)  # w of size 2 * 256
    assert abs(big.concat_weight.std().item() - std) < 0.1 * std

    no_bn = make_block(batch_norm=False)
    no_bn.reset_parameters()
    assert torch.all(no_bn.out.weight == 0) and torch.all(no_bn.out.bias == 0)


# Batching ###################################################################


@pytest.mark.parametrize('groups', [None, GROUPS16, GROUPS17])
@pytest.mark.parametrize('affinity', AFFINITIES)
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_static_equals_disjoint(groups, affinity, train):
    block = make_block(groups=groups, affinity=affinity).train(train)
    n = num_nodes_of(groups)
    x = torch.randn(5, n, 6, dtype=torch.float64)
    batch = torch.arange(5).repeat_interleave(n)
    out = block(x.reshape(-1, 6), batch)
    assert out.shape == (5 * n, 6)
    # Whole graphs of one size are the static batch, bit for bit (with
    # groups a view of it, without them padding-free dense graphs).
    assert torch.equal(out, block(x).reshape(-1, 6))


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_disjoint_graphs_of_different_sizes(affinity):
    block = make_block(affinity=affinity)
    sizes = [3, 7, 1, 5]
    graphs = [torch.randn(s, 6, dtype=torch.float64) for s in sizes]
    x, batch = disjoint(graphs)

    # Eval mode: each graph alone gives the same result, so attention (and
    # the 1/K of the concatenation affinity) never crosses graphs.
    block.eval()
    out = block(x, batch)
    assert out.shape == x.shape
    separate = torch.cat([block(g) for g in graphs])
    torch.testing.assert_close(out, separate)
    torch.testing.assert_close(
        out, torch.cat(reference(block, graphs, train=False)))

    # Train mode: BatchNorm statistics over all nodes of all graphs.
    block.train()
    torch.testing.assert_close(block(x, batch),
                               torch.cat(reference(block, graphs, True)))


def test_disjoint_ignores_padding_values():
    # Changing one graph must not change the others.
    block = make_block(affinity='embedded_gaussian').eval()
    graphs = [torch.randn(s, 6, dtype=torch.float64) for s in (2, 6, 4)]
    x, batch = disjoint(graphs)
    out = block(x, batch)
    graphs2 = [graphs[0], 10 * torch.randn(6, 6, dtype=torch.float64),
               graphs[2]]
    out2 = block(*disjoint(graphs2))
    torch.testing.assert_close(out[:2], out2[:2])
    torch.testing.assert_close(out[8:], out2[8:])


# Gradients ##################################################################


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_gradcheck_input(affinity):
    block = make_block(4, 3, groups=[[0, 3], [1, 2, 4]], affinity=affinity)
    block.train()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x, ))
    block.eval()
    assert torch.autograd.gradcheck(block, (x, ))


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_gradcheck_disjoint_input(affinity):
    block = make_block(4, 3, affinity=affinity).train()
    x = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda x: block(x, batch), (x, ))


@pytest.mark.parametrize('groups', [None, [[0, 3], [1, 2, 4]]])
@pytest.mark.parametrize('affinity', AFFINITIES)
def test_gradcheck_parameters(groups, affinity):
    block = make_block(4, 3, groups=groups, affinity=affinity).train()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    names = [name for name, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_()
                   for _, p in block.named_parameters())

    def fn(*params):
        return functional_call(block, dict(zip(names, params)), (x, ))

    assert torch.autograd.gradcheck(fn, params)


# torch.compile ##############################################################


@pytest.mark.parametrize('groups, affinity', [
    (GROUPS17, 'concatenation'),
    (None, 'embedded_gaussian'),
])
def test_compile_static_batch(groups, affinity):
    torch._dynamo.reset()
    block = make_block(groups=groups, affinity=affinity).float().eval()
    compiled_block = copy.deepcopy(block)
    compiled = torch.compile(compiled_block, fullgraph=True)
    x = torch.randn(4, num_nodes_of(groups), 6)
    torch.testing.assert_close(compiled(x), block(x))


# Parameters, repr, validation ###############################################


def test_parameter_count():
    block = NonLocalBlock(128, groups=GROUPS16)
    assert block.inter_channels == 64
    assert sum(p.numel() for p in block.parameters()) == 33_472
    assert (3 * (128 * 64 + 64) + 128 + (64 * 128 + 128) + 2 * 128) == 33_472
    # Without groups, the same parameters:
    assert sum(p.numel() for p in NonLocalBlock(128).parameters()) == 33_472
    # Embedded Gaussian has no w:
    block = NonLocalBlock(128, affinity='embedded_gaussian')
    assert sum(p.numel() for p in block.parameters()) == 33_472 - 128
    # No BatchNorm: no 2 * 128 affine parameters.
    block = NonLocalBlock(128, batch_norm=False)
    assert sum(p.numel() for p in block.parameters()) == 33_472 - 256
    # Defaults for inter_channels:
    assert NonLocalBlock(1).inter_channels == 1
    assert NonLocalBlock(3).inter_channels == 1
    assert NonLocalBlock(8, 5).inter_channels == 5


def test_repr():
    block = NonLocalBlock(128, groups=GROUPS16)
    assert repr(block) == ("NonLocalBlock(128, inter_channels=64, groups=8, "
                           "affinity='concatenation')")
    block = NonLocalBlock(32, 8, affinity='embedded_gaussian',
                          batch_norm=False)
    assert repr(block) == ("NonLocalBlock(32, inter_channels=8, groups=None, "
                           "affinity='embedded_gaussian', batch_norm=False)")


def test_groups_buffers_and_state_dict():
    block = NonLocalBlock(8, groups=GROUPS17)
    # Shorter groups are padded with their first node, masked out.
    assert block.group_slots.tolist() == [
        [2, 3, 2], [5, 6, 5], [1, 4, 1], [0, 7, 0], [8, 9, 10], [15, 16, 15],
        [12, 13, 12], [11, 14, 11]
    ]
    assert block.group_pad.tolist() == [[False, False, True]] * 4 + [
        [False, False, False]] + [[False, False, True]] * 3
    assert NonLocalBlock(8, groups=GROUPS16).group_pad is None
    assert 'group_slots' not in block.state_dict()
    assert 'group_pad' not in block.state_dict()
    other = NonLocalBlock(8, groups=GROUPS17)
    other.load_state_dict(block.state_dict())


def test_pooling_gradient_of_tied_maxima():
    # Group [0, 1] is padded to the size of [2, 3, 4]. Nodes 0 and 1 tie for
    # the maximum: they share its gradient equally (as torch.amax and
    # PyTorch's scatter-max do), and the padded copy of node 0 takes none.
    block = NonLocalBlock(2, groups=[[0, 1], [2, 3, 4]])
    h = torch.tensor([[[1., 5.], [1., 2.], [0., 0.], [3., -1.], [2., -2.]]],
                     requires_grad=True)
    pooled = block._pool(h)
    assert pooled.tolist() == [[[1., 5.], [3., 0.]]]
    pooled.sum().backward()
    assert h.grad.tolist() == [[[0.5, 1.], [0.5, 0.], [0., 1.], [1., 0.],
                                [0., 0.]]]


@pytest.mark.parametrize('groups, match', [
    ([], 'at least one group'),
    ([[0, 1], []], 'empty'),
    ([[0, 1], [3]], r'must partition the nodes: node 3 is outside \[0, 3\)'),
    ([[0, 1], [1, 2]], 'node 1 is in more than one group'),
    ([[0, -1]], r'node -1 is outside \[0, 2\)'),
    ([[0, 1], [2.5]], 'non-integer'),
    ([[0, 1], 2], 'not a sequence'),
    ('ab', 'sequence'),
])
def test_bad_groups(groups, match):
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(8, groups=groups)


def test_bad_arguments():
    with pytest.raises(ValueError, match='Unknown affinity'):
        NonLocalBlock(8, affinity='dot_product')
    with pytest.raises(ValueError, match='in_channels'):
        NonLocalBlock(0)
    with pytest.raises(ValueError, match='inter_channels'):
        NonLocalBlock(8, 0)


def test_bad_inputs():
    block = NonLocalBlock(8, groups=[[0, 1], [2, 3]])
    with pytest.raises(ValueError, match='cover 4 nodes'):
        block(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match='cover 4 nodes'):
        block(torch.randn(5, 8))
    with pytest.raises(ValueError, match='every graph'):
        block(torch.randn(7, 8), torch.tensor([0, 0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match='every graph'):
        block(torch.randn(8, 8), torch.tensor([0, 0, 0, 0, 2, 2, 2, 2]))
    # The same rows as two graphs of 4 nodes, but graphs of 3 and 5:
    with pytest.raises(ValueError, match=r"^'NonLocalBlock' needs a disjoint "
                       r"batch of whole graphs: every graph must have exactly "
                       r"4 nodes \(row 3 is in graph 1, not 0\)$"):
        block(torch.randn(8, 8), torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match='7 rows, not a multiple of 4'):
        block(torch.randn(7, 8), torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match='input channels'):
        block(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match='dimensions'):
        block(torch.randn(8))
    with pytest.raises(ValueError, match='dimensions'):
        block(torch.randn(2, 2, 4, 8))
    with pytest.raises(ValueError, match=r'\[N_1 \+ ... \+ N_B, F\]'):
        block(torch.randn(2, 4, 8), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match='one entry per node'):
        block(torch.randn(8, 8), torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match='sorted'):
        block(torch.randn(8, 8), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]))


# Large graphs: no [B, N, K] affinity ########################################


@pytest.fixture
def large_path(monkeypatch):
    """Every block takes the path of large graphs (sorted concatenation,
    chunked Gaussian in blocks of at most 3 queries), so that the loop
    reference can check it on small graphs."""
    from pyg_skeleton.nn import non_local
    monkeypatch.setattr(non_local, 'DENSE_MAX_KEYS', 0)
    monkeypatch.setattr(non_local, 'CHUNK_ELEMENTS', 3 * 5 * 7)


@pytest.mark.parametrize('affinity', AFFINITIES)
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_large_path_matches_reference(large_path, affinity, train):
    # Pooled keys (a mesh's clusters) take the same path:
    grouped = make_block(groups=GROUPS17, affinity=affinity).train(train)
    x = torch.randn(5, 17, 6, dtype=torch.float64)
    torch.testing.assert_close(grouped(x), torch.stack(
        reference(grouped, list(x), train)))

    block = make_block(affinity=affinity).train(train)
    x = torch.randn(5, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(block(x),
                               torch.stack(reference(block, list(x), train)))
    # Disjoint graphs of different sizes: padded keys take no part.
    graphs = [torch.randn(s, 6, dtype=torch.float64) for s in (3, 7, 1, 5)]
    torch.testing.assert_close(block(*disjoint(graphs)),
                               torch.cat(reference(block, graphs, train)))


def test_sorted_concatenation_ties_and_empty_suffix(large_path):
    # Keys with a_i + b_k exactly 0 contribute nothing (ReLU(0) = 0), and a
    # query below every key meets none: a hand-computed case.
    from pyg_skeleton.nn.non_local import _concat_sorted
    a = torch.tensor([[1.0, -5.0, 0.5]], dtype=torch.float64)
    b = torch.tensor([[-1.0, 2.0, -0.5]], dtype=torch.float64)
    g = torch.tensor([[[1.0], [10.0], [100.0]]], dtype=torch.float64)
    # i=0: keys 1 and 2 (3 * 10 + 0.5 * 100); key 0 is a tie. i=1: none.
    # i=2: key 1 (2.5 * 10); key 2 is a tie. All over K = 3.
    expected = torch.tensor([[[80.0], [0.0], [25.0]]],
                            dtype=torch.float64) / 3
    torch.testing.assert_close(_concat_sorted(a, b, g, None), expected)


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_large_path_gradcheck(large_path, affinity):
    block = make_block(4, 3, affinity=affinity).train()
    x = torch.randn(2, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x, ))
    xd = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda x: block(x, batch), (xd, ))
    names = [name for name, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_()
                   for _, p in block.named_parameters())
    x0 = x.detach()
    assert torch.autograd.gradcheck(
        lambda *p: functional_call(block, dict(zip(names, p)), (x0, )),
        params)


@pytest.mark.parametrize('affinity', AFFINITIES)
def test_large_graph_equals_dense_formula(affinity, monkeypatch):
    # Above DENSE_MAX_KEYS for real (no patch of the threshold), against
    # the dense formula of SemGCN Eq. 4 written out here, forward and
    # backward (float64, 300 nodes; the Gaussian in blocks of 100 queries).
    from pyg_skeleton.nn import non_local
    n = 300
    assert n > non_local.DENSE_MAX_KEYS
    monkeypatch.setattr(non_local, 'CHUNK_ELEMENTS', 100 * n)
    block = make_block(affinity=affinity).eval()
    x = torch.randn(1, n, 6, dtype=torch.float64, requires_grad=True)
    out = block(x)

    theta, phi, g = block.theta(x), block.phi(x), block.g(x)
    if affinity == 'concatenation':
        w_t, w_p = block.concat_weight.split(block.inter_channels)
        f = torch.relu((theta @ w_t).unsqueeze(-1) +
                       (phi @ w_p).unsqueeze(-2)) / n
    else:
        f = torch.softmax(theta @ phi.transpose(-1, -2), dim=-1)
    h = block.bn(block.out(f @ g).reshape(n, 6)).view(1, n, 6)
    expected = x + h
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, block.concat_weight if affinity ==
                                    'concatenation' else block.phi.weight),
                              grad)
    want = torch.autograd.grad(expected, (x, block.concat_weight if affinity
                                          == 'concatenation' else
                                          block.phi.weight), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_grouped_path_stays_dense(monkeypatch):
    # The paper's grouped keys (K = 8) keep the dense affinity, so official
    # parity is untouched: the sorted and chunked forms are never called.
    from pyg_skeleton.nn import non_local

    def fail(*args):
        raise AssertionError('large-graph path taken')

    monkeypatch.setattr(non_local, '_concat_sorted', fail)
    monkeypatch.setattr(non_local, '_gaussian_chunked', fail)
    for affinity in AFFINITIES:
        block = make_block(groups=GROUPS16, affinity=affinity).eval()
        x = torch.randn(3, 16, 6, dtype=torch.float64)
        torch.testing.assert_close(
            block(x), torch.stack(reference(block, list(x), False)))

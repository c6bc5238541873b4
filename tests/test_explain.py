"""PyG explainers on every message-passing operator: an edge mask set with
``torch_geometric.explain.algorithm.utils.set_masks`` weights the messages
of the input's edges on every path (a disjoint batch of whole copies, which
otherwise takes the static dense or CSR kernel, and dropped edges), and
``GNNExplainer`` explains SemGraphConv and SemGCN.
"""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import DynamicHCSFConv, HCSFConv, SemGCN, SemGraphConv
from pyg_skeleton.nn.topology import DENSE_MAX_NODES
from pyg_skeleton.transforms import KHopEdges

from _helpers import disjoint_graph, operator_table, perturb_edge_weights, ring

pytestmark = pytest.mark.operator

SKELETON = Skeleton.preset('h36m17')

# A skeleton (dense products) and a ring above the dense limit (CSR kernel).
GRAPHS = {
    'h36m17': (SKELETON.edge_index, 17),
    'ring': (ring(DENSE_MAX_NODES + 8), DENSE_MAX_NODES + 8),
}

OPERATORS = {
    **operator_table(4, 5),
    'DynamicHCSFConv-hop': lambda ei, n: DynamicHCSFConv(
        4, 5, ei, n, candidates='hop', alpha=0.5),
}
CASES = [(name, graph) for name in OPERATORS for graph in GRAPHS]


def setup(name, graph, copies=2):
    """The operator, and the inputs of a disjoint batch of whole copies:
    (x, edge_index, extra arguments)."""
    torch.manual_seed(0)
    ei, n = GRAPHS[graph]
    conv = OPERATORS[name](ei, n)
    perturb_edge_weights(conv)
    x = torch.randn(copies * n, 4)
    edge_index, *extra = disjoint_graph(name, ei, n, copies)
    return conv, x, edge_index, tuple(extra)


def masked(conv, x, edge_index, extra, mask, mask_edges=None):
    """conv(x, edge_index, *extra) with an edge mask over mask_edges
    (default: edge_index)."""
    mask_edges = edge_index if mask_edges is None else mask_edges
    set_masks(conv, mask, mask_edges, apply_sigmoid=False)
    try:
        return conv(x, edge_index, *extra)
    finally:
        clear_masks(conv)


@pytest.mark.parametrize('name,graph', CASES)
def test_edge_mask_reaches_every_edge(name, graph):
    conv, x, edge_index, extra = setup(name, graph)
    num_edges = edge_index.size(1)
    ref = conv(x, edge_index, *extra)
    ones = masked(conv, x, edge_index, extra, torch.ones(num_edges))
    torch.testing.assert_close(ones, ref, atol=1e-5, rtol=1e-5)
    zero = masked(conv, x, edge_index, extra, torch.zeros(num_edges))
    assert (zero - ref).abs().max() > 1e-3  # the mask reaches the aggregation
    # The messages are linear in the mask...
    half = masked(conv, x, edge_index, extra, torch.full((num_edges, ), 0.5))
    torch.testing.assert_close(half, 0.5 * (ref + zero), atol=1e-5, rtol=1e-5)
    # ...and an edge's mask entry acts on its target node only.
    hop = extra[0] if extra else torch.ones(num_edges)
    for k in torch.nonzero(hop <= 2).view(-1)[::max(1, num_edges // 6)]:
        one = torch.zeros(num_edges)
        one[k] = 1.0
        diff = (masked(conv, x, edge_index, extra, one) - zero).abs().sum(-1)
        target = int(edge_index[1, k])
        assert diff[target] > 0, f'edge {int(k)} does not reach its target'
        diff[target] = 0
        assert diff.max() < 1e-6, f'edge {int(k)} reaches other nodes'


def test_sem_graph_conv_zero_mask_is_the_self_term():
    """With every edge masked out, SemGraphConv keeps only its self term
    a_ii W_self x_i + b (the softmax over a target's edges is that of the
    layer's graph: the mask weights messages, not logits), written here
    from the learned weights."""
    for graph in GRAPHS:
        conv, x, edge_index, _ = setup('SemGraphConv', graph)
        out = masked(conv, x, edge_index, (), torch.zeros(edge_index.size(1)))
        ei, alpha = conv.edge_weights()
        n = conv.num_nodes
        a_self = torch.zeros(n)
        loop = ei[0] == ei[1]
        a_self[ei[1, loop]] = alpha[loop]
        node = torch.arange(x.size(0)) % n
        expected = (a_self[node].view(-1, 1) * (x @ conv.lin_self.weight.t())
                    + conv.bias)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_khop_conv_zero_mask_is_the_self_term():
    """KHopConv averages x over the k-hop neighbourhood: with the pairs
    masked out only x_i / |N_<=k(i)| is left, the count taken here from the
    hop pairs."""
    conv, x, edge_index, (dist, ) = setup('KHopConv', 'h36m17')
    out = masked(conv, x, edge_index, (dist, ),
                 torch.zeros(edge_index.size(1)))
    count = 1 + torch.bincount(edge_index[1, dist <= conv.k],
                               minlength=x.size(0)).float()
    expected = conv.lin(x / count.view(-1, 1))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_sem_graph_conv_mask_on_dropped_edges_and_self_loops():
    """Any subset of the edges, and an edge_index with self-loops (whose
    mask entries are not used: every node has its self term), in a static
    batch [B, N, C] with node_dim=-2."""
    conv, _, _, _ = setup('SemGraphConv', 'h36m17')
    ei = SKELETON.edge_index[:, 3:]
    loops = torch.arange(17).repeat(2, 1)
    with_loops = torch.cat([ei, loops], dim=1)
    x = torch.randn(3, 17, 4)
    ref = conv(x, ei)
    mask = torch.rand(ei.size(1))
    full_mask = torch.cat([mask, torch.rand(17)])
    out = masked(conv, x, with_loops, (), full_mask)
    # Each message weighted by its edge's mask, written out edge by edge.
    ei_w, alpha = conv.edge_weights()
    h_nbr = x @ conv.lin_neighbor.weight.t()
    expected = masked(conv, x, ei, (), torch.zeros(ei.size(1))).clone()
    # The softmax over the present edges and self-loops, as the layer
    # normalises.
    present = torch.cat([ei, loops], 1).t().tolist()
    logit = {(a, b): conv.logits[s]
             for s, (a, b) in enumerate(ei_w.t().tolist())}
    for e in range(ei.size(1)):
        j, i = int(ei[0, e]), int(ei[1, e])
        z = torch.stack([logit[(a, b)] for a, b in present if b == i])
        a_ij = torch.exp(logit[(j, i)]) / torch.exp(z).sum()
        expected[:, i] += mask[e] * a_ij * h_nbr[:, j]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, ref)


# -------------------------------------------------------------- explainers

def explainer(model, epochs=30):
    return Explainer(model, algorithm=GNNExplainer(epochs=epochs, lr=0.05),
                     explanation_type='model', edge_mask_type='object',
                     node_mask_type=None,
                     model_config=dict(mode='regression', task_level='node',
                                       return_type='raw'))


def check_edge_mask(edge_mask, num_edges):
    assert edge_mask.shape == (num_edges, )
    assert torch.isfinite(edge_mask).all()
    assert edge_mask.min() >= 0 and edge_mask.max() <= 1
    # Non-trivial: the optimisation moved the mask, edge by edge.
    assert edge_mask.max() - edge_mask.min() > 1e-2


@pytest.mark.parametrize('conv', ['sem', 'vanilla'])
def test_gnn_explainer_on_semgcn(conv):
    torch.manual_seed(0)
    model = SemGCN('h36m17', 2, 16, 3, num_layers=1, conv=conv).eval()
    x = torch.randn(17, 2)
    edge_index = SKELETON.edge_index
    explanation = explainer(model)(x, edge_index, index=3)
    check_edge_mask(explanation.edge_mask, edge_index.size(1))
    # Edges far from node 3 (beyond the model's receptive field) get no
    # gradient and stay where the regulariser pushes every entry.
    assert explanation.edge_mask.max() > 0


def test_gnn_explainer_on_sem_graph_conv():
    torch.manual_seed(0)
    conv = SemGraphConv(2, 3, SKELETON.edge_index)
    x = torch.randn(17, 2)
    explanation = explainer(conv)(x, SKELETON.edge_index)
    check_edge_mask(explanation.edge_mask, SKELETON.edge_index.size(1))


def test_gnn_explainer_on_hcsf_conv():
    torch.manual_seed(0)
    conv = HCSFConv(2, 8, SKELETON.edge_index, 17)
    data = KHopEdges(2)(Data(edge_index=SKELETON.edge_index, num_nodes=17))
    x = torch.randn(17, 2)
    explanation = explainer(conv)(x, data.khop_edge_index,
                                  khop_distance=data.khop_distance)
    check_edge_mask(explanation.edge_mask, data.khop_edge_index.size(1))


class StaticCall(torch.nn.Module):
    """Calls its layer on a static input, conv(x), whatever edge_index an
    explainer passes."""
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, edge_index):
        return self.conv(x)


#: The operators on a Topology, whose static input has the layer's graph.
TOPOLOGY_OPERATORS = ['SemGraphConv', 'SemGraphConv-channelwise',
                      'FullSharingConv', 'PreAggConv', 'PostAggConv',
                      'ConvStyleConv', 'NoSharingConv']


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('name', TOPOLOGY_OPERATORS)
def test_edge_mask_on_a_static_input(name, graph):
    """In explain mode a static call conv(x) passes messages along the
    layer's graph in slot order (Topology.neighbor_edge_index), so an edge
    mask weights them as on the same edges given as edge_index, and each
    entry reaches its target only."""
    conv, _, _, _ = setup(name, graph)
    n = conv.num_nodes
    edge_index = conv.topology.neighbor_edge_index
    x = torch.randn(3, n, 4)
    ref = conv(x)
    mask = torch.rand(edge_index.size(1))
    static = masked(conv, x, None, (), mask, edge_index)
    given = masked(conv, x, edge_index, (), mask)
    torch.testing.assert_close(static, given)
    assert (static - ref).abs().max() > 1e-3
    zero = masked(conv, x, None, (), torch.zeros_like(mask), edge_index)
    k = int(edge_index.size(1) // 2)
    one = torch.zeros_like(mask)
    one[k] = 1.0
    diff = (masked(conv, x, None, (), one, edge_index) - zero).abs()
    diff = diff.sum((0, 2))
    target = int(edge_index[1, k])
    assert diff[target] > 0
    diff[target] = 0
    assert diff.max() < 1e-6
    assert torch.equal(conv(x), ref)  # out of explain mode: the kernel


def test_gnn_explainer_on_a_static_input():
    torch.manual_seed(0)
    conv = SemGraphConv(2, 3, SKELETON.edge_index)
    edge_index = conv.topology.neighbor_edge_index
    explanation = explainer(StaticCall(conv))(torch.randn(17, 2), edge_index)
    check_edge_mask(explanation.edge_mask, edge_index.size(1))

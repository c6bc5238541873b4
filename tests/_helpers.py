"""What several test files build the same way: the paths of the checkout and
of the data beside it, small graphs, and the table of every message-passing
operator with how to build it.

Plain functions and tables, since tests parametrize over them at collection
time; the fixtures (values made per test) are in ``conftest.py``. The tests
import this module as ``_helpers`` (pytest puts ``tests/`` on the path).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from pyg_skeleton import Skeleton
from pyg_skeleton.mesh import Mesh
from pyg_skeleton.nn import (
    HGN,
    ConvStyleConv,
    DynamicHCSFConv,
    FullSharingConv,
    HCSFConv,
    KHopConv,
    MixHopSkeletonConv,
    MSHopConv,
    NonLocalBlock,
    NoSharingConv,
    PostAggConv,
    PreAggConv,
    SemGCN,
    SemGraphConv,
    SkeletalGNN,
    TemporalSkeletalGNN,
)
from pyg_skeleton.nn.topology import DENSE_MAX_NODES
from pyg_skeleton.transforms import KHopEdges

#: The checkout.
ROOT = Path(__file__).resolve().parents[1]
#: The data beside the checkout (``../shared/data``; absent in a plain
#: clone, where the tests that read it skip: the ``shared_data`` fixture).
SHARED_DATA = ROOT.parent / 'shared' / 'data'


# ----------------------------------------------------------------- graphs

def ring(n):
    """The undirected cycle over ``n`` nodes."""
    i = torch.arange(n)
    return to_undirected(torch.stack([i, (i + 1) % n]), num_nodes=n)


def random_graph(n, extra, seed):
    """A random tree (node ``i`` hangs below a random earlier node) plus
    ``extra`` random chords: connected, with cycles and any degree."""
    g = torch.Generator().manual_seed(seed)
    edges = [[i, int(torch.randint(0, i, (1, ), generator=g))]
             for i in range(1, n)]
    for _ in range(extra):
        i, j = torch.randint(0, n, (2, ), generator=g).tolist()
        if i != j:
            edges.append([i, j])
    return to_undirected(torch.tensor(edges).t(), num_nodes=n)


def skeleton_graph(name):
    """A preset skeleton's ``(edge_index, num_nodes)``."""
    skeleton = Skeleton.preset(name)
    return skeleton.edge_index, skeleton.num_joints


def grid_mesh(rows, cols):
    """A ``rows`` x ``cols`` grid of vertices at random positions, each cell
    cut into two triangles."""
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    return Mesh(pos=torch.rand(rows * cols, 3), face=faces.t())


def count_node_maps(monkeypatch):
    """Records the arguments of every HGN ``NodeMap`` built from now on (the
    list returned), building the maps as usual."""
    from pyg_skeleton.nn.models import hgn
    built = []
    real = hgn.NodeMap

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(hgn, 'NodeMap', counting)
    return built


# -------------------------------------------------------------- operators

#: The operators whose disjoint-batch input is a hop-pair graph
#: (``khop_edge_index``, ``khop_distance``) rather than the edges.
HOP_CLASSES = ('HCSFConv', 'DynamicHCSFConv', 'KHopConv',
               'MixHopSkeletonConv', 'MSHopConv')


def is_hop_operator(name):
    """Whether the operator of a table entry (``Class`` or
    ``Class-variant``) takes hop pairs."""
    return name.split('-')[0] in HOP_CLASSES


def operator_table(in_channels, out_channels):
    """name -> ``build(edge_index, num_nodes)``: every message-passing
    operator of ``pyg_skeleton.nn.conv`` at the given widths (the channelwise
    SemGraphConv, which has its own kernel, under its own name). Tests add
    their own variants and replace entries where they need other options."""
    c = (in_channels, out_channels)
    return {
        'SemGraphConv': lambda ei, n: SemGraphConv(*c, ei, n),
        'SemGraphConv-channelwise': lambda ei, n: SemGraphConv(
            *c, ei, n, channelwise=True),
        'FullSharingConv': lambda ei, n: FullSharingConv(*c, ei, n),
        'PreAggConv': lambda ei, n: PreAggConv(*c, ei, n),
        'PostAggConv': lambda ei, n: PostAggConv(*c, ei, n),
        'ConvStyleConv': lambda ei, n: ConvStyleConv(*c, ei, 0, n),
        'NoSharingConv': lambda ei, n: NoSharingConv(*c, ei, n),
        'HCSFConv': lambda ei, n: HCSFConv(*c, ei, n),
        'DynamicHCSFConv': lambda ei, n: DynamicHCSFConv(*c, ei, n,
                                                         alpha=0.5),
        'KHopConv': lambda ei, n: KHopConv(*c, ei, n, k=2),
        'MixHopSkeletonConv': lambda ei, n: MixHopSkeletonConv(*c, ei, n),
        'MSHopConv': lambda ei, n: MSHopConv(*c, ei, n),
    }


def perturb_edge_weights(module, scale=0.3):
    """Trained-like edge weights instead of the uniform start: adds
    ``scale`` times Gaussian noise to the edge logits and graph weights."""
    with torch.no_grad():
        for key, p in module.named_parameters():
            if key in ('logits', 'graph_weight'):
                p.add_(scale * torch.randn_like(p))


def disjoint_graph(name, edge_index, num_nodes, copies):
    """The graph arguments of ``copies`` whole copies of a graph in a
    disjoint batch, after the features: ``(edge_index, )``, or for a hop
    operator ``(khop_edge_index, khop_distance)`` up to three hops."""
    data = Data(edge_index=edge_index, num_nodes=num_nodes)
    if is_hop_operator(name):
        batch = Batch.from_data_list([KHopEdges(3)(data)] * copies)
        return batch.khop_edge_index, batch.khop_distance
    return (Batch.from_data_list([data] * copies).edge_index, )


# ------------------------------- every kernel (test_precision, test_cuda)

H36M17 = Skeleton.preset('h36m17')
#: name -> (edge_index, num_nodes): a skeleton on the dense paths, a ring
#: above the Topology's dense limit (CSR kernel) and one above the hop
#: operators' dense limit (message passing over hop pairs).
KERNEL_GRAPHS = {
    'h36m17': (H36M17.edge_index, 17),
    'ring40': (ring(DENSE_MAX_NODES + 8), DENSE_MAX_NODES + 8),
    'ring136': (ring(DENSE_MAX_NODES + 8), DENSE_MAX_NODES + 8),
}
#: Every operator, 8 -> 6 channels, and the hop-candidate DynamicHCSFConv
#: from a random graph.
KERNEL_OPERATORS = {
    **operator_table(8, 6),
    'DynamicHCSFConv-hop-rand': lambda ei, n: DynamicHCSFConv(
        8, 6, ei, n, graph='rand', candidates='hop', alpha=0.5),
}


def operator_cases():
    """(operator, graph) pairs of ``KERNEL_OPERATORS`` and
    ``KERNEL_GRAPHS``."""
    for name in KERNEL_OPERATORS:
        for graph in KERNEL_GRAPHS:
            # The ring of 136 nodes only matters to the hop operators.
            if graph == 'ring136' and not is_hop_operator(name):
                continue
            yield name, graph


def build_operator(name, graph):
    """The operator on the graph, seeded, with trained-like edge weights,
    and the graph's number of nodes."""
    torch.manual_seed(0)
    ei, n = KERNEL_GRAPHS[graph]
    module = KERNEL_OPERATORS[name](ei, n)
    perturb_edge_weights(module)
    return module, n


def disjoint_inputs(name, graph, x):
    """A disjoint batch of the samples of ``x`` (``[B, N, C]``): the
    operator's ``(x, edge_index[, khop_distance])``."""
    ei, n = KERNEL_GRAPHS[graph]
    return (x.reshape(-1, x.size(-1)),
            *disjoint_graph(name, ei, n, x.size(0)))


MESH_LEVELS = [(ring(48), 48), (ring(96), 96)]
#: name -> build(): every model, small, and its input's shape.
MODELS = {
    'SemGCN': lambda: (SemGCN('h36m17', 2, 16, 3, num_layers=1,
                              non_local=True), (4, 17, 2)),
    'SkeletalGNN': lambda: (SkeletalGNN('h36m17', 2, hidden_channels=16,
                                        dynamic=True), (4, 17, 2)),
    'TemporalSkeletalGNN': lambda: (TemporalSkeletalGNN(
        H36M17, hidden_channels=16, dynamic=True, dropout=0.0), (2, 5, 17, 2)),
    'NonLocalBlock': lambda: (NonLocalBlock(8, groups=H36M17.groups),
                              (4, 17, 8)),
    # Mesh levels above the dense limit: the CSR kernel inside a model.
    'HGN': lambda: (HGN(H36M17, MESH_LEVELS,
                        hidden_channels=16, num_blocks=(1, 1, 1)), (4, 17, 2)),
}


def build_model(name):
    """The model in eval mode, seeded, and a random input."""
    torch.manual_seed(0)
    model, shape = MODELS[name]()
    return model.eval(), torch.randn(shape)


def first(out):
    """The first output of a model that returns several."""
    return out[0] if isinstance(out, (list, tuple)) else out


def forward_backward(module, x):
    """Output, input gradient and parameter gradients of a fixed,
    non-uniform weighting of the output (so that no single sum dominates
    the gradients)."""
    x = x.detach().requires_grad_()
    out = first(module(x))
    g = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * g).sum().backward()
    grads = {k: p.grad for k, p in module.named_parameters()
             if p.grad is not None}
    return out, x.grad, grads


def assert_same_layer(built, reference, num_nodes):
    """``built`` is the layer ``reference`` is: the same class and the same
    parameters, and, once ``reference`` gets ``built``'s weights (moved
    away from their initial values), the same output."""
    assert type(built) is type(reference)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    with torch.no_grad():
        for p in built.parameters():
            p.add_(torch.randn_like(p))
    reference.load_state_dict(built.state_dict())
    x = torch.randn(3, num_nodes, 4)
    torch.testing.assert_close(built(x), reference(x))

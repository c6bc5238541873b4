from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_skeleton import Skeleton
from pyg_skeleton.nn.conv.dynamic_hcsf_conv import DynamicHCSFConv
from pyg_skeleton.nn.conv.hcsf_conv import HCSFConv
from pyg_skeleton.nn.models.skeletal_gnn import (
    SkeletalGNN,
    SkeletalGNNAction,
    TemporalSkeletalGNN,
)
from pyg_skeleton.transforms.khop import KHopEdges

from _helpers import assert_same_layer


def count(module):
    return sum(p.numel() for p in module.parameters())


def fit(model, x, y, loss_fn, steps=15, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize('dynamic', [False, True])
def test_single_frame_model(dynamic):
    model = SkeletalGNN('h36m17', hidden_channels=16, dynamic=dynamic)
    convs = [m for m in model.modules() if isinstance(m, HCSFConv)]
    assert len(convs) == 6  # first layer, 2 blocks x 2, last layer
    assert all((c.S, c.L, c.d) == (1, 2, 1 / 8) for c in convs)
    assert all(isinstance(c, DynamicHCSFConv) == dynamic for c in convs)
    x = torch.randn(8, 17, 2)
    assert model(x).shape == (8, 17, 3)
    assert model(torch.randn(2, 3, 17, 2)).shape == (2, 3, 17, 3)
    model.eval()
    batch = Batch.from_data_list(
        [KHopEdges(2)(Skeleton.preset('h36m17').to_data(x=x[b]))
         for b in range(8)])
    out = model(batch.x, batch.khop_edge_index, batch.khop_distance)
    torch.testing.assert_close(out.view(8, 17, 3), model(x), atol=1e-5,
                               rtol=1e-4)
    assert torch.equal(out, model(batch.x,
                                  khop_edge_index=batch.khop_edge_index,
                                  khop_distance=batch.khop_distance))
    # PyG's protocol: whole copies of the skeleton are the static batch
    assert torch.equal(model(batch.x, batch.edge_index),
                       model(x).flatten(0, 1))


@pytest.mark.parametrize('dynamic', [False, True])
def test_single_frame_model_on_dropped_edges(dynamic):
    """The one-hop edge_index of a batch whose second skeleton lost its
    right hip (0 - 1): every layer aggregates over that graph's hop sets,
    the same as the hop pairs of its shortest paths from networkx."""
    torch.manual_seed(0)
    model = SkeletalGNN('h36m17', hidden_channels=16, dynamic=dynamic).eval()
    skeleton = Skeleton.preset('h36m17')
    ei = skeleton.edge_index
    cut = ~(((ei[0] == 0) & (ei[1] == 1)) | ((ei[0] == 1) & (ei[1] == 0)))
    batch = Batch.from_data_list([Data(edge_index=ei, num_nodes=17),
                                  Data(edge_index=ei[:, cut], num_nodes=17)])
    graph = nx.Graph()
    graph.add_nodes_from(range(34))
    graph.add_edges_from(batch.edge_index.t().tolist())
    pairs = [(j, i, k) for j, lengths in
             nx.all_pairs_shortest_path_length(graph, cutoff=2)
             for i, k in lengths.items() if k > 0]
    pairs = torch.tensor(pairs).t()
    x = torch.randn(34, 2)
    out = model(x, batch.edge_index)
    ref = model(x, khop_edge_index=pairs[:2], khop_distance=pairs[2])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    # the intact skeleton is the static one; the cut one differs
    torch.testing.assert_close(out[:17], model(x[:17]), atol=1e-5,
                               rtol=1e-4)
    assert not torch.allclose(out[17:], model(x[17:]), atol=1e-3)


def test_single_frame_model_learns_a_toy_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 17, 2)
    y = torch.cat([x, x[..., :1] * x[..., 1:]], -1)  # a fixed 2D -> 3D map
    model = SkeletalGNN('h36m17', hidden_channels=32, dropout=0.0,
                        dynamic=True)
    losses = fit(model, x, y, lambda a, b: (a - b).abs().mean())
    assert losses[-1] < 0.7 * losses[0]


def test_temporal_model():
    torch.manual_seed(0)
    skeleton = Skeleton.preset('h36m17')
    model = TemporalSkeletalGNN(skeleton, hidden_channels=16, dynamic=True,
                                dropout=0.0)
    convs = [m for m in model.modules() if isinstance(m, DynamicHCSFConv)]
    assert len(convs) == 4 and all(c.temporal_kernel == 3 for c in convs)
    x = torch.randn(4, 9, 17, 2)
    assert model(x).shape == (4, 9, 17, 3)
    y = torch.cat([x, x[..., :1].mean(1, keepdim=True).expand(-1, 9, -1, -1)],
                  -1)
    losses = fit(model, x, y, lambda a, b: (a - b).abs().mean())
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match=r'\[B, T, N, C\]'):
        model(torch.randn(9, 17, 2))


def test_action_model():
    torch.manual_seed(0)
    model = SkeletalGNNAction('ntu25', num_classes=4,
                              channels=(8, 8, 16, 16),
                              strides=(1, 2, 1, 2), temporal_kernel=3)
    convs = [m for m in model.modules() if isinstance(m, HCSFConv)]
    assert all((c.S, c.L, c.d) == (5, 7, 1 / 8) for c in convs)
    x = torch.randn(8, 2, 8, 25, 3)  # [B, M persons, T, N, C]
    assert model(x).shape == (8, 4)
    assert model(x[:, 0]).shape == (8, 4)
    y = torch.arange(8) % 4
    losses = fit(model, x, y, torch.nn.functional.cross_entropy, steps=10)
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match='one stride per block'):
        SkeletalGNNAction('ntu25', 4, channels=(8, 8), strides=(1, ))
    with pytest.raises(ValueError, match=r'\[B, \(M,\) T, 25, 3\]'):
        model(torch.randn(2, 8, 17, 3))


def test_action_model_paper_layout():
    model = SkeletalGNNAction('ntu25', num_classes=60)
    widths = [block.conv.out_channels for block in model.blocks]
    assert widths == [64, 64, 64, 128, 128, 128, 256, 256, 256]
    assert all(block.tcn.conv.kernel_size == (9, 1) for block in model.blocks)


@pytest.mark.parametrize('conv,kwargs,cls_name', [
    ('khop', dict(k=1), 'KHopConv'),
    ('mixhop', dict(hops=(1, 2)), 'MixHopSkeletonConv'),
    ('mshop', dict(hops=(1, 2)), 'MSHopConv'),
])
def test_models_with_baseline_hop_layers(conv, kwargs, cls_name):
    # Tab. 6's baselines in place of HCSF: every graph layer of the model is
    # the requested class with the requested hops, and the HCSF-only S, L, d
    # defaults are not passed to it.
    from pyg_skeleton.nn.models.skeletal_gnn import HOP_CONVS
    cls = HOP_CONVS[conv]
    assert cls.__name__ == cls_name
    x = torch.randn(4, 17, 2)
    for model, n in [
        (SkeletalGNN('h36m17', hidden_channels=12, conv=conv, **kwargs), 6),
        (TemporalSkeletalGNN('h36m17', hidden_channels=12, conv=conv, **kwargs), 4),
        (SkeletalGNNAction('h36m17', num_classes=5, channels=(8, 12),
                           strides=(1, 2), conv=conv, **kwargs), 2),
    ]:
        layers = [m for m in model.modules() if isinstance(m, cls)]
        assert len(layers) == n
        assert not any(isinstance(m, HCSFConv) for m in model.modules())
        if conv == 'khop':
            assert all(m.k == 1 for m in layers)
        else:
            assert all(list(m.hops) == [1, 2] for m in layers)
    assert SkeletalGNN('h36m17', hidden_channels=12, conv=conv,
                       **kwargs)(x).shape == (4, 17, 3)


def test_hop_layer_errors():
    with pytest.raises(ValueError, match="Unknown hop layer 'gcn'"):
        SkeletalGNN('h36m17', conv='gcn')
    with pytest.raises(ValueError, match="Dynamic hop graphs need the 'hcsf'"):
        SkeletalGNN('h36m17', conv='khop', dynamic=True)
    with pytest.raises(TypeError):  # S is an HCSF setting, not a k-hop one
        SkeletalGNN('h36m17', conv='khop', S=2)


# hcsf_layer takes a graph: a Skeleton or (edge_index, num_nodes). A ring of
# 40 nodes with two chords and an isolated node 40 (not a tree; its edges
# alone do not give the node count).
RING_EDGES = [(i, (i + 1) % 40) for i in range(40)] + [(0, 20), (5, 25)]


@pytest.mark.parametrize('conv,dynamic,kwargs', [
    ('hcsf', False, {}), ('hcsf', False, dict(S=2, L=3, d=0.25)),
    ('khop', False, {}), ('mixhop', False, {}), ('mshop', False, dict(hops=(1, 3))),
    ('hcsf', True, {}), ('hcsf', True, dict(graph='rand', offset=False)),
])
def test_hcsf_layer_on_a_bare_graph(conv, dynamic, kwargs):
    from pyg_skeleton.nn.models.skeletal_gnn import HOP_CONVS, hcsf_layer
    e = torch.tensor(RING_EDGES).t()
    ei = torch.cat([e, e.flip(0)], dim=1)
    cls = DynamicHCSFConv if dynamic else HOP_CONVS[conv]
    built = hcsf_layer(4, 5, (ei, 41), dynamic, conv, **kwargs)
    assert built.num_nodes == 41  # the isolated node counts
    assert_same_layer(built, cls(4, 5, ei, 41, **kwargs), 41)
    # the same module as on the equivalent Skeleton
    ring = Skeleton(41, RING_EDGES, require_connected=False)
    assert_same_layer(hcsf_layer(4, 5, ring, dynamic, conv, **kwargs),
                hcsf_layer(4, 5, (ei, 41), dynamic, conv, **kwargs), 41)


def test_hcsf_layer_covers_every_hop_layer():
    from pyg_skeleton.nn.models.skeletal_gnn import HOP_CONVS
    assert set(HOP_CONVS) == {'hcsf', 'khop', 'mixhop', 'mshop'}

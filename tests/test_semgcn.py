from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import SemGCN, SemGCNLoss, SemGraphConv
from pyg_skeleton.nn.models.semgcn import node_batch_norm

from _helpers import assert_same_layer


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('skeleton,non_local,expected', [
    # the official model's counts (README: 0.27M / 0.43M)
    ('h36m17', False, 267_373),
    ('h36m17', True, 434_733),
    ('h36m16', False, 267_343),
    ('h36m16', True, 434_703),
])
def test_parameter_count_matches_official_model(skeleton, non_local,
                                                expected):
    assert num_params(SemGCN(skeleton, non_local=non_local)) == expected


def test_architecture():
    model = SemGCN('h36m16', non_local=True)
    assert len(model.blocks) == 4 and len(model.non_locals) == 5
    assert isinstance(model.output, SemGraphConv)
    assert model.output.out_channels == 3
    # non-local blocks pool their keys over SemGCN's 8 joint groups
    assert model.non_locals[0].num_groups == 8
    assert repr(model) == ("SemGCN('h36m16', 2, 3, hidden_channels=128, "
                           "num_layers=4, non_local=True)")


def custom_skeleton():
    # a 6-joint chain with a branch, defined by the user as data
    return Skeleton.from_parents([-1, 0, 1, 1, 3, 0],
                                 flip_pairs=[(2, 5)], name='toy')


@pytest.mark.parametrize('non_local', [False, True])
@pytest.mark.parametrize('skeleton', ['h36m17', 'toy'])
def test_static_and_disjoint_batches_agree(skeleton, non_local):
    skeleton = custom_skeleton() if skeleton == 'toy' else Skeleton.preset(
        skeleton)
    torch.manual_seed(0)
    model = SemGCN(skeleton, hidden_channels=16, num_layers=2,
                   non_local=non_local)
    for m in model.modules():  # non-identity non-local blocks
        if isinstance(m, torch.nn.BatchNorm1d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
    b, n = 5, skeleton.num_joints
    x = torch.randn(b, n, 2)
    batch = Batch.from_data_list([skeleton.to_data(x=x[i]) for i in range(b)])
    for train in (True, False):  # batch statistics agree too
        model.train(train)
        static = model(x)
        disjoint = model(batch.x, batch.edge_index, batch.batch)
        assert static.shape == (b, n, 3)
        torch.testing.assert_close(disjoint.view(b, n, 3), static, atol=1e-5,
                                   rtol=1e-4)


def test_disjoint_non_local_needs_batch_vector():
    skeleton = Skeleton.preset('h36m17')
    model = SemGCN(skeleton, hidden_channels=8, num_layers=1, non_local=True)
    batch = Batch.from_data_list([skeleton.to_data(x=torch.randn(17, 2))] * 2)
    with pytest.raises(ValueError, match="needs the 'batch' vector"):
        model(batch.x, batch.edge_index)


def test_model_trains():
    # a learnable map: 3D = fixed linear function of 2D per joint
    torch.manual_seed(0)
    skeleton = Skeleton.preset('h36m17')
    model = SemGCN(skeleton, hidden_channels=32, num_layers=1)
    x = torch.randn(64, 17, 2)
    y = torch.cat([x, x.sum(-1, keepdim=True)], -1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = SemGCNLoss(skeleton)
    first = loss_fn(model(x), y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


def test_unknown_conv():
    with pytest.raises(ValueError, match="Unknown graph convolution 'gat'"):
        SemGCN('h36m17', conv='gat')


def test_custom_conv_callable():
    model = SemGCN(
        'h36m17', hidden_channels=8, num_layers=1,
        conv=lambda i, o, s: SemGraphConv(i, o, s.edge_index, channelwise=True))
    assert model.output.channelwise
    assert model(torch.randn(2, 17, 2)).shape == (2, 17, 3)


def test_semgcn_loss_against_loop():
    skeleton = Skeleton.preset('h36m17')
    parents = skeleton.parents
    pred, target = torch.randn(4, 17, 3), torch.randn(4, 17, 3)
    expected = 0.0
    for b in range(4):
        for j in range(17):
            expected += ((pred[b, j] - target[b, j])**2).sum()
            if parents[j] >= 0:
                bone_pred = pred[b, j] - pred[b, parents[j]]
                bone_gt = target[b, j] - target[b, parents[j]]
                expected += 0.5 * ((bone_pred - bone_gt)**2).sum()
    loss = SemGCNLoss(skeleton, bone_weight=0.5)(pred, target)
    torch.testing.assert_close(loss, expected / 4)
    joint_only = SemGCNLoss(skeleton, bone_weight=0)(pred, target)
    torch.testing.assert_close(joint_only,
                               (pred - target).square().sum() / 4)


def test_semgcn_loss_bad_shapes():
    loss = SemGCNLoss(Skeleton.preset('h36m17'))
    with pytest.raises(ValueError, match=r'\[..., 17, D\]'):
        loss(torch.randn(2, 16, 3), torch.randn(2, 16, 3))
    with pytest.raises(ValueError, match='same shape'):
        loss(torch.randn(2, 17, 3), torch.randn(2, 17, 2))


# node_batch_norm: batch normalisation over the channels of [..., N, C] ####
# In evaluation mode a plain BatchNorm1d with running statistics is applied
# as its affine map; the reference is the module itself on [B N, C].

def trained_bn(channels=5, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(channels, **kwargs).to(dtype)
    with torch.no_grad():
        bn(torch.randn(64, channels, dtype=dtype) * 3 + 1)  # running statistics
        if bn.affine:
            bn.weight.normal_()
            bn.bias.normal_()
    return bn.eval()


def module_bn(bn, x):
    return bn(x.reshape(-1, x.size(-1))).view(x.shape)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('affine', [True, False])
def test_node_batch_norm_matches_module(dtype, affine):
    bn = trained_bn(dtype=dtype, affine=affine)
    x = torch.randn(3, 4, 17, 5, dtype=dtype)
    with torch.inference_mode():
        out = node_batch_norm(bn, x)
        assert out.shape == x.shape and out.dtype == dtype
        torch.testing.assert_close(out, module_bn(bn, x))
        assert '_inference_cache' in bn.__dict__  # the affine map was kept


def test_node_batch_norm_follows_statistics_and_mode():
    bn = trained_bn()
    x = torch.randn(2, 17, 5)
    with torch.no_grad():
        first = node_batch_norm(bn, x)
        bn.running_mean.add_(1.0)  # in place, as a training step does
        torch.testing.assert_close(node_batch_norm(bn, x), module_bn(bn, x))
        assert not torch.allclose(node_batch_norm(bn, x), first)
        other = trained_bn()
        with torch.no_grad():
            other.running_var.mul_(4.0)
        bn.load_state_dict(other.state_dict())
        torch.testing.assert_close(node_batch_norm(bn, x), module_bn(other, x))
    # training mode normalises with the batch's statistics (mean: the bias)
    bn.train()
    out = node_batch_norm(bn, x)
    torch.testing.assert_close(out.mean((0, 1)), bn.bias.detach(), atol=1e-5,
                               rtol=0)
    # without running statistics, evaluation uses the batch's too
    plain = trained_bn(track_running_stats=False)
    torch.testing.assert_close(node_batch_norm(plain, x),
                               module_bn(plain, x))


def test_node_batch_norm_gradients_in_evaluation_mode():
    # e.g. fine-tuning with frozen statistics: nothing is cached and the
    # affine parameters get the module's gradients
    bn, ref = trained_bn(), trained_bn()
    x = torch.randn(2, 17, 5)
    w = torch.randn(2, 17, 5)
    (node_batch_norm(bn, x) * w).sum().backward()
    (module_bn(ref, x) * w).sum().backward()
    torch.testing.assert_close(bn.weight.grad, ref.weight.grad)
    torch.testing.assert_close(bn.bias.grad, ref.bias.grad)


def test_node_batch_norm_calls_the_module_when_observed():
    bn = trained_bn()
    x = torch.randn(2, 17, 5)
    seen = []
    handle = bn.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    with torch.inference_mode():
        out = node_batch_norm(bn, x)
    handle.remove()
    assert seen == [torch.Size([34, 5])]
    torch.testing.assert_close(out, module_bn(bn, x))
    # a subclass runs its own forward (e.g. DistBatchNorm1d)
    calls = []

    class Counting(torch.nn.BatchNorm1d):
        def forward(self, input):
            calls.append(1)
            return super().forward(input)

    counting = Counting(5).eval()
    counting.load_state_dict(bn.state_dict())
    torch.testing.assert_close(node_batch_norm(counting, x), out)
    assert calls == [1]


def test_node_batch_norm_reduced_precision_and_bad_channels():
    # bf16 features take BatchNorm's own kernel (it computes in float32)
    bn = trained_bn()
    x = torch.randn(2, 17, 5)
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = node_batch_norm(bn, x.bfloat16())
    torch.testing.assert_close(out, module_bn(bn, x.bfloat16()))
    # a feature size that would broadcast is an error, as for the module
    with pytest.raises(RuntimeError):
        node_batch_norm(bn, torch.randn(2, 17, 1))


def test_node_batch_norm_keeps_batch_norm_in_exported_graphs():
    # torch.export (and so the ONNX exporter) sees the module's operator
    model = SemGCN('h36m17', hidden_channels=8, num_layers=1).eval()
    program = torch.export.export(model, (torch.randn(2, 17, 2),))
    ops = [str(n.target) for n in program.graph.nodes if n.op == 'call_function']
    assert sum('batch_norm' in op for op in ops) == 3
    assert not any('addcmul' in op for op in ops)


def test_semgcn_eval_matches_module_batch_norm():
    # the whole model in evaluation mode, with and without the affine path
    model = SemGCN('h36m17', hidden_channels=16).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 17, 2)
    with torch.inference_mode():
        fast = model(x)
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(type(m)))
    try:
        with torch.inference_mode():
            slow = model(x)
    finally:
        handle.remove()
    assert seen.count(torch.nn.BatchNorm1d) == 9  # the module path ran
    torch.testing.assert_close(fast, slow)


# ---------------------------------------------------------------------------
# The layer builders take a graph: a Skeleton or (edge_index, num_nodes[,
# centre]).

# A ring of 40 nodes with two chords and an isolated node 40: not a tree,
# and a node count that its edges alone do not give.
RING_EDGES = [(i, (i + 1) % 40) for i in range(40)] + [(0, 20), (5, 25)]
RING = Skeleton(41, RING_EDGES, centre=3, require_connected=False)


def _ring_edge_index():
    # Both directions of every edge, built here rather than read from RING.
    e = torch.tensor(RING_EDGES).t()
    return torch.cat([e, e.flip(0)], dim=1)


def _graph_conv_classes():
    from pyg_skeleton.nn import (
        ConvStyleConv,
        FullSharingConv,
        NoSharingConv,
        PostAggConv,
        PreAggConv,
    )

    # name -> (class, keyword arguments) of every built-in GRAPH_CONVS entry
    return {
        'sem': (SemGraphConv, {}),
        'sem_channelwise': (SemGraphConv, dict(channelwise=True)),
        'vanilla': (FullSharingConv, {}),
        'full_decoupled': (FullSharingConv, dict(decoupled=True)),
        'pre_agg': (PreAggConv, {}),
        'pre_agg_decoupled': (PreAggConv, dict(decoupled=True)),
        'post_agg': (PostAggConv, {}),
        'post_agg_decoupled': (PostAggConv, dict(decoupled=True)),
        'conv_style': (ConvStyleConv, {}),
        'no_sharing': (NoSharingConv, {}),
    }


def test_graph_convs_table_is_the_one_tested():
    from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS
    assert set(GRAPH_CONVS) == set(_graph_conv_classes())


@pytest.mark.parametrize('name', sorted(_graph_conv_classes()))
def test_graph_conv_built_on_a_bare_graph(name):
    from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS, build_conv
    cls, kwargs = _graph_conv_classes()[name]
    ei = _ring_edge_index()
    centre = (3,) if name == 'conv_style' else ()
    if centre:
        kwargs = dict(centre=3)
    graph = (ei, 41, *centre)
    built = GRAPH_CONVS[name](4, 5, graph)
    assert built.num_nodes == 41  # the isolated node counts
    assert_same_layer(built, cls(4, 5, ei, num_nodes=41, **kwargs), 41)
    # build_conv takes the bare graph for a named convolution too
    assert_same_layer(build_conv(name, 4, 5, graph),
                cls(4, 5, ei, num_nodes=41, **kwargs), 41)
    # the same module as on the equivalent Skeleton (which has a centre)
    assert_same_layer(GRAPH_CONVS[name](4, 5, RING),
                GRAPH_CONVS[name](4, 5, (ei, 41, 3)), 41)


def test_graph_conv_on_a_sparse_adjacency():
    # A bare graph's edge_index may be PyG's adj_t (a SparseTensor): the
    # same layer as on the edge_index
    from torch_geometric.typing import SparseTensor

    from pyg_skeleton.nn import PreAggConv
    from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS, graph_parts
    ei = _ring_edge_index()
    adj_t = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(41, 41))
    edge_index, n, centre = graph_parts((adj_t, 41))
    assert n == 41 and centre is None
    assert edge_index.dtype == torch.long and edge_index.device.type == 'cpu'
    assert {tuple(e) for e in edge_index.t().tolist()} == {
        tuple(e) for e in ei.t().tolist()}
    assert_same_layer(GRAPH_CONVS['pre_agg'](4, 5, (adj_t, 41)),
                PreAggConv(4, 5, ei, 41), 41)


def test_graph_parts_of_a_skeleton_and_of_a_tuple():
    from pyg_skeleton.nn.models.semgcn import graph_parts
    edge_index, n, centre = graph_parts(RING)
    assert torch.equal(edge_index, RING.edge_index) and n == 41
    assert centre == 3
    ei = _ring_edge_index().int()
    edge_index, n, centre = graph_parts((ei, 41, 2))
    assert edge_index.dtype == torch.long and torch.equal(edge_index, ei.long())
    assert (n, centre) == (41, 2)
    # a centre read from a tensor is an int, as a skeleton's
    centre = graph_parts((ei, 41, torch.tensor(5)))[2]
    assert type(centre) is int and centre == 5
    assert graph_parts((ei, 41, None))[2] is None


@pytest.mark.parametrize('graph,message', [
    ('h36m17', "A graph must be a Skeleton, (edge_index, num_nodes) or "
     "(edge_index, num_nodes, centre) (got str)"),
    ([torch.zeros(2, 0, dtype=torch.long), 3], "A graph must be a Skeleton, "
     "(edge_index, num_nodes) or (edge_index, num_nodes, centre) (got list)"),
    ((torch.zeros(2, 0, dtype=torch.long),), "A graph must be a Skeleton, "
     "(edge_index, num_nodes) or (edge_index, num_nodes, centre) (got a "
     "tuple of length 1)"),
    ((torch.zeros(2, 0, dtype=torch.long), 3, 0, 1), "A graph must be a "
     "Skeleton, (edge_index, num_nodes) or (edge_index, num_nodes, centre) "
     "(got a tuple of length 4)"),
    (([[0, 1], [1, 0]], 2), "A graph's 'edge_index' must be a tensor (got "
     "list)"),
    ((torch.tensor([[0, 1], [1, 0]]), None), "'num_nodes' must be an "
     "integer (got None)"),
    ((torch.tensor([[0, 1], [1, 0]]), 2.5), "'num_nodes' must be an "
     "integer (got 2.5)"),
    ((torch.tensor([[0, 1], [1, 0]]), True), "'num_nodes' must be an "
     "integer (got True)"),
    ((torch.zeros(2, 0, dtype=torch.long), 0), "A graph needs at least one "
     "node"),
    ((torch.zeros(2, 0, dtype=torch.long), -3), "A graph needs at least one "
     "node"),
    ((torch.zeros(3, 4, dtype=torch.long), 5), "'edge_index' must have "
     "shape [2, num_edges] (got [3, 4])"),
    ((torch.tensor([0, 1, 1, 0]), 2), "'edge_index' must have shape "
     "[2, num_edges] (got [4])"),
    ((torch.tensor([[0., 1.], [1., 0.]]), 2), "'edge_index' must hold "
     "integer node ids (got torch.float32)"),
    ((torch.tensor([[0, 5], [5, 0]]), 5), "'edge_index' refers to nodes "
     "outside [0, 4]"),
    ((torch.tensor([[0, 1], [1, 0]]), 2, 1.5), "A graph's centre must be a "
     "node index (got 1.5)"),
    ((torch.tensor([[0, 1], [1, 0]]), 2, True), "A graph's centre must be a "
     "node index (got True)"),
    ((torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor(1.)), "A graph's centre "
     "must be a node index (got tensor(1.))"),
])
def test_builders_refuse_a_bad_graph(graph, message):
    from pyg_skeleton.nn.models.semgcn import (
        GRAPH_CONVS,
        GraphConvBlock,
        build_conv,
        graph_parts,
    )
    from pyg_skeleton.nn.models.skeletal_gnn import hcsf_layer
    for build in (graph_parts, lambda g: GRAPH_CONVS['sem'](2, 3, g),
                  lambda g: build_conv('no_sharing', 2, 3, g),
                  lambda g: GRAPH_CONVS['conv_style'](2, 3, g),
                  lambda g: GraphConvBlock(2, 3, g),
                  lambda g: hcsf_layer(2, 3, g)):
        with pytest.raises(ValueError) as info:
            build(graph)
        assert str(info.value) == message

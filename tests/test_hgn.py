from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from pyg_skeleton import Skeleton, validation
from pyg_skeleton.mesh import MeshHierarchy, read_mesh
from pyg_skeleton.nn.conv import SemGraphConv
from pyg_skeleton.nn.models.hgn import (
    HGN,
    HGNLoss,
    MultiScaleFusion,
    NodeMap,
)
from pyg_skeleton.nn.non_local import NonLocalBlock

from _helpers import SHARED_DATA, count_node_maps, grid_mesh

MAKEHUMAN = SHARED_DATA / 'meshes' / 'makehuman_body.npz'


@pytest.fixture(scope='module')
def hierarchy():
    if MAKEHUMAN.exists():
        mesh = read_mesh(MAKEHUMAN)
    else:  # a stand-in of the same kind
        mesh = grid_mesh(40, 30)
    return MeshHierarchy.from_mesh(mesh, max_nodes=49, padded=True)


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def non_local_params(c):
    inter = c // 2
    # theta, phi, g (1x1 with bias) + concat projection (no bias)
    # + output projection (with bias) + batch norm
    return 3 * (c * inter + inter) + 2 * inter + (inter * c + c) + 2 * c


def conv_params(cin, cout, n, e):
    return 2 * cin * cout + (n + e) + cout


def hgn_params(nodes, edges, c=128, cin=2, cout=3, blocks=(4, 4, 2),
               maps=()):
    total = conv_params(cin, c, nodes[0], edges[0]) + 2 * c  # input + BN
    for n, e, b in zip(nodes, edges, blocks):
        res = 2 * (conv_params(c, c, n, e) + 2 * c)
        total += b * (res + non_local_params(c))
        total += conv_params(c, cout, n, e)  # head
    total += sum(nodes[i] * nodes[j] + nodes[j] for i, j in maps)
    return total


# The official fc_* maps (lib/models/hgn.py), 19: 0->1 (fc_1_2_1);
# fuse(0,1) (fc_*_2); fuse(0,1) before branch 2 joins (fc_2_1_3, fc_1_2_3);
# 0->2, 1->2 (fc_1_3_3, fc_2_3_3); fuse(0,1,2) twice (fc_*_4, fc_*_5)
THREE_WAY = [(i, j) for i in range(3) for j in range(3) if i != j]
OFFICIAL_MAPS = ([(0, 1), (0, 1), (1, 0), (1, 0), (0, 1), (0, 2), (1, 2)] +
                 2 * THREE_WAY)
# fuse_on_join=False, the previous default: no fusion before branch 2 joins
NO_PRE_JOIN_MAPS = [(0, 1), (0, 1), (1, 0), (0, 2), (1, 2)] + 2 * THREE_WAY


def graph_with_nnz(n, nnz, seed=0):
    """A random undirected graph on n nodes with a self-loop at every node
    and nnz non-zeros of its adjacency in all."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.combinations(torch.arange(n))
    pick = pairs[torch.randperm(pairs.size(0), generator=g)[:(nnz - n) // 2]]
    loops = torch.arange(n).repeat(2, 1)
    ei = torch.cat([pick.t(), pick.t().flip(0), loops], 1)
    assert ei.size(1) == nnz
    return ei, n


def test_non_local_oracle():
    assert non_local_params(128) == num_params(NonLocalBlock(128)) == 33472


def test_parameter_count_official_sizes():
    # The official model (lib/models/hgn.py) on the official SMPL graphs has
    # 1,045,621 parameters (issue 20): 1,040,527 besides the edge logits
    # (operators.md 3.6, 19 maps) and 10*49 + 9*nnz48 + 5*nnz96 = 5,094
    # logits. Graphs of the official sizes with a self-loop at every node
    # (so that ours has no logit the official layer lacks) and 256 and 460
    # non-zeros satisfy that sum.
    skeleton = Skeleton.preset('h36m17')
    graphs = [graph_with_nnz(48, 256), graph_with_nnz(96, 460)]
    assert 10 * 49 + 9 * 256 + 5 * 460 == 1045621 - 1040527
    model = HGN(skeleton, graphs)
    assert num_params(model) == 1045621
    assert sum(isinstance(m, NodeMap) for m in model.modules()) == 19
    logits = sum(p.numel() for n, p in model.named_parameters()
                 if n.endswith('logits'))
    assert num_params(model) - logits == 1040527
    edges = [skeleton.edge_index.size(1), 256 - 48, 460 - 96]
    assert num_params(model) == hgn_params([17, 48, 96], edges,
                                           maps=OFFICIAL_MAPS)
    legacy = HGN(skeleton, graphs, fuse_on_join=False)
    assert sum(isinstance(m, NodeMap) for m in legacy.modules()) == 17
    # operators.md 3.6: one two-way 17 <-> 48 fusion fewer
    assert num_params(legacy) == 1045621 - (17 * 48 + 48) - (48 * 17 + 17)
    assert num_params(legacy) == hgn_params([17, 48, 96], edges,
                                            maps=NO_PRE_JOIN_MAPS)


def test_forward_on_mesh_hierarchy(hierarchy):
    h = hierarchy
    model = HGN.from_hierarchy('h36m17', h, hidden_channels=16)
    n1, n2 = h.num_padded(-2), h.num_padded(-3)
    assert model.num_nodes == [17, n1, n2]
    x = torch.randn(2, 17, 2)
    pose, m1, m2 = model(x)
    assert pose.shape == (2, 17, 3)
    assert m1.shape == (2, n1, 3) and m2.shape == (2, n2, 3)
    edges = [32, h.padded_edge_index(-2).size(1),
             h.padded_edge_index(-3).size(1)]
    nodes = [17, n1, n2]
    assert num_params(model) == hgn_params(nodes, edges, c=16,
                                           maps=OFFICIAL_MAPS)
    masks = model.real_masks()
    assert int(masks[0].sum()) == h.num_nodes[-2]
    # the loss on the real vertices of each level
    target = [h.pad(h.level_positions(lv).expand(2, -1, -1), lv)
              for lv in (-2, -3)]
    loss = HGNLoss()(pose, [m1, m2], torch.zeros(2, 17, 3), target, masks)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.heads[2].lin_self.weight.grad is not None


@pytest.mark.parametrize('fusion,order', [('linear', 'parallel'),
                                          ('linear', 'sequential'),
                                          ('pool', 'parallel')])
def test_static_equals_disjoint(hierarchy, fusion, order):
    torch.manual_seed(0)
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               num_blocks=(2, 2, 1), fusion=fusion,
                               fusion_order=order)
    x = torch.randn(3, 17, 2)
    batch = torch.arange(3).repeat_interleave(17)
    for train in (True, False):
        model.train(train)
        static = model(x)
        disjoint = model(x.reshape(-1, 2), batch)
        # The disjoint batch runs the static model on a view: the same
        # numbers, bit for bit, batch-norm statistics included.
        for a, b in zip(static, disjoint):
            assert torch.equal(a.reshape(-1, 3), b)
    # Independent of the batch layout: each sample alone (evaluation mode,
    # so that batch norm does not couple the samples).
    for b, graphs in enumerate(zip(*[out.view(3, -1, 3) for out in disjoint])):
        alone = model(x[b:b + 1])
        for a, ref in zip(graphs, alone):
            torch.testing.assert_close(a, ref[0], atol=1e-6, rtol=1e-5)


def test_disjoint_batch_must_be_whole_skeletons(hierarchy):
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               num_blocks=(1, 1, 1)).eval()
    x = torch.randn(34, 2)
    batch = torch.arange(2).repeat_interleave(17)

    def fails(x, batch, *parts):
        with pytest.raises(ValueError) as e:
            model(x, batch)
        message = str(e.value)
        assert '\n' not in message and "'HGN'" in message
        assert all(p in message for p in parts), message

    fails(x[:-1], batch[:-1], 'whole graphs', 'exactly 17 joints', '33 rows')
    # The same number of rows, but graphs of 16 and 18 joints:
    ragged = torch.cat([torch.zeros(16), torch.ones(18)]).long()
    fails(x, ragged, 'exactly 17 joints', 'row 16 is in graph 1, not 0')
    fails(x, batch.flip(0), 'sorted')
    fails(x, batch[:-1], 'one entry per node (34; got shape (33,))')
    fails(x.view(2, 17, 2), batch, '[B * 17, C]', '[2, 17, 2]')
    # Without validation the values are trusted (no host synchronisation);
    # the shapes are still checked.
    with validation(False):
        assert torch.equal(model(x, ragged)[0], model(x, batch)[0])
        fails(x[:-1], batch[:-1], '33 rows')


def test_disjoint_batch_by_edge_index(hierarchy):
    # A PyG Batch of skeleton graphs, by its edge_index (keyword), its batch
    # vector or both: the static model's numbers, bit for bit.
    torch.manual_seed(0)
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               num_blocks=(2, 2, 1)).eval()
    skeleton = Skeleton.preset('h36m17')
    x = torch.randn(3, 17, 2)
    data = Batch.from_data_list([skeleton.to_data(x=p) for p in x])
    static = model(x)
    shuffled = data.edge_index[:, torch.randperm(data.edge_index.size(1))]
    for kwargs in ({'edge_index': data.edge_index},
                   {'edge_index': shuffled, 'batch': data.batch},
                   {'batch': data.batch}):
        out = model(data.x, **kwargs)
        assert all(torch.equal(a.reshape(-1, 3), b)
                   for a, b in zip(static, out))
    # Not whole skeletons: an edge dropped, or a row too few.
    for x_in, edges in ((data.x, data.edge_index[:, 1:]),
                        (data.x[:-1], data.edge_index[:, :-2])):
        with pytest.raises(ValueError) as e:
            model(x_in, edge_index=edges)
        assert str(e.value) == (
            f"'HGN' needs the 'edge_index' of whole skeletons: every edge "
            f"of each copy of the 17-joint skeleton once (got "
            f"{edges.size(1)} edges for {x_in.size(0)} rows)")
    with pytest.raises(ValueError, match='not an edge'):
        model(data.x, edge_index=torch.tensor([[0], [16]]).repeat(
            1, data.edge_index.size(1)))


def test_pool_fusion_has_no_mesh_maps(hierarchy):
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               fusion='pool')
    maps = [m for m in model.modules() if isinstance(m, NodeMap)]
    # only skeleton <-> mesh maps are learned: 1 + 2 + 2 + 1 + 4 + 4
    assert len(maps) == 14


def test_fusion_orders():
    torch.manual_seed(0)
    fusion = MultiScaleFusion([3, 4, 5]).double()
    xs = [torch.randn(2, n, 6, dtype=torch.float64) for n in (3, 4, 5)]
    T = fusion.maps
    par = fusion(xs)
    assert torch.allclose(par[1], xs[1] + T['0_1'](xs[0]) + T['2_1'](xs[2]))
    fusion.order = 'sequential'
    seq = fusion(xs)
    y0 = xs[0] + T['1_0'](xs[1]) + T['2_0'](xs[2])
    y1 = xs[1] + T['0_1'](y0) + T['2_1'](xs[2])
    y2 = xs[2] + T['0_2'](y0) + T['1_2'](y1)
    for a, b in zip(seq, (y0, y1, y2)):
        assert torch.allclose(a, b)
    assert not torch.allclose(seq[1], par[1])


@pytest.mark.parametrize('order', ['parallel', 'sequential'])
def test_fusion_gradcheck(order):
    torch.manual_seed(0)
    fusion = MultiScaleFusion([2, 3, 4], order=order).double()
    xs = tuple(torch.randn(2, n, 3, dtype=torch.float64, requires_grad=True)
               for n in (2, 3, 4))
    assert torch.autograd.gradcheck(lambda *t: tuple(fusion(list(t))), xs)
    names = [n for n, _ in fusion.named_parameters()]
    fixed = [x.detach() for x in xs]

    def by_params(*ps):
        out = torch.func.functional_call(fusion, dict(zip(names, ps)),
                                         (fixed, ))
        return tuple(out)
    params = tuple(p.detach().clone().requires_grad_()
                   for p in fusion.parameters())
    assert torch.autograd.gradcheck(by_params, params)


def test_node_map_is_conv1d():
    m = NodeMap(5, 7)
    conv = torch.nn.Conv1d(5, 7, 1)
    conv.weight.data = m.weight.data.unsqueeze(-1)
    conv.bias.data = m.bias.data
    x = torch.randn(3, 5, 11)
    assert torch.allclose(m(x), conv(x), atol=1e-6)
    assert torch.allclose(m(x[0]), conv(x[0]), atol=1e-6)
    x4 = torch.randn(2, 3, 5, 11)
    assert torch.allclose(m(x4), conv(x4.view(6, 5, 11)).view(2, 3, 7, 11),
                          atol=1e-6)
    m.bias = None
    conv.bias = None
    assert torch.allclose(m(x), conv(x), atol=1e-6)
    assert torch.allclose(m(x[0]), conv(x[0]), atol=1e-6)


def test_loss():
    pose = torch.ones(2, 17, 3)
    mesh = [torch.zeros(2, 4, 3), torch.zeros(2, 6, 3)]
    target = [torch.ones(2, 4, 3), torch.ones(2, 6, 3)]
    mask = [None, torch.tensor([True] * 5 + [False])]
    loss = HGNLoss()(pose, mesh, torch.zeros(2, 17, 3), target, mask)
    assert torch.isclose(loss, torch.tensor(17 * 3 + 0.01 * (12 + 15.)))
    official = HGNLoss.official()(pose, mesh, torch.zeros(2, 17, 3), target,
                                  mask)
    assert torch.isclose(official, torch.tensor(100. + 1. + 1.))


def test_padded_nodes_uniform_reaches_mesh_convolutions(hierarchy):
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               num_blocks=(2, 2, 1), padded_nodes='uniform')
    fake = [~m for m in model.real_masks()]
    assert all(bool(f.any()) for f in fake)
    convs = [m for m in model.modules() if isinstance(m, SemGraphConv)]
    # input + 2 per block + head on the skeleton; 2 per block + head on meshes
    assert len(convs) == 1 + 2 * 5 + 3
    for conv in convs:
        if conv.num_nodes == 17:
            assert conv.uniform_nodes is None
        else:
            k = [m.numel() for m in fake].index(conv.num_nodes)
            assert conv.uniform_nodes.equal(fake[k])
    default = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                                 num_blocks=(2, 2, 1))
    assert all(m.uniform_nodes is None for m in default.modules()
               if isinstance(m, SemGraphConv))
    assert "padded_nodes='uniform'" in repr(model)


def test_bad_configs():
    with pytest.raises(ValueError, match='padded_nodes'):
        HGN('h36m17', [(torch.zeros(2, 0, dtype=torch.long), 4)],
            num_blocks=(2, 2), padded_nodes='mean')
    with pytest.raises(ValueError, match='one entry per branch'):
        HGN('h36m17', [(torch.zeros(2, 0, dtype=torch.long), 4)],
            num_blocks=(4, 4, 2))
    with pytest.raises(ValueError, match='non-increasing'):
        HGN('h36m17', [(torch.zeros(2, 0, dtype=torch.long), 4)],
            num_blocks=(2, 4))
    with pytest.raises(ValueError, match='pool_maps'):
        HGN('h36m17', [(torch.zeros(2, 0, dtype=torch.long), 4)],
            num_blocks=(2, 2), fusion='pool')


# Fine meshes (issue 25) #####################################################

@pytest.fixture(scope='module')
def fine():
    # A 3,000-vertex mesh and its HEM level 2 (about 800 nodes): every
    # mesh-to-mesh pair is over DENSE_MAP_MAX_WEIGHTS, both branches over
    # the 256 nodes of ungrouped non-local keys.
    torch.manual_seed(0)
    h = MeshHierarchy.from_mesh(grid_mesh(60, 50), levels=2)
    model = HGN.from_hierarchy('h36m17', h, mesh_levels=(2, 0), padded=False,
                               hidden_channels=8, num_blocks=(2, 2, 1))
    return h, model


def test_auto_fusion_keeps_dense_maps_on_official_sizes(hierarchy):
    skeleton = Skeleton.preset('h36m17')
    graphs = [graph_with_nnz(48, 256), graph_with_nnz(96, 460)]
    torch.manual_seed(0)
    auto = HGN(skeleton, graphs)
    torch.manual_seed(0)
    linear = HGN(skeleton, graphs, fusion='linear')
    assert auto.fusion == 'auto'
    assert sum(isinstance(m, NodeMap) for m in auto.modules()) == 19
    sd_auto, sd_linear = auto.state_dict(), linear.state_dict()
    assert list(sd_auto) == list(sd_linear)
    assert all(torch.equal(sd_auto[k], sd_linear[k]) for k in sd_auto)
    # The padded levels of a hierarchy (96 and 192 nodes on MakeHuman) are
    # small too: learned maps everywhere, though pooling maps are at hand.
    model = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8)
    assert max(model.num_nodes[1] * model.num_nodes[2], 48 * 96) <= 2**16
    assert sum(isinstance(m, NodeMap) for m in model.modules()) == 19
    assert all(g is None for g in model.key_groups)


def test_auto_fusion_pools_on_fine_mesh(fine):
    from pyg_skeleton.mesh import HEMPool, HEMUnpool
    h, model = fine
    n1, n2 = h.num_nodes[2], h.num_nodes[0]
    assert model.num_nodes == [17, n1, n2] and n1 * n2 > 2**16
    # (2, 2, 1): join 0->1; fusion (0, 1) before branch 2 joins; join
    # 0->2, 1->2; fusion of all three. Learned exactly where the skeleton
    # is one side (8 maps), pooling maps between the mesh branches (3).
    maps = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, (NodeMap, HEMPool, HEMUnpool)):
            maps[name] = m
    learned = {k for k, m in maps.items() if isinstance(m, NodeMap)}
    assert learned == {'joins.1.maps.0', 'pre_join_fusions.1.maps.0_1',
                       'pre_join_fusions.1.maps.1_0', 'joins.2.maps.0',
                       'fusions.1.maps.0_1', 'fusions.1.maps.1_0',
                       'fusions.1.maps.0_2', 'fusions.1.maps.2_0'}
    assert len(maps) == 11
    assert isinstance(maps['joins.2.maps.1'], HEMUnpool)
    assert isinstance(maps['fusions.1.maps.1_2'], HEMUnpool)
    assert isinstance(maps['fusions.1.maps.2_1'], HEMPool)
    # The fused mesh vertices read their coarse cluster's features (a
    # copy), the coarse nodes the dyadic average of their vertices.
    fusion = model.fusions['1']
    xs = [torch.randn(2, n, 4) for n in model.num_nodes]
    y0, y1, y2 = fusion(xs)
    cluster = h.assignment(0, 2)
    T = fusion.maps
    torch.testing.assert_close(
        y2, xs[2] + T['0_2'](xs[0]) + xs[1][:, cluster])
    pooled = torch.zeros(2, n1, 4)
    w = h.pool_op(0, 2).weight.float()
    for v in range(n2):
        pooled[:, cluster[v]] += w[v] * xs[2][:, v]
    torch.testing.assert_close(y1, xs[1] + T['0_1'](xs[0]) + pooled)


def test_fine_mesh_parameters_grow_linearly():
    counts = []
    for rows in (30, 60):
        h = MeshHierarchy.from_mesh(grid_mesh(rows, 30), levels=2)
        model = HGN.from_hierarchy('h36m17', h, mesh_levels=(2, 0),
                                   padded=False, hidden_channels=8,
                                   num_blocks=(2, 2, 1), non_local=False)
        nodes = [17, h.num_nodes[2], h.num_nodes[0]]
        edges = [32, h.edge_index(2).size(1), h.edge_index(0).size(1)]
        # Learned maps only to and from the skeleton (17 x N_k):
        maps = [(0, 1), (0, 1), (1, 0), (0, 2), (0, 1), (1, 0), (0, 2),
                (2, 0)]
        expected = hgn_params(nodes, edges, c=8, blocks=(2, 2, 1),
                              maps=maps)
        expected -= 5 * non_local_params(8)  # non_local=False
        assert num_params(model) == expected
        counts.append((nodes[2], num_params(model)))
    (na, pa), (nb, pb) = counts
    assert nb == 2 * na
    # Twice the vertices: at most twice the parameters (the dense maps of
    # fusion='linear' would have four times the mesh-to-mesh weights).
    assert pb < 2 * pa
    dense = sum(m.weight.numel() for m in HGN.from_hierarchy(
        'h36m17', h, mesh_levels=(2, 0), padded=False, hidden_channels=8,
        num_blocks=(2, 2, 1), non_local=False, fusion='linear').modules()
        if isinstance(m, NodeMap))
    assert dense > 3 * nodes[1] * nodes[2]


def test_no_node_map_built_for_unused_pairs(monkeypatch, fine):
    h, _ = fine
    built = count_node_maps(monkeypatch)
    model = HGN.from_hierarchy('h36m17', h, mesh_levels=(2, 0), padded=False,
                               hidden_channels=4, num_blocks=(2, 2, 1),
                               non_local=False)
    used = [m for m in model.modules() if isinstance(m, NodeMap)]
    assert len(built) == len(used) == 8
    assert all(17 in args for args in built)
    built.clear()
    model = HGN.from_hierarchy('h36m17', h, mesh_levels=(2, 0), padded=False,
                               hidden_channels=4, num_blocks=(2, 2, 1),
                               non_local=False, fusion='pool')
    assert len(built) == sum(isinstance(m, NodeMap)
                             for m in model.modules()) == 8


def test_fine_mesh_forward_backward(fine):
    from torch.utils._python_dispatch import TorchDispatchMode
    h, model = fine
    model.train()
    n1, n2 = model.num_nodes[1:]

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out, )):
                if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                    Largest.numel = max(Largest.numel, t.numel())
            return out

    x = torch.randn(2, 17, 2)
    with Largest():
        pose, m1, m2 = model(x)
        (pose.sum() + m1.sum() + m2.sum()).backward()
    assert pose.shape == (2, 17, 3)
    assert m1.shape == (2, n1, 3) and m2.shape == (2, n2, 3)
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all())
               for p in model.parameters())
    # No tensor near a dense mesh-to-mesh map or an N x N affinity: the
    # largest are the [B, N, C] features and the edge lists.
    assert Largest.numel < n1 * n2 / 10
    assert Largest.numel <= 2 * n2 * max(8, 2) * 4
    # A disjoint batch gives the same outputs.
    model.eval()
    static = model(x)
    disjoint = model(x.reshape(-1, 2), torch.arange(2).repeat_interleave(17))
    for a, b in zip(static, disjoint):
        assert torch.equal(a.reshape(-1, 3), b)


def test_non_local_keys_pooled_on_large_branches(fine, hierarchy):
    from pyg_skeleton.nn.models.hgn import branch_key_groups
    from pyg_skeleton.nn.non_local import mesh_groups
    h, model = fine
    expected = [None, mesh_groups(h.edge_index(2), h.num_nodes[2]),
                mesh_groups(h.edge_index(0), h.num_nodes[0])]
    assert model.key_groups == expected
    for k, blocks in enumerate(model.non_locals):
        for block in blocks:
            assert block.groups == expected[k]
    assert 1 < len(expected[2]) <= 256
    # The small (official-sized) branches keep one key per node.
    small = HGN.from_hierarchy('h36m17', hierarchy, hidden_channels=8,
                               num_blocks=(2, 2, 1))
    assert all(b.groups is None for bs in small.non_locals for b in bs)
    # A padded level: the fake nodes (no edge) form one group of their own,
    # the real ones the clusters of their own graph.
    hp = MeshHierarchy.from_mesh(grid_mesh(30, 20), levels=1, padded=True)
    ei, n = hp.padded_edge_index(0), hp.num_padded(0)
    real = hp.positions_of(0)
    assert n > 256 and real.numel() < n
    groups = branch_key_groups(ei, n)
    fake = (~hp.real_mask(0)).nonzero().view(-1).tolist()
    assert groups[-1] == fake
    order = torch.empty(n, dtype=torch.long)
    order[real] = torch.arange(real.numel())
    # Positions of real nodes, relabelled in position order:
    pos_sorted = real.sort().values
    relabel = torch.full((n, ), -1, dtype=torch.long)
    relabel[pos_sorted] = torch.arange(real.numel())
    inner = mesh_groups(relabel[ei], real.numel())
    assert groups[:-1] == [pos_sorted[g].tolist() for g in inner]
    assert sorted(v for g in groups for v in g) == list(range(n))
    assert branch_key_groups(ei[:, :10], 200) is None


def test_dense_maps_fail_early_on_fine_mesh(monkeypatch, fine):
    h, _ = fine
    built = count_node_maps(monkeypatch)
    n1, n2 = h.num_nodes[2], h.num_nodes[0]
    # Forced dense maps: the 8 skeleton maps (0->1 three times, 1->0 and
    # 0->2 twice, 2->0) and 3 mesh-to-mesh maps (1->2 twice, 2->1),
    # weights and biases in float32: about 28 MB.
    total = 4 * (3 * 18 * n1 + 2 * (n1 + 1) * 17 + 2 * 18 * n2 +
                 (n2 + 1) * 17 + 2 * (n1 + 1) * n2 + (n2 + 1) * n1)
    kwargs = dict(mesh_levels=(2, 0), padded=False, hidden_channels=4,
                  num_blocks=(2, 2, 1), non_local=False)
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB',
                       str(total * (1 - 1e-6) / 2**30))
    with pytest.raises(MemoryError, match=rf"'HGN' would allocate "
                       rf"{total / 2**30:.3g} GB for 11 dense node maps \(the largest {n2} x "
                       rf"{n1}\).*fusion='auto'"):
        HGN.from_hierarchy('h36m17', h, fusion='linear', **kwargs)
    assert built == []  # refused before any map was allocated
    # The default fits under the same limit: its learned maps are 17 x N.
    HGN.from_hierarchy('h36m17', h, **kwargs)
    assert len(built) == 8
    built.clear()
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB',
                       str(total * (1 + 1e-6) / 2**30))
    HGN.from_hierarchy('h36m17', h, fusion='linear', **kwargs)
    assert len(built) == 11


def test_auto_fusion_needs_pool_maps_for_large_pairs(fine):
    h, _ = fine
    graphs = [(h.edge_index(2), h.num_nodes[2]),
              (h.edge_index(0), h.num_nodes[0])]
    with pytest.raises(ValueError, match=r"fusion='auto' would need a dense "
                       r"\d+ x \d+ map from branch 1 to branch 2.*"
                       r"HGN.from_hierarchy.*fusion='linear'"):
        HGN('h36m17', graphs, hidden_channels=4, num_blocks=(2, 2, 1),
            non_local=False)


def test_branch_blocks_built_on_mesh_graphs():
    # The semgcn block builders take a mesh graph (edge_index, num_nodes)
    # for a callable convolution, as HGN's branches, with no stand-in
    # skeleton, and for a named convolution.
    from pyg_skeleton.nn.models.semgcn import GraphConvBlock, ResGraphBlock
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    seen = []

    def conv(i, o, graph):
        seen.append(graph)
        return SemGraphConv(i, o, *graph)

    block = ResGraphBlock(4, (ei, 5), conv)
    assert len(seen) == 2 and all(g[0] is ei and g[1] == 5 for g in seen)
    assert block(torch.randn(3, 5, 4)).shape == (3, 5, 4)
    named = GraphConvBlock(2, 4, (ei, 5)).conv
    assert isinstance(named, SemGraphConv) and named.num_nodes == 5

    # HGN's mesh branches: graph convolutions on each branch's own graph.
    graphs = [(ei, 5), (torch.tensor([[0, 1], [1, 0]]), 7)]
    model = HGN('h36m17', graphs, hidden_channels=4, num_blocks=(2, 2, 1))
    assert model.num_nodes == [17, 5, 7]
    for k, (edges, n) in enumerate(model.graphs):
        for layer in (model.blocks[k][0].block1.conv, model.heads[k]):
            assert isinstance(layer, SemGraphConv)
            assert layer.num_nodes == n
    assert model.input.conv.num_nodes == 17

from pathlib import Path

import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.mesh import Mesh, MeshHierarchy, read_mesh
from pyg_skeleton.nn.models.hgn import (
    HGN,
    HGNLoss,
    MultiScaleFusion,
    NodeMap,
)
from pyg_skeleton.nn.conv import SemGraphConv
from pyg_skeleton.nn.non_local import NonLocalBlock

SHARED = Path(__file__).resolve().parents[2] / 'shared'
MAKEHUMAN = SHARED / 'data' / 'meshes' / 'makehuman_body.npz'


def grid_mesh(rows, cols):
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    pos = torch.rand(rows * cols, 3)
    return Mesh(pos, faces)


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
        for a, b in zip(static, disjoint):
            assert torch.allclose(a.reshape(-1, 3), b, atol=1e-5)


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

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import SemGCN, SemGCNLoss, SemGraphConv


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

"""Published weights of the official SemGCN, weight-sharing and HGN code.

The references below are dense re-implementations of the official forward
passes, written here from the official code's description (operators.md
sections 1, 3 and 4): a semantic graph convolution fills its logits into
the non-zeros of the adjacency row by row, -9e15 elsewhere, and applies a
row softmax; an empty row is therefore uniform over all nodes. They read the
official parameter layout (names and shapes of the official modules), which
the tests build at random and save as the official scripts do.
"""
from __future__ import annotations

import math
import pickle

import pytest
import torch

from pyg_skeleton.nn import HGN, SemGCN, SemGraphConv
from pyg_skeleton.nn.models.official import load_official_state_dict

FILL = -9e15
H36M16_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14]
H36M17_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
# SemGCN's non-local groups of the 16 joints (sem_gcn.py, h36m_dataset.py)
H36M16_GROUPS = [[2, 3], [5, 6], [1, 4], [0, 7], [8, 9], [14, 15], [11, 12],
                 [10, 13]]


# -- dense official forward passes --------------------------------------


def skeleton_mask(parents):
    """The official skeleton adjacency's non-zeros: A + I."""
    n = len(parents)
    mask = torch.eye(n, dtype=torch.bool)
    for c, p in enumerate(parents):
        if p >= 0:
            mask[c, p] = mask[p, c] = True
    return mask


def sem_conv(p, key, mask, x, pre_agg=False):
    w, e, b = p[f'{key}.W'], p[f'{key}.e'], p[f'{key}.bias']
    n = mask.size(0)
    logits = torch.full((n, n), FILL, dtype=x.dtype)
    logits[mask] = e[0]  # boolean indexing walks the mask row by row
    att = torch.softmax(logits, dim=1)
    eye = torch.eye(n, dtype=x.dtype)
    if pre_agg:  # one self and one neighbour matrix per (source) node
        h0 = torch.stack([x[:, i] @ w[i] for i in range(n)], 1)
        h1 = torch.stack([x[:, i] @ w[n + i] for i in range(n)], 1)
    else:
        h0, h1 = x @ w[0], x @ w[1]
    return (att * eye) @ h0 + (att * (1 - eye)) @ h1 + b


def batch_norm(p, key, x, train):
    """BatchNorm1d over [B, C, N]: statistics over samples and nodes."""
    if train:
        mean, var = x.mean((0, 1)), x.var((0, 1), unbiased=False)
    else:
        mean, var = p[f'{key}.running_mean'], p[f'{key}.running_var']
    return (x - mean) / torch.sqrt(var + 1e-5) * p[f'{key}.weight'] + \
        p[f'{key}.bias']


def conv_block(p, key, mask, x, train, pre_agg=False):
    h = sem_conv(p, f'{key}.gconv', mask, x, pre_agg)
    return batch_norm(p, f'{key}.bn', h, train).relu()


def res_block(p, key, mask, x, train, pre_agg=False):
    h = conv_block(p, f'{key}.gconv1', mask, x, train, pre_agg)
    return x + conv_block(p, f'{key}.gconv2', mask, h, train, pre_agg)


def non_local(p, key, x, train, groups=None):
    """The concatenation non-local block; with groups, the official joint
    reordering and max-pooling of consecutive runs of the group size."""
    if groups is not None:
        order = [v for g in groups for v in g]
        x = x[:, order]
        size = len(groups[0])
    sub = '.0' if groups is not None else ''

    def conv(name, t, pooled):
        s = sub if pooled else ''
        w, b = p[f'{key}.{name}{s}.weight'], p[f'{key}.{name}{s}.bias']
        out = t @ w[..., 0].t() + b
        if pooled and groups is not None:
            out = out.view(out.size(0), -1, size, out.size(-1)).amax(2)
        return out

    theta, phi, g = conv('theta', x, False), conv('phi', x, True), \
        conv('g', x, True)
    m = theta.size(-1)
    w = p[f'{key}.concat_project.0.weight'].view(-1)
    f = torch.relu((theta @ w[:m]).unsqueeze(-1) +
                   (phi @ w[m:]).unsqueeze(-2)) / phi.size(1)
    y = (f @ g) @ p[f'{key}.W.0.weight'][..., 0].t() + p[f'{key}.W.0.bias']
    z = batch_norm(p, f'{key}.W.1', y, train) + x
    if groups is not None:
        z = z[:, torch.tensor(order).argsort()]
    return z


def semgcn_official(p, mask, x, train, groups=None, pre_agg=False):
    h = conv_block(p, 'gconv_input.0', mask, x, train, pre_agg)
    if groups is not None:
        h = non_local(p, 'gconv_input.1.nonlocal', h, train, groups)
    step = 2 if groups is not None else 1
    for i in range(4):
        h = res_block(p, f'gconv_layers.{step * i}', mask, h, train, pre_agg)
        if groups is not None:
            h = non_local(p, f'gconv_layers.{step * i + 1}.nonlocal', h,
                          train, groups)
    return sem_conv(p, 'gconv_output', mask, h, pre_agg)


def hgn_official(p, masks, x, train):
    """lib/models/hgn.py's forward. Its fusions add in place into a
    branch's tensor, so a branch fused later reads the already fused
    earlier ones; written here as the sequence of updates that gives."""
    m1, m2, m3 = masks

    def fc(name, t):
        w, b = p[f'{name}.conv.weight'][..., 0], p[f'{name}.conv.bias']
        return torch.einsum('ba,nac->nbc', w, t) + b.view(-1, 1)

    def layer(br, s, t, mask):
        t = res_block(p, f'gconv_layers_{br}_{s}.0', mask, t, train)
        return non_local(p, f'gconv_layers_{br}_{s}.1.nonlocal1', t, train)

    f1 = conv_block(p, 'gconv_input.0', m1, x, train)
    f2 = fc('fc_1_2_1', f1)
    f1, f2 = layer(1, 1, f1, m1), layer(2, 1, f2, m2)
    f1 = f1 + fc('fc_2_1_2', f2)
    f2 = f2 + fc('fc_1_2_2', f1)
    f1, f2 = layer(1, 2, f1, m1), layer(2, 2, f2, m2)
    f1 = f1 + fc('fc_2_1_3', f2)
    f2 = f2 + fc('fc_1_2_3', f1)
    f3 = fc('fc_1_3_3', f1) + fc('fc_2_3_3', f2)
    for s in (3, 4):
        f1, f2, f3 = (layer(1, s, f1, m1), layer(2, s, f2, m2),
                      layer(3, s, f3, m3))
        t = s + 1
        f1 = f1 + (fc(f'fc_2_1_{t}', f2) + fc(f'fc_3_1_{t}', f3))
        f2 = f2 + (fc(f'fc_1_2_{t}', f1) + fc(f'fc_3_2_{t}', f3))
        f3 = f3 + (fc(f'fc_1_3_{t}', f1) + fc(f'fc_2_3_{t}', f2))
    return (sem_conv(p, 'gconv_output', m1, f1),
            sem_conv(p, f'gconv_output_{m2.size(0)}', m2, f2),
            sem_conv(p, f'gconv_output_{m3.size(0)}', m3, f3))


# -- random state dicts in the official layout ---------------------------


class OfficialState(dict):
    """Parameters named and shaped as the official modules', float32."""
    def __init__(self, seed=0):
        super().__init__()
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def sem(self, key, i, o, nnz, slices=2):
        self[f'{key}.W'] = self.randn(slices, i, o, scale=1 / math.sqrt(i))
        self[f'{key}.e'] = self.randn(1, nnz)
        self[f'{key}.bias'] = self.randn(o, scale=0.1)

    def bn(self, key, c):
        self[f'{key}.weight'] = 1 + self.randn(c, scale=0.2)
        self[f'{key}.bias'] = self.randn(c, scale=0.2)
        self[f'{key}.running_mean'] = self.randn(c, scale=0.2)
        self[f'{key}.running_var'] = 0.5 + torch.rand(c, generator=self.g)
        self[f'{key}.num_batches_tracked'] = torch.tensor(7)

    def block(self, key, i, o, nnz, slices=2):
        self.sem(f'{key}.gconv', i, o, nnz, slices)
        self.bn(f'{key}.bn', o)

    def res(self, key, c, nnz, slices=2):
        self.block(f'{key}.gconv1', c, c, nnz, slices)
        self.block(f'{key}.gconv2', c, c, nnz, slices)

    def non_local(self, key, c, pooled=False):
        m, sub = c // 2, '.0' if pooled else ''
        for name, s in (('theta', ''), ('phi', sub), ('g', sub)):
            self[f'{key}.{name}{s}.weight'] = self.randn(
                m, c, 1, scale=1 / math.sqrt(c))
            self[f'{key}.{name}{s}.bias'] = self.randn(m, scale=0.1)
        self[f'{key}.concat_project.0.weight'] = self.randn(
            1, 2 * m, 1, 1, scale=1 / math.sqrt(m))
        self[f'{key}.W.0.weight'] = self.randn(c, m, 1, scale=1 / math.sqrt(m))
        self[f'{key}.W.0.bias'] = self.randn(c, scale=0.1)
        self.bn(f'{key}.W.1', c)

    def fc(self, name, a, b):
        self[f'{name}.conv.weight'] = self.randn(b, a, 1,
                                                 scale=1 / math.sqrt(a))
        self[f'{name}.conv.bias'] = self.randn(b, scale=0.1)


def semgcn_state(nnz, n, c=16, non_local=False, slices=2, seed=0):
    p = OfficialState(seed)
    p.block('gconv_input.0', 2, c, nnz, slices)
    if non_local:
        p.non_local('gconv_input.1.nonlocal', c, pooled=True)
    step = 2 if non_local else 1
    for i in range(4):
        p.res(f'gconv_layers.{step * i}', c, nnz, slices)
        if non_local:
            p.non_local(f'gconv_layers.{step * i + 1}.nonlocal', c,
                        pooled=True)
    p.sem('gconv_output', c, 3, nnz, slices)
    return p


HGN_MAPS = (['fc_1_2_1', 'fc_1_2_2', 'fc_2_1_2', 'fc_2_1_3', 'fc_1_2_3',
             'fc_1_3_3', 'fc_2_3_3'] +
            [f'fc_{a}_{b}_{t}' for t in (4, 5) for a in (1, 2, 3)
             for b in (1, 2, 3) if a != b])


def hgn_state(nnz, sizes=(17, 48, 96), c=8, seed=0):
    p = OfficialState(seed)
    p.block('gconv_input.0', 2, c, nnz[0])
    for br, stages in ((1, (1, 2, 3, 4)), (2, (1, 2, 3, 4)), (3, (3, 4))):
        for s in stages:
            p.res(f'gconv_layers_{br}_{s}.0', c, nnz[br - 1])
            p.non_local(f'gconv_layers_{br}_{s}.1.nonlocal1', c)
    for name in HGN_MAPS:
        a, b = (int(v) for v in name.split('_')[1:3])
        p.fc(name, sizes[a - 1], sizes[b - 1])
    p.sem('gconv_output', c, 3, nnz[0])
    p.sem(f'gconv_output_{sizes[1]}', c, 3, nnz[1])
    p.sem(f'gconv_output_{sizes[2]}', c, 3, nnz[2])
    return p


def padded_mesh(n, num_real, seed):
    """A padded coarse graph as HGN's: real nodes joined by a ring and
    chords, self-loops on some of them (merged vertices), fake nodes
    without any edge. Returns (edge_index, n) and the official mask."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randperm(n, generator=g)[:num_real].sort().values
    ring = torch.stack([real, real.roll(1)])
    chords = real[torch.randint(0, num_real, (2, num_real), generator=g)]
    chords = chords[:, chords[0] != chords[1]]
    loops = real[torch.rand(num_real, generator=g) < 0.4].repeat(2, 1)
    ei = torch.cat([ring, ring.flip(0), chords, chords.flip(0), loops], 1)
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[ei[1], ei[0]] = True
    ei = mask.nonzero().flip(1).t()  # unique edges, [source; target]
    return (ei, n), mask


def double(model):
    return model.double()


# -- SemGraphConv's uniform rows -------------------------------------------


@pytest.mark.parametrize('batched', [False, True])
def test_isolated_nodes_uniform_is_official_dense_row(batched):
    (ei, n), mask = padded_mesh(12, 8, seed=1)
    conv = SemGraphConv(5, 4, ei, n, isolated_nodes='uniform').double()
    with torch.no_grad():
        conv.logits.normal_()
    x = torch.randn(3, n, 5, dtype=torch.float64)
    w = torch.stack([conv.lin_self.weight.t(), conv.lin_neighbor.weight.t()])
    pos = torch.searchsorted(conv.topology.key, (mask.nonzero() *
                                                 torch.tensor([n, 1])).sum(1))
    p = {'c.W': w, 'c.e': conv.logits[pos].view(1, -1), 'c.bias': conv.bias}
    # our self-loop slots outside the official mask: the official fill
    off = torch.ones(conv.topology.num_slots, dtype=torch.bool)
    off[pos] = False
    with torch.no_grad():
        conv.logits[off] = FILL
    ref = sem_conv(p, 'c', mask, x)
    fake = ~mask.any(1)
    assert fake.sum() == 4 and conv.uniform_nodes.equal(fake)
    # a fake row is the mean over all nodes, self through W0
    h0, h1 = x @ w[0], x @ w[1]
    i = int(fake.nonzero()[0])
    mean = (h0[:, i] + h1.sum(1) - h1[:, i]) / n + conv.bias
    torch.testing.assert_close(ref[:, i], mean, rtol=1e-12, atol=1e-12)
    if batched:  # a disjoint batch of whole copies
        offset = (torch.arange(3) * n).repeat_interleave(ei.size(1))
        big = ei.repeat(1, 3) + offset
        out = conv(x.reshape(-1, 5), big).view(3, n, 4)
    else:
        out = conv(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # by default a fake node sees only itself
    conv.uniform_nodes = None
    own = conv(x)
    torch.testing.assert_close(own[:, ~fake], ref[:, ~fake], rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(own[:, fake], h0[:, fake] + conv.bias)


def test_isolated_nodes_message_passing_path():
    # a subset of the edges takes the message-passing path
    (ei, n), _ = padded_mesh(12, 8, seed=2)
    conv = SemGraphConv(5, 4, ei, n, isolated_nodes='uniform').double()
    x = torch.randn(2, n, 5, dtype=torch.float64)
    keep = ei[:, ei[0] != ei[1]]
    out = conv(x, keep)
    fake = conv.uniform_nodes
    ref = conv(x)
    torch.testing.assert_close(out[:, fake], ref[:, fake])
    assert 'uniform' in repr(conv)
    with pytest.raises(ValueError, match='isolated_nodes'):
        SemGraphConv(5, 4, ei, n, isolated_nodes='zero')


def test_isolated_nodes_uniform_gradcheck():
    (ei, n), _ = padded_mesh(7, 5, seed=5)
    conv = SemGraphConv(3, 2, ei, n, isolated_nodes='uniform').double()
    x = torch.randn(2, n, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x, ))


# -- HGN -------------------------------------------------------------------


@pytest.fixture(scope='module')
def hgn_case(tmp_path_factory):
    (ei48, n48), mask48 = padded_mesh(48, 45, seed=3)
    (ei96, n96), mask96 = padded_mesh(96, 83, seed=4)
    masks = [skeleton_mask(H36M17_PARENTS), mask48, mask96]
    state = hgn_state([int(m.sum()) for m in masks])
    path = tmp_path_factory.mktemp('hgn') / 'final.pth.tar'
    # lib/funcs_utils.save_checkpoint of a DataParallel model
    torch.save({'epoch': 150,
                'model_state_dict': {f'module.{k}': v
                                     for k, v in state.items()},
                'optim_state_dict': {'state': {}, 'param_groups': []},
                'train_log': [0.1], 'test_log': {'joint': [37.3]}}, path)
    return path, state, masks, [(ei48, n48), (ei96, n96)]


@pytest.mark.parametrize('train', [False, True])
def test_hgn_from_official_equals_official_forward(hgn_case, train):
    path, state, masks, graphs = hgn_case
    model = double(HGN.from_official(path, graphs)).train(train)
    assert sum(1 for n in state if n.endswith('.conv.weight')) == 19
    x = torch.randn(4, 17, 2, dtype=torch.float64)
    p = {k: v.double() for k, v in state.items()}
    ref = hgn_official(p, masks, x, train)
    out = model(x)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # the disjoint layout gives the same
    batch = torch.arange(4).repeat_interleave(17)
    for a, b in zip(model(x.reshape(-1, 2), batch), ref):
        torch.testing.assert_close(a, b.reshape(-1, 3), rtol=1e-12,
                                   atol=1e-12)


def test_hgn_from_official_on_a_mesh_hierarchy():
    # The graphs from a padded hierarchy, with the self-loops of merged
    # vertices as the official adjacencies have them.
    from pyg_skeleton.mesh import Mesh, MeshHierarchy
    idx = torch.arange(80).view(10, 8)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    h = MeshHierarchy.from_mesh(Mesh(pos=torch.rand(80, 3), face=faces.t()), max_nodes=6,
                                padded=True)
    masks = [skeleton_mask(H36M17_PARENTS)]
    for lv in (-2, -3):
        n = h.num_padded(lv)
        ei = h.padded_edge_index(lv, self_loops=True)
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[ei[1], ei[0]] = True
        masks.append(mask)
    assert not masks[2].any(1).all()  # padded nodes without edges
    sizes = [m.size(0) for m in masks]
    state = hgn_state([int(m.sum()) for m in masks], sizes=sizes, seed=1)
    model = double(HGN.from_official(dict(state), h))
    assert model.num_nodes == sizes
    assert model.real_masks()[1].equal(masks[2].any(1))
    x = torch.randn(3, 17, 2, dtype=torch.float64)
    ref = hgn_official({k: v.double() for k, v in state.items()}, masks, x,
                       False)
    for out, r in zip(model(x), ref):
        torch.testing.assert_close(out, r, rtol=1e-12, atol=1e-12)


def test_hgn_padded_nodes_change_real_outputs(hgn_case):
    # Our default padded nodes see only themselves; through the non-local
    # blocks, node maps and batch norm that reaches the real nodes.
    path, state, masks, graphs = hgn_case
    model = double(HGN.from_official(path, graphs, padded_nodes='self'))
    x = torch.randn(4, 17, 2, dtype=torch.float64)
    p = {k: v.double() for k, v in state.items()}
    ref = hgn_official(p, masks, x, False)
    out = model(x)
    assert (out[0] - ref[0]).abs().max() > 1e-3
    real = masks[2].any(1)
    assert (out[2][:, real] - ref[2][:, real]).abs().max() > 1e-3


def test_hgn_official_parameter_count():
    # 1,045,621 on the official graphs (issue 20): 9 nnz48 + 5 nnz96 =
    # 4,604 there, e.g. 256 and 460 non-zeros
    state = hgn_state([49, 256, 460], c=128)
    total = sum(v.numel() for k, v in state.items()
                if not k.split('.')[-1].startswith(('running',
                                                    'num_batches')))
    assert total == 1045621


def test_hgn_from_official_rejects_the_17_map_model(hgn_case):
    path, _, _, graphs = hgn_case
    with pytest.raises(ValueError, match=r'unexpected fc_1_2_3.conv.bias, '
                       r'fc_1_2_3.conv.weight, fc_2_1_3'):
        HGN.from_official(path, graphs, fuse_on_join=False)


def test_hgn_from_official_checks_the_graphs(hgn_case):
    path, _, _, graphs = hgn_case
    ei48, n48 = graphs[0]
    no_loops = ei48[:, ei48[0] != ei48[1]]
    with pytest.raises(ValueError, match=r"'gconv_layers_2_1.0.gconv1.gconv"
                       r".e' has shape \[1, \d+\], the model needs"):
        HGN.from_official(path, [(no_loops, n48), graphs[1]])


# -- SemGCN and the weight-sharing fork --------------------------------------


@pytest.mark.parametrize('non_local', [False, True])
@pytest.mark.parametrize('train', [False, True])
def test_semgcn_from_official_equals_official_forward(tmp_path, non_local,
                                                      train):
    mask = skeleton_mask(H36M16_PARENTS)
    state = semgcn_state(int(mask.sum()), 16, non_local=non_local)
    path = tmp_path / 'ckpt_semgcn.pth.tar'
    # main_gcn.py's checkpoint
    torch.save({'epoch': 30, 'lr': 1e-3, 'step': 24372,
                'state_dict': dict(state),
                'optimizer': {'state': {}, 'param_groups': [
                    {'lr': 1e-3, 'betas': (0.9, 0.999), 'params': [0]}]},
                'error': 40.78}, path)
    model = double(SemGCN.from_official(path)).train(train)
    assert model.skeleton.num_joints == 16 and model.non_local == non_local
    x = torch.randn(5, 16, 2, dtype=torch.float64)
    p = {k: v.double() for k, v in state.items()}
    ref = semgcn_official(p, mask, x, train,
                          H36M16_GROUPS if non_local else None)
    torch.testing.assert_close(model(x), ref, rtol=1e-12, atol=1e-12)


def test_semgcn_legacy_checkpoint_format(tmp_path):
    # The published SemGCN checkpoints predate PyTorch 1.6's zip format.
    state = semgcn_state(46, 16, non_local=True)
    path = tmp_path / 'ckpt_semgcn_nonlocal.pth.tar'
    torch.save({'epoch': 30, 'state_dict': dict(state)}, path,
               _use_new_zipfile_serialization=False)
    legacy = SemGCN.from_official(path)
    direct = SemGCN.from_official(dict(state))
    x = torch.randn(2, 16, 2)
    assert torch.equal(legacy(x), direct(x))


@pytest.mark.parametrize('train', [False, True])
def test_pre_agg_from_official_equals_official_forward(tmp_path, train):
    mask = skeleton_mask(H36M17_PARENTS)
    state = semgcn_state(int(mask.sum()), 17, slices=34)
    path = tmp_path / 'ckpt_best.pth.tar'
    torch.save({'epoch': 100, 'state_dict': dict(state)}, path)
    model = double(SemGCN.from_official(path)).train(train)
    assert model.skeleton.num_joints == 17
    x = torch.randn(5, 17, 2, dtype=torch.float64)
    p = {k: v.double() for k, v in state.items()}
    ref = semgcn_official(p, mask, x, train, pre_agg=True)
    torch.testing.assert_close(model(x), ref, rtol=1e-12, atol=1e-12)


# -- safe reading and clear errors -----------------------------------------


class NotATensor:
    pass


def test_refuses_non_tensor_checkpoints(tmp_path):
    path = tmp_path / 'evil.pth.tar'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': NotATensor()}, f)
    with pytest.raises(ValueError, match=r"evil.pth.tar' does not load with "
                       r"torch.load\(weights_only=True\)"):
        SemGCN.from_official(path)
    torch.save({'epoch': 3, 'state_dict': NotATensor()}, path)
    with pytest.raises(ValueError, match=r'not read: .*Unsupported global: '
                       r'GLOBAL .*NotATensor$'):
        HGN.from_official(path, [])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_official_state_dict(tmp_path / 'missing.pth')
    torch.save({'epoch': 3, 'state_dict': {'a': [1, 2]}}, path)
    with pytest.raises(ValueError, match='holds no model state dict'):
        load_official_state_dict(path)


def test_names_missing_unexpected_and_misshapen_keys():
    mask = skeleton_mask(H36M16_PARENTS)
    state = semgcn_state(int(mask.sum()), 16)
    assert load_official_state_dict({'state_dict': state}).keys() == \
        state.keys()
    broken = dict(state)
    del broken['gconv_layers.1.gconv2.bn.running_var']
    broken['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'missing gconv_layers.1.gconv2.bn.'
                       r'running_var; unexpected extra.weight'):
        SemGCN.from_official(broken)
    broken = dict(state)
    broken['gconv_output.bias'] = torch.zeros(4)
    with pytest.raises(ValueError, match=r"'gconv_output.bias' has shape "
                       r"\[4\], the model needs \[3\]"):
        SemGCN.from_official(broken)
    with pytest.raises(ValueError, match="no 'gconv_input.0.gconv.W'"):
        SemGCN.from_official({'x': torch.zeros(1)})
    with pytest.raises(ValueError, match='pass .skeleton.'):
        SemGCN.from_official(semgcn_state(40, 16))

"""Operators on large graphs keep their buffers linear in the graph size
(issue 25): no [B, N, N] affinity, no dense cross-scale map that is not used,
no per-pair message tensor of the far hops. The size of every tensor an
operation creates is recorded with a dispatch mode, forward and backward."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pyg_skeleton.nn.models import hgn
from pyg_skeleton.nn.non_local import NonLocalBlock

pytestmark = pytest.mark.operator


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator
    returns while the mode is active."""
    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.numel = max(self.numel, t.numel())
        return out


def largest_tensor(fn):
    with LargestTensor() as mode:
        fn()
    return mode.numel


def ring(n):
    i = torch.arange(n)
    return torch.stack([torch.cat([i, (i + 1) % n]),
                        torch.cat([(i + 1) % n, i])])


@pytest.mark.parametrize('affinity', ['concatenation', 'embedded_gaussian'])
def test_non_local_block_without_n_by_n(affinity):
    torch.manual_seed(0)
    n, c = 6000, 8
    block = NonLocalBlock(c, 4, affinity=affinity)
    x = torch.randn(2, n, c, requires_grad=True)

    def step():
        block(x).sum().backward()

    numel = largest_tensor(step)
    if affinity == 'concatenation':
        # Linear: a few [B, N, C] buffers (the sorted form), never B N N.
        assert numel <= 4 * n * c
    else:
        # Query blocks of at most CHUNK_ELEMENTS affinities.
        from pyg_skeleton.nn.non_local import CHUNK_ELEMENTS
        assert numel <= CHUNK_ELEMENTS
    assert numel < 2 * n * n


def test_fusion_builds_no_unused_node_map(monkeypatch):
    # With every cross-scale map given (fusion='pool'), no dense NodeMap is
    # built and thrown away.
    built = []
    real = hgn.NodeMap

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(hgn, 'NodeMap', counting)
    maps = {(0, 1): torch.nn.Identity(), (1, 0): torch.nn.Identity()}
    fusion = hgn.MultiScaleFusion([5, 5], maps=maps)
    assert built == []
    assert fusion.maps['0_1'] is maps[(0, 1)]
    x = [torch.randn(2, 5, 3), torch.randn(2, 5, 3)]
    out = fusion(x)
    torch.testing.assert_close(out[0], x[0] + x[1])
    # A missing pair still gets its learned map:
    hgn.MultiScaleFusion([5, 4], maps={(0, 1): torch.nn.Identity()})
    assert built == [(4, 5)]


@pytest.mark.parametrize('name', ['MixHopSkeletonConv', 'MSHopConv',
                                  'HCSFConv', 'KHopConv'])
def test_far_hops_without_per_pair_messages(name):
    # Hops up to 7 on a ring of 3,000 nodes (15 pairs per node with the node
    # itself): the fixed graph's hop sums are one sparse product, so no
    # tensor holds a message per pair and channel.
    import pyg_skeleton.nn.conv as convs
    n, b, c = 3000, 2, 16
    kwargs = {'HCSFConv': dict(S=5, L=7), 'KHopConv': dict(k=7)}.get(name,
                                                                     {})
    conv = getattr(convs, name)(c, c, ring(n), n, **kwargs)
    x = torch.randn(b, n, c, requires_grad=True)

    def step():
        conv(x).sum().backward()

    groups = conv.num_groups
    numel = largest_tensor(step)
    assert numel <= max(b * n * groups * c, conv.csr_value.numel())
    assert numel < b * (n + conv.num_hop_pairs) * c

    # Same values as message passing over the pairs:
    expected = conv.hop_sums(x, conv.hop_edge_index, conv.hop, None)
    if not conv._identity_groups:
        expected = torch.einsum('...nkc,gk->...ngc', expected,
                                conv.membership)
    expected = expected * conv.group_norm.unsqueeze(-1)
    torch.testing.assert_close(conv.aggregate_hops(x), expected)


# Memory estimates ###########################################################


def test_memory_limit_from_environment(monkeypatch):
    from pyg_skeleton.nn import memory
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', '2')
    assert memory.memory_limit() == 2 * 2**30
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', '0')
    assert memory.memory_limit() is None
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', 'lots')
    with pytest.raises(ValueError, match='PYG_SKELETON_MEMORY_GB'):
        memory.memory_limit()
    monkeypatch.delenv('PYG_SKELETON_MEMORY_GB')
    assert memory.memory_limit() > 0


def test_node_map_fails_early(monkeypatch):
    # 73,639 x 18,439 float32 (+ bias) is 5.1 GB: refused under a 1 GB
    # limit before anything is allocated, naming the estimate and 'pool'.
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', '1')
    with pytest.raises(MemoryError, match=r"'NodeMap' would allocate 5\.1 "
                       r"GB .*18439 x 73639.*fusion='pool'"):
        hgn.NodeMap(73639, 18439)
    hgn.NodeMap(100, 50)  # small maps are fine


def test_non_local_dense_path_fails_early(monkeypatch):
    # A batch of 20,000 graphs of 256 nodes (the largest the dense path
    # takes): 3 x 20000 x 256 x 256 float32 affinities are 14.6 GB.
    from pyg_skeleton.nn.non_local import DENSE_MAX_KEYS
    assert DENSE_MAX_KEYS == 256
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', '4')
    block = NonLocalBlock(4, 2)
    x = torch.randn(20000, 256, 4)
    with pytest.raises(MemoryError, match=r"'NonLocalBlock' would allocate "
                       r"14\.6 GB for 20000 x 256 x 256 affinities.*"
                       r"'groups'"):
        block(x)


def test_hop_messages_fail_early(monkeypatch):
    import pyg_skeleton.nn.conv as convs
    from pyg_skeleton.transforms.khop import khop_edges
    n = 200
    conv = convs.KHopConv(8, 8, ring(n), n, k=3)
    pairs, hop = khop_edges(ring(n), n, 3)
    x = torch.randn(n, 8)
    # (200 + 1,200) messages x 8 channels x 4 bytes x 2 = 87.5 KiB
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', str(80 / 2**20))
    with pytest.raises(MemoryError, match=r"'KHopConv' would allocate .* "
                       r"messages over 1400 hop pairs.*static batch"):
        conv(x, pairs, hop)
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', str(90 / 2**20))
    conv(x, pairs, hop)


# Non-local blocks on meshes #################################################


def grid(rows, cols):
    """A triangulated rows x cols grid, both directions."""
    idx = torch.arange(rows * cols).view(rows, cols)
    pairs = [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :]),
             (idx[:-1, :-1], idx[1:, 1:])]
    src = torch.cat([a.reshape(-1) for a, _ in pairs])
    dst = torch.cat([b.reshape(-1) for _, b in pairs])
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


def test_mesh_groups_partition_connected_clusters():
    from pyg_skeleton.nn.non_local import mesh_groups
    edge_index, n = grid(30, 30), 900
    groups = mesh_groups(edge_index, n, max_groups=100)
    assert 25 <= len(groups) <= 100
    assert sorted(v for g in groups for v in g) == list(range(n))
    # Heavy edge matching merges neighbours: every cluster is connected.
    adj = {v: set() for v in range(n)}
    for a, b in edge_index.t().tolist():
        adj[a].add(b)
    for group in groups:
        members, seen, stack = set(group), {group[0]}, [group[0]]
        while stack:
            for w in adj[stack.pop()] & members - seen:
                seen.add(w)
                stack.append(w)
        assert seen == members


def test_semgcn_pools_mesh_keys_per_cluster():
    from pyg_skeleton import Skeleton
    from pyg_skeleton.nn import SemGCN
    from pyg_skeleton.nn.non_local import mesh_groups
    edge_index = grid(20, 20)
    edges = edge_index[:, edge_index[0] < edge_index[1]].t().tolist()
    mesh = Skeleton.from_edges(edges, 400)
    assert mesh.groups is None
    model = SemGCN(mesh, hidden_channels=8, num_layers=1, non_local=True)
    expected = mesh_groups(mesh.edge_index, 400)
    for block in model.non_locals:
        assert block.groups == expected
    assert model(torch.randn(2, 400, 2)).shape == (2, 400, 3)
    # Skeletons are unchanged: their own groups, or one key per joint.
    assert SemGCN('h36m16', non_local=True).non_locals[0].num_groups == 8
    small = Skeleton.from_edges([(i, i + 1) for i in range(30)], 31)
    assert SemGCN(small, non_local=True).non_locals[0].groups is None

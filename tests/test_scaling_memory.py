"""Operators on large graphs keep their buffers linear in the graph size
(issue 25): no [B, N, N] affinity, no dense cross-scale map that is not used,
no per-pair message tensor of the far hops. The size of every tensor an
operation creates is recorded with a dispatch mode, forward and backward."""
from __future__ import annotations

import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pyg_skeleton.nn.models import hgn
from pyg_skeleton.nn.non_local import NonLocalBlock

from _helpers import count_node_maps, ring

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
    built = count_node_maps(monkeypatch)
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
    # 73,639 x 18,439 float32 (+ bias) is 5.06 GiB: refused under a 1 GB
    # limit before anything is allocated, naming the estimate and 'pool'.
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', '1')
    with pytest.raises(MemoryError, match=r"'NodeMap' would allocate 5\.06 "
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


# Every operator's estimate ##################################################
#
# Each case builds an operator (or calls it) at two sizes: 'big', where the
# estimate is hundreds of MB and a 50 MB limit must stop it before any large
# tensor exists, and 'mid', where it runs and its estimate is compared with
# the peak memory the profiler measures.

LIMIT_GB = 0.05


def record_estimates(monkeypatch):
    """Replaces check_memory, wherever the package imported it, by a
    recorder that never raises; returns the recorded (owner, bytes)."""
    import sys

    from pyg_skeleton.nn import memory
    real, calls = memory.check_memory, []

    def recorder(owner, num_bytes, what, alternative):
        calls.append((owner, num_bytes))

    for module in list(sys.modules.values()):
        if getattr(module, '__name__', '').startswith('pyg_skeleton') and (
                getattr(module, 'check_memory', None) is real):
            monkeypatch.setattr(module, 'check_memory', recorder)
    return calls


def peak_bytes(fn):
    """The peak of the CPU memory allocated while fn runs, from the
    profiler's allocation and free events."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    deltas = []
    for e in p.events():
        delta = (e.cpu_memory_usage if e.name == '[memory]' else
                 e.self_cpu_memory_usage)
        if delta:
            deltas.append((e.time_range.start, delta))
    current = peak = 0
    for _, delta in sorted(deltas):
        current += delta
        peak = max(peak, current)
    return peak


class LargestBytes(TorchDispatchMode):
    """The largest tensor, in bytes, any operation returns in the mode."""
    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.bytes = max(self.bytes, t.numel() * t.element_size())
        return out


def binary_tree(n):
    from pyg_skeleton import Skeleton
    return Skeleton.from_parents([-1] + [(i - 1) // 2 for i in range(1, n)])


def two_components(rows):
    # An edge {0, 1} with the centre 0, and a grid without it.
    edge_index = torch.cat([torch.tensor([[0, 1], [1, 0]]),
                            grid(rows, rows) + 2], dim=1)
    return edge_index, rows * rows + 2


def _conv(name):
    import pyg_skeleton.nn.conv as convs
    return getattr(convs, name)


def _forward(module, x, *args):
    return lambda: module(x, *args)


def case_sem_static(big):
    n, b, c = (20000, 16, 512) if big else (2000, 4, 256)
    conv = _conv('SemGraphConv')(1, c, ring(n), n)
    return _forward(conv, torch.randn(b, n, 1))


def case_sem_channelwise(big):
    n, b, c = (20000, 8, 256) if big else (2000, 2, 64)
    conv = _conv('SemGraphConv')(1, c, ring(n), n, channelwise=True)
    return _forward(conv, torch.randn(b, n, 1))


def case_sem_edges(big):
    # A subset of the graph's edges: message passing, one message per edge.
    n, c = (100000, 1024) if big else (5000, 256)
    conv = _conv('SemGraphConv')(1, c, ring(n), n)
    return _forward(conv, torch.randn(n, 1), ring(n)[:, 1:])


def case_full_static(big):
    n, b, c = (20000, 16, 512) if big else (2000, 4, 256)
    conv = _conv('FullSharingConv')(1, c, ring(n), n)
    return _forward(conv, torch.randn(b, n, 1))


def case_full_edges(big):
    # A subset of the graph's edges (whole copies take the static kernel):
    # message passing, one message per edge.
    n, c = (100000, 1024) if big else (5000, 256)
    conv = _conv('FullSharingConv')(c, c, ring(n), n)
    return _forward(conv, torch.randn(n, c), ring(n)[:, 1:])


def case_conv_style_static(big):
    rows, b, c = (140, 16, 512) if big else (40, 4, 256)
    n = rows * rows
    conv = _conv('ConvStyleConv')(1, c, grid(rows, rows), 0, n)
    return _forward(conv, torch.randn(b, n, 1))


def case_conv_style_components(big):
    edge_index, n = two_components(60 if big else 20)
    return lambda: _conv('ConvStyleConv')(4, 4, edge_index, 0, n)


def case_pre_agg_weights(big):
    n, c = (100000, 32) if big else (2000, 64)
    return lambda: _conv('PreAggConv')(c, c, ring(n), n)


def case_no_sharing_weights(big):
    n, c = (30000, 32) if big else (1000, 32)
    return lambda: _conv('NoSharingConv')(c, c, ring(n), n)


def case_no_sharing_static(big):
    # Wide inputs, narrow outputs: the features of the batch fit (41 MB),
    # their copies per edge do not.
    n, b = (20000, 8) if big else (1000, 8)
    conv = _conv('NoSharingConv')(64, 1, ring(n), n)
    return _forward(conv, torch.randn(b, n, 64))


def case_hops(name, big):
    n, b, c = (20000, 8, 64) if big else (3000, 2, 16)
    kwargs = {'HCSFConv': dict(S=5, L=7), 'KHopConv': dict(k=7)}.get(name, {})
    conv = _conv(name)(c, c, ring(n), n, **kwargs)
    return _forward(conv, torch.randn(b, n, c))


def case_khop_pairs(big):
    # Pairs within k hops of a grid: about 2 k^2 per node.
    rows, k = (100, 30) if big else (30, 5)
    return lambda: _conv('KHopConv')(4, 4, grid(rows, rows), rows * rows,
                                     k=k)


def case_dynamic_all_weights(big):
    n = 3000 if big else 600
    return lambda: _conv('DynamicHCSFConv')(4, 4, ring(n), n,
                                            candidates='all')


def case_dynamic_all(big):
    b = 2000 if big else 50
    conv = _conv('DynamicHCSFConv')(4, 4, ring(100), 100)
    assert conv.candidates == 'all'
    return _forward(conv, torch.randn(b, 100, 4))


def case_dynamic_hop(big):
    n, b = (20000, 64) if big else (1000, 4)
    conv = _conv('DynamicHCSFConv')(4, 4, ring(n), n)
    assert conv.candidates == 'hop'
    return _forward(conv, torch.randn(b, n, 4))


def _clusters(n, num_clusters):
    return torch.arange(n) % num_clusters


def case_hem_pool(big):
    from pyg_skeleton.mesh.pooling import HEMPool
    n, b, c = (100000, 8, 16) if big else (10000, 4, 64)
    index = _clusters(n, n // 4)
    pool = HEMPool(index, torch.full((n, ), 0.25), n // 4)
    return _forward(pool, torch.randn(b, n, c))


def case_hem_unpool(big):
    from pyg_skeleton.mesh.pooling import HEMUnpool
    n, b, c = (1000000, 8, 64) if big else (40000, 4, 64)
    unpool = HEMUnpool(_clusters(n, 100), 100)
    return _forward(unpool, torch.randn(b, 100, c))


def case_hem_unpool_function(big):
    from pyg_skeleton.mesh.pooling import hem_unpool
    n, b, c = (1000000, 8, 64) if big else (40000, 4, 64)
    index, x = _clusters(n, 100), torch.randn(b, 100, c)
    return lambda: hem_unpool(x, index, torch.ones(n, dtype=torch.bool))


def case_hop_distance(big):
    skeleton = binary_tree(4000 if big else 800)
    return lambda: skeleton.hop_distance


def case_max_hop(big):
    skeleton = binary_tree(4000 if big else 800)
    return lambda: skeleton.max_hop


def case_node_map(big):
    return lambda: hgn.NodeMap(20000, 5000) if big else hgn.NodeMap(2000, 1000)


# (owner named in the error, case, the alternative the error names)
CASES = {
    'SemGraphConv': ('SemGraphConv', case_sem_static, 'smaller batch'),
    'SemGraphConv-channelwise': ('SemGraphConv', case_sem_channelwise,
                                 'channelwise=False'),
    'SemGraphConv-edges': ('SemGraphConv', case_sem_edges,
                           'static batch'),
    'FullSharingConv': ('FullSharingConv', case_full_static,
                        'smaller batch'),
    'FullSharingConv-edges': ('FullSharingConv', case_full_edges,
                              'static batch'),
    'ConvStyleConv': ('ConvStyleConv', case_conv_style_static,
                      'smaller batch'),
    'ConvStyleConv-components': ('ConvStyleConv', case_conv_style_components,
                                 'connect the graph'),
    'PreAggConv-weights': ('PreAggConv', case_pre_agg_weights,
                           'shared weights'),
    'NoSharingConv-weights': ('NoSharingConv', case_no_sharing_weights,
                              'shared weights'),
    'NoSharingConv': ('NoSharingConv', case_no_sharing_static,
                      'PreAggConv or PostAggConv'),
    'KHopConv': ('KHopConv', lambda big: case_hops('KHopConv', big),
                 'smaller batch'),
    'HCSFConv': ('HCSFConv', lambda big: case_hops('HCSFConv', big),
                 'smaller batch'),
    'MixHopSkeletonConv': ('MixHopSkeletonConv',
                           lambda big: case_hops('MixHopSkeletonConv', big),
                           'smaller batch'),
    'MSHopConv': ('MSHopConv', lambda big: case_hops('MSHopConv', big),
                  'smaller batch'),
    'KHopConv-pairs': ('KHopConv', case_khop_pairs, 'smaller k'),
    'DynamicHCSFConv-all-weights': ('DynamicHCSFConv',
                                    case_dynamic_all_weights,
                                    "candidates='hop'"),
    'DynamicHCSFConv-all': ('DynamicHCSFConv', case_dynamic_all,
                            "candidates='hop'"),
    'DynamicHCSFConv-hop': ('DynamicHCSFConv', case_dynamic_hop,
                            'smaller batch'),
    'HEMPool': ('HEMPool', case_hem_pool, 'smaller batch'),
    'HEMUnpool': ('HEMUnpool', case_hem_unpool, 'smaller batch'),
    'hem_unpool': ('hem_unpool', case_hem_unpool_function, 'smaller batch'),
    'Skeleton.hop_distance': ('Skeleton.hop_distance', case_hop_distance,
                              'hop_counts'),
    'Skeleton.max_hop': ('Skeleton.hop_distance', case_max_hop,
                         'hop_counts'),
    'NodeMap': ('NodeMap', case_node_map, "fusion='pool'"),
}


@pytest.mark.parametrize('name', list(CASES))
def test_operator_fails_before_allocating(name, monkeypatch):
    owner, case, alternative = CASES[name]
    call = case(True)
    monkeypatch.setenv('PYG_SKELETON_MEMORY_GB', str(LIMIT_GB))
    with LargestBytes() as mode:
        with pytest.raises(MemoryError) as info:
            call()
    message = str(info.value)
    match = re.fullmatch(rf"'{re.escape(owner)}'.* would allocate "
                         rf"([0-9.]+) GB for .*, more than the "
                         rf"{LIMIT_GB:.3g} GB available; .*", message)
    assert match, message
    assert alternative in message
    assert '\n' not in message
    # Stopped before the allocation it estimated: no tensor as large as the
    # limit, or as half the estimate, was created.
    assert mode.bytes < min(LIMIT_GB, float(match.group(1)) / 2) * 2**30


@pytest.mark.parametrize('name', list(CASES))
def test_operator_estimate_near_peak(name, monkeypatch):
    owner, case, _ = CASES[name]
    call = case(False)
    calls = record_estimates(monkeypatch)
    peak = peak_bytes(call)
    # The hop pairs are searched by khop_edges or, inside an operator, by
    # its Topology.
    estimate = max(b for o, b in calls
                   if o in (owner, 'khop_edges', 'Topology'))
    # The peak holds the estimated buffers and what runs beside them
    # (the input's copies, the index arithmetic, the graph's buffers).
    assert peak / 2.5 <= estimate <= 2.5 * peak, (estimate, peak)

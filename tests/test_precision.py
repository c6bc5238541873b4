"""Half precision (bfloat16 and float16 parameters, CPU autocast) and the
meta device on every operator and model, on skeletons (dense products) and
on graphs above ``TOPOLOGY_DENSE_MAX_NODES`` (the sparse CSR kernel).

References are float32 results of the same weights, and for the CSR kernel
a dense matrix written here; half precision keeps about three significant
digits, so outputs and gradients are compared relative to their largest
entry.
"""
import copy

import pytest
import torch

from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from pyg_skeleton import Skeleton
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
    Topology,
)
from pyg_skeleton.nn.topology import DENSE_MAX_NODES, TOPOLOGY_DENSE_MAX_NODES
from pyg_skeleton.transforms import KHopEdges

pytestmark = pytest.mark.operator

HALF = [torch.bfloat16, torch.float16]
# Relative tolerance of a layer's output or gradient (a few roundings of
# 2^-8 for bfloat16, 2^-11 for float16, summed over a handful of terms).
TOL = {torch.bfloat16: 4e-2, torch.float16: 8e-3}


def ring(n):
    i = torch.arange(n)
    return to_undirected(torch.stack([i, (i + 1) % n]), num_nodes=n)


SKELETON = Skeleton.preset('h36m17')
# name -> (edge_index, num_nodes): a skeleton on the dense paths, a ring
# above the Topology's dense limit (CSR kernel) and one above the hop
# operators' dense limit (message passing over hop pairs).
GRAPHS = {
    'h36m17': (SKELETON.edge_index, 17),
    'ring40': (ring(TOPOLOGY_DENSE_MAX_NODES + 8), TOPOLOGY_DENSE_MAX_NODES + 8),
    'ring136': (ring(DENSE_MAX_NODES + 8), DENSE_MAX_NODES + 8),
}

OPERATORS = {
    'SemGraphConv': lambda ei, n: SemGraphConv(8, 6, ei, n),
    'SemGraphConv-channelwise': lambda ei, n: SemGraphConv(
        8, 6, ei, n, channelwise=True),
    'FullSharingConv': lambda ei, n: FullSharingConv(8, 6, ei, n),
    'PreAggConv': lambda ei, n: PreAggConv(8, 6, ei, n),
    'PostAggConv': lambda ei, n: PostAggConv(8, 6, ei, n),
    'ConvStyleConv': lambda ei, n: ConvStyleConv(8, 6, ei, 0, n),
    'NoSharingConv': lambda ei, n: NoSharingConv(8, 6, ei, n),
    'HCSFConv': lambda ei, n: HCSFConv(8, 6, ei, n),
    'DynamicHCSFConv': lambda ei, n: DynamicHCSFConv(8, 6, ei, n, alpha=0.5),
    'DynamicHCSFConv-hop-rand': lambda ei, n: DynamicHCSFConv(
        8, 6, ei, n, graph='rand', candidates='hop', alpha=0.5),
    'KHopConv': lambda ei, n: KHopConv(8, 6, ei, n, k=2),
    'MixHopSkeletonConv': lambda ei, n: MixHopSkeletonConv(8, 6, ei, n),
    'MSHopConv': lambda ei, n: MSHopConv(8, 6, ei, n),
}
HOP_OPERATORS = {name for name in OPERATORS if 'Hop' in name or 'HCSF' in name}


def operator_cases():
    for name in OPERATORS:
        for graph in GRAPHS:
            # The ring of 136 nodes only matters to the hop operators.
            if graph == 'ring136' and name not in HOP_OPERATORS:
                continue
            yield name, graph


def build_operator(name, graph):
    torch.manual_seed(0)
    ei, n = GRAPHS[graph]
    module = OPERATORS[name](ei, n)
    with torch.no_grad():  # trained-like edge weights, not the uniform start
        for key, p in module.named_parameters():
            if key in ('logits', 'graph_weight'):
                p.add_(0.3 * torch.randn_like(p))
    return module, n


MESH_LEVELS = [(ring(48), 48), (ring(96), 96)]
MODELS = {
    'SemGCN': lambda: (SemGCN('h36m17', 2, 16, 3, num_layers=1,
                              non_local=True), (4, 17, 2)),
    'SkeletalGNN': lambda: (SkeletalGNN('h36m17', 2, hidden_channels=16,
                                        dynamic=True), (4, 17, 2)),
    'TemporalSkeletalGNN': lambda: (TemporalSkeletalGNN(
        SKELETON, hidden_channels=16, dynamic=True, dropout=0.0), (2, 5, 17, 2)),
    'NonLocalBlock': lambda: (NonLocalBlock(8, groups=SKELETON.groups),
                              (4, 17, 8)),
    # Mesh levels above the dense limit: the CSR kernel inside a model.
    'HGN': lambda: (HGN(SKELETON, MESH_LEVELS,
                        hidden_channels=16, num_blocks=(1, 1, 1)), (4, 17, 2)),
}


def build_model(name):
    torch.manual_seed(0)
    model, shape = MODELS[name]()
    return model.eval(), torch.randn(shape)


def first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


def assert_close_rel(actual, expected, tol, what):
    actual, expected = actual.float(), expected.float()
    scale = expected.abs().max().clamp(min=1e-6)
    err = (actual - expected).abs().max() / scale
    assert torch.isfinite(actual).all(), f'{what}: non-finite values'
    assert err <= tol, f'{what}: relative error {float(err):.3g} > {tol}'


def forward_backward(module, x):
    x = x.detach().requires_grad_()
    out = first(module(x))
    # A fixed, non-uniform output weighting so the gradients are not
    # dominated by one sum.
    g = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * g).sum().backward()
    grads = {k: p.grad for k, p in module.named_parameters()
             if p.grad is not None}
    return out, x.grad, grads


# ------------------------------------------------------------ CSR kernel

def dense_adjacency(topology, value):
    """The neighbour weights of 'Topology.aggregate' as an N x N matrix."""
    n = topology.num_nodes
    a = torch.zeros(n, n, dtype=value.dtype)
    nbr = topology.nbr_slot
    a[topology.dst[nbr], topology.src[nbr]] = value
    return a


@pytest.mark.parametrize('dtype', HALF)
def test_csr_aggregate_half_precision(dtype):
    ei, n = GRAPHS['ring40']
    topo = Topology(ei, n)
    torch.manual_seed(0)
    value = torch.rand(topo.num_edges)
    h = torch.randn(3, n, 5)
    ref_value, ref_h = value.clone().requires_grad_(), h.clone().requires_grad_()
    ref = dense_adjacency(topo, ref_value) @ ref_h
    weight = torch.randn_like(ref)
    (ref * weight).sum().backward()

    v16 = value.to(dtype).requires_grad_()
    h16 = h.to(dtype).requires_grad_()
    out = topo.aggregate(v16, h16)
    assert out.dtype == dtype
    (out.float() * weight).sum().backward()
    assert v16.grad.dtype == h16.grad.dtype == dtype
    tol = TOL[dtype]
    assert_close_rel(out, ref, tol, 'output')
    assert_close_rel(h16.grad, ref_h.grad, tol, 'grad of h')
    assert_close_rel(v16.grad, ref_value.grad, tol, 'grad of the weights')


@pytest.mark.parametrize('dtype', HALF)
def test_csr_aggregate_pair_half_precision(dtype):
    """The pair product with the linear map inside the kernel, and its
    recomputing backward."""
    ei, n = GRAPHS['ring40']
    topo = Topology(ei, n)
    torch.manual_seed(0)
    alpha = torch.rand(topo.num_slots)
    x = torch.randn(3, n, 4)
    weight = torch.randn(2 * 5, 4)
    bias = torch.randn(5)
    leaves = [t.clone().requires_grad_() for t in (alpha, x, weight, bias)]
    # Written from the definition: y_i = a_ii s_i + sum_j a_ij t_j + b.
    a, xr, w, b = leaves
    s, t = (xr @ w.t()).split(5, dim=-1)
    self_w = torch.zeros(n, dtype=a.dtype).index_add(
        0, topo.dst[topo.self_slot], a[topo.self_slot])
    ref = (dense_adjacency(topo, a[topo.nbr_slot]) @ t
           + self_w.view(-1, 1) * s + b)
    g = torch.randn_like(ref)
    (ref * g).sum().backward()

    half = [t.to(dtype).requires_grad_() for t in (alpha, x, weight, bias)]
    out = topo.aggregate_pair(*half)
    assert out.dtype == dtype
    (out.float() * g).sum().backward()
    assert_close_rel(out, ref, TOL[dtype], 'output')
    for name, h16, r in zip(('alpha', 'x', 'weight', 'bias'), half, leaves):
        assert h16.grad.dtype == dtype
        assert_close_rel(h16.grad, r.grad, TOL[dtype], f'grad of {name}')


def test_csr_autocast_mixed_dtypes():
    """Under autocast the edge weights (a float32 softmax) meet bfloat16
    features: the kernel computes in float32 and returns autocast's dtype,
    as a dense product would (this raised 'expected m1 and m2 to have the
    same dtype' in HGN)."""
    ei, n = GRAPHS['ring40']
    topo = Topology(ei, n)
    torch.manual_seed(0)
    alpha = torch.rand(topo.num_slots, requires_grad=True)
    x = torch.randn(3, n, 4, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(10, 4, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = topo.aggregate_pair(alpha, x, weight)
        agg = topo.aggregate(alpha[topo.nbr_slot], x.float())
    assert out.dtype == agg.dtype == torch.bfloat16
    out.float().sum().backward()
    assert alpha.grad.dtype == weight.grad.dtype == torch.float32
    assert x.grad.dtype == torch.bfloat16
    ref = topo.aggregate_pair(alpha.detach(), x.detach().float(),
                              weight.detach())
    assert_close_rel(out, ref, TOL[torch.bfloat16], 'output')


# ------------------------------------------------------------- operators

@pytest.mark.parametrize('dtype', HALF)
@pytest.mark.parametrize('name,graph', list(operator_cases()))
def test_operator_half_parameters(name, graph, dtype):
    module, n = build_operator(name, graph)
    x = torch.randn(3, n, 8)
    ref, ref_dx, ref_grads = forward_backward(module, x)
    half = copy.deepcopy(module).to(dtype)
    out, dx, grads = forward_backward(half, x.to(dtype))
    assert out.dtype == dtype and dx.dtype == dtype
    tol = TOL[dtype]
    assert_close_rel(out, ref, tol, 'output')
    assert_close_rel(dx, ref_dx, tol, 'grad of x')
    assert grads.keys() == ref_grads.keys()
    for key in grads:
        assert grads[key].dtype == dtype
        assert_close_rel(grads[key], ref_grads[key], tol, f'grad of {key}')


@pytest.mark.parametrize('name,graph', list(operator_cases()))
def test_operator_autocast(name, graph):
    module, n = build_operator(name, graph)
    x = torch.randn(3, n, 8)
    ref, ref_dx, ref_grads = forward_backward(module, x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, dx, grads = forward_backward(copy.deepcopy(module), x)
    assert dx.dtype == torch.float32
    tol = TOL[torch.bfloat16]
    assert_close_rel(out, ref, tol, 'output')
    assert_close_rel(dx, ref_dx, tol, 'grad of x')
    for key in ref_grads:
        assert grads[key].dtype == torch.float32
        assert_close_rel(grads[key], ref_grads[key], tol, f'grad of {key}')


def disjoint_inputs(name, n, x):
    """A disjoint batch of the samples of x: the operator's
    (x, edge_index[, khop_distance])."""
    ei = GRAPHS[next(g for g in GRAPHS if GRAPHS[g][1] == n)][0]
    if name in HOP_OPERATORS:
        data = KHopEdges(3)(Data(edge_index=ei, num_nodes=n))
        batch = Batch.from_data_list([data] * x.size(0))
        return x.reshape(-1, x.size(-1)), batch.khop_edge_index, \
            batch.khop_distance
    batch = Batch.from_data_list([Data(edge_index=ei, num_nodes=n)] *
                                 x.size(0))
    return x.reshape(-1, x.size(-1)), batch.edge_index


@pytest.mark.parametrize('dtype', [torch.bfloat16])
@pytest.mark.parametrize('name,graph', list(operator_cases()))
def test_operator_half_disjoint_batch(name, graph, dtype):
    module, n = build_operator(name, graph)
    x = torch.randn(2, n, 8)
    inputs = disjoint_inputs(name, n, x)
    ref = module(*inputs)
    half = copy.deepcopy(module).to(dtype)
    out = half(inputs[0].to(dtype), *inputs[1:])
    assert out.dtype == dtype
    assert_close_rel(out, ref, TOL[dtype], 'output')


@pytest.mark.parametrize('name,graph', list(operator_cases()))
def test_operator_meta_device(name, graph):
    """Shape inference: the module moved to the meta device runs its static
    and its disjoint path (no value is ever read), forward and backward."""
    module, n = build_operator(name, graph)
    x = torch.randn(2, n, 8)
    ref = module(x)
    inputs = disjoint_inputs(name, n, x)
    ref_disjoint = module(*inputs)
    meta = copy.deepcopy(module).to('meta')
    xm = x.to('meta').requires_grad_()
    out = meta(xm)
    assert out.device.type == 'meta' and out.shape == ref.shape
    out.sum().backward()
    assert xm.grad.shape == x.shape
    out = meta(*(t.to('meta') for t in inputs))
    assert out.device.type == 'meta' and out.shape == ref_disjoint.shape


# ---------------------------------------------------------------- models

@pytest.mark.parametrize('dtype', HALF)
@pytest.mark.parametrize('name', list(MODELS))
def test_model_half_parameters(name, dtype):
    model, x = build_model(name)
    ref = first(model(x))
    half = copy.deepcopy(model).to(dtype)
    out, dx, grads = forward_backward(half, x.to(dtype))
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in grads.values())
    # Several layers deep: a looser bound than one layer's.
    assert_close_rel(out, ref, 4 * TOL[dtype], 'output')


@pytest.mark.parametrize('name', list(MODELS))
def test_model_autocast(name):
    model, x = build_model(name)
    ref = first(model(x))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, dx, grads = forward_backward(copy.deepcopy(model), x)
    assert dx.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads.values())
    assert_close_rel(out, ref, 4 * TOL[torch.bfloat16], 'output')


@pytest.mark.parametrize('name', list(MODELS))
def test_model_meta_device(name):
    model, x = build_model(name)
    ref = first(model(x))
    out = first(copy.deepcopy(model).to('meta')(x.to('meta')))
    assert out.device.type == 'meta' and out.shape == ref.shape


def test_semgcn_meta_disjoint_batch():
    model, x = build_model('SemGCN')
    batch = Batch.from_data_list([Data(edge_index=SKELETON.edge_index,
                                       num_nodes=17)] * x.size(0))
    flat = x.reshape(-1, 2)
    ref = model(flat, batch.edge_index, batch.batch)
    meta = copy.deepcopy(model).to('meta')
    out = meta(flat.to('meta'), batch.edge_index.to('meta'),
               batch.batch.to('meta'))
    assert out.device.type == 'meta' and out.shape == ref.shape


@pytest.mark.parametrize('name', list(OPERATORS) + list(MODELS))
def test_construct_on_meta_device(name):
    """Built under 'with torch.device("meta")': the graph structures are
    computed on the CPU, then every parameter and buffer is on the meta
    device, and the module infers its output shape."""
    if name in OPERATORS:
        ei, n = GRAPHS['ring40']
        ref = OPERATORS[name](ei, n)
        x = torch.randn(2, n, 8)
        with torch.device('meta'):
            module = OPERATORS[name](ei, n)
    else:
        ref, x = build_model(name)
        with torch.device('meta'):
            module = MODELS[name]()[0].eval()
    tensors = list(module.parameters()) + list(module.buffers())
    assert tensors and all(t.device.type == 'meta' for t in tensors)
    assert [t.shape for t in tensors] == [
        t.shape for t in list(ref.parameters()) + list(ref.buffers())]
    out = first(module(x.to('meta')))
    assert out.device.type == 'meta' and out.shape == first(ref(x)).shape

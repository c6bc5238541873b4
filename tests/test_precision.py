"""Half precision (bfloat16 and float16 parameters, CPU autocast) and the
meta device on every operator and model, on skeletons (dense products) and
on graphs above ``DENSE_MAX_NODES`` (the sparse CSR kernel).

References are float32 results of the same weights, and for the CSR kernel
a dense matrix written here; half precision keeps about three significant
digits, so outputs and gradients are compared relative to their largest
entry.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_skeleton.nn import Topology

from _helpers import (
    H36M17,
    KERNEL_GRAPHS,
    KERNEL_OPERATORS,
    MODELS,
    build_model,
    build_operator,
    disjoint_inputs,
    first,
    forward_backward,
    operator_cases,
)

pytestmark = pytest.mark.operator

HALF = [torch.bfloat16, torch.float16]
# Relative tolerance of a layer's output or gradient (a few roundings of
# 2^-8 for bfloat16, 2^-11 for float16, summed over a handful of terms).
TOL = {torch.bfloat16: 4e-2, torch.float16: 8e-3}


def assert_close_rel(actual, expected, tol, what):
    actual, expected = actual.float(), expected.float()
    scale = expected.abs().max().clamp(min=1e-6)
    err = (actual - expected).abs().max() / scale
    assert torch.isfinite(actual).all(), f'{what}: non-finite values'
    assert err <= tol, f'{what}: relative error {float(err):.3g} > {tol}'


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
    ei, n = KERNEL_GRAPHS['ring40']
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
    ei, n = KERNEL_GRAPHS['ring40']
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
    ei, n = KERNEL_GRAPHS['ring40']
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


@pytest.mark.parametrize('dtype', [torch.bfloat16])
@pytest.mark.parametrize('name,graph', list(operator_cases()))
def test_operator_half_disjoint_batch(name, graph, dtype):
    module, n = build_operator(name, graph)
    x = torch.randn(2, n, 8)
    inputs = disjoint_inputs(name, graph, x)
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
    inputs = disjoint_inputs(name, graph, x)
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
    batch = Batch.from_data_list([Data(edge_index=H36M17.edge_index,
                                       num_nodes=17)] * x.size(0))
    flat = x.reshape(-1, 2)
    ref = model(flat, batch.edge_index, batch.batch)
    meta = copy.deepcopy(model).to('meta')
    out = meta(flat.to('meta'), batch.edge_index.to('meta'),
               batch.batch.to('meta'))
    assert out.device.type == 'meta' and out.shape == ref.shape


@pytest.mark.parametrize('name', list(KERNEL_OPERATORS) + list(MODELS))
def test_construct_on_meta_device(name):
    """Built under 'with torch.device("meta")': the graph structures are
    computed on the CPU, then every parameter and buffer is on the meta
    device, and the module infers its output shape."""
    if name in KERNEL_OPERATORS:
        ei, n = KERNEL_GRAPHS['ring40']
        ref = KERNEL_OPERATORS[name](ei, n)
        x = torch.randn(2, n, 8)
        with torch.device('meta'):
            module = KERNEL_OPERATORS[name](ei, n)
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

"""Device handling: tensors follow the module's or the process's device,
the validation switch removes every host synchronisation of the operators,
and (marked ``cuda``, skipped without a GPU) the operator checks on CUDA.

Without a GPU, device mixing is caught with the meta device: every operator
and model runs on CPU tensors with ``torch.device('meta')`` as the default
device, so a tensor created without ``device=`` would land on the meta
device and fail the first operation that mixes it with the CPU input.
"""
from __future__ import annotations

import argparse
import copy
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch_geometric.data import Batch, Data

import pyg_skeleton
from pyg_skeleton import Skeleton
from pyg_skeleton.metrics import MetricAccumulator, process_group_device
from pyg_skeleton.nn import DynamicHCSFConv, SemGraphConv
from pyg_skeleton.nn.models.self_adaptive import temporal_resample

from _helpers import (
    MODELS,
    build_model,
    build_operator,
    disjoint_inputs,
    first,
    forward_backward,
    operator_cases,
)

SKELETON = Skeleton.preset('h36m17')
CASES = list(operator_cases())


# ------------------------------------------------------- device following

@pytest.mark.parametrize('name,graph', CASES)
def test_operator_tensors_follow_the_input_device(name, graph):
    module, n = build_operator(name, graph)
    x = torch.randn(2, n, 8)
    inputs = disjoint_inputs(name, graph, x)
    with torch.device('meta'):
        out = module(x)
        out.sum().backward()
        out_disjoint = module(*inputs)
        out_disjoint.sum().backward()
        module.reset_parameters()
    assert out.device.type == out_disjoint.device.type == 'cpu'
    assert all(p.device.type == 'cpu' for p in module.parameters())


@pytest.mark.parametrize('name', list(MODELS))
def test_model_tensors_follow_the_input_device(name):
    model, x = build_model(name)
    with torch.device('meta'):
        out = first(model(x))
        out.sum().backward()
    assert out.device.type == 'cpu'


def test_temporal_resample_follows_the_input_device():
    seq = torch.randn(6, 17, 3)
    with torch.device('meta'):
        out = temporal_resample(seq, 0.5)
    assert out.device.type == 'cpu' and out.shape == seq.shape


@pytest.mark.parametrize('graph_init', ['ori', 'dense', 'rand'])
@pytest.mark.parametrize('candidates', ['all', 'hop'])
def test_dynamic_hcsf_reset_parameters_on_the_buffers_device(graph_init,
                                                             candidates):
    """reset_parameters after the module moved: the initial graph is built
    on the device of the index buffers (it mixed CPU tensors with them)."""
    torch.manual_seed(0)
    conv = DynamicHCSFConv(4, 6, SKELETON.edge_index, 17, graph=graph_init,
                           candidates=candidates)
    meta = copy.deepcopy(conv).to('meta')
    meta.reset_parameters()
    assert meta.graph_weight.device.type == 'meta'
    # On the CPU the initial graph is as documented: rows that sum to one
    # over each target's candidates of each hop.
    conv.reset_parameters()
    w = conv.graph_weight.detach()
    if candidates == 'all':
        torch.testing.assert_close(w.sum(-1), torch.ones(17, 3))
    else:
        # one weight per hop pair, sorted by target, then source
        src, dst = conv.hop_edge_index
        order = torch.argsort(dst * 17 + src)
        hop, dst = conv.hop[order], dst[order]
        total = torch.zeros(17 * 3).index_add_(0, dst * 3 + hop, w)
        torch.testing.assert_close(total, torch.ones(17 * 3))


# ------------------------------------------------------------- validation

SYNCS = ('item', 'tolist', '__bool__', '__int__', '__float__', '__index__',
         'nonzero', 'any', 'all', 'unique')


@pytest.fixture
def no_host_sync(monkeypatch):
    """Makes every Python-level read of a tensor's value (and the value-
    dependent ops nonzero/unique) raise."""
    def patch():
        for attr in SYNCS:
            def fail(self, *args, _attr=attr, **kwargs):
                raise AssertionError(f'host synchronisation: Tensor.{_attr}')
            monkeypatch.setattr(torch.Tensor, attr, fail)
    return patch


@pytest.mark.parametrize('name,graph', CASES)
def test_validation_off_has_no_host_sync(name, graph, no_host_sync):
    module, n = build_operator(name, graph)
    x = torch.randn(2, n, 8)
    inputs = disjoint_inputs(name, graph, x)
    ref, ref_disjoint = module(x), module(*inputs)
    with pyg_skeleton.validation(False):
        no_host_sync()
        out, out_disjoint = module(x), module(*inputs)
        # Dropped edges, too (the general message-passing path).
        partial = module(inputs[0], inputs[1][:, 1:], *(
            t[1:] for t in inputs[2:]))
    assert torch.equal(out, ref)
    assert torch.equal(out_disjoint, ref_disjoint)
    assert partial.shape == ref_disjoint.shape


def test_validation_off_non_local_block(no_host_sync):
    model, x = build_model('NonLocalBlock')
    batch = Batch.from_data_list([Data(num_nodes=17)] * 4).batch
    ref = model(x.reshape(-1, 8), batch)
    with pyg_skeleton.validation(False):
        no_host_sync()
        out = model(x.reshape(-1, 8), batch)
    assert torch.equal(out, ref)


def test_validation_switch():
    conv = SemGraphConv(4, 5, SKELETON.edge_index)
    x = torch.randn(2 * 17, 4)
    bad = torch.tensor([[0], [16]])  # not an edge of the skeleton
    cross = torch.tensor([[0], [17 + 1]])  # joins two copies
    assert pyg_skeleton.validation_enabled()
    for edge_index in (bad, cross):
        with pytest.raises(ValueError):
            conv(x, edge_index)
    with pyg_skeleton.validation(False):
        assert not pyg_skeleton.validation_enabled()
        conv(x, bad)  # trusted, not checked
        with pyg_skeleton.validation(True):
            with pytest.raises(ValueError, match='not an edge'):
                conv(x, bad)
        assert not pyg_skeleton.validation_enabled()
    assert pyg_skeleton.validation_enabled()
    assert pyg_skeleton.set_validation(False) is True
    assert pyg_skeleton.set_validation(True) is False
    with pytest.raises(ValueError, match='True or False'):
        pyg_skeleton.set_validation('off')
    # Shape checks stay on: they cost nothing.
    with pyg_skeleton.validation(False):
        with pytest.raises(ValueError, match='not a multiple'):
            conv(torch.randn(20, 4), SKELETON.edge_index)


def test_validation_off_trusts_the_declared_layout():
    """With checks off an edge_index of whole copies' edge count is taken
    to be whole copies (the static kernel), without looking at it."""
    conv = SemGraphConv(4, 5, SKELETON.edge_index)
    batch = Batch.from_data_list([Data(edge_index=SKELETON.edge_index,
                                       num_nodes=17)] * 2)
    x = torch.randn(34, 4)
    shuffled = batch.edge_index[:, torch.randperm(batch.edge_index.size(1))]
    ref = conv(x, shuffled)
    with pyg_skeleton.validation(False):
        assert conv.topology.tiles(shuffled, 34)
        out = conv(x, shuffled)
    torch.testing.assert_close(out, ref)


# ------------------------------------------------------------ reductions

def test_process_group_device(monkeypatch):
    assert process_group_device() == torch.device('cpu')  # no group
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_backend', lambda *a: 'gloo')
    assert process_group_device() == torch.device('cpu')
    monkeypatch.setattr(dist, 'get_backend', lambda *a: 'nccl')
    monkeypatch.setenv('LOCAL_RANK', '3')
    assert process_group_device() == torch.device('cuda', 3)


def test_metric_all_reduce_on_the_process_group_device(monkeypatch):
    """The accumulator reduces on the group's device (NCCL: the GPU) and
    keeps its sums on the CPU."""
    seen = []

    def fake_all_reduce(t):
        seen.append(t.device)
        t.mul_(2)  # two ranks with the same sums

    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda *a: 2)
    monkeypatch.setattr(dist, 'all_reduce', fake_all_reduce)
    monkeypatch.setattr('pyg_skeleton.metrics.process_group_device',
                        lambda: torch.device('meta'))
    acc = MetricAccumulator(17)
    acc.update(torch.randn(4, 17, 3), torch.randn(4, 17, 3))
    with pytest.raises(NotImplementedError):  # meta has no values to copy
        acc.all_reduce()
    assert seen == [torch.device('meta')]

    monkeypatch.setattr('pyg_skeleton.metrics.process_group_device',
                        lambda: torch.device('cpu'))
    counts = acc.joint_counts.clone()
    acc.all_reduce()
    assert seen[-1] == torch.device('cpu')
    assert acc.joint_counts.device.type == 'cpu'
    torch.testing.assert_close(acc.joint_counts, 2 * counts)


def test_evaluate_moves_the_model_to_the_device():
    from pyg_skeleton.cli.train import evaluate

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.moved_to = []

        def to(self, *args, **kwargs):
            self.moved_to.append(torch.device(args[0]))
            return super().to(*args, **kwargs)

        def forward(self, x):
            return self.scale * torch.cat([x[..., :2], x[..., :1]], -1)

    class Data:
        x = torch.randn(5, 17, 2)
        y = torch.randn(5, 17, 3)
        group = torch.zeros(5, dtype=torch.long)
        group_names = []

        def __len__(self):
            return 5

    model = Spy()
    metrics = evaluate(model, Data(), SKELETON, 2, False,
                       device=torch.device('cpu'))
    assert model.moved_to == [torch.device('cpu')]
    assert metrics['mpjpe'] > 0


def test_resolve_device():
    from pyg_skeleton.inference import resolve_device
    assert resolve_device(None) == torch.device('cpu')
    assert resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('gpu0')
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match='not available'):
        resolve_device(f'cuda:{count}')


@pytest.mark.filterwarnings("ignore:the torso is rotated")
def test_lift_device_argument():
    uv = torch.rand(2, 17, 2) * 500
    ref = pyg_skeleton.lift(uv.numpy(), format='h36m17', flip=False)
    out = pyg_skeleton.lift(uv.numpy(), format='h36m17', flip=False,
                            device='cpu')
    assert (ref.poses == out.poses).all()
    with pytest.raises(ValueError, match='unknown device'):
        pyg_skeleton.lift(uv.numpy(), format='h36m17', device='tpu')


def test_cli_device_options():
    from pyg_skeleton.cli.lift import add_arguments
    from pyg_skeleton.cli.train import add_evaluate_arguments
    for add in (add_arguments, add_evaluate_arguments):
        p = argparse.ArgumentParser()
        add(p)
        args = p.parse_args(['--device', 'cuda:1'] + (
            ['--checkpoint', 'x'] if add is add_evaluate_arguments else []))
        assert args.device == 'cuda:1'


@pytest.mark.parametrize('command', [
    ['evaluate', '--checkpoint', 'missing.pt'],
    ['lift', 'missing.json'],
])
def test_cli_rejects_an_unknown_or_absent_device(command, capsys, tmp_path):
    from pyg_skeleton.cli.main import main
    if command[0] == 'lift':  # an input that exists, so the device is reached
        source = tmp_path / 'poses.npy'
        np.save(source, np.random.rand(1, 17, 2) * 500)
        command = ['lift', str(source), '--format', 'h36m17']
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, message in (('tpu', 'unknown device'),
                            (f'cuda:{count}', 'not available')):
        assert main(command + ['--device', device]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ CUDA

@pytest.mark.cuda
@pytest.mark.parametrize('name,graph', CASES)
def test_cuda_matches_cpu(name, graph):
    """Dense (skeleton) and sparse (ring, CSR kernel) paths on the GPU give
    the CPU's outputs and gradients, on a static and a disjoint batch."""
    module, n = build_operator(name, graph)
    x = torch.randn(3, n, 8)
    ref, ref_dx, ref_grads = forward_backward(module, x)
    gpu = copy.deepcopy(module).cuda()
    out, dx, grads = forward_backward(gpu, x.cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dx.cpu(), ref_dx, atol=1e-4, rtol=1e-4)
    for key in ref_grads:
        torch.testing.assert_close(grads[key].cpu(), ref_grads[key],
                                   atol=1e-4, rtol=1e-4)
    inputs = [t.cuda() for t in disjoint_inputs(name, graph, x)]
    disjoint = gpu(*inputs)
    torch.testing.assert_close(disjoint.view_as(out), out, atol=1e-5,
                               rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize('name,graph', CASES)
def test_cuda_autocast(name, graph):
    module, n = build_operator(name, graph)
    x = torch.randn(3, n, 8)
    ref = module(x)
    gpu = copy.deepcopy(module).cuda()
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = gpu(x.cuda())
    out.float().sum().backward()
    err = (out.float().cpu() - ref).abs().max() / ref.abs().max()
    assert err < 4e-2


@pytest.mark.cuda
@pytest.mark.parametrize('name,graph', CASES)
def test_cuda_validation_off_never_syncs(name, graph):
    module, n = build_operator(name, graph)
    gpu = copy.deepcopy(module).cuda()
    x = torch.randn(2, n, 8, device='cuda')
    inputs = [t.cuda() for t in disjoint_inputs(name, graph, x.cpu())]
    gpu(x), gpu(*inputs)  # warm-up: lazy initialisations may sync once
    torch.cuda.synchronize()
    with pyg_skeleton.validation(False):
        torch.cuda.set_sync_debug_mode('error')
        try:
            gpu(x)
            gpu(*inputs)
        finally:
            torch.cuda.set_sync_debug_mode('default')


@pytest.mark.cuda
def test_cuda_nccl_reduction():
    """A one-rank NCCL group: the accumulator's reduction runs on the GPU."""
    if not dist.is_nccl_available():
        pytest.skip('this PyTorch has no NCCL')
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29533')
    dist.init_process_group('nccl', rank=0, world_size=1)
    try:
        assert process_group_device().type == 'cuda'
        t = torch.ones(3, device=process_group_device())
        dist.all_reduce(t)
        acc = MetricAccumulator(17)
        acc.update(torch.randn(4, 17, 3), torch.randn(4, 17, 3))
        acc.all_reduce()
        assert acc.joint_sums.device.type == 'cpu'
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
def test_cuda_training_device(tmp_path):
    """``TrainConfig.device``: a run trains on the GPU it names, or on the
    CPU of a machine that has a GPU."""
    import json

    from pyg_skeleton.training import TrainConfig, Trainer
    for device in ('cuda', 'cpu'):
        config = TrainConfig(synthetic_train=100, synthetic_test=20, views=1, batch_size=32,
                             hidden_channels=16, num_layers=1, epochs=1, no_progress=True,
                             no_plots=True, device=device, out=str(tmp_path / device))
        trainer = Trainer(config=config, log=lambda *a, **k: None)
        report = trainer.fit()
        assert next(trainer.model.parameters()).device.type == device
        written = json.loads((tmp_path / device / 'config.json').read_text())['device']
        assert written.startswith(device)
        assert report['final']['mpjpe'] > 0

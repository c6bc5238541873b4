"""Export of every operator and model: ONNX (dynamo exporter, checked in
onnxruntime on fresh inputs against eager), torch.export programs, and the
clear errors of the TorchScript-based tools (torch.jit.script,
torch.jit.trace, the legacy ONNX exporter)."""
from __future__ import annotations

import io
import warnings

import pytest
import torch

import pyg_skeleton.nn.conv as psconv
from pyg_skeleton import Skeleton, validation
from pyg_skeleton.export import export_onnx, export_program, verify_onnx
from pyg_skeleton.mesh import MeshHierarchy
from pyg_skeleton.nn import (
    HGN,
    DynamicHCSFConv,
    MixHopSkeletonConv,
    MSHopConv,
    NonLocalBlock,
    PreAggConv,
    SemGCN,
    SemGraphConv,
    SkeletalGNN,
)

from _helpers import grid_mesh, operator_table, ring

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')


# Levels of 80, 41, 21 and 11 nodes (padded: 88, 44, 22).
HIERARCHY = MeshHierarchy.from_mesh(grid_mesh(10, 8), max_nodes=13,
                                    padded=True)
H36M = Skeleton.preset('h36m17')
#: name -> (edge_index, num_nodes): a skeleton, and two graphs over 32 nodes
#: (the CSR kernels of the fixed-graph operators).
GRAPHS = {
    'h36m17': (H36M.edge_index, 17),
    'ring40': (ring(40), 40),
    'mesh41': (HIERARCHY.edge_index(1), HIERARCHY.num_nodes[1]),
}
#: Every operator, at small widths, on a graph (the hop mixers over two
#: hops only), and the non-local block.
OPERATORS = {
    **operator_table(4, 6),
    'PreAggConv': lambda e, n: PreAggConv(4, 6, e, n, decoupled=True),
    'DynamicHCSFConv': lambda e, n: DynamicHCSFConv(4, 6, e, n),
    'MixHopSkeletonConv': lambda e, n: MixHopSkeletonConv(
        4, 6, e, n, hops=(1, 2)),
    'MSHopConv': lambda e, n: MSHopConv(4, 6, e, n, hops=(1, 2)),
    'NonLocalBlock': lambda e, n: NonLocalBlock(4),
}


def test_every_operator_is_covered():
    # Every class of pyg_skeleton.nn.conv, and the non-local block.
    assert set(psconv.__all__) | {'NonLocalBlock'} == {
        name.split('-')[0] for name in OPERATORS}


def build(name, graph, seed=0):
    torch.manual_seed(seed)
    module = OPERATORS[name](*GRAPHS[graph])
    # Non-trivial learned state: random parameters and batch-norm
    # statistics, so that a wrong graph cannot pass by symmetry.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def ort_run(path, *inputs):
    session = ort.InferenceSession(str(path),
                                   providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    assert len(names) == len(inputs)
    return session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})


# ONNX ######################################################################
# Each operator on the skeleton with a dynamic batch (checked at B = 1, 3
# and 6). The fixed-graph operators, whose kernels change above 32 nodes,
# also on the 40-node ring with a static batch, and two on a mesh level
# (the hop-aware operators and the non-local block run the same kernels on
# all three graphs; torch.export covers them on the ring below).
FIXED_GRAPH = ['SemGraphConv', 'SemGraphConv-channelwise', 'FullSharingConv',
               'PreAggConv', 'PostAggConv', 'ConvStyleConv', 'NoSharingConv']
CASES = [(name, 'h36m17', True) for name in OPERATORS] + [
    (name, 'ring40', False) for name in FIXED_GRAPH
] + [(name, 'mesh41', True) for name in ('SemGraphConv', 'NoSharingConv')]


@pytest.mark.parametrize('name,graph,dynamic', CASES)
def test_onnx_operator(tmp_path, name, graph, dynamic):
    module = build(name, graph)
    n = GRAPHS[graph][1]
    path = tmp_path / 'op.onnx'
    result = export_onnx(module, (torch.randn(3, n, 4), ), path,
                         dynamic_batch=dynamic)
    assert result.path == path and path.is_file()
    assert result.batch_sizes == ([1, 3, 6] if dynamic else [3])
    assert result.max_abs_diff < 1e-4
    # Independently of export_onnx's own check: a fresh input through
    # onnxruntime against eager.
    x = torch.randn(5 if dynamic else 3, n, 4)
    (got, ) = ort_run(path, x)
    assert torch.allclose(torch.from_numpy(got), module(x), atol=1e-5)
    if not dynamic:
        with pytest.raises(Exception):  # a static file keeps its batch
            ort_run(path, torch.randn(5, n, 4))


@pytest.mark.parametrize('graph', ['h36m17', 'ring40'])
def test_onnx_constant_edge_index(tmp_path, graph):
    # edge_index held by the module and passed to the layer: the
    # message-passing path with the edge softmax over a subset of edges.
    edge_index, n = GRAPHS[graph]
    keep = edge_index[:, ::2]  # drop every other edge

    class WithEdges(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = SemGraphConv(4, 6, edge_index, n)
            self.register_buffer('edge_index', keep)

        def forward(self, x):
            return self.conv(x, self.edge_index)

    torch.manual_seed(1)
    module = WithEdges().eval()
    with torch.no_grad():
        module.conv.logits.normal_()
    result = export_onnx(module, torch.randn(2, n, 4), tmp_path / 'e.onnx')
    assert result.max_abs_diff < 1e-4
    # Dense reference: a_ij = softmax over i's kept in-edges and self-loop.
    x = torch.randn(3, n, 4)
    conv = module.conv
    src, dst = conv.topology.src, conv.topology.dst
    kept = set(map(tuple, keep.t().tolist()))
    logits = torch.full((n, n), float('-inf'))
    for k in range(src.numel()):
        j, i = int(src[k]), int(dst[k])
        if i == j or (j, i) in kept:
            logits[i, j] = conv.logits[k]
    a = logits.softmax(-1)
    eye = torch.eye(n)
    ref = (a * eye) @ conv.lin_self(x) + (a * (1 - eye)) @ conv.lin_neighbor(
        x) + conv.bias
    (got, ) = ort_run(tmp_path / 'e.onnx', x)
    assert torch.allclose(torch.from_numpy(got), ref, atol=1e-5)


def small_hgn():
    torch.manual_seed(0)
    # One block per branch: branches of 17, 22 and 44 (padded) nodes.
    return HGN.from_hierarchy('h36m17', HIERARCHY, hidden_channels=8,
                              num_blocks=(1, 1, 1))


MODELS = {
    'SemGCN': lambda: SemGCN('h36m17', hidden_channels=8, num_layers=1),
    'SemGCN-non-local': lambda: SemGCN('h36m17', hidden_channels=8,
                                       num_layers=1, non_local=True),
    'SkeletalGNN': lambda: SkeletalGNN('h36m17', hidden_channels=8,
                                       num_blocks=1),
    'SkeletalGNN-dynamic': lambda: SkeletalGNN(
        'h36m17', hidden_channels=8, num_blocks=1, dynamic=True),
    'HGN': small_hgn,
}


@pytest.mark.parametrize(
    'name', [m for m in MODELS if m != 'SkeletalGNN-dynamic'])
def test_onnx_model(tmp_path, name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    x = torch.randn(2, 17, 2)
    result = export_onnx(model, x, tmp_path / 'm.onnx')
    assert result.max_abs_diff < 1e-4 and result.batch_sizes == [1, 2, 5]
    x = torch.randn(4, 17, 2)
    got = ort_run(tmp_path / 'm.onnx', x)
    expected = model(x)
    expected = expected if isinstance(expected, list) else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert torch.allclose(torch.from_numpy(g), e, atol=1e-4)
    assert model.training is False


def test_onnx_bundled_lifter(tmp_path):
    from pyg_skeleton.lifter import PRETRAINED_DIR, Lifter
    lifter = Lifter.load(PRETRAINED_DIR / 'nosharing.pt')
    lifter.train()  # export_onnx exports in eval mode and restores the mode
    x = torch.randn(1, 17, 3)
    result = export_onnx(lifter, x, tmp_path / 'lifter.onnx')
    assert lifter.training
    lifter.eval()
    x = torch.randn(7, 17, 3)
    (got, ) = ort_run(tmp_path / 'lifter.onnx', x)
    assert torch.allclose(torch.from_numpy(got), lifter(x), atol=1e-5)
    assert result.max_abs_diff < 1e-4


def test_verify_onnx_catches_a_wrong_file(tmp_path):
    a = build('SemGraphConv', 'ring40', seed=0)
    b = build('SemGraphConv', 'ring40', seed=1)
    path = tmp_path / 'a.onnx'
    export_onnx(a, torch.randn(2, 40, 4), path, dynamic_batch=False)
    with pytest.raises(RuntimeError, match='a.onnx: onnxruntime differs'):
        verify_onnx(b, path, torch.randn(2, 40, 4), dynamic_batch=False)
    # The output is written only when the check passes.
    old = path.read_bytes()
    import pyg_skeleton.export as ex
    real = ex.verify_onnx

    def fail(*args, **kwargs):
        raise RuntimeError(f"{args[1]}: onnxruntime differs")

    ex.verify_onnx = fail
    try:
        with pytest.raises(RuntimeError, match=f'^{path}: onnxruntime'):
            export_onnx(b, torch.randn(2, 40, 4), path, dynamic_batch=False)
    finally:
        ex.verify_onnx = real
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.onnx']


# torch.export ##############################################################

@pytest.mark.parametrize('graph', ['h36m17', 'ring40'])
@pytest.mark.parametrize('name', OPERATORS)
def test_export_program_operator(name, graph):
    module = build(name, graph)
    n = GRAPHS[graph][1]
    program = export_program(module, torch.randn(1, n, 4))
    run = program.module()
    for b in (1, 4):
        x = torch.randn(b, n, 4)
        assert torch.allclose(run(x), module(x), atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_export_program_model(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    run = export_program(model, torch.randn(3, 17, 2)).module()
    x = torch.randn(1, 17, 2)
    out, ref = run(x), model(x)
    for o, r in zip(out if isinstance(out, list) else [out],
                    ref if isinstance(ref, list) else [ref]):
        assert torch.allclose(o, r, atol=1e-5)


def test_export_program_static_batch():
    module = build('SemGraphConv', 'ring40')
    run = export_program(module, torch.randn(3, 40, 4),
                         dynamic_batch=False).module()
    assert torch.allclose(run(x := torch.randn(3, 40, 4)), module(x),
                          atol=1e-5)
    with pytest.raises(Exception):
        run(torch.randn(4, 40, 4))


def _aten_ops(program):
    return {str(node.target) for node in program.graph.nodes
            if node.op == 'call_function'}


def test_export_without_validation_holds_the_dense_product():
    # With checks on, a traced graph must not depend on the data, so it
    # holds the edge sum; with them off the dense product is always taken.
    torch.manual_seed(0)
    model = MODELS['SemGCN']().eval()
    checked = _aten_ops(export_program(model, torch.randn(2, 17, 2)))
    with validation(False):
        program = export_program(model, torch.randn(2, 17, 2))
    trusted = _aten_ops(program)
    assert 'aten.index_add.default' in checked
    assert 'aten.index_add.default' not in trusted
    assert 'aten.baddbmm.default' in trusted
    x = torch.randn(5, 17, 2)
    assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_dynamic_batch_needs_a_batched_input():
    with pytest.raises(ValueError, match='dynamic_batch=True needs'):
        export_program(build('SemGraphConv', 'h36m17'), torch.randn(17, 4))


# TorchScript ###############################################################

@pytest.mark.parametrize('name', OPERATORS)
def test_legacy_onnx_export_raises(name):
    # The legacy exporter used to write an input-less constant graph for
    # SemGraphConv on graphs over 32 nodes.
    module = build(name, 'ring40')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        with pytest.raises(RuntimeError, match=r'dynamo=True.*export_onnx'):
            torch.onnx.export(module, (torch.randn(2, 40, 4), ),
                              io.BytesIO(), dynamo=False)
        with pytest.raises(RuntimeError, match='cannot be traced'):
            torch.jit.trace(module, torch.randn(2, 40, 4))


def test_legacy_onnx_export_of_a_model_raises():
    model = MODELS['HGN']().eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        with pytest.raises(RuntimeError, match='dynamo=True'):
            torch.onnx.export(model, (torch.randn(2, 17, 2), ), io.BytesIO(),
                              dynamo=False)


@pytest.mark.parametrize('name', OPERATORS)
def test_torchscript_raises(name):
    module = build(name, 'h36m17')
    with pytest.raises(RuntimeError,
                       match=rf"'{name.split('-')[0]}' does not support "
                       r"TorchScript.*torch.export.*torch.compile"):
        torch.jit.script(module)


def test_torchscript_of_a_model_raises():
    with pytest.raises(RuntimeError, match='does not support TorchScript'):
        torch.jit.script(MODELS['SemGCN']())


# pyg-skeleton export #######################################################

def test_cli_export_train_checkpoint(tmp_path, capsys):
    from pyg_skeleton.cli.export import load_model
    from pyg_skeleton.cli.main import main
    run = tmp_path / 'run'
    assert main(['train', '--dataset', 'synthetic', '--synthetic-train', '64',
                 '--synthetic-test', '8', '--views', '1', '--batch-size',
                 '32', '--hidden-channels', '8', '--num-layers', '1',
                 '--max-steps', '2', '--no-progress', '--no-plots', '--out',
                 str(run)]) == 0
    capsys.readouterr()
    assert main(['export', '--checkpoint', str(run / 'last.pt')]) == 0
    printed = capsys.readouterr().out
    assert f"-> {run / 'last.onnx'} (onnx, batch dynamic)" in printed
    assert 'at batch 1, 2, 5: max abs difference' in printed
    model, example, _ = load_model(run / 'last.pt')
    x = torch.randn(3, 17, 2)
    (got, ) = ort_run(run / 'last.onnx', x)
    assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-4)
    # No silent overwrite.
    assert main(['export', '--checkpoint', str(run / 'last.pt')]) == 2
    assert 'exists; use --overwrite' in capsys.readouterr().err


def test_cli_export_lifter_torch_export(tmp_path, capsys):
    from pyg_skeleton.cli.main import main
    from pyg_skeleton.lifter import PRETRAINED_DIR, Lifter
    out = tmp_path / 'lifter.pt2'
    lifter = str(PRETRAINED_DIR / 'nosharing.pt')
    assert main(['export', '--checkpoint', lifter,
                 '--format', 'torch.export', '--batch', '3', '--out',
                 str(out)]) == 0
    assert 'batch 3)' in capsys.readouterr().out
    program = torch.export.load(out)
    lifter = Lifter.load(PRETRAINED_DIR / 'nosharing.pt').eval()
    x = torch.randn(3, 17, 3)
    assert torch.allclose(program.module()(x), lifter(x), atol=1e-5)


@pytest.mark.parametrize('argv,message', [
    (['--batch', '0'], "--batch must be 'dynamic' or a positive integer"),
    (['--batch', 'many'], "--batch must be 'dynamic' or a positive integer"),
    (['--format', 'tflite'], None),
])
def test_cli_export_bad_options(tmp_path, capsys, argv, message):
    from pyg_skeleton.cli.main import main
    from pyg_skeleton.lifter import PRETRAINED_DIR
    args = ['export', '--checkpoint', str(PRETRAINED_DIR / 'nosharing.pt'),
            '--out', str(tmp_path / 'x.onnx'), *argv]
    if message is None:  # argparse rejects the choice
        with pytest.raises(SystemExit):
            main(args)
        return
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_cli_export_bad_files(tmp_path, capsys):
    from pyg_skeleton.cli.main import main
    missing = tmp_path / 'none.pt'
    assert main(['export', '--checkpoint', str(missing)]) == 2
    assert f'checkpoint not found: {missing}' in capsys.readouterr().err
    other = tmp_path / 'other.pt'
    torch.save({'format': 'something else'}, other)
    assert main(['export', '--checkpoint', str(other)]) == 2
    assert 'neither a pyg-skeleton train checkpoint nor a lifter file' in (
        capsys.readouterr().err)
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a zip')
    assert main(['export', '--checkpoint', str(junk)]) == 2
    assert f'cannot read checkpoint {junk}' in capsys.readouterr().err


def test_missing_export_packages_name_the_extra(monkeypatch, tmp_path):
    # onnx, onnxscript and onnxruntime are optional: the error names the
    # extra that installs them, before anything is exported or written.
    import importlib.util

    from pyg_skeleton.export import export_onnx, verify_onnx
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'onnxruntime'
                        else find_spec(name, *a))
    model = torch.nn.Linear(2, 3)
    with pytest.raises(ImportError, match=r"onnxruntime: pip install "
                       r"'pyg-skeleton\[export\]'"):
        export_onnx(model, torch.randn(4, 2), tmp_path / 'm.onnx')
    with pytest.raises(ImportError, match='onnxruntime'):
        verify_onnx(model, tmp_path / 'm.onnx', torch.randn(4, 2))
    assert not list(tmp_path.iterdir())

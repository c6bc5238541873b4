"""Real-time latency of 2D-to-3D lifting: one pose (B = 1) and small batches.

SemGCN (h36m17, 128 channels, 4 residual blocks; 267k parameters) and the
bundled ``nosharing`` lifter, run as

* **eager**: the package's modules in PyTorch eager mode;
* **compiled**: ``torch.compile`` of the same modules (default mode, static
  shapes, compiled once per batch size before timing);
* **onnxruntime**: the file of ``pyg_skeleton.export.export_onnx`` (dynamo
  exporter, verified against eager), one ``InferenceSession`` with as many
  intra-op threads as PyTorch;

against a **dense official-style SemGCN** written here: the structure of the
official model (a dense ``N x N`` logit matrix masked by ``A + I``, softmax
over rows, ``(adj * I) @ (X W_0) + (adj * (1 - I)) @ (X W_1) + b`` per layer,
batch norm over ``[B, C, N]``, ReLU, residual blocks), eager and compiled. The
dense model gets the package model's weights, and the benchmark checks that
both compute the same poses before timing anything.

Timings are medians of single calls under ``torch.inference_mode``, the
implementations interleaved in one process so that all of them see the same
machine load (other processes share the CPU), in two ways: **back to back**,
each implementation called 20 times in a row per round (the first call of a
run not counted), as a loop that lifts frame after frame sees it; and **call
by call**, each call after the other implementations' calls, so that it
starts with caches holding their weights, not its own (as between the
frames of a pipeline that runs a 2D detector). Poses per second are
``B / median``. Each thread count runs in its own child process
(``torch.set_num_threads`` before any work).

The ONNX files are exported with the input checks off
(``pyg_skeleton.validation(False)``), which puts the dense product of the
17-joint graph in the file, as eager mode uses it on finite inputs; with
the checks on, the file gathers and scatters along the edges instead, to
keep a NaN within its receptive field.

Writes ``benchmarks/results/latency.md``.

    python benchmarks/bench_latency.py [--quick] [--threads 1 2] [--batches 1 8 64]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyg_skeleton import validation  # noqa: E402
from pyg_skeleton.export import export_onnx  # noqa: E402
from pyg_skeleton.lifter import PRETRAINED_DIR, Lifter  # noqa: E402
from pyg_skeleton.nn import SemGCN  # noqa: E402

from _common import child_json, environment, markdown_table, write_report  # noqa: E402

# ---------------------------------------------------------- the dense model

class DenseSemConv(torch.nn.Module):
    """One semantic graph convolution as the official code computes it: a
    dense masked logit matrix and two weight matrices."""
    def __init__(self, cin, cout, adj):
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(2, cin, cout))
        self.register_buffer('mask', adj > 0)
        self.e = torch.nn.Parameter(torch.ones(int(self.mask.sum())))
        self.bias = torch.nn.Parameter(torch.zeros(cout))
        self.register_buffer('eye', torch.eye(adj.size(0)))

    def forward(self, x):
        h0, h1 = x @ self.W[0], x @ self.W[1]
        logits = torch.full(self.mask.shape, -9e15, dtype=x.dtype)
        logits = logits.masked_scatter(self.mask, self.e)
        adj = logits.softmax(dim=1)
        return (adj * self.eye) @ h0 + (adj * (1 - self.eye)) @ h1 + self.bias


class DenseBlock(torch.nn.Module):
    def __init__(self, cin, cout, adj):
        super().__init__()
        self.conv = DenseSemConv(cin, cout, adj)
        self.bn = torch.nn.BatchNorm1d(cout)

    def forward(self, x):
        x = self.conv(x).transpose(1, 2)  # [B, C, N], as the official code
        return self.bn(x).transpose(1, 2).relu()


class DenseSemGCN(torch.nn.Module):
    def __init__(self, adj, hidden=128, layers=4, cin=2, cout=3):
        super().__init__()
        self.input = DenseBlock(cin, hidden, adj)
        self.blocks = torch.nn.ModuleList([
            torch.nn.ModuleList([DenseBlock(hidden, hidden, adj),
                                 DenseBlock(hidden, hidden, adj)])
            for _ in range(layers)])
        self.output = DenseSemConv(hidden, cout, adj)

    def forward(self, x):
        x = self.input(x)
        for a, b in self.blocks:
            x = x + b(a(x))
        return self.output(x)


def dense_twin(model: SemGCN) -> DenseSemGCN:
    """The dense model with :obj:`model`'s weights (the logits keep their
    row-major layout over ``A + I``)."""
    sk = model.skeleton
    n = sk.num_joints
    adj = torch.zeros(n, n)
    adj[sk.edge_index[1], sk.edge_index[0]] = 1
    adj += torch.eye(n)
    dense = DenseSemGCN(adj, model.hidden_channels, model.num_layers,
                        model.in_channels, model.out_channels)

    def conv(d, s):
        d.W.data.copy_(torch.stack([s.lin_self.weight.t(), s.lin_neighbor.weight.t()]))
        d.e.data.copy_(s.logits)
        d.bias.data.copy_(s.bias)

    def block(d, s):
        conv(d.conv, s.conv)
        d.bn.load_state_dict(s.bn.state_dict())

    block(dense.input, model.input)
    for (a, b), s in zip(dense.blocks, model.blocks):
        block(a, s.block1)
        block(b, s.block2)
    conv(dense.output, model.output)
    return dense.eval()


def products_only(model: SemGCN):
    """An ONNX model of SemGCN's matrix products alone, for a lower bound of
    any exported graph: per layer ``X W^T`` (both weight matrices, ``[B, N,
    F] @ [F, 2C]``) and the product with the dense ``[N, 2N]`` edge-weight
    matrix, on random inputs of each layer's width (no softmax, bias, batch
    norm, ReLU or residual sum)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from pyg_skeleton.nn import SemGraphConv
    convs = [m for m in model.modules() if isinstance(m, SemGraphConv)]
    nodes, inits, inputs, outputs = [], [], {}, []
    for k, conv in enumerate(convs):
        f, c, n = conv.in_channels, conv.out_channels, conv.num_nodes
        if f not in inputs:
            inputs[f] = helper.make_tensor_value_info(f'x{f}', TensorProto.FLOAT, ['B', n, f])
        with torch.no_grad():
            w = torch.cat([conv.lin_self.weight, conv.lin_neighbor.weight]).t()
            pair = conv.topology.pair_matrix(conv.edge_weights()[1])
        inits += [numpy_helper.from_array(np.ascontiguousarray(w.numpy()), f'w{k}'),
                  numpy_helper.from_array(pair.numpy(), f'p{k}'),
                  numpy_helper.from_array(np.array([-1, 2 * n, c], dtype=np.int64), f's{k}')]
        nodes += [helper.make_node('MatMul', [f'x{f}', f'w{k}'], [f'h{k}']),
                  helper.make_node('Reshape', [f'h{k}', f's{k}'], [f'r{k}']),
                  helper.make_node('MatMul', [f'p{k}', f'r{k}'], [f'y{k}'])]
        outputs.append(helper.make_tensor_value_info(f'y{k}', TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, 'products', list(inputs.values()), outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx_model.ir_version = 8
    return onnx_model


def trained_semgcn() -> SemGCN:
    """SemGCN with the bundled ``semgcn`` lifter's trained weights (its input
    has 3 channels, keypoints plus visibility)."""
    return Lifter.load(PRETRAINED_DIR / 'semgcn.pt').net.eval()


# ------------------------------------------------------------------ timing

def interleaved(fns, reps, min_time, block=1):
    """Median seconds per call of each function, in rounds: every round
    calls each function :obj:`block` times in a row, one function after
    the other, so that load changes over the run reach all of them alike.
    With ``block > 1`` the first call of each run of calls is a warm-up
    and is not counted (the caches then hold that function's weights, as
    in a loop that lifts frame after frame); with ``block = 1`` every call
    follows the other functions' calls (cold caches)."""
    times = {k: [] for k in fns}
    start = time.perf_counter()
    r = 0
    while r < reps or time.perf_counter() - start < min_time:
        for k, fn in fns.items():
            for i in range(block):
                t = time.perf_counter()
                fn()
                if block == 1 or i > 0:
                    times[k].append(time.perf_counter() - t)
        r += block
        if r >= 20 * reps:
            break
    return {k: statistics.median(v) for k, v in times.items()}


#: Calls per run of one implementation in the back-to-back timing.
BLOCK = 20


def child(threads, batches, quick):
    import onnxruntime as ort
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    reps, min_time = (30, 1.0) if quick else (200, 4.0)
    models = {'SemGCN': trained_semgcn(),
              'lifter nosharing': Lifter.load(PRETRAINED_DIR / 'nosharing.pt').eval()}
    dense = dense_twin(models['SemGCN'])
    x = torch.randn(4, 17, 3)
    with torch.inference_mode():
        diff = float((dense(x) - models['SemGCN'](x)).abs().max())
    assert diff < 1e-4, f'the dense model differs from SemGCN by {diff}'
    tmp = Path(tempfile.mkdtemp())
    sessions = {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Exported with the input checks off (set_validation): the file then
    # holds the dense product on the 17-joint graph, as eager uses on
    # finite inputs.
    with warnings.catch_warnings(), validation(False):
        warnings.simplefilter('ignore')
        for name, model in models.items():
            path = tmp / f'{name.replace(" ", "_")}.onnx'
            export_onnx(model, torch.randn(2, 17, 3), path)
            sessions[name] = ort.InferenceSession(str(path), options,
                                                  providers=['CPUExecutionProvider'])
    floor = ort.InferenceSession(products_only(models['SemGCN']).SerializeToString(),
                                 options, providers=['CPUExecutionProvider'])
    rows = []
    for b in batches:
        x = torch.randn(b, 17, 3)
        xn = x.numpy()
        fns = {}
        with torch.inference_mode():
            for name, model in models.items():
                compiled = torch.compile(model, dynamic=False)
                compiled(x)  # compile before timing
                sess = sessions[name]
                feed = {sess.get_inputs()[0].name: xn}
                fns[f'{name} eager'] = (lambda m: lambda: m(x))(model)
                fns[f'{name} compiled'] = (lambda m: lambda: m(x))(compiled)
                fns[f'{name} onnxruntime'] = (lambda s, f: lambda: s.run(None, f))(sess, feed)
            floor_feed = {i.name: torch.randn(b, 17, int(i.shape[-1])).numpy()
                          for i in floor.get_inputs()}
            fns['SemGCN weight products only, onnxruntime'] = lambda: floor.run(None, floor_feed)
            dense_compiled = torch.compile(dense, dynamic=False)
            dense_compiled(x)
            fns['dense SemGCN eager'] = lambda: dense(x)
            fns['dense SemGCN compiled'] = lambda: dense_compiled(x)
            warm = interleaved(fns, reps, min_time, block=BLOCK)
            cold = interleaved(fns, reps, min_time)
        rows.append({'batch': b, 'ms': {k: 1e3 * v for k, v in warm.items()},
                     'cold_ms': {k: 1e3 * v for k, v in cold.items()}})
    return {'threads': threads, 'dense_check': diff, 'rows': rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='B = 1 and 8, fewer repetitions')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--batches', type=int, nargs='+', default=None)
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    if args.child:
        threads, quick = int(rest[0]), rest[1] == 'quick'
        batches = [int(b) for b in rest[2].split(',')]
        print(json.dumps(child(threads, batches, quick)))
        return
    batches = args.batches or ([1, 8] if args.quick else [1, 8, 64])
    results = [child_json(__file__, [t, 'quick' if args.quick else 'full',
                                     ','.join(map(str, batches))])
               for t in args.threads]
    body = [__doc__.split('\n\n', 1)[1].rsplit('Writes', 1)[0].strip(), '']
    for res in results:
        t = res['threads']
        body += [f'## {t} thread{"s" if t > 1 else ""}', '']
        for key, title in (('ms', f'Back to back (runs of {BLOCK} calls, warm caches)'),
                           ('cold_ms', 'Call by call (cold caches)')):
            names = list(res['rows'][0][key])
            header = ['implementation'] + [f'B={r["batch"]} ms' for r in res['rows']] + [
                f'B={r["batch"]} poses/s' for r in res['rows']]
            table = []
            for name in names:
                ms = [r[key][name] for r in res['rows']]
                pps = [f'{r["batch"] / (r[key][name] / 1e3):,.0f}' for r in res['rows']]
                table.append([name] + [f'{v:.3f}' for v in ms] + pps)
            ratios = []
            for r in res['rows']:
                ms = r[key]
                lifter = 'lifter nosharing'
                ratios.append([r['batch'],
                               f"{ms['SemGCN eager'] / ms['dense SemGCN eager']:.2f}",
                               f"{ms['SemGCN compiled'] / ms['dense SemGCN compiled']:.2f}",
                               f"{ms['SemGCN eager'] / ms['SemGCN onnxruntime']:.1f}",
                               f"{ms[lifter + ' eager'] / ms[lifter + ' onnxruntime']:.1f}"])
            body += [f'### {title}', '', markdown_table(header, table), '',
                     'Ratios in the same run (below 1: ours faster than the dense model):', '',
                     markdown_table(['B', 'SemGCN eager / dense eager',
                                     'SemGCN compiled / dense compiled',
                                     'SemGCN eager / onnxruntime',
                                     'nosharing eager / onnxruntime'], ratios), '']
        body += [f"Dense model check: max difference to SemGCN {res['dense_check']:.2g}.", '']
    env = environment()
    print(json.dumps(env))
    path = write_report('latency', 'Lifting latency: eager, compiled, onnxruntime',
                        '\n'.join(body))
    print(path.read_text())


if __name__ == '__main__':
    main()

"""Real-time latency of 2D-to-3D lifting: one pose (B = 1) and small batches.

SemGCN (h36m17, 128 channels, 4 residual blocks; 267k parameters) and the
bundled ``nosharing`` lifter, run as

* **eager**: the package's modules in PyTorch eager mode;
* **compiled**: ``torch.compile`` of the same modules (default mode, static
  shapes, compiled once per batch size before timing);
* **onnxruntime**: the file of ``pyg_skeleton.export.export_onnx`` (dynamo
  exporter, verified against eager), one ``InferenceSession`` with as many
  intra-op threads as PyTorch; for SemGCN also the same file with **int8
  weights** (onnxruntime's dynamic quantisation), whose accuracy on
  held-out built-in CMU poses is reported beside its speed;

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

Two lower bounds for the float32 files: an ONNX graph of SemGCN's matrix
products alone (no softmax, bias, batch norm, ReLU or residual sum), timed
with the others, and the same products' arithmetic at this machine's
float32 rate on a large product (the compute floor).

Writes ``benchmarks/results/latency.md``.

    python benchmarks/bench_latency.py [--quick] [--threads 1 2] [--batches 1 8 64]
                                       [--device cpu]

With ``--device cuda`` the PyTorch rows run on the GPU (each call timed to
the end of its kernels); onnxruntime's rows are timed with ``--device cpu``
only.
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

import _common as common  # noqa: E402
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
        logits = torch.full(self.mask.shape, -9e15, dtype=x.dtype, device=x.device)
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


def products_flops(model: SemGCN) -> int:
    """Floating-point operations (a multiply-add counts two) of the products
    of :func:`products_only` for one pose."""
    from pyg_skeleton.nn import SemGraphConv
    return sum(2 * c.num_nodes * c.in_channels * 2 * c.out_channels
               + 2 * c.num_nodes * 2 * c.num_nodes * c.out_channels
               for c in model.modules() if isinstance(c, SemGraphConv))


def fp32_rate(device: torch.device, sync) -> float:
    """The float32 matrix-product rate (FLOP/s) of :obj:`device` (on the
    CPU with PyTorch's threads): the best of five ``1024 x 1024`` products,
    large enough to run near the cores' peak."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    a @ b
    sync()
    best = float('inf')
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * 1024 ** 3 / best


def int8_file(path: Path) -> Path:
    """The ONNX file with int8 weights: onnxruntime's dynamic quantisation
    (weights stored as int8, activations quantised on every call), after
    its pre-processing, whose constant folding turns the transposed weights
    into initialisers that the quantiser can find."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre, out = path.with_suffix('.pre.onnx'), path.with_suffix('.int8.onnx')
    quant_pre_process(str(path), str(pre))
    quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
    return out


def int8_accuracy(model: SemGCN, sessions: dict, quick: bool) -> dict:
    """Root-relative MPJPE (mm) of eager SemGCN and of its float32 and int8
    ONNX files on held-out built-in CMU poses seen by the wild cameras
    (seed 1000, the lifting benchmark's), and the mean distance (mm) of the
    int8 file's joints from the float32 file's."""
    import numpy as np

    from pyg_skeleton.datasets import builtin_motion
    from pyg_skeleton.datasets.wild import WildCameras, render_wild
    poses = builtin_motion('test').positions[::100 if quick else 10]
    x, y, _ = render_wild(poses, np.random.default_rng(1000), WildCameras(), model.skeleton,
                          bone_scale=False, corrupt=False, flip=False)

    def rel(p):
        p = torch.as_tensor(p)
        return p - p[:, :1]

    with torch.inference_mode():
        preds = {'eager': rel(model(x))}
    for key, sess in sessions.items():
        preds[key] = rel(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])

    def mm(a, b):
        return float((a - b).norm(dim=-1).mean()) * 1e3

    return {'poses': len(y), **{f'mpjpe {k}': mm(p, y) for k, p in preds.items()},
            'int8 from float32': mm(preds['int8'], preds['float32'])}


def trained_semgcn() -> SemGCN:
    """SemGCN with the bundled ``semgcn`` lifter's trained weights (its input
    has 3 channels, keypoints plus visibility)."""
    return Lifter.load(PRETRAINED_DIR / 'semgcn.pt').net.eval()


# ------------------------------------------------------------------ timing

def interleaved(fns, reps, min_time, block=1, sync=lambda: None):
    """Median seconds per call of each function, in rounds: every round
    calls each function :obj:`block` times in a row, one function after
    the other, so that load changes over the run reach all of them alike.
    With ``block > 1`` the first call of each run of calls is a warm-up
    and is not counted (the caches then hold that function's weights, as
    in a loop that lifts frame after frame); with ``block = 1`` every call
    follows the other functions' calls (cold caches). :obj:`sync` waits
    for the device after each call (a GPU runs kernels asynchronously)."""
    times = {k: [] for k in fns}
    start = time.perf_counter()
    r = 0
    while r < reps or time.perf_counter() - start < min_time:
        for k, fn in fns.items():
            for i in range(block):
                t = time.perf_counter()
                fn()
                sync()
                if block == 1 or i > 0:
                    times[k].append(time.perf_counter() - t)
        r += block
        if r >= 20 * reps:
            break
    return {k: statistics.median(v) for k, v in times.items()}


#: The rows of SemGCN's float32 and int8 files.
ONNX, INT8 = 'SemGCN onnxruntime', 'SemGCN onnxruntime, int8 weights'

#: Calls per run of one implementation in the back-to-back timing.
BLOCK = 20


def child(threads, batches, quick):
    device = common.DEVICE
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    reps, min_time = (30, 1.0) if quick else (200, 4.0)
    models = {'SemGCN': trained_semgcn(),
              'lifter nosharing': Lifter.load(PRETRAINED_DIR / 'nosharing.pt').eval()}
    dense = dense_twin(models['SemGCN']).to(device)
    x = torch.randn(4, 17, 3)
    with torch.inference_mode():
        diff = float((dense(x.to(device)).cpu() - models['SemGCN'](x)).abs().max())
    assert diff < 1e-4, f'the dense model differs from SemGCN by {diff}'
    # onnxruntime runs on the CPU (its CPU execution provider), so its rows
    # are timed with --device cpu only
    sessions, accuracy, floor = onnx_sessions(models, threads, quick) \
        if device.type == 'cpu' else ({}, None, None)
    for model in models.values():
        model.to(device)
    rows = []
    for b in batches:
        x = torch.randn(b, 17, 3)
        xn = x.numpy()
        x = x.to(device)
        fns = {}
        with torch.inference_mode():
            for name, model in models.items():
                compiled = torch.compile(model, dynamic=False)
                compiled(x)  # compile before timing
                fns[f'{name} eager'] = (lambda m: lambda: m(x))(model)
                fns[f'{name} compiled'] = (lambda m: lambda: m(x))(compiled)
                for key, label in ((name, f'{name} onnxruntime'),
                                   (f'{name} int8', f'{name} onnxruntime, int8 weights')):
                    if key in sessions:
                        sess = sessions[key]
                        feed = {sess.get_inputs()[0].name: xn}
                        fns[label] = (lambda s, f: lambda: s.run(None, f))(sess, feed)
            if floor is not None:
                floor_feed = {i.name: torch.randn(b, 17, int(i.shape[-1])).numpy()
                              for i in floor.get_inputs()}
                fns['SemGCN weight products only, onnxruntime'] = \
                    lambda: floor.run(None, floor_feed)
            dense_compiled = torch.compile(dense, dynamic=False)
            dense_compiled(x)
            fns['dense SemGCN eager'] = lambda: dense(x)
            fns['dense SemGCN compiled'] = lambda: dense_compiled(x)
            warm = interleaved(fns, reps, min_time, block=BLOCK, sync=sync)
            cold = interleaved(fns, reps, min_time, sync=sync)
        rows.append({'batch': b, 'ms': {k: 1e3 * v for k, v in warm.items()},
                     'cold_ms': {k: 1e3 * v for k, v in cold.items()}})
    return {'threads': threads, 'dense_check': diff, 'rows': rows, 'int8': accuracy,
            'products_mflop': products_flops(models['SemGCN']) / 1e6,
            'fp32_gflops': fp32_rate(device, sync) / 1e9}


def onnx_sessions(models, threads, quick):
    """onnxruntime sessions of the models' ONNX files (SemGCN's also with
    int8 weights), the int8 file's accuracy, and a session of SemGCN's
    products alone."""
    import onnxruntime as ort
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
            if name == 'SemGCN':
                sessions['SemGCN int8'] = ort.InferenceSession(
                    str(int8_file(path)), options, providers=['CPUExecutionProvider'])
    accuracy = int8_accuracy(models['SemGCN'], {'float32': sessions['SemGCN'],
                                                'int8': sessions['SemGCN int8']}, quick)
    floor = ort.InferenceSession(products_only(models['SemGCN']).SerializeToString(),
                                 options, providers=['CPUExecutionProvider'])
    return sessions, accuracy, floor


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='B = 1 and 8, fewer repetitions')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--batches', type=int, nargs='+', default=None)
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    common.add_device_argument(p)
    args, rest = p.parse_known_args()
    common.use_device(args.device)
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
            columns = {'SemGCN eager / dense eager': ('SemGCN eager', 'dense SemGCN eager'),
                       'SemGCN compiled / dense compiled': ('SemGCN compiled',
                                                            'dense SemGCN compiled')}
            if ONNX in names:
                columns.update({
                    'SemGCN eager / onnxruntime': ('SemGCN eager', ONNX),
                    'SemGCN eager / onnxruntime int8': ('SemGCN eager', INT8),
                    'nosharing eager / onnxruntime': ('lifter nosharing eager',
                                                      'lifter nosharing onnxruntime')})
            ratios = [[r['batch']] + [f"{r[key][a] / r[key][b]:.2f}"
                                      for a, b in columns.values()] for r in res['rows']]
            body += [f'### {title}', '', markdown_table(header, table), '',
                     'Ratios in the same run (below 1: ours faster than the dense model):', '',
                     markdown_table(['B', *columns], ratios), '']
        body += [f"Dense model check: max difference to SemGCN {res['dense_check']:.2g}.", '']
        # What no float32 export can beat: the products' arithmetic at the
        # rate of a large product on the same threads.
        mflop, gflops = res['products_mflop'], res['fp32_gflops']
        eager = res['rows'][0]['ms']['SemGCN eager']
        where = (f"this machine's float32 rate on {t} thread{'s' if t > 1 else ''}"
                 if common.DEVICE.type == 'cpu' else f"the float32 rate of {common.DEVICE}")
        body += [f"Compute floor at B={res['rows'][0]['batch']}: SemGCN's weight products "
                 f"are {mflop:.1f} MFLOP per pose; at {where} ({gflops:.0f} GFLOP/s, the "
                 f"best of five 1024 x 1024 products) they take {mflop / gflops:.3f} ms. "
                 f"Ten times the speed of eager SemGCN ({eager:.3f} ms back to back) would be "
                 f"{eager / 10:.3f} ms.", '']
    acc = results[0]['int8']
    if acc is None:
        body += ['onnxruntime rows: with `--device cpu` only (its CPU execution provider).', '']
    else:
        body += int8_section(acc)
    env = environment()
    print(json.dumps(env))
    path = write_report('latency', 'Lifting latency: eager, compiled, onnxruntime',
                        '\n'.join(body))
    print(path.read_text())


def int8_section(acc: dict) -> list[str]:
    """The report's section on the int8 file's accuracy."""
    return ['## int8 weights', '',
             "`SemGCN onnxruntime, int8 weights` is the float32 file after onnxruntime's "
             'dynamic quantisation (`quantize_dynamic`, int8 weights, activations '
             'quantised on every call). Its accuracy, root-relative MPJPE on '
             f"{acc['poses']:,} held-out built-in CMU poses seen by the wild cameras "
             '(seed 1000, clean keypoints, no flip):', '',
             markdown_table(['model', 'MPJPE (mm)'],
                            [['SemGCN eager', f"{acc['mpjpe eager']:.2f}"],
                             ['float32 ONNX file', f"{acc['mpjpe float32']:.2f}"],
                             ['int8 ONNX file', f"{acc['mpjpe int8']:.2f}"]]), '',
             f"The int8 file's joints lie {acc['int8 from float32']:.1f} mm from the "
             "float32 file's on average.", '']


if __name__ == '__main__':
    main()

"""Forward+backward time and peak memory of ``SemGraphConv``.

Compares, in one run and on the same input:

* ``dense``: the dense formulation of SemGCN's official code (logits in an
  ``N x N`` matrix filled with -9e15 off the graph, a row softmax, two
  masked ``N x N`` products);
* ``static``: ``conv(x)`` on ``x`` of shape ``[B, N, C]``;
* ``disjoint``: ``conv(batch.x, batch.edge_index)`` on the equivalent
  disjoint PyG batch (and on a ``SparseTensor`` adjacency when torch-sparse
  is installed);
* ``floor``: the layer's two linear maps alone, the least any
  implementation must do.

Cases: the Human3.6M 17-joint skeleton (B=256, C=128) and the MakeHuman body
mesh (13,380 vertices, 80,268 directed edges; B=8, C=64).

Usage: ``python benchmarks/bench_sem_graph_conv.py [--quick]``. Writes
``benchmarks/results/sem_graph_conv_{with,without}_torch_sparse.md``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.typing import WITH_TORCH_SPARSE

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import SemGraphConv

import _common as common


class DenseSemGraphConv(torch.nn.Module):
    """The dense formulation of the official code, sharing ``conv``'s
    parameters so both compute the same function."""
    def __init__(self, conv: SemGraphConv):
        super().__init__()
        self.conv = conv
        n = conv.num_nodes
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[conv.topology.dst, conv.topology.src] = True
        self.register_buffer('mask', mask)
        self.register_buffer('eye', torch.eye(n))

    def forward(self, x):
        conv = self.conv
        logits = torch.full(self.mask.shape, -9e15, dtype=x.dtype,
                            device=x.device)
        logits = logits.masked_scatter(self.mask, conv.logits)
        adj = torch.softmax(logits, dim=1)
        h0 = x @ conv.lin_self.weight.t()
        h1 = x @ conv.lin_neighbor.weight.t()
        return ((adj * self.eye) @ h0 + (adj * (1 - self.eye)) @ h1 +
                conv.bias)


def make_case(case: str):
    torch.manual_seed(0)
    if case == 'h36m17':
        skeleton = Skeleton.preset('h36m17')
        edge_index, n, b, c = skeleton.edge_index, 17, 256, 128
        desc = 'Human3.6M 17 joints'
    else:
        edge_index, n, desc = common.body_mesh()
        b, c = 8, 64
    with torch.device(common.DEVICE):
        conv = SemGraphConv(c, c, edge_index, num_nodes=n)
        with torch.no_grad():  # trained logits, not the uniform start
            conv.logits.normal_()
        x = torch.randn(b, n, c, requires_grad=True)
    return conv, x, edge_index, desc


def implementations(conv, x, edge_index):
    """Per implementation, a function that builds its ``(fn, inputs)``, so
    that a process builds only the one it runs: the dense formulation's
    buffers on the mesh hold 0.9 GB."""
    b, n, c = x.shape

    def disjoint():
        batch = Batch.from_data_list(
            [Data(edge_index=edge_index, num_nodes=n)] * b)
        return (x.detach().reshape(b * n, c).requires_grad_(),
                batch.edge_index.to(x.device))

    def disjoint_sparse():
        from torch_sparse import SparseTensor
        xb, ei = disjoint()
        return conv, (xb, SparseTensor(row=ei[1], col=ei[0],
                                       sparse_sizes=(b * n, b * n)))

    impls = {
        'dense': lambda: (DenseSemGraphConv(conv).to(x.device), (x, )),
        'static': lambda: (conv, (x, )),
        'disjoint': lambda: (conv, disjoint()),
    }
    if WITH_TORCH_SPARSE:
        impls['disjoint SparseTensor'] = disjoint_sparse
    impls['floor'] = lambda: (
        lambda t: conv.lin_self(t) + conv.lin_neighbor(t), (x, ))
    return impls


def child(case, impl, min_time):
    """Peak memory of one forward+backward, then the median time, in a fresh
    process that builds only this implementation, so that no other's buffers
    or earlier allocations share it."""
    conv, x, edge_index, _ = make_case(case)
    fn, inputs = implementations(conv, x, edge_index)[impl]()
    device = common.DEVICE
    base = common.reset_peak_memory(device)
    out = fn(*inputs)
    out.backward(torch.ones_like(out))
    peak = common.peak_memory_since(device, base)
    del out
    sec = common.time_fwd_bwd(fn, inputs, [x, *conv.parameters()] +
                              [t for t in inputs
                               if isinstance(t, torch.Tensor)],
                              min_time=float(min_time))
    print(json.dumps({'peak_mib': peak, 'sec': sec}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer repetitions, no dense run on the mesh')
    parser.add_argument('--repeats', type=int, default=3,
                        help='fresh processes per implementation (medians)')
    parser.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)
    if args.child:
        return child(*args.child)

    sections, panels = [], []
    for case in ['h36m17', 'mesh']:
        conv, x, edge_index, desc = make_case(case)
        impls = implementations(conv, x, edge_index)
        ref = conv(x)
        names = [name for name in impls
                 if not (name == 'dense' and case == 'mesh' and args.quick)]
        for name in names:
            if name != 'floor':  # every implementation computes the same
                fn, inputs = impls[name]()
                torch.testing.assert_close(fn(*inputs).reshape(ref.shape),
                                           ref, atol=1e-4, rtol=1e-4)
                del fn, inputs
        # Interleaved fresh processes: on this kind of VM the time of one
        # process drifts by up to 30 % from the next.
        runs = {name: [] for name in names}
        for rep in range(args.repeats):
            for name in names:
                if rep and name == 'dense' and case == 'mesh':
                    continue  # 15 s a call and 300x the floor: once is enough
                run = common.child_json(
                    __file__, [case, name, 0.3 if args.quick else 2.0])
                runs[name].append(run)
                print(f'{case:7s} {name:22s} {run["sec"] * 1e3:9.2f} ms '
                      f'{run["peak_mib"]:9.1f} MiB', file=sys.stderr)
        results = {name: (statistics.median(r['sec'] for r in rs),
                          statistics.median(r['peak_mib'] for r in rs))
                   for name, rs in runs.items()}

        floor = results['floor'][0]
        dense = results.get('dense', (float('nan'), 0))[0]
        rows = [[name, f'{sec * 1e3:.2f}', f'{sec / dense:.2f}',
                 f'{sec / floor:.2f}', ' / '.join(
                     f'{r["sec"] / f["sec"]:.2f}'
                     for r, f in zip(runs[name], runs['floor'])),
                 f'{mem:.0f}']
                for name, (sec, mem) in results.items()]
        b, n, c = x.shape
        panels.append((f'{desc}: N={n}, B={b}, C={c}', [
            (name, sec * 1e3, f'{sec * 1e3:.1f} ms, {sec / floor:.2f}x floor')
            for name, (sec, _) in results.items()
        ]))
        sections.append(
            f'## {desc}: N={n}, directed edges={edge_index.size(1)}, '
            f'B={b}, C_in=C_out={c}\n\n' + common.markdown_table(
                ['implementation', 'fwd+bwd ms', 'vs dense', 'vs floor',
                 'vs floor per repeat', 'peak MiB'], rows) + '\n')

    note = ('`vs dense` and `vs floor` are time ratios measured in this run '
            '(lower is better). `floor` is the two linear maps of the layer '
            'alone. Each implementation runs in a fresh process that builds '
            f'only it, {args.repeats} times, interleaved with the others: '
            'peak memory is the resident-set growth of its first '
            'forward+backward, the time the median of the calls after it; '
            'the table gives the medians over the processes, and the ratio '
            'to the floor process of the same repeat for each repeat.\n')
    name = f'sem_graph_conv_{common.sparse_suffix()}'
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    common.bar_plot(common.RESULTS / f'{name}.png', panels)
    path = common.write_report(
        name, 'SemGraphConv: forward+backward against the dense formulation',
        note + f'The plot of these times is `{name}.png`.\n\n' +
        '\n'.join(sections))
    print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
    main()

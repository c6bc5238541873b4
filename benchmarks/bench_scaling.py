"""How the cost of every operator grows with the graph: forward+backward time
per sample against the number of nodes and edges, log-log, with a fitted
slope per operator.

Graphs: the Human3.6M (17) and NTU RGB+D (25) skeletons, the MHR LOD6..LOD1
meshes (595 to 18,439 vertices), the MakeHuman body (13,380 vertices) and
the HEM coarsening levels of the MakeHuman body (7,069 down to 44 nodes).
Every operator of ``bench_operators.OPS``, HCSF with far hops (S=5, L=7)
and the SemGCN model with and without non-local blocks (hidden size C, 2D
input) run on a static batch ``[B=8, N, C=64]``; HGN (hidden size C) lifts
``[B, 17, 2]`` Human3.6M joints with two mesh branches on each graph, the
graph itself and its HEM level 2 (``fusion='auto'``: HEM pooling maps
between them, pooled non-local keys), and outputs every branch; the dense
SemGraphConv formulation is added as a reference line (expected slope 2)
where it fits.
A cell whose estimated working set exceeds ``--cap-gb`` is skipped
(NoSharingConv's per-edge weight banks).

Each cell is timed in this process and, with ``--memory`` (the default),
run once more, forward and backward, in a forked child on one thread under
an address-space limit of ``--cap-gb``, which reports its peak resident set
growth (``VmHWM``): the memory column.

Slopes are least-squares fits of ``log(time per sample)`` and
``log(peak memory)`` against ``log(N)`` and of time against ``log(E)``
(E: directed edges of the graph) over the graphs with at least
``--fit-min-nodes`` nodes (default 500), where fixed per-call overheads no
longer dominate; slope 1 is linear cost.

Usage: ``python benchmarks/bench_scaling.py [--quick]`` (``--quick``: the
operators and models of issue 25 on MHR LOD6 and LOD4, the MakeHuman body
and two of its HEM levels, one round; ``--ops 'A;B'`` picks operators).
Writes
``benchmarks/results/scaling.md`` and ``scaling.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.utils import remove_self_loops, to_undirected

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_operators as bo  # noqa: E402

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.mesh import MeshHierarchy, hem_coarsen  # noqa: E402
from pyg_skeleton.nn import HGN, SemGCN  # noqa: E402
from pyg_skeleton.nn.conv import HCSFConv  # noqa: E402

import _common as common  # noqa: E402

GiB = 2**30
DENSE_REF = 'SemGraphConv dense (reference)'
HOP_OPS = ('KHopConv (k=2)', 'MixHopSkeletonConv (1,5,7)',
           'MSHopConv (1,5,7)', 'HCSFConv (S=1,L=2)', 'HCSFConv (S=5,L=7)')
QUICK_OPS = ['SemGraphConv', 'NonLocalBlock', 'MixHopSkeletonConv (1,5,7)',
             'MSHopConv (1,5,7)', 'HCSFConv (S=5,L=7)', 'SemGCN',
             'SemGCN + non-local', 'HGN']
# HGN's mesh branches: the graph itself and its HEM level 2 (about N / 4
# nodes), coarsest first; the skeleton branch is Human3.6M's 17 joints.
HGN_LEVELS = (2, 0)


def semgcn(g, c, non_local):
    edges = g['edge_index'][:, g['edge_index'][0] < g['edge_index'][1]]
    skeleton = Skeleton.from_edges(edges.t().tolist(), g['n'],
                                   require_connected=False)
    return SemGCN(skeleton, 2, c, 3, non_local=non_local)


class AllOutputs(torch.nn.Module):
    """HGN's outputs (the pose and every mesh branch) as one tensor, so
    that the backward pass reaches every branch."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.cat(self.model(x), dim=1)


def hgn(g, c):
    """HGN (default blocks (4, 4, 2), fusion='auto', non-local blocks) on
    the h36m17 skeleton and two mesh branches of the graph: its HEM level 2
    and the graph itself, fused through the HEM pooling maps."""
    hierarchy = MeshHierarchy.from_edge_index(g['edge_index'], g['n'],
                                              levels=max(HGN_LEVELS))
    return AllOutputs(HGN.from_hierarchy('h36m17', hierarchy,
                                         mesh_levels=HGN_LEVELS,
                                         padded=False, hidden_channels=c))


# Operators and models beyond bench_operators.OPS: name -> builder(graph, C).
EXTRA = {
    'HCSFConv (S=5,L=7)': lambda g, c: HCSFConv(
        c, c, g['edge_index'], num_nodes=g['n'], S=5, L=7),
    'SemGCN': lambda g, c: semgcn(g, c, False),
    'SemGCN + non-local': lambda g, c: semgcn(g, c, True),
    'HGN': hgn,
}


def build(op, g, b, c):
    if op not in EXTRA:
        return bo.build(op, g, b, c)
    torch.manual_seed(0)
    module = EXTRA[op](g, c)
    with torch.no_grad():  # non-local blocks away from the identity
        for m in module.modules():
            if type(m).__name__ == 'NonLocalBlock':
                m.bn.weight.fill_(1.0)
    if op == 'HGN':  # 2D joints of the skeleton in, every branch out
        return module, torch.randn(b, 17, 2, requires_grad=True)
    width = 2 if op.startswith('SemGCN') else c
    return module, torch.randn(b, g['n'], width, requires_grad=True)


def estimate(op, g, b, c, impl, module=None):
    """Estimated working set in bytes: that of bench_operators, except where
    issue 25 made the operator linear (non-local blocks without an N x N
    affinity, hop sums as one sparse product) and for the models."""
    n = g['n']
    act = 8 * b * n * c * 4
    if impl == 'dense' or op not in ('NonLocalBlock', ) + HOP_OPS + tuple(
            EXTRA):
        return bo.estimate(op, g, b, c, impl, module)
    if op.startswith('SemGCN'):
        return 6 * act
    if op == 'HGN':
        return 8 * act
    if op in HOP_OPS and module is not None:
        return act + 3 * b * n * module.num_groups * c * 4
    return act


def graphs(quick):
    out = [bo.skeleton_graph('h36m17'), bo.skeleton_graph('ntu25')]
    meshes = bo.mesh_graphs(quick=quick)
    out += meshes
    edge_index, n, desc = common.body_mesh()
    if quick:  # the full list has the body mesh already
        out.append(dict(name=desc.replace(' body mesh', ''), n=n, centre=0,
                        edge_index=edge_index, mesh=True))
    levels = hem_coarsen(edge_index, n, max_nodes=49)
    for k, (ei, m) in enumerate(zip(levels.edge_index, levels.num_nodes)):
        if k == 0:
            continue  # the mesh itself
        if quick and k not in (4, 7):
            continue
        ei = to_undirected(remove_self_loops(ei)[0], num_nodes=m)
        out.append(dict(name=f'MakeHuman HEM level {k}', n=m, centre=0,
                        edge_index=ei, mesh=True))
    return sorted(out, key=lambda g: g['n'])


def fit(xs, ys):
    if len(xs) < 2:
        return float('nan')
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a few graphs and operators, one round')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--channels', type=int, default=64)
    parser.add_argument('--cap-gb', type=float, default=8.0)
    parser.add_argument('--no-memory', dest='memory', action='store_false',
                        help='skip the peak memory runs')
    parser.add_argument('--ops', default=None,
                        help="operators to run, separated by ';' (default: "
                        "all; with --quick those of issue 25)")
    parser.add_argument('--fit-min-nodes', type=int, default=500)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1, steadier on a '
                        'shared machine)')
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)
    torch.set_num_threads(args.threads)
    t_start, load0 = time.time(), os.getloadavg()
    b, c, cap = args.batch_size, args.channels, args.cap_gb * GiB
    ops = QUICK_OPS if args.quick else list(bo.OPS) + list(EXTRA)
    if args.ops is not None:
        ops = [op.strip() for op in args.ops.split(';')]
        unknown = [op for op in ops if op not in bo.OPS and op not in EXTRA]
        if unknown:
            parser.error(f'unknown operator(s) {unknown}; choose from '
                         f'{list(bo.OPS) + list(EXTRA)}')
    series = {op: [] for op in ops + [DENSE_REF]}
    memory = {op: [] for op in series}
    rounds, min_time = 1, 0.03  # repeats cut to keep the run affordable
    gs = graphs(args.quick)
    for g in gs:
        e = g['edge_index'].size(1)
        for op in ops + [DENSE_REF]:
            impl = 'dense' if op == DENSE_REF else 'ours'
            name = 'SemGraphConv' if op == DENSE_REF else op
            if estimate(name, g, b, c, impl) > cap:
                series[op].append((g, None))
                memory[op].append((g, None))
                continue
            module, x = build(name, g, b, c)
            if estimate(name, g, b, c, impl, module) > cap:
                series[op].append((g, None))
                memory[op].append((g, None))
                del module, x
                continue
            fn = bo.dense_of(name, module) if impl == 'dense' else module
            # Memory first, in a child: a cell over the cap fails there
            # instead of taking this process down.
            mib = (bo.forked_peak_mib(fn, (x, ), int(cap))
                   if args.memory else None)
            if isinstance(mib, str):  # failed under the cap
                series[op].append((g, None))
                memory[op].append((g, mib))
                print(json.dumps({'graph': g['name'], 'op': op,
                                  'error': mib}), file=sys.stderr, flush=True)
                del module, x, fn
                continue
            memory[op].append((g, mib))
            sec = bo.time_pair({op: fn}, x, bo.params_of(module, x), rounds,
                               min_time)[op]
            series[op].append((g, sec / b))
            print(json.dumps({'graph': g['name'], 'n': g['n'], 'e': e,
                              'op': op, 'us_per_sample': sec / b * 1e6,
                              'peak_mib': mib}),
                  file=sys.stderr, flush=True)
            del module, x, fn

    # Slopes and table.
    slopes = {}
    for op, pts in series.items():
        ok = [(g['n'], g['edge_index'].size(1), t) for g, t in pts
              if t is not None and g['n'] >= args.fit_min_nodes]
        slopes[op] = (fit([p[0] for p in ok], [p[2] for p in ok]),
                      fit([p[1] for p in ok], [p[2] for p in ok]), len(ok))
    mem_slopes = {}
    for op, pts in memory.items():
        ok = [(g['n'], m) for g, m in pts if isinstance(m, float) and m > 0
              and g['n'] >= args.fit_min_nodes]
        mem_slopes[op] = (fit([p[0] for p in ok], [p[1] for p in ok]),
                          len(ok))
    slope_rows = [[op, f'{sn:.2f}', f'{se:.2f}', k,
                   f'{mem_slopes[op][0]:.2f}', mem_slopes[op][1]]
                  for op, (sn, se, k) in slopes.items()]
    mem_rows = []
    for i, g in enumerate(gs):
        row = [g['name'], f'{g["n"]:,}']
        for op in memory:
            m = memory[op][i][1]
            row.append('skipped' if m is None else m if isinstance(m, str)
                       else f'{m:.0f}')
        mem_rows.append(row)
    header = ['graph', 'N', 'E'] + list(series)
    rows = []
    for i, g in enumerate(gs):
        row = [g['name'], f'{g["n"]:,}', f'{g["edge_index"].size(1):,}']
        for op in series:
            t = series[op][i][1]
            row.append('skipped' if t is None else f'{t * 1e6:.3g}')
        rows.append(row)

    # Plot: time per sample against N and against E.
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    cmap = plt.get_cmap('tab20')
    for j, (op, pts) in enumerate(series.items()):
        ok = [(g, t) for g, t in pts if t is not None]
        if not ok:
            continue
        style = dict(color='k', ls='--') if op == DENSE_REF else dict(
            color=cmap(j % 20))
        for ax, key, s in ((axes[0], 'n', slopes[op][0]),
                           (axes[1], 'e', slopes[op][1])):
            xs = [g['n'] if key == 'n' else g['edge_index'].size(1)
                  for g, _ in ok]
            ax.plot(xs, [t * 1e6 for _, t in ok], marker='o', ms=3,
                    label=f'{op} (slope {s:.2f})', **style)
    for ax, lab in ((axes[0], 'nodes N'), (axes[1], 'directed edges E')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel(lab)
        ax.set_ylabel('forward+backward µs per sample')
        ax.axvline(args.fit_min_nodes if lab == 'nodes N' else
                   6 * args.fit_min_nodes, color='grey', lw=0.5)
        ax.grid(True, which='major', lw=0.3)
        ax.legend(fontsize=6.5, loc='upper left')
    axes[0].set_title(f'time per sample vs N (B={b}, C={c}; slopes fitted '
                      f'for N >= {args.fit_min_nodes})', fontsize=9)
    axes[1].set_title('time per sample vs E', fontsize=9)
    fig.tight_layout()
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(common.RESULTS / 'scaling.png', dpi=100)
    plt.close(fig)

    load1, wall = os.getloadavg(), time.time() - t_start
    body = '\n'.join([
        f'Load average (1, 5, 15 min) at start {load0[0]:.2f}, '
        f'{load0[1]:.2f}, {load0[2]:.2f}; at end {load1[0]:.2f}, '
        f'{load1[1]:.2f}, {load1[2]:.2f}; torch threads '
        f'{torch.get_num_threads()}; wall time {wall / 60:.1f} min'
        f'{" (--quick)" if args.quick else ""}.',
        '',
        f'Forward+backward time per sample of each operator called on a '
        f'static batch `[B={b}, N, C={c}]`, best of {rounds} round(s) of a '
        f'median, on skeletons, the MHR LOD meshes, the MakeHuman body and '
        f'the HEM coarsening levels of the MakeHuman body. "skipped": the '
        f'estimated working set exceeds {args.cap_gb:g} GB. The plot is '
        f'`scaling.png`.', '',
        f'## Fitted log-log slopes (graphs with N >= {args.fit_min_nodes})',
        '', 'Slope 1: cost linear in the graph size; the dense reference '
        'is quadratic in N.', '',
        common.markdown_table(['operator', 'time slope vs N',
                               'time slope vs E', 'graphs in fit',
                               'memory slope vs N', 'graphs in fit'],
                              slope_rows), '',
        '## Time per sample (µs)', '',
        common.markdown_table(header, rows), '',
        f'## Peak memory of one forward+backward (MiB, B={b})', '',
        'Growth of the peak resident set of a forked child over its start '
        '(the inputs and parameters are built before the fork); a message '
        f'names a failure under the {args.cap_gb:g} GB cap.', '',
        common.markdown_table(['graph', 'N'] + list(memory), mem_rows),
        ''])
    path = common.write_report('scaling', 'Scaling: cost against graph size',
                               body)
    print(f'wrote {path} in {wall:.0f} s', file=sys.stderr)


if __name__ == '__main__':
    main()

"""How the cost of every operator grows with the graph: forward+backward time
per sample against the number of nodes and edges, log-log, with a fitted
slope per operator.

Graphs: the Human3.6M (17) and NTU RGB+D (25) skeletons, the MHR LOD6..LOD1
meshes (595 to 18,439 vertices), the MakeHuman body (13,380 vertices) and
the HEM coarsening levels of the MakeHuman body (7,069 down to 44 nodes).
Every operator of ``bench_operators.OPS`` runs as ``op(x)`` on a static
batch ``[B=8, N, C=64]``; the dense SemGraphConv formulation is added as a
reference line (expected slope 2) where it fits. A cell whose estimated
working set exceeds ``--cap-gb`` is skipped (NoSharingConv's per-edge weight
banks, the non-local block's ``N x N`` affinities on large meshes).

Slopes are least-squares fits of ``log(time per sample)`` against
``log(N)`` and ``log(E)`` (E: directed edges of the graph) over the graphs
with at least ``--fit-min-nodes`` nodes (default 500), where fixed
per-call overheads no longer dominate; slope 1 is linear cost.

Usage: ``python benchmarks/bench_scaling.py [--quick]``. Writes
``benchmarks/results/scaling.md`` and ``scaling.png``.
"""
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
import _common as common  # noqa: E402
import bench_operators as bo  # noqa: E402

from pyg_skeleton.mesh import hem_coarsen  # noqa: E402

GiB = 2**30
DENSE_REF = 'SemGraphConv dense (reference)'


def graphs(quick):
    out = [bo.skeleton_graph('h36m17'), bo.skeleton_graph('ntu25')]
    meshes = bo.mesh_graphs(quick=quick)
    out += meshes
    edge_index, n, desc = common.body_mesh()
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
    parser.add_argument('--cap-gb', type=float, default=2.0)
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
    ops = (['SemGraphConv', 'HCSFConv (S=1,L=2)', 'NonLocalBlock']
           if args.quick else list(bo.OPS))
    series = {op: [] for op in ops + [DENSE_REF]}
    rounds, min_time = 1, 0.03  # repeats cut to keep the run affordable
    gs = graphs(args.quick)
    for g in gs:
        e = g['edge_index'].size(1)
        for op in ops + [DENSE_REF]:
            impl = 'dense' if op == DENSE_REF else 'ours'
            name = 'SemGraphConv' if op == DENSE_REF else op
            if bo.estimate(name, g, b, c, impl) > cap:
                series[op].append((g, None))
                continue
            module, x = bo.build(name, g, b, c)
            if bo.estimate(name, g, b, c, impl, module) > cap:
                series[op].append((g, None))
                del module, x
                continue
            fn = bo.dense_of(name, module) if impl == 'dense' else module
            sec = bo.time_pair({op: fn}, x, bo.params_of(module, x), rounds,
                               min_time)[op]
            series[op].append((g, sec / b))
            print(json.dumps({'graph': g['name'], 'n': g['n'], 'e': e,
                              'op': op, 'us_per_sample': sec / b * 1e6}),
                  file=sys.stderr, flush=True)
            del module, x, fn

    # Slopes and table.
    slopes = {}
    for op, pts in series.items():
        ok = [(g['n'], g['edge_index'].size(1), t) for g, t in pts
              if t is not None and g['n'] >= args.fit_min_nodes]
        slopes[op] = (fit([p[0] for p in ok], [p[2] for p in ok]),
                      fit([p[1] for p in ok], [p[2] for p in ok]), len(ok))
    slope_rows = [[op, f'{sn:.2f}', f'{se:.2f}', k]
                  for op, (sn, se, k) in slopes.items()]
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
        f'{" (--quick: 3 operators, 6 graphs, one round)" if args.quick else ""}.',
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
        common.markdown_table(['operator', 'slope vs N', 'slope vs E',
                               'graphs in fit'], slope_rows), '',
        '## Time per sample (µs)', '',
        common.markdown_table(header, rows), ''])
    path = common.write_report('scaling', 'Scaling: cost against graph size',
                               body)
    print(f'wrote {path} in {wall:.0f} s', file=sys.stderr)


if __name__ == '__main__':
    main()

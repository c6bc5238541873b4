"""Forward+backward time of the weight-sharing convolutions (Liu et al., ECCV
2020) against their dense einsum formulations.

For each of the eight variants, compares in one run and on the same input:

* ``dense``: the dense formulation, written here with the layer's own
  parameters: an ``N x N`` edge-weight matrix (logits filled with -9e15 off
  the graph, a row softmax, as the official code), split into its diagonal
  and off-diagonal parts where the scheme needs it, and ``torch.einsum`` for
  the per-node, per-type or per-edge weight banks (no-sharing: a dense
  ``[N, N, C_in, C_out]`` bank that is zero off the graph);
* ``static``: ``conv(x)`` on ``x`` of shape ``[B, N, C]``;
* ``disjoint``: ``conv(batch.x, batch.edge_index)`` on the equivalent
  disjoint PyG batch.

Case: the Human3.6M 17-joint skeleton, B=256, C_in=C_out=128, learnable
edge weights.

Usage: ``python benchmarks/bench_weight_sharing.py [--quick] [--threads T]``.
Writes ``benchmarks/results/weight_sharing_{with,without}_torch_sparse.md``.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch_geometric.data import Batch, Data

from pyg_skeleton import Skeleton
from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS

import _common as common

VARIANTS = ['vanilla', 'full_decoupled', 'pre_agg', 'pre_agg_decoupled',
            'post_agg', 'post_agg_decoupled', 'conv_style', 'no_sharing']


class DenseWeightSharing(torch.nn.Module):
    """The dense einsum formulation of one variant, sharing ``conv``'s
    parameters so that both compute the same function."""
    def __init__(self, variant: str, conv: torch.nn.Module):
        super().__init__()
        self.variant = variant
        self.conv = conv
        t, n = conv.topology, conv.num_nodes
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[t.dst, t.src] = True  # row-major (target, source) = slot order
        self.register_buffer('mask', mask)
        self.register_buffer('eye', torch.eye(n))
        if variant == 'conv_style':
            types = torch.zeros(3, n, n)
            types[0] = torch.eye(n)
            nbr = t.nbr_slot
            dst, src = t.dst[nbr], t.src[nbr]
            types[1, dst, src] = conv.farther.float()
            types[2, dst, src] = (~conv.farther).float()
            self.register_buffer('types', types)
        if variant == 'no_sharing':
            self.register_buffer('key', t.key)

    def forward(self, x):
        conv, n = self.conv, self.conv.num_nodes
        logits = torch.full(self.mask.shape, -9e15, dtype=x.dtype,
                            device=x.device)
        a = torch.softmax(logits.masked_scatter(self.mask, conv.logits), 1)
        diag, off = a * self.eye, a * (1 - self.eye)
        w = conv.weight
        v = self.variant
        if v == 'vanilla':
            out = torch.einsum('ij,bjo->bio', a, x @ w[0])
        elif v == 'full_decoupled':
            out = (torch.einsum('ij,bjo->bio', diag, x @ w[0]) +
                   torch.einsum('ij,bjo->bio', off, x @ w[1]))
        elif v == 'pre_agg':
            h = torch.einsum('bjc,jco->bjo', x, w)
            out = torch.einsum('ij,bjo->bio', a, h)
        elif v == 'pre_agg_decoupled':
            h_self = torch.einsum('bjc,jco->bjo', x, w[:n])
            h_nbr = torch.einsum('bjc,jco->bjo', x, w[n:])
            out = (torch.einsum('ij,bjo->bio', diag, h_self) +
                   torch.einsum('ij,bjo->bio', off, h_nbr))
        elif v == 'post_agg':
            y = torch.einsum('ij,bjc->bic', a, x)
            out = torch.einsum('bic,ico->bio', y, w)
        elif v == 'post_agg_decoupled':
            y_self = torch.einsum('ij,bjc->bic', diag, x)
            y_nbr = torch.einsum('ij,bjc->bic', off, x)
            out = (torch.einsum('bic,ico->bio', y_self, w[:n]) +
                   torch.einsum('bic,ico->bio', y_nbr, w[n:]))
        elif v == 'conv_style':
            h = torch.einsum('bjc,tco->tbjo', x, w)
            out = torch.einsum('tij,tbjo->bio', self.types * a, h)
        else:  # no_sharing
            dense_w = w.new_zeros((n * n, ) + w.shape[1:])
            dense_w = dense_w.index_copy(0, self.key, w).view(
                (n, n) + w.shape[1:])
            out = torch.einsum('ij,bjc,ijco->bio', a, x, dense_w)
        return out + conv.bias


def make_case(variant: str, b: int = 256, c: int = 128):
    torch.manual_seed(0)
    skeleton = Skeleton.preset('h36m17')
    with torch.device(common.DEVICE):
        conv = GRAPH_CONVS[variant](c, c, skeleton)
        with torch.no_grad():  # trained logits, not the uniform start
            conv.logits.normal_()
        x = torch.randn(b, skeleton.num_joints, c, requires_grad=True)
    return conv, x, skeleton.edge_index


def implementations(variant, conv, x, edge_index):
    b, n, c = x.shape
    batch = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n)] *
                                 b)
    xb = x.detach().reshape(b * n, c).requires_grad_()
    with torch.device(x.device):
        dense = DenseWeightSharing(variant, conv).to(x.device)
    return {
        'dense': (dense, (x, )),
        'static': (conv, (x, )),
        'disjoint': (conv, (xb, batch.edge_index.to(x.device))),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer rounds and repetitions')
    parser.add_argument('--threads', type=int,
                        help='CPU threads (default: torch\'s); one thread is '
                        'steadier on a machine shared with other jobs')
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds, min_time = (3, 0.1) if args.quick else (9, 0.3)

    rows = []
    for variant in VARIANTS:
        conv, x, edge_index = make_case(variant)
        impls = implementations(variant, conv, x, edge_index)
        ref = conv(x)
        for fn, inputs in impls.values():  # all compute the same function
            torch.testing.assert_close(fn(*inputs).view(ref.shape), ref,
                                       atol=1e-4, rtol=1e-4)
        # Rounds alternate the implementations, so that a slow spell of a
        # shared machine hits all of them; ratios are taken per round.
        times = {name: [] for name in impls}
        for _ in range(rounds):
            for name, (fn, inputs) in impls.items():
                times[name].append(common.time_fwd_bwd(
                    fn, inputs, [x, *conv.parameters()] +
                    [t for t in inputs if isinstance(t, torch.Tensor)],
                    min_time=min_time))
        ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        ratio = {
            name: statistics.median(
                [a / d for a, d in zip(times[name], times['dense'])])
            for name in ('static', 'disjoint')
        }
        print(f'{variant:20s} dense {ms["dense"]:7.2f} ms, static '
              f'{ms["static"]:7.2f} ms ({ratio["static"]:.2f}), disjoint '
              f'{ms["disjoint"]:7.2f} ms ({ratio["disjoint"]:.2f})',
              file=sys.stderr)
        rows.append([
            variant, conv.weight.size(0), f'{ms["dense"]:.2f}',
            f'{ms["static"]:.2f}', f'{ratio["static"]:.2f}',
            f'{ms["disjoint"]:.2f}', f'{ratio["disjoint"]:.2f}'
        ])

    b, n, c = x.shape
    note = (f'Human3.6M 17 joints: N={n}, directed edges='
            f'{edge_index.size(1)}, B={b}, C_in=C_out={c}, learnable edge '
            f'weights. `n` is the number of weight matrices per layer. Times '
            f'are medians over {rounds} rounds of the median forward+backward '
            f'time; each round times every implementation in turn, and the '
            f'ratios against the dense einsum formulation of the same '
            f'variant are medians of the per-round ratios (lower is '
            f'better).\n')
    table = common.markdown_table([
        'variant', 'n', 'dense ms', 'static ms', 'static / dense',
        'disjoint ms', 'disjoint / dense'
    ], rows)
    path = common.write_report(
        f'weight_sharing_{common.sparse_suffix()}',
        'Weight-sharing convolutions: forward+backward against the dense '
        'formulations', note + '\n' + table + '\n')
    print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
    main()

"""Forward+backward time of ``HCSFConv`` against a dense per-hop formulation.

Compares, in one run and on the same input and parameters:

* ``dense per-hop``: the HCSF equations written literally with dense
  ``N x N`` hop matrices: for every hop ``k`` a product ``A_k @ x`` and its
  own linear map, the close hops concatenated and projected, then all groups
  concatenated and projected (``DenseHCSF`` below);
* ``static``: ``conv(x)`` on ``x`` of shape ``[B, N, C]`` or
  ``[B, T, N, C]`` (one stacked hop matrix, folded weights);
* ``disjoint``: ``conv(batch.x, khop_edge_index=batch.khop_edge_index,
  khop_distance=batch.khop_distance)`` on the equivalent disjoint PyG batch
  (message passing over the hop pairs);
* ``disjoint edge_index``: ``conv(batch.x, batch.edge_index)``, PyG's
  protocol with the one-hop graph of the same batch (whole copies: the
  static kernel, after the check that they are whole copies);
* ``dynamic (Eq. 8)``: ``DynamicHCSFConv`` with the same hop settings (for
  scale; it computes more: per-sample offsets).

Cases: Human3.6M 17 joints (B=256, C=128) with S=1, L=2, d=1/8 and with
S=2, L=6, d=1/8; NTU RGB+D 25 joints with T=64 frames (B=8, C=64) and
S=5, L=7, d=1/8.

Usage: ``python benchmarks/bench_hcsf.py [--quick]``. Writes
``benchmarks/results/hcsf_{with,without}_torch_sparse.md``.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch_geometric.data import Batch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn.conv.dynamic_hcsf_conv import DynamicHCSFConv
from pyg_skeleton.nn.conv.hcsf_conv import HCSFConv
from pyg_skeleton.transforms.khop import KHopEdges

import _common as common


class DenseHCSF(torch.nn.Module):
    """The HCSF equations with dense per-hop matrices, sharing ``conv``'s
    parameters so that both compute the same function."""
    def __init__(self, conv: HCSFConv, skeleton: Skeleton):
        super().__init__()
        self.conv = conv
        dist = skeleton.hop_distance
        adj = torch.stack([(dist == k).float() for k in range(conv.L + 1)])
        adj = adj / adj.sum(-1, keepdim=True).clamp(min=1)
        self.register_buffer('adj', adj)  # [K, N, N], rows are targets

    def forward(self, x):
        conv = self.conv
        hs = [(self.adj[k] @ x) @ lin.weight.t()
              for k, lin in enumerate(conv.lins)]
        close = torch.cat(hs[:conv.S + 1], -1) @ conv.lin_close.weight.t()
        out = torch.cat([close] + hs[conv.S + 1:], -1)
        return out @ conv.lin_fuse.weight.t() + conv.bias


CASES = {
    'h36m17_S1_L2': ('h36m17', (256, ), 128, 1, 2),
    'h36m17_S2_L6': ('h36m17', (256, ), 128, 2, 6),
    'ntu25_T64_S5_L7': ('ntu25', (8, 64), 64, 5, 7),
}


def make_case(case):
    name, lead, c, s, l = CASES[case]
    torch.manual_seed(0)
    skeleton = Skeleton.preset(name)
    n = skeleton.num_joints
    with torch.device(common.DEVICE):
        conv = HCSFConv(c, c, skeleton.edge_index, n, S=s, L=l, d=1 / 8)
        x = torch.randn(*lead, n, c, requires_grad=True)
    desc = (f'{name}: N={n}, input {list(x.shape)}, S={s}, L={l}, d=1/8, '
            f'squeezed widths {conv.squeezed}')
    return skeleton, conv, x, desc


def implementations(skeleton, conv, x):
    n, c = skeleton.num_joints, x.size(-1)
    dense = DenseHCSF(conv, skeleton).to(x.device)
    graphs = x.numel() // (n * c)
    data = KHopEdges(conv.L)(skeleton.to_data())
    batch = Batch.from_data_list([data] * graphs).to(x.device)
    xb = x.detach().reshape(graphs * n, c).requires_grad_()
    torch.manual_seed(0)
    with torch.device(x.device):
        dynamic = DynamicHCSFConv(c, c, skeleton.edge_index, n, S=conv.S,
                                  L=conv.L, d=conv.d, temporal_kernel=3 if
                                  x.dim() == 4 else 1)
    return {
        'dense per-hop': (dense, (x, ), True),
        'static (ours)': (conv, (x, ), True),
        'disjoint (ours)': (lambda t: conv(
            t, khop_edge_index=batch.khop_edge_index,
            khop_distance=batch.khop_distance), (xb, ), True),
        'disjoint edge_index (ours)': (lambda t: conv(t, batch.edge_index),
                                       (xb, ), True),
        'dynamic Eq. 8 (ours)': (dynamic, (x, ), False),
    }, dynamic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer repetitions')
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)

    sections = []
    for case in CASES:
        skeleton, conv, x, desc = make_case(case)
        impls, dynamic = implementations(skeleton, conv, x)
        ref = conv(x)
        for name, (fn, inputs, same) in impls.items():
            out = fn(*inputs)
            if same:  # these compute the same function
                torch.testing.assert_close(out.reshape(ref.shape), ref,
                                           atol=1e-4, rtol=1e-4)
            del out
        # Interleaved rounds, best round kept: on a shared machine, load
        # from other processes then hits every implementation alike.
        results = {name: float('inf') for name in impls}
        for _ in range(3 if args.quick else 7):
            for name, (fn, inputs, _) in impls.items():
                params = [*(dynamic if fn is dynamic else conv).parameters()]
                sec = common.time_fwd_bwd(fn, inputs, params + list(inputs),
                                          min_time=0.1 if args.quick else
                                          0.3)
                results[name] = min(results[name], sec)
        for name, sec in results.items():
            print(f'{case:18s} {name:22s} {sec * 1e3:9.2f} ms',
                  file=sys.stderr)
        dense = results['dense per-hop']
        rows = [[name, f'{sec * 1e3:.2f}', f'{sec / dense:.2f}']
                for name, sec in results.items()]
        sections.append(f'## {desc}\n\n' + common.markdown_table(
            ['implementation', 'fwd+bwd ms', 'vs dense per-hop'], rows) +
                        '\n')

    note = ('Each time is the best of several interleaved rounds (each '
            'round the median of repeated forward+backward passes), so that '
            'load from other processes on a shared machine hits all '
            'implementations alike. '
            '`vs dense per-hop` is the time ratio measured in this run '
            '(lower is better); the first four rows compute the same '
            'function with the same parameters (checked before timing). '
            'The dynamic layer computes more (per-sample offsets on all '
            'N^2 pairs for every hop, temporal kernel 3 on the sequence '
            'case) and is listed for scale only.'
            + (' Run with `--quick`: short timings, expect noise.'
               if args.quick else '') + '\n')
    path = common.write_report(
        f'hcsf_{common.sparse_suffix()}',
        'HCSFConv: forward+backward against a dense per-hop formulation',
        note + '\n' + '\n'.join(sections))
    print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
    main()

"""Training throughput per model: the library trainer
(:class:`pyg_skeleton.training.Trainer`, which ``pyg-skeleton train`` runs)
against a minimal plain-PyTorch dense loop, on the same data and batch size.

Models (``pyg_skeleton.nn.MODELS``): ``semgcn``,
``semgcn_nonlocal``, ``semgcn_pre_agg`` (a weight-sharing variant) and
``skeletal_gnn``. For the first three a plain dense PyTorch equivalent is
written here (dense SemGCN convolution; dense grouped non-local block;
per-node einsum weights); ``skeletal_gnn`` has none and is reported as
samples/s and against the trainer's SemGCN. Everything trains on the
built-in **synthetic** lifting data (no data set needed) for the same number
of steps; the trainer's samples/s are taken from its history (the row of
``metrics.csv``: training steps only, evaluation excluded) and the plain
loop is timed the same way. Runs are interleaved (trainer, plain, next model, ...) and the best
of the repeats is kept. Writes ``benchmarks/results/training.md``.

    python benchmarks/bench_training.py [--quick] [--models a,b]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.datasets import TensorBatches, load_lifting  # noqa: E402
from pyg_skeleton.training import TrainConfig, Trainer  # noqa: E402

import _common as common  # noqa: E402
from _common import markdown_table, write_report  # noqa: E402


class DenseSemConv(nn.Module):
    """Dense semantic graph convolution: separate weights for the node itself
    and its neighbours, neighbour weights from a learnable edge mask
    normalised with a softmax over each row of the adjacency (with self
    loops)."""

    def __init__(self, cin, cout, adj):
        super().__init__()
        self.w = nn.Parameter(torch.empty(2, cin, cout))
        nn.init.xavier_uniform_(self.w[0])
        nn.init.xavier_uniform_(self.w[1])
        self.register_buffer('mask', adj > 0)
        self.e = nn.Parameter(torch.ones(int(self.mask.sum())))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        h0, h1 = x @ self.w[0], x @ self.w[1]
        logits = torch.full(self.mask.shape, -9e15, device=x.device)
        logits = logits.masked_scatter(self.mask, self.e)
        a = torch.softmax(logits, dim=1)
        eye = torch.eye(a.size(0), device=x.device)
        return (a * eye) @ h0 + (a * (1 - eye)) @ h1 + self.bias


class DensePreAggConv(nn.Module):
    """Dense pre-aggregation weight sharing (Liu et al.): one weight matrix
    per source node, applied before a softmax-normalised adjacency."""

    def __init__(self, cin, cout, adj):
        super().__init__()
        n = adj.size(0)
        self.w = nn.Parameter(torch.empty(n, cin, cout))
        for i in range(n):
            nn.init.xavier_uniform_(self.w[i])
        self.register_buffer('mask', adj > 0)
        self.e = nn.Parameter(torch.ones(int(self.mask.sum())))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        h = torch.einsum('bjc,jco->bjo', x, self.w)
        logits = torch.full(self.mask.shape, -9e15, device=x.device)
        a = torch.softmax(logits.masked_scatter(self.mask, self.e), dim=1)
        return a @ h + self.bias


class DenseNonLocal(nn.Module):
    """Grouped non-local block (concatenation affinity) in plain PyTorch:
    keys and values max-pooled per joint group through a padded index."""

    def __init__(self, c, groups):
        super().__init__()
        ci = c // 2
        self.theta, self.phi, self.g = (nn.Linear(c, ci), nn.Linear(c, ci),
                                        nn.Linear(c, ci))
        self.w = nn.Parameter(torch.randn(2 * ci) * 0.1)
        self.out, self.bn = nn.Linear(ci, c), nn.BatchNorm1d(c)
        nn.init.zeros_(self.bn.weight)
        width = max(len(g) for g in groups)
        self.register_buffer('index', torch.tensor(
            [g + [g[0]] * (width - len(g)) for g in groups]))  # [K, width]

    def forward(self, x):
        ci = self.w.numel() // 2
        b = x.size(0)
        k, width = self.index.shape
        theta = self.theta(x)
        phi = self.phi(x)[:, self.index.view(-1)].view(b, k, width, ci)
        g = self.g(x)[:, self.index.view(-1)].view(b, k, width, ci)
        phi, g = phi.amax(2), g.amax(2)
        f = torch.relu((theta @ self.w[:ci]).unsqueeze(-1) +
                       (phi @ self.w[ci:]).unsqueeze(-2)) / k
        h = self.out(f @ g)
        return x + self.bn(h.reshape(-1, h.size(-1))).view(x.shape)


class Block(nn.Module):
    def __init__(self, cin, cout, adj, conv=None):
        super().__init__()
        conv = conv or DenseSemConv
        self.conv, self.bn = conv(cin, cout, adj), nn.BatchNorm1d(cout)

    def forward(self, x):
        x = self.conv(x)
        return self.bn(x.reshape(-1, x.size(-1))).view(x.shape).relu()


class PlainSemGCN(nn.Module):
    def __init__(self, adj, hidden=128, layers=4, conv=None, groups=None):
        super().__init__()
        conv = conv or DenseSemConv
        self.inp = Block(2, hidden, adj, conv)
        self.res = nn.ModuleList(nn.Sequential(Block(hidden, hidden, adj, conv),
                                               Block(hidden, hidden, adj, conv))
                                 for _ in range(layers))
        self.nl = nn.ModuleList(DenseNonLocal(hidden, groups)
                                for _ in range(layers + 1)) if groups else None
        self.out = conv(hidden, 3, adj)

    def forward(self, x):
        x = self.inp(x)
        for i in range(len(self.res) + 1):
            if self.nl is not None:
                x = self.nl[i](x)
            if i < len(self.res):
                x = x + self.res[i](x)
        return self.out(x)


# CLI model -> plain dense equivalent (None: no plain loop written here).
PLAIN = {
    'semgcn': lambda adj, s: PlainSemGCN(adj),
    'semgcn_nonlocal': lambda adj, s: PlainSemGCN(adj, groups=s.groups),
    'semgcn_pre_agg': lambda adj, s: PlainSemGCN(adj, conv=DensePreAggConv),
    'skeletal_gnn': None,
}


def plain_loop(train, skeleton, batch_size, steps, seed, model_name='semgcn'):
    torch.manual_seed(seed)
    n = skeleton.num_joints
    adj = torch.eye(n)
    adj[skeleton.edge_index[0], skeleton.edge_index[1]] = 1
    model = PLAIN[model_name](adj, skeleton).to(common.DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = TensorBatches(train, batch_size, seed=seed)
    done, t0 = 0, None
    epoch = 0
    while done < steps + 3:
        loader.set_epoch(epoch)
        for x, y, _, _ in loader:
            if done == 3:  # warm-up steps excluded
                if common.DEVICE.type == 'cuda':
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            x, y = x.to(common.DEVICE), y.to(common.DEVICE)
            loss = (model(x) - y).square().sum((-2, -1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= steps + 3:
                break
        epoch += 1
    if common.DEVICE.type == 'cuda':
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def trainer_run(batch_size, steps, seed, poses, model_name='semgcn'):
    # the options of `pyg-skeleton train --model NAME --dataset synthetic
    # --synthetic-train POSES --synthetic-test 50 --views 4 --epochs 1
    # --steps-per-epoch STEPS --no-flip-test`, run by the library trainer
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(model=model_name, dataset='synthetic', synthetic_train=poses,
                             synthetic_test=50, views=4, batch_size=batch_size, epochs=1,
                             steps_per_epoch=steps, no_progress=True, no_plots=True,
                             flip_test=False, seed=seed, out=str(Path(tmp) / 'run'),
                             device=str(common.DEVICE))
        trainer = Trainer(config=config, log=lambda text, err=False: None)
        trainer.fit()
        return trainer.history[-1]['samples_per_s']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=None)
    parser.add_argument('--models', default=','.join(PLAIN),
                        help='comma-separated CLI model names')
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)
    t_start, load0 = time.time(), os.getloadavg()
    steps = 20 if args.quick else 100
    repeats = args.repeats or (1 if args.quick else 2)
    poses = 3000 if args.quick else 20000
    models = args.models.split(',')
    if args.quick:
        models = [m for m in models if m in ('semgcn', 'skeletal_gnn')]
    skeleton = Skeleton.preset('h36m17')
    train, _ = load_lifting('synthetic', synthetic_train=poses, synthetic_test=10, views=4)

    ours = {m: [] for m in models}
    plain = {m: [] for m in models}
    for r in range(repeats):  # interleaved, so load changes hit all alike
        for m in models:
            ours[m].append(trainer_run(args.batch_size, steps, r, poses, m))
            if PLAIN.get(m) is not None:
                plain[m].append(plain_loop(train, skeleton, args.batch_size,
                                           steps, r, m))
            print(m, ours[m][-1], plain[m][-1:] or '-', file=sys.stderr, flush=True)
    sem = max(ours['semgcn']) if ours.get('semgcn') else None
    rows = []
    for m in models:
        best = max(ours[m])
        bp = max(plain[m]) if plain[m] else None
        rows.append([
            m, f'{best:,.0f}', ', '.join(f'{v:,.0f}' for v in ours[m]),
            f'{bp:,.0f}' if bp else 'no plain loop',
            ', '.join(f'{v:,.0f}' for v in plain[m]) or '-',
            f'**{best / bp:.2f}**' if bp else '-',
            f'{best / sem:.2f}' if sem else '-'])
    load1 = os.getloadavg()
    body = '\n'.join([
        f'Load average (1, 5, 15 min) at start {load0[0]:.2f}, {load0[1]:.2f}, '
        f'{load0[2]:.2f}; at end {load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f}; '
        f'torch threads {torch.get_num_threads()}; wall time '
        f'{(time.time() - t_start) / 60:.1f} min.', '',
        f'Models of `pyg_skeleton.nn.MODELS` (hidden 128, h36m17) trained by the library '
        f'`Trainer` (as `pyg-skeleton train` runs them) on the built-in **synthetic** '
        f'lifting data, batch size {args.batch_size}, {steps} timed steps per run '
        f'(flip augmentation on in the trainer, as by default), best of {repeats} '
        f'interleaved runs{" (--quick)" if args.quick else ""}. The plain loops are '
        f'dense PyTorch equivalents written in this script (same architecture: '
        f'input block, 4 residual blocks of two graph convolutions with batch '
        f'norm, output convolution; non-local blocks before each residual block '
        f'and the output for `semgcn_nonlocal`); `skeletal_gnn` has no plain '
        f'equivalent here and is compared with the trainer\'s SemGCN only.', '',
        markdown_table(['model', 'trainer samples/s (best)', 'trainer runs',
                        'plain loop samples/s (best)', 'plain runs',
                        'trainer / plain', 'trainer / trainer semgcn'], rows), '',
        '`trainer / plain` > 1: the trainer is faster. The trainer\'s figure '
        'covers its whole training step (batch slicing, flip augmentation, '
        'learning-rate schedule, progress bookkeeping); evaluation and '
        'checkpointing are excluded, as in the plain loop.'])
    path = write_report('training', 'Training throughput: trainer vs plain PyTorch loop', body)
    print(body)
    print(f'\nwritten to {path}')


if __name__ == '__main__':
    main()

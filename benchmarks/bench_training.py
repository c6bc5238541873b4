"""Training throughput: SemGCN in the ``pyg-skeleton train`` trainer against a
minimal plain-PyTorch dense SemGCN loop, on the same data and batch size.

Both train on the built-in **synthetic** lifting data (no data set needed)
for the same number of steps; the trainer's samples/s are taken from its
``metrics.csv`` (training steps only, evaluation excluded) and the plain loop
is timed the same way. Writes ``benchmarks/results/training.md``.

    python benchmarks/bench_training.py [--quick]
"""
import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_report  # noqa: E402

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.cli import main as cli_main  # noqa: E402
from pyg_skeleton.datasets import TensorBatches, load_lifting  # noqa: E402


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


class Block(nn.Module):
    def __init__(self, cin, cout, adj):
        super().__init__()
        self.conv, self.bn = DenseSemConv(cin, cout, adj), nn.BatchNorm1d(cout)

    def forward(self, x):
        x = self.conv(x)
        return self.bn(x.reshape(-1, x.size(-1))).view(x.shape).relu()


class PlainSemGCN(nn.Module):
    def __init__(self, adj, hidden=128, layers=4):
        super().__init__()
        self.inp = Block(2, hidden, adj)
        self.res = nn.ModuleList(nn.Sequential(Block(hidden, hidden, adj),
                                               Block(hidden, hidden, adj))
                                 for _ in range(layers))
        self.out = DenseSemConv(hidden, 3, adj)

    def forward(self, x):
        x = self.inp(x)
        for r in self.res:
            x = x + r(x)
        return self.out(x)


def plain_loop(train, skeleton, batch_size, steps, seed):
    torch.manual_seed(seed)
    n = skeleton.num_joints
    adj = torch.eye(n)
    adj[skeleton.edge_index[0], skeleton.edge_index[1]] = 1
    model = PlainSemGCN(adj)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = TensorBatches(train, batch_size, seed=seed)
    done, t0 = 0, None
    epoch = 0
    while done < steps + 3:
        loader.set_epoch(epoch)
        for x, y, _, _ in loader:
            if done == 3:  # warm-up steps excluded
                t0 = time.perf_counter()
            loss = (model(x) - y).square().sum((-2, -1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= steps + 3:
                break
        epoch += 1
    return steps * batch_size / (time.perf_counter() - t0)


def trainer_run(batch_size, steps, seed, poses):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'run'
        code = cli_main(['train', '--model', 'semgcn', '--dataset', 'synthetic',
                         '--synthetic-train', str(poses), '--synthetic-test', '50',
                         '--views', '4', '--batch-size', str(batch_size), '--epochs', '1',
                         '--steps-per-epoch', str(steps), '--no-progress', '--no-plots',
                         '--no-flip-test', '--seed', str(seed), '--out', str(out)])
        assert code == 0
        with open(out / 'metrics.csv') as f:
            row = list(csv.DictReader(f))[-1]
        return float(row['samples_per_s'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=None)
    args = parser.parse_args()
    steps = 40 if args.quick else 200
    repeats = args.repeats or (1 if args.quick else 3)
    poses = 4000 if args.quick else 20000
    skeleton = Skeleton.preset('h36m17')
    train, _ = load_lifting('synthetic', synthetic_train=poses, synthetic_test=10, views=4)

    ours, plain = [], []
    for r in range(repeats):  # interleaved, so load changes hit both alike
        ours.append(trainer_run(args.batch_size, steps, r, poses))
        plain.append(plain_loop(train, skeleton, args.batch_size, steps, r))
    best_ours, best_plain = max(ours), max(plain)
    rows = [['pyg-skeleton train (SemGCN, PyG SemGraphConv)', f'{best_ours:,.0f}',
             ', '.join(f'{v:,.0f}' for v in ours)],
            ['plain PyTorch dense SemGCN loop', f'{best_plain:,.0f}',
             ', '.join(f'{v:,.0f}' for v in plain)]]
    body = '\n'.join([
        f'SemGCN (hidden 128, 4 residual blocks, h36m17) trained on the built-in **synthetic** '
        f'lifting data, batch size {args.batch_size}, {steps} timed steps per run '
        f'(flip augmentation on in the trainer, as by default), best of {repeats} '
        f'interleaved runs{" (--quick)" if args.quick else ""}.', '',
        markdown_table(['loop', 'samples/s (best)', 'all runs'], rows), '',
        f'**Ratio trainer / plain loop: {best_ours / best_plain:.2f}** '
        f'(>1: the trainer is faster).', '',
        'The trainer\'s figure covers its whole training step (batch slicing, flip '
        'augmentation, learning-rate schedule, progress bookkeeping); evaluation and '
        'checkpointing are excluded, as in the plain loop.'])
    path = write_report('training', 'Training throughput: trainer vs plain PyTorch loop', body)
    print(body)
    print(f'\nwritten to {path}')


if __name__ == '__main__':
    main()

r"""``pyg-skeleton train`` and ``evaluate``: the 2D-to-3D lifting trainer.

* Data: a dataset of :func:`pyg_skeleton.datasets.load_lifting` (the
  built-in ``synthetic`` poses by default, ``bandai``, ``h36m`` or an
  ``.npz`` path) rendered through virtual cameras; static tensor batches.
* Validation: ``--val-fraction`` (default 0.1) of the training data is held
  out (whole sequences or takes, see
  :func:`~pyg_skeleton.datasets.lifting.load_lifting_splits`); ``best.pt``
  is the checkpoint with the lowest **validation** MPJPE, never chosen on
  the test split. With ``--val-fraction 0`` there is no validation split and
  ``best.pt`` is the last epoch's checkpoint (``best.pt`` = ``last.pt``).
* Outputs in ``--out``: ``metrics.csv`` and ``metrics.json`` (per epoch),
  ``last.pt`` and ``best.pt`` checkpoints, ``report.json`` (test metrics
  of the last and the best checkpoint, per joint and per group),
  ``curves.png`` and ``samples.png``. An existing non-empty folder is never written into
  unless ``--resume`` or ``--overwrite`` is given.
* Checkpoints are written atomically (temporary file, then
  :func:`os.replace`) and hold only tensors and plain containers, so
  ``torch.load(path, weights_only=True)`` reads them. ``--resume``
  continues from ``last.pt`` (saved every epoch and every
  ``--checkpoint-every`` steps) and reaches the same weights as an
  uninterrupted run: the batch order depends only on the seed and the epoch.
* Several processes: under ``torchrun`` the same command trains with
  :class:`~torch.nn.parallel.DistributedDataParallel` (``gloo`` on CPU,
  ``nccl`` on GPU); each rank takes its share of every global batch
  (``--batch-size`` is global), batch normalisation uses statistics over the
  global batch, and evaluation metrics are summed across ranks, so the run
  matches a single process with the same global batch.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_skeleton.cli.main import CLIError
from pyg_skeleton.cli.models import MODELS, build_model
from pyg_skeleton.skeleton import Skeleton

CHECKPOINT_FORMAT = 'pyg_skeleton.lifting_checkpoint.v1'
#: Testing hook: exit hard (``os._exit``) after this many training steps of
#: the process, as a crash or a killed job would.
CRASH_ENV = 'PYG_SKELETON_CRASH_AFTER_STEPS'

# Options that define a run; ``--resume`` takes them from the checkpoint.
RUN_OPTIONS = ('model', 'dataset', 'data', 'skeleton', 'test_actor', 'views', 'frame_step',
               'val_fraction', 'inputs_2d', 'cameras', 'max_frames', 'max_test_frames',
               'synthetic_train', 'synthetic_test', 'epochs', 'max_steps',
               'steps_per_epoch', 'batch_size', 'lr', 'lr_schedule', 'lr_decay', 'min_lr',
               'weight_decay', 'seed', 'hidden_channels', 'num_layers', 'dropout',
               'bone_weight', 'flip_augment', 'flip_test', 'checkpoint_every', 'eval_batch_size')


# ---------------------------------------------------------------- arguments

def add_data_arguments(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument('--dataset', default=d('synthetic'),
                   help="'synthetic' (built-in, default), 'bandai', 'h36m' or an .npz path")
    p.add_argument('--data', default=None,
                   help='data file: bandai2_h36m17.npz (default: ../shared/data/mocap when '
                        'present) or data_3d_h36m.npz for h36m')
    p.add_argument('--test-actor', type=int, default=d(2), help='held-out Bandai actor')
    p.add_argument('--views', type=int, default=d(4), help='virtual camera views per pose')
    p.add_argument('--frame-step', type=int, default=d(1), help='keep every k-th frame')
    p.add_argument('--max-frames', type=int, default=None,
                   help='cap on the training frames (evenly strided)')
    p.add_argument('--max-test-frames', type=int, default=None,
                   help='cap on the test frames (evenly strided)')
    p.add_argument('--synthetic-train', type=int, default=d(20000),
                   help='synthetic training poses')
    p.add_argument('--synthetic-test', type=int, default=d(2000), help='synthetic test poses')
    p.add_argument('--inputs-2d', default=None,
                   help='h36m only: real 2D keypoints, data_2d_h36m_<name>.npz (VideoPose3D '
                        'layout; needs --cameras)')
    p.add_argument('--cameras', default=None,
                   help='h36m only: cameras JSON (format in pyg_skeleton.datasets.h36m) for '
                        '--inputs-2d')


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', default='semgcn', help='model name (see --list-models)')
    p.add_argument('--list-models', action='store_true', help='list the models and exit')
    p.add_argument('--skeleton', default='h36m17',
                   help='skeleton preset of the model (and of the synthetic poses)')
    add_data_arguments(p)
    p.add_argument('--val-fraction', type=float, default=0.1,
                   help='fraction of the training data (whole sequences/takes) held out for '
                        'validation; best.pt has the lowest validation MPJPE (0: no '
                        'validation, best.pt = last.pt)')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--max-steps', type=int, default=None, help='stop after this many steps')
    p.add_argument('--steps-per-epoch', type=int, default=None,
                   help='cap on the steps of an epoch')
    p.add_argument('--batch-size', type=int, default=256, help='global batch size')
    p.add_argument('--eval-batch-size', type=int, default=2048)
    p.add_argument('--lr', type=float, default=1e-3, help='learning rate (Adam)')
    p.add_argument('--lr-schedule', choices=['exp', 'cosine', 'constant'], default='exp',
                   help="'exp': lr * lr_decay ** epoch (continuous); 'cosine': to --min-lr")
    p.add_argument('--lr-decay', type=float, default=0.95, help='per-epoch factor of exp')
    p.add_argument('--min-lr', type=float, default=1e-5)
    p.add_argument('--weight-decay', type=float, default=0.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--hidden-channels', type=int, default=128)
    p.add_argument('--num-layers', type=int, default=4)
    p.add_argument('--dropout', type=float, default=None)
    p.add_argument('--bone-weight', type=float, default=0.0,
                   help='weight of the bone-vector term of the SemGCN loss')
    p.add_argument('--flip-augment', action=argparse.BooleanOptionalAction, default=True,
                   help='random horizontal flips while training')
    p.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=True,
                   help='test-time flip augmentation')
    p.add_argument('--checkpoint-every', type=int, default=0,
                   help='also save last.pt every N steps (0: only per epoch)')
    p.add_argument('--out', default=None, help='output folder (default: runs/MODEL-DATASET)')
    p.add_argument('--resume', action='store_true', help='continue the run in --out')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('--no-plots', action='store_true', help='no PNG plots')
    p.add_argument('--samples', type=int, default=4, help='test samples in samples.png')


# ------------------------------------------------------------- distributed

class DistBatchNorm1d(torch.nn.BatchNorm1d):
    r"""Batch normalisation with statistics over the global batch of all
    ranks (a differentiable all-reduce of the sums), for CPU / gloo where
    :class:`torch.nn.SyncBatchNorm` is unavailable."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        c = x.size(1)
        flat = x.transpose(0, 1).reshape(c, -1) if x.dim() > 2 else x.t()
        local = torch.cat([flat.sum(1), flat.square().sum(1),
                           flat.new_tensor([float(flat.size(1))])])
        total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean.square()).clamp_min(0)
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
            self.num_batches_tracked += 1
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_dist_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Replaces every :class:`torch.nn.BatchNorm1d` by :class:`DistBatchNorm1d`
    (same parameters and buffers)."""
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm1d:
            new = DistBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_dist_batchnorm(child)
    return module


def setup_distributed():
    """``(rank, world_size, device)`` from the torchrun environment."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        return 0, 1, dev
    rank = int(os.environ['RANK'])
    if torch.cuda.is_available():
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        dev, backend = torch.device('cuda', local), 'nccl'
    else:
        dev, backend = torch.device('cpu'), 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return rank, world, dev


# --------------------------------------------------------------- utilities

def plain(value: Any) -> Any:
    """Values that ``torch.load(weights_only=True)`` and JSON accept."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def atomic_save(obj: Any, path: Path) -> None:
    """Saves with :func:`torch.save` to a temporary file in the same folder,
    flushes it to disk and renames it over :obj:`path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise CLIError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != CHECKPOINT_FORMAT:
        raise CLIError(f"{path} is not a pyg-skeleton lifting checkpoint")
    return ckpt


def lr_at(args, step: float, steps_per_epoch: int, total_steps: int) -> float:
    if args.lr_schedule == 'constant':
        return args.lr
    if args.lr_schedule == 'exp':
        return args.lr * args.lr_decay ** (step / max(steps_per_epoch, 1))
    t = min(step / max(total_steps, 1), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))


def get_skeleton(name: str) -> Skeleton:
    if name not in Skeleton.presets():
        raise CLIError(f"unknown skeleton {name!r} (choose from {', '.join(Skeleton.presets())})")
    return Skeleton.preset(name)


def load_data(args):
    """``(train, val, test)`` of the run's data; ``val`` is :obj:`None` when
    ``--val-fraction`` is 0."""
    from pyg_skeleton.datasets.lifting import load_lifting_splits
    try:
        train, val, test = load_lifting_splits(
            args.dataset, args.data, val_fraction=getattr(args, 'val_fraction', 0.0) or 0.0,
            test_actor=args.test_actor, views=args.views,
            frame_step=args.frame_step, seed=args.seed, synthetic_train=args.synthetic_train,
            synthetic_test=args.synthetic_test, max_frames=args.max_frames,
            max_test_frames=getattr(args, 'max_test_frames', None),
            skeleton=getattr(args, 'skeleton', None) or 'h36m17',
            inputs_2d=getattr(args, 'inputs_2d', None), cameras=getattr(args, 'cameras', None))
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CLIError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    for name, split in (('training data', train), ('validation data', val),
                        ('test data', test)):
        if split is None:
            continue
        if len(split) == 0:
            raise CLIError(f"{name} is empty" + (' (lower --val-fraction or use 0)'
                                                 if split is val else ''))
        try:
            split.check_finite(name)
        except ValueError as e:
            raise CLIError(str(e)) from None
    return train, val, test


def check_joints(skeleton: Skeleton, data, what: str = 'data') -> None:
    if data.num_joints != skeleton.num_joints:
        raise CLIError(f"{what} has {data.num_joints} joints but skeleton {skeleton.name!r} has "
                       f"{skeleton.num_joints} (skeleton/model joint-count mismatch)")


def make_model(name: str, skeleton: Skeleton, args, sample_x: Tensor) -> torch.nn.Module:
    try:
        model = build_model(name, skeleton, args)
    except ValueError as e:
        raise CLIError(str(e)) from None
    model.eval()
    with torch.no_grad():
        try:
            out = model(sample_x)
        except Exception as e:
            raise CLIError(f"model {name!r} failed on input {list(sample_x.shape)}: "
                           f"{str(e).splitlines()[0]}") from None
    expected = list(sample_x.shape[:-1]) + [3]
    if list(out.shape) != expected:
        raise CLIError(f"model {name!r} outputs {list(out.shape)} for input "
                       f"{list(sample_x.shape)}, expected {expected} (joint-count mismatch?)")
    model.train()
    return model


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuses to write into an existing run unless asked to."""
    if resume:
        if not (out / 'last.pt').is_file():
            raise CLIError(f"--resume: no checkpoint {out / 'last.pt'}")
        return
    if out.exists() and not out.is_dir():
        raise CLIError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise CLIError(f"output folder {out} already holds a run; use --resume to continue "
                           f"it or --overwrite to replace it")


# -------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, data, skeleton, batch_size: int, flip: bool, rank: int = 0,
             world: int = 1, device=torch.device('cpu')):
    """Metrics of :obj:`model` on :obj:`data`, sharded over ranks and
    summed across them (see :class:`~pyg_skeleton.metrics.MetricAccumulator`)."""
    from pyg_skeleton.datasets.camera import flip_test
    from pyg_skeleton.metrics import MetricAccumulator
    was_training = model.training
    model.eval()
    n = len(data)
    lo, hi = rank * n // world, (rank + 1) * n // world
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    for a in range(lo, hi, batch_size):
        x = data.x[a:min(a + batch_size, hi)].to(device)
        y = data.y[a:min(a + batch_size, hi)]
        pred = flip_test(model, x, skeleton) if flip else model(x)
        acc.update(pred.cpu(), y, groups=data.group[a:min(a + batch_size, hi)])
    acc.all_reduce()
    model.train(was_training)
    return acc.compute(data.group_names or None)


def mean_pose_baseline(mean_pose: Tensor, data, skeleton) -> Dict[str, Any]:
    """Metrics of always predicting the mean training pose."""
    from pyg_skeleton.metrics import MetricAccumulator
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    for a in range(0, len(data), 8192):
        y = data.y[a:a + 8192]
        acc.update(mean_pose.expand_as(y), y, groups=data.group[a:a + 8192])
    return acc.compute(data.group_names or None)


def report_table(metrics: Dict, baseline: Optional[Dict], title: str) -> str:
    rows = [('MPJPE (mm)', 'mpjpe'), ('P-MPJPE (mm)', 'p_mpjpe'), ('N-MPJPE (mm)', 'n_mpjpe'),
            ('PCK@150mm (%)', 'pck'), ('AUC 0-150mm (%)', 'auc')]
    lines = [title, '', f"| {'metric':<16} | {'model':>9} | {'mean-pose baseline':>18} |",
             f"|{'-' * 18}|{'-' * 11}|{'-' * 20}|"]
    for label, key in rows:
        base = f"{baseline[key]:18.1f}" if baseline else f"{'':18}"
        lines.append(f"| {label:<16} | {metrics[key]:9.1f} | {base} |")
    groups = metrics.get('per_group') or {}
    if len(groups) > 1:
        lines += ['', f"| {'group':<22} | {'MPJPE':>7} | {'P-MPJPE':>7} | {'baseline':>8} |",
                  f"|{'-' * 24}|{'-' * 9}|{'-' * 9}|{'-' * 10}|"]
        for g, m in groups.items():
            b = (baseline or {}).get('per_group', {}).get(g, {}).get('mpjpe', float('nan'))
            lines.append(f"| {g:<22} | {m['mpjpe']:7.1f} | {m['p_mpjpe']:7.1f} | {b:8.1f} |")
    return '\n'.join(lines)


# ------------------------------------------------------------------- plots

def plot_curves(history: List[Dict], path: Path, label: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ep = [h['epoch'] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h['train_loss'] for h in history], 'o-')
    a.set_xlabel('epoch')
    a.set_ylabel('training loss')
    a.set_yscale('log')
    b.plot(ep, [h['test_mpjpe'] for h in history], 'o-', label='MPJPE')
    b.plot(ep, [h['test_p_mpjpe'] for h in history], 's-', label='P-MPJPE')
    if any(h.get('val_mpjpe') is not None for h in history):
        b.plot(ep, [h.get('val_mpjpe') for h in history], '^--', label='validation MPJPE')
    if history and history[-1].get('baseline_mpjpe') is not None:
        b.axhline(history[-1]['baseline_mpjpe'], color='gray', ls='--', label='mean pose')
    b.set_xlabel('epoch')
    b.set_ylabel('error (mm)')
    b.legend()
    fig.suptitle(label)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_samples(pred: Tensor, target: Tensor, skeleton: Skeleton, path: Path,
                 label: str, inputs: Tensor) -> None:
    """Test samples: the 2D input beside the predicted 3D pose (upright, the
    ground truth in grey), with each sample's MPJPE."""
    from pyg_skeleton.plotting import plot_lifted
    err = (pred - target).norm(dim=-1).mean(-1) * 1000
    plot_lifted(inputs.numpy(), None, pred.numpy(), skeleton, path,
                titles=[f'test sample {i}, MPJPE {e:.0f} mm' for i, e in enumerate(err.tolist())],
                truth=target.numpy(), suptitle=label)


# ----------------------------------------------------------------- training

def _load_resume_args(args) -> argparse.Namespace:
    ckpt = load_checkpoint(Path(args.out) / 'last.pt')
    stored = ckpt['args']
    for key in RUN_OPTIONS:
        if key in stored:
            setattr(args, key, stored[key])
    if 'val_fraction' not in stored:  # a run of a version without validation
        args.val_fraction = 0.0
    return args


def run_train(args) -> int:
    if getattr(args, 'list_models', False):
        print('\n'.join(MODELS))
        return 0
    if args.out is None:
        args.out = str(Path('runs') / f'{args.model}-{Path(str(args.dataset)).stem}')
    out = Path(args.out)
    prepare_out(out, args.resume, args.overwrite)
    if args.resume:
        _load_resume_args(args)
    if args.model not in MODELS:
        raise CLIError(f"unknown model {args.model!r} (choose from {', '.join(MODELS)})")
    for opt in ('epochs', 'batch_size', 'views', 'frame_step', 'eval_batch_size'):
        if getattr(args, opt) < 1:
            raise CLIError(f"--{opt.replace('_', '-')} must be at least 1")
    if not args.lr > 0:
        raise CLIError('--lr must be positive')
    if not 0 <= args.val_fraction < 1:
        raise CLIError(f'--val-fraction must be in [0, 1), got {args.val_fraction}')
    skeleton = get_skeleton(args.skeleton)

    rank, world, device = setup_distributed()
    try:
        return _train(args, out, skeleton, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args, out: Path, skeleton: Skeleton, rank: int, world: int, device) -> int:
    from tqdm import tqdm

    from pyg_skeleton.datasets.lifting import TensorBatches
    from pyg_skeleton.nn.loss import SemGCNLoss

    main_rank = rank == 0
    if args.batch_size % world:
        raise CLIError(f"--batch-size {args.batch_size} is not divisible by the {world} "
                       f"processes")
    torch.manual_seed(args.seed)
    train, val, test = load_data(args)
    check_joints(skeleton, train, 'training data')
    check_joints(skeleton, test, 'test data')
    model = make_model(args.model, skeleton, args, train.x[:2])
    if world > 1:  # before the optimizer sees the parameters
        convert_dist_batchnorm(model)
    model.to(device)
    if len(train) < args.batch_size:
        raise CLIError(f"training data has {len(train)} samples, fewer than --batch-size "
                       f"{args.batch_size}")

    mean_pose = train.y.mean(0)
    loss_fn = SemGCNLoss(skeleton, bone_weight=args.bone_weight).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loader = TensorBatches(train, args.batch_size, shuffle=True, seed=args.seed, rank=rank,
                           world_size=world)
    steps_per_epoch = len(loader)
    if args.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)

    start_epoch, start_step, global_step = 0, 0, 0
    history: List[Dict] = []
    best, best_epoch = float('inf'), 0
    if args.resume:
        ckpt = load_checkpoint(out / 'last.pt')
        model.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        torch.set_rng_state(ckpt['rng_torch'])
        start_epoch, start_step = int(ckpt['epoch']), int(ckpt['step_in_epoch'])
        global_step = int(ckpt['global_step'])
        history = list(ckpt['history'])
        best = float(ckpt['best_mpjpe'])
        best_epoch = int(ckpt.get('best_epoch', 0))

    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None,
            broadcast_buffers=False)
    else:
        ddp = model

    label = f"{args.model} on {train.description}"
    if train.synthetic:
        label += ' [SYNTHETIC DATA]'
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        if args.overwrite and not args.resume:
            for name in ('metrics.csv', 'metrics.json', 'report.json', 'best.pt', 'last.pt',
                         'curves.png', 'samples.png'):
                (out / name).unlink(missing_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"pyg-skeleton train: {label}", flush=True)
        print(f"  {len(train):,} training / "
              + (f"{len(val):,} validation / " if val is not None else '')
              + f"{len(test):,} test samples, {n_params:,} parameters, "
              f"{world} process(es), batch {args.batch_size}, {total_steps} steps"
              + (f", resuming at step {global_step}" if args.resume else ''), flush=True)

    def state(epoch: int, step_in_epoch: int) -> Dict[str, Any]:
        return {'format': CHECKPOINT_FORMAT, 'model_name': args.model,
                'model': {k: v.detach().cpu() for k, v in model.state_dict().items()},
                'optimizer': optimizer.state_dict(), 'epoch': epoch,
                'step_in_epoch': step_in_epoch, 'global_step': global_step,
                'rng_torch': torch.get_rng_state(), 'history': plain(history),
                'best_mpjpe': best, 'best_epoch': best_epoch,
                'best_metric': 'val_mpjpe' if val is not None else 'last',
                'args': plain({k: getattr(args, k, None) for k in RUN_OPTIONS}),
                'skeleton': plain(skeleton.to_dict()), 'mean_pose': mean_pose.clone(),
                'group_names': list(train.group_names or test.group_names),
                'description': train.description, 'synthetic': bool(train.synthetic)}

    crash_after = int(os.environ.get(CRASH_ENV, '0') or 0)
    steps_this_process = 0
    flip_gen = torch.Generator()
    baseline = mean_pose_baseline(mean_pose, test, skeleton)
    epoch = start_epoch
    while epoch < args.epochs and global_step < total_steps:
        loader.set_epoch(epoch)
        # one flip decision per training sample and epoch, the same on every rank
        flip_gen.manual_seed(args.seed * 1_000_003 + epoch)
        flips = torch.rand(len(train), generator=flip_gen) < 0.5
        n_steps = min(steps_per_epoch, start_step + total_steps - global_step)
        bar = tqdm(total=n_steps, initial=start_step, desc=f'epoch {epoch + 1}/{args.epochs}',
                   disable=not main_rank or args.no_progress, leave=False, dynamic_ncols=True,
                   file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 10.0)
        loss_sum, loss_n, t0 = 0.0, 0, time.perf_counter()
        step = start_step
        for x, y, _, idx in loader.iterate(start_step):
            if step >= n_steps:
                break
            if args.flip_augment:
                f = flips[idx]
                if f.any():
                    x, y = x.clone(), y.clone()
                    x[f] = skeleton.flip(x[f], lateral_axis=0)
                    y[f] = skeleton.flip(y[f], lateral_axis=0)
            lr = lr_at(args, global_step, steps_per_epoch, total_steps)
            for g in optimizer.param_groups:
                g['lr'] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(ddp(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            global_step += 1
            step += 1
            steps_this_process += 1
            loss_sum += float(loss.detach())
            loss_n += 1
            elapsed = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(loss=f'{loss_sum / loss_n:.4f}',
                            samples_per_s=f'{loss_n * args.batch_size / max(elapsed, 1e-9):.0f}',
                            refresh=False)
            if crash_after and steps_this_process >= crash_after:
                os._exit(17)  # testing hook: die like a killed job, no cleanup
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < n_steps:
                if main_rank:
                    atomic_save(state(epoch, step), out / 'last.pt')
        bar.close()
        seconds = time.perf_counter() - t0
        train_loss = loss_sum / max(loss_n, 1)
        if world > 1:
            t = torch.tensor([loss_sum, float(loss_n)], dtype=torch.float64)
            dist.all_reduce(t)
            train_loss = float(t[0] / t[1].clamp_min(1))
        net = ddp.module if world > 1 else model
        vmetrics = (evaluate(net, val, skeleton, args.eval_batch_size, args.flip_test, rank,
                             world, device) if val is not None else None)
        metrics = evaluate(net, test, skeleton, args.eval_batch_size, args.flip_test, rank,
                           world, device)
        row = {'epoch': epoch + 1, 'global_step': global_step, 'lr': lr,
               'train_loss': train_loss,
               'val_mpjpe': vmetrics['mpjpe'] if vmetrics else None,
               'val_p_mpjpe': vmetrics['p_mpjpe'] if vmetrics else None,
               'test_mpjpe': metrics['mpjpe'],
               'test_p_mpjpe': metrics['p_mpjpe'], 'test_n_mpjpe': metrics['n_mpjpe'],
               'test_pck': metrics['pck'], 'test_auc': metrics['auc'],
               'baseline_mpjpe': baseline['mpjpe'],
               'samples_per_s': loss_n * args.batch_size / max(seconds, 1e-9),
               'seconds': seconds}
        history.append(row)
        # model selection on the validation split only; without one, best = last
        select = vmetrics['mpjpe'] if vmetrics else float('-inf')
        improved = vmetrics is None or select < best
        if improved:
            best, best_epoch = select, epoch + 1
        epoch += 1
        start_step = 0
        if main_rank:
            tqdm.write(f"epoch {row['epoch']:3d}  step {global_step:6d}  loss {train_loss:.4f}  "
                       + (f"val MPJPE {row['val_mpjpe']:.1f} mm  " if vmetrics else '')
                       + f"test MPJPE {row['test_mpjpe']:.1f} mm  P-MPJPE "
                       f"{row['test_p_mpjpe']:.1f} mm  {row['samples_per_s']:.0f} samples/s",
                       file=sys.stdout)
            sys.stdout.flush()
            ck = state(epoch, 0)
            if improved:
                atomic_save(ck, out / 'best.pt')
            atomic_save(ck, out / 'last.pt')
            write_history(out, history, label)
        if world > 1:
            dist.barrier()

    net = ddp.module if world > 1 else model
    final = evaluate(net, test, skeleton, args.eval_batch_size, args.flip_test, rank, world,
                     device)
    final_val = (evaluate(net, val, skeleton, args.eval_batch_size, args.flip_test, rank, world,
                          device) if val is not None else None)
    # test metrics of the best (validation-selected) checkpoint
    best_final, best_step = final, global_step
    if world > 1:
        dist.barrier()
    if val is not None and (out / 'best.pt').is_file():
        best_ckpt = load_checkpoint(out / 'best.pt')
        best_step = int(best_ckpt['global_step'])
        if best_step != global_step:
            import copy
            best_model = copy.deepcopy(net)
            best_model.load_state_dict(best_ckpt['model'])
            best_final = evaluate(best_model, test, skeleton, args.eval_batch_size,
                                  args.flip_test, rank, world, device)
    if main_rank:
        report = {'label': label, 'dataset': train.description, 'synthetic': train.synthetic,
                  'model': args.model, 'steps': global_step, 'processes': world,
                  'final': final, 'baseline': baseline,
                  'last': {'epoch': epoch, 'step': global_step, 'test': final,
                           'val': final_val},
                  'best': {'epoch': best_epoch, 'step': best_step,
                           'selected_on': 'val_mpjpe' if val is not None else 'last',
                           'val_mpjpe': best if val is not None else None,
                           'test': best_final},
                  'validation': ({'samples': len(val), 'fraction': args.val_fraction}
                                 if val is not None else None),
                  'args': plain({k: getattr(args, k, None) for k in RUN_OPTIONS})}
        atomic_write_text(out / 'report.json', json.dumps(report, indent=1))
        if not args.no_plots:
            try:
                if history:
                    plot_curves(history, out / 'curves.png', label)
                k = min(args.samples, len(test))
                idx = torch.linspace(0, len(test) - 1, k).long()
                model.eval()
                with torch.no_grad():
                    pred = model(test.x[idx].to(device)).cpu()
                plot_samples(pred, test.y[idx], skeleton, out / 'samples.png', label, test.x[idx])
            except ImportError:
                print('  (matplotlib missing: no plots)')
        print(report_table(final, baseline, f"Final test metrics: {label}"))
        if val is not None:
            print(f"\nbest.pt: epoch {best_epoch} (lowest validation MPJPE {best:.1f} mm): "
                  f"test MPJPE {best_final['mpjpe']:.1f} mm, P-MPJPE "
                  f"{best_final['p_mpjpe']:.1f} mm")
        else:
            print('\nno validation split (--val-fraction 0): best.pt is the last checkpoint')
        print(f"\noutputs in {out}/ (best.pt, last.pt, metrics.csv, metrics.json, report.json"
              + ('' if args.no_plots else ', curves.png, samples.png') + ')')
    return 0


def write_history(out: Path, history: List[Dict], label: str) -> None:
    keys = list(history[0])
    fd, tmp = tempfile.mkstemp(prefix='.metrics.csv.', suffix='.tmp', dir=out)
    with os.fdopen(fd, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow(row)
    os.replace(tmp, out / 'metrics.csv')
    atomic_write_text(out / 'metrics.json', json.dumps({'label': label, 'epochs': history},
                                                       indent=1))


# --------------------------------------------------------------- evaluate

def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--checkpoint', required=True, help='a best.pt / last.pt of pyg-skeleton train')
    add_data_arguments(p, defaults=False)
    p.add_argument('--batch-size', type=int, default=2048)
    p.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=None,
                   help='test-time flip augmentation (default: as trained)')
    p.add_argument('--out', default=None, help='write the metrics as JSON to this file')
    p.add_argument('--overwrite', action='store_true')


def run_evaluate(args) -> int:
    ckpt = load_checkpoint(Path(args.checkpoint))
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; use --overwrite to replace it")
    run = argparse.Namespace(**ckpt['args'])
    for key in ('dataset', 'data', 'test_actor', 'views', 'frame_step', 'max_frames',
                'max_test_frames', 'synthetic_train', 'synthetic_test', 'inputs_2d', 'cameras'):
        if getattr(args, key, None) is not None:
            setattr(run, key, getattr(args, key))
    if args.dataset is not None and args.data is None and args.dataset != ckpt['args']['dataset']:
        run.data = None
        if args.inputs_2d is None and args.cameras is None:
            run.inputs_2d = run.cameras = None
    run.synthetic_train, run.max_frames = 1, 1  # only the test split is used
    run.val_fraction = 0.0
    try:
        skeleton = Skeleton.from_dict(ckpt['skeleton'])
    except Exception as e:
        raise CLIError(f"checkpoint holds an invalid skeleton: {e}") from None
    _, _, test = load_data(run)
    check_joints(skeleton, test, 'test data')
    if ckpt['model_name'] not in MODELS:
        raise CLIError(f"checkpoint model {ckpt['model_name']!r} is not available "
                       f"(known: {', '.join(MODELS)})")
    model = make_model(ckpt['model_name'], skeleton, run, test.x[:2])
    try:
        model.load_state_dict(ckpt['model'])
    except RuntimeError as e:
        raise CLIError(f"checkpoint weights do not fit model {ckpt['model_name']!r}: "
                       f"{str(e).splitlines()[0]}") from None
    flip = run.flip_test if args.flip_test is None else args.flip_test
    metrics = evaluate(model, test, skeleton, args.batch_size, flip)
    baseline = mean_pose_baseline(ckpt['mean_pose'], test, skeleton)
    label = f"{ckpt['model_name']} on {test.description}"
    if test.synthetic:
        label += ' [SYNTHETIC DATA]'
    print(report_table(metrics, baseline, f"pyg-skeleton evaluate: {label} "
                                          f"({len(test):,} test samples, flip test {flip})"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps({'label': label, 'synthetic': test.synthetic,
                                           'checkpoint': str(args.checkpoint),
                                           'metrics': metrics, 'baseline': baseline}, indent=1))
    return 0


class _Command:
    def __init__(self, help: str, add_arguments, run):
        self.HELP, self.add_arguments, self.run = help, add_arguments, run


train_command = _Command('train a 2D-to-3D lifting model', add_train_arguments, run_train)
evaluate_command = _Command('evaluate a checkpoint of pyg-skeleton train',
                            add_evaluate_arguments, run_evaluate)

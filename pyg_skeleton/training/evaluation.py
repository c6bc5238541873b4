r"""Evaluation of lifting models: metrics sharded over processes, the
mean-pose baseline and the metrics table."""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .config import TrainingError

__all__ = ['evaluate', 'mean_pose_baseline', 'report_table']


def _pose_groups(group: Tensor, y: Tensor) -> Tensor:
    # the metrics count poses: a sample of clips [T, N, 3] is T poses of its group
    return group.repeat_interleave(y[0, ..., 0, 0].numel()) if y.dim() > 3 else group


@torch.no_grad()
def evaluate(model, data, skeleton, batch_size: int, flip: bool, rank: int = 0,
             world: int = 1, device=torch.device('cpu')):
    """Metrics of :obj:`model` on :obj:`data`, sharded over ranks and
    summed across them (see :class:`~pyg_skeleton.metrics.MetricAccumulator`),
    with the model on :obj:`device` (where it is moved)."""
    from pyg_skeleton.datasets.camera import flip_test
    from pyg_skeleton.metrics import MetricAccumulator, process_group_device
    was_training = model.training
    model.eval()
    model.to(device)
    n = len(data)
    lo, hi = rank * n // world, (rank + 1) * n // world
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    bad = torch.zeros(1, device=process_group_device())  # NCCL reduces on the GPU
    for a in range(lo, hi, batch_size):
        x = data.x[a:min(a + batch_size, hi)].to(device)
        y = data.y[a:min(a + batch_size, hi)]
        pred = flip_test(model, x, skeleton) if flip else model(x)
        if not torch.isfinite(pred).all():
            bad += 1
            break
        acc.update(pred.cpu(), y, groups=_pose_groups(data.group[a:min(a + batch_size, hi)], y))
    if world > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(bad)  # every rank stops, none waits in acc.all_reduce
    if bad.item():
        raise TrainingError("the model predicts NaN or infinite values (diverged weights?)")
    acc.all_reduce()
    model.train(was_training)
    return acc.compute(data.group_names or None)


def mean_pose_baseline(mean_pose: Tensor, data, skeleton) -> dict[str, Any]:
    """Metrics of always predicting the mean training pose."""
    from pyg_skeleton.metrics import MetricAccumulator
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    for a in range(0, len(data), 8192):
        y = data.y[a:a + 8192]
        acc.update(mean_pose.expand_as(y), y, groups=_pose_groups(data.group[a:a + 8192], y))
    return acc.compute(data.group_names or None)


def report_table(metrics: dict, baseline: dict | None, title: str) -> str:
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

r"""Normalisation layers for training over several processes."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ['DistBatchNorm1d', 'convert_dist_batchnorm']


class DistBatchNorm1d(torch.nn.BatchNorm1d):
    r"""Batch normalisation with statistics over the global batch of all
    ranks of :mod:`torch.distributed`, for CPU and ``gloo``, where
    :class:`torch.nn.SyncBatchNorm` is unavailable.

    In training mode under an initialised process group, the per-channel
    sums :math:`\sum x` and :math:`\sum x^2` and the count :math:`n` of every
    rank are summed with a differentiable all-reduce, so

    .. math::
        \mu = \frac{1}{n} \sum x, \qquad
        \sigma^2 = \frac{1}{n} \sum x^2 - \mu^2

    are the statistics a single process would compute on the global batch
    (the running variance is the unbiased :math:`\sigma^2 n / (n - 1)`, as
    :class:`torch.nn.BatchNorm1d`). Otherwise it is
    :class:`torch.nn.BatchNorm1d`.

    Args:
        As :class:`torch.nn.BatchNorm1d`.

    Shapes:
        - **input:** :obj:`[B, C]` or :obj:`[B, C, L]`
        - **output:** the input's shape
    """

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
    r"""Replaces every :class:`torch.nn.BatchNorm1d` of :obj:`module` (in
    place, recursively) by a :class:`DistBatchNorm1d` with the same
    parameters and buffers.

    Returns:
        torch.nn.Module: :obj:`module`.
    """
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm1d:
            new = DistBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_dist_batchnorm(child)
    return module

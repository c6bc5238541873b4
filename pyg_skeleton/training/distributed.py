r"""Training over several processes (:mod:`torch.distributed`, started by
``torchrun``)."""
from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.distributed as dist

__all__ = ['setup_distributed', 'is_distributed', 'all_reduce_sum']


def setup_distributed() -> Tuple[int, int, torch.device]:
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


def is_distributed() -> bool:
    """Whether a process group of several processes is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums :obj:`tensor` over the processes, in place (a no-op in a single
    process)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor
